"""``trec-docs``: ``<DOC><DOCNO>id</DOCNO> text </DOC>`` (Vaswani)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.ir.base import Document
from harness.ir.formats._common import Parsed, PerFileFormat, clean, fail, read_lines


def parse_trec_docs(path: Path) -> Parsed:
    docs: list[Document] = []
    docno: str | None = None
    body: list[str] | None = None
    start = 0
    for lineno, line in enumerate(read_lines(path), 1):
        s = line.strip()
        if s == "<DOC>":
            if body is not None:
                raise fail(path, lineno, f"<DOC> opened inside the <DOC> of line {start}")
            body, docno, start = [], None, lineno
            continue
        if body is None:
            if s:
                raise fail(path, lineno, "text outside <DOC>...</DOC>")
            continue
        if s == "</DOC>":
            if docno is None:
                raise fail(path, lineno, f"the <DOC> of line {start} has no <DOCNO>")
            docs.append(Document(docno, clean(" ".join(body))))
            body = None
            continue
        m = re.match(r"^<DOCNO>\s*(.*?)\s*</DOCNO>(.*)$", s)
        if m:
            if docno is not None:
                raise fail(path, lineno, "second <DOCNO> in one document")
            if not m.group(1):
                raise fail(path, lineno, "empty <DOCNO>")
            docno = m.group(1)
            body.append(m.group(2))
        else:
            body.append(line)
    if body is not None:
        raise fail(path, start, "<DOC> is never closed")
    return Parsed(docs)


class TrecDocs(PerFileFormat):
    """TREC SGML documents: ``<DOC><DOCNO>id</DOCNO> text </DOC>``; whitespace collapsed."""

    name = "trec-docs"
    produces = "corpus"

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_trec_docs(path)
