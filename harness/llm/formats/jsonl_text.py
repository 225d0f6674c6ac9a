"""``jsonl-text``: one JSON object per line with a ``text`` field (C4 shards)."""

from __future__ import annotations

import json
from typing import Any

from harness.data import ResolvedData
from harness.errors import DataIntegrityError
from harness.formats import DataFormat
from harness.llm.formats._hub import hub_rows


class JsonlText(DataFormat):
    """JSON lines with a ``text`` field, one document each (blank lines skipped); several parts
    (shards) are read in order. Hub source: ``files`` names the shards (``data_files``)."""

    name = "jsonl-text"
    produces = "documents"
    local_only = False

    def read(self, files: list[ResolvedData], options: Any) -> list[str]:
        docs: list[str] = []
        for resolved in files:
            if resolved.path is None:
                docs.extend(hub_rows(resolved))
                continue
            with open(resolved.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        docs.append(json.loads(line)["text"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise DataIntegrityError(
                            f"{resolved.path}: line {lineno}: expected a JSON object with a 'text' field"
                        ) from None
        return docs
