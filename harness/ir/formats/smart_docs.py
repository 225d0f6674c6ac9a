"""``smart-docs``: SMART documents (Cranfield, CISI, CACM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.ir.base import Document
from harness.ir.formats._common import Parsed, PerFileFormat, norm_int_id
from harness.ir.formats._smart import smart_records


def parse_smart_docs(path: Path) -> Parsed:
    docs = []
    for lineno, rid, sec in smart_records(path):
        docno = norm_int_id(path, lineno, rid, "document id")
        docs.append(Document(docno, sec.get("W", ""), sec.get("T", "")))
    return Parsed(docs)


class SmartDocs(PerFileFormat):
    """SMART sections ``.I id`` then ``.T`` (title) and ``.W`` (text); ``.A .B .X .N .K .C`` ignored;
    integer ids normalised (``"001"`` -> ``"1"``); CRLF tolerated."""

    name = "smart-docs"
    produces = "corpus"

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_smart_docs(path)
