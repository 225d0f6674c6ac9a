"""``trec-run``: a TREC run ``qid Q0 docno rank score tag``, read through ir-measures."""

from __future__ import annotations

import io
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


def write_trec_run(run: Any, tag: str) -> bytes:
    """``qid Q0 docno rank score tag`` lines written by PyTerrier's ``pt.io.write_results``, from a
    normalised run (``qid, docno, rank`` with ranks from 0, in order): ranks from 1 and rank-derived
    integer scores ``depth - rank``, so trec_eval on the file reproduces the stored order (the
    export of a stored run, :func:`harness.ir.runfile.to_trec`); ids with whitespace or ``"``
    (which the CSV writer would quote) are refused."""
    import pandas as pd
    import pyterrier as pt

    tag = "".join(c if not c.isspace() else "_" for c in tag) or "run"
    qid = run["qid"].astype(str)
    docno = run["docno"].astype(str)
    for name, col in (("qid", qid), ("docno", docno)):
        bad = col[col.str.contains(r'[\s"]', regex=True)]
        if len(bad):
            raise ValueError(f"{name} {bad.iloc[0]!r} cannot be written to a TREC run (whitespace or a quote)")
    rank = run["rank"].astype(int)
    depth = int(rank.max()) + 1 if len(run) else 0
    out = pd.DataFrame({"qid": qid.to_numpy(), "docno": docno.to_numpy(), "rank": (rank + 1).to_numpy(),
                        "score": (depth - rank).to_numpy()})
    buf = io.StringIO()
    pt.io.write_results(out, buf, format="trec", run_name=tag)
    return buf.getvalue().encode()
