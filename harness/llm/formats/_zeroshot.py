"""Options shared by the zero-shot example formats (checked by :func:`harness.llm.zeroshot_data.prepare`)."""

from __future__ import annotations

from typing import Any

from harness.data import ResolvedData
from harness.formats import DataFormat, FormatOptions


class ZeroShotOptions(FormatOptions):
    split: str | None = None  # the split lm-eval evaluates (must match the converter's)
    count: int | None = None  # documented number of documents (checked)
    converted_sha256: str | None = None  # sha256 of the JSONL converted to lm-eval's layout (checked)


class ExamplesFormat(DataFormat):
    produces = "examples"
    multi_file = False
    Options = ZeroShotOptions

    def read(self, files: list[ResolvedData], options: Any) -> list[dict[str, Any]]:
        (resolved,) = files
        assert resolved.path is not None
        return self.read_path(resolved.path)

    def read_path(self, path: Any) -> list[dict[str, Any]]:
        raise NotImplementedError
