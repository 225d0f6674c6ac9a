"""``hf-arrow-stream``: a saved Hugging Face dataset split (an Arrow IPC stream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.llm.formats._zeroshot import ExamplesFormat


class HFArrowStream(ExamplesFormat):
    """A saved HF dataset split (``data-00000-of-00001.arrow``, an Arrow IPC *stream*) with the
    hub's own columns, rows in order. Options: ``split``, ``count``, ``converted_sha256``."""

    name = "hf-arrow-stream"

    def read_path(self, path: Path) -> list[dict[str, Any]]:
        import pyarrow.ipc as ipc

        with ipc.open_stream(str(path)) as reader:
            return reader.read_all().to_pylist()
