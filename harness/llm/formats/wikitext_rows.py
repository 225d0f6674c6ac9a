"""``wikitext-rows``: WikiText raw rows joined by blank lines."""

from __future__ import annotations

from typing import Any

from harness.data import ResolvedData
from harness.formats import DataFormat
from harness.llm.formats._hub import hub_rows


class WikitextRows(DataFormat):
    """WikiText raw text: the local file with CRLF converted to LF; from the hub, the split's
    ``text`` rows joined with ``"\\n\\n"`` (the standard pruning-paper protocol). Checked against
    the entry's ``content_sha256`` by the reader of running text."""

    name = "wikitext-rows"
    produces = "text"
    multi_file = False
    local_only = False

    def read(self, files: list[ResolvedData], options: Any) -> str:
        (resolved,) = files
        if resolved.path is None:
            return "\n\n".join(hub_rows(resolved))
        return resolved.path.read_bytes().decode("utf-8").replace("\r\n", "\n")
