"""``tsv-topics``: ``qid<TAB>text`` lines, the TREC DL topic files (strict: duplicates refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data import ResolvedData
from harness.errors import DataIntegrityError
from harness.formats import DataFormat
from harness.ir.formats._common import Parsed


def _bad(path: Path, where: str, msg: str) -> DataIntegrityError:
    return DataIntegrityError(f"{path}: {where}: {msg}")


def read_topics(path: Path) -> dict[str, str]:
    """``qid<TAB>text`` lines -> {qid: text}; refuses blank ids, missing tabs and duplicates."""
    topics: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            qid, sep, text = line.partition("\t")
            qid, text = qid.strip(), text.strip()
            if not sep or not qid or not text:
                raise _bad(path, f"line {lineno}", f"expected 'qid<TAB>query', got {line[:80]!r}")
            if qid in topics:
                raise _bad(path, f"line {lineno}", f"duplicate topic id {qid!r}")
            topics[qid] = text
    if not topics:
        raise _bad(path, "file", "no topics")
    return topics


class TsvTopics(DataFormat):
    """``qid<TAB>query`` lines (TREC DL): blank ids, missing tabs and duplicate ids are refused;
    the text is stripped but kept as written. Several parts: each is read on its own and a topic
    id may appear in one part only."""

    name = "tsv-topics"
    produces = "topics"

    def read(self, files: list[ResolvedData], options: Any) -> Parsed:
        merged: dict[str, str] = {}
        for f in files:
            assert f.path is not None
            part = read_topics(f.path)
            dup = sorted(set(part) & set(merged))
            if dup:
                raise _bad(f.path, "file", f"topic ids also in an earlier part: {dup[:5]}")
            merged.update(part)
        return Parsed(list(merged.items()))
