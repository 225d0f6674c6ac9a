"""``trec-run``: a TREC run ``qid Q0 docno rank score tag``, read through ir-measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.ir.formats._common import Parsed, PerFileFormat, fail, read_lines
from harness.ir.formats.qrels import LineFeed


def parse_trec_run(path: Path) -> Parsed:
    """[(qid, docno, score)] in file order, parsed by :func:`ir_measures.read_trec_run` (gzip is
    not decoded here: name the uncompressed file)."""
    import ir_measures

    feed = LineFeed(read_lines(path))
    rows = []
    try:
        for d in ir_measures.read_trec_run(feed):
            rows.append((d.query_id, d.doc_id, d.score))
    except ValueError:
        parts = feed.line.split()
        if len(parts) != 6:
            raise fail(path, feed.lineno, f"expected 'qid Q0 docno rank score tag', got {len(parts)} fields") from None
        raise fail(path, feed.lineno, f"score {parts[4]!r} is not a number") from None
    return Parsed(rows)


class TrecRun(PerFileFormat):
    """TREC run ``qid Q0 docno rank score tag`` (read by ir-measures): rows (qid, docno, score) in
    file order; ranks are recomputed by whoever uses the run."""

    name = "trec-run"
    produces = "run"

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_trec_run(path)
