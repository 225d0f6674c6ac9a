"""``beir-topics``: (gzipped) ``qid<TAB>query`` lines, the Anserini tool files of BEIR."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from harness.ir.formats._common import Parsed, PerFileFormat, clean, fail


def parse_beir_topics(path: Path) -> Parsed:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip():
                raise fail(path, lineno, f"expected 'qid<TAB>query', got {len(parts)} fields")
            rows.append((parts[0].strip(), clean(parts[1])))
    return Parsed(rows)


class BeirTopics(PerFileFormat):
    """``qid<TAB>query`` lines, gzipped when the name ends in ``.gz``; blank lines skipped,
    whitespace collapsed; duplicates are left to the collection rules (first wins)."""

    name = "beir-topics"
    produces = "topics"

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_beir_topics(path)
