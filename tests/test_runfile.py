"""The stored ranked-lists run format and its TREC export."""

from __future__ import annotations

import lzma

import pandas as pd
import pytest

from harness.errors import DataIntegrityError
from harness.ir import runfile


def test_round_trip_and_trec_export_by_hand():
    lists = [("q2", ["d9", "d1", "d5"]), ("q1", ["d1"])]
    data = runfile.encode(lists)
    assert lzma.decompress(data) == b"q2\td9 d1 d5\nq1\td1\n"
    assert runfile.decode(data) == [("q2", ["d9", "d1", "d5"]), ("q1", ["d1"])]
    # depth 3: scores 3, 2, 1 down each list, ranks from 1, the tag without whitespace
    assert runfile.to_trec(runfile.decode(data), "my run") == (
        b"q2 Q0 d9 1 3 my_run\nq2 Q0 d1 2 2 my_run\nq2 Q0 d5 3 1 my_run\nq1 Q0 d1 1 3 my_run\n"
    )
    back, tag = runfile.from_trec(runfile.to_trec(lists, "bm25"))
    assert back == lists and tag == "bm25"


def test_from_frame_keeps_query_order_and_rank_order():
    run = pd.DataFrame({"qid": ["b", "b", "a"], "docno": ["x", "y", "z"], "rank": [0, 1, 0]})
    assert runfile.decode(runfile.from_frame(run)) == [("b", ["x", "y"]), ("a", ["z"])]


def test_bad_ids_and_files_are_refused():
    with pytest.raises(ValueError, match="whitespace"):
        runfile.encode([("q 1", ["d"])])
    with pytest.raises(DataIntegrityError, match="not an xz"):
        runfile.decode(b"plain text")
    with pytest.raises(DataIntegrityError, match=r"run.trec:2: rank 3 out of order"):
        runfile.from_trec(b"q Q0 a 1 2 t\nq Q0 b 3 1 t\n", "run.trec")
    with pytest.raises(DataIntegrityError, match="6 columns"):
        runfile.from_trec(b"q Q0 a 1\n")


def test_export_run_of_a_committed_result_writes_its_trec_file(tmp_path, capsys):
    from pathlib import Path

    from harness.cli import main
    from harness.results import ResultStore

    results = Path(__file__).resolve().parent.parent / "results"
    path = next(p for p in sorted((results / "cacm").glob("*.json")))
    stored = ResultStore(results).load(path)
    lists = runfile.decode(open(path.parent / stored.artifacts["run"].file, "rb").read())
    out = tmp_path / "run.trec"
    assert main(["export-run", stored.run_id, "--results", str(results), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == sum(len(d) for _, d in lists)
    qid, q0, docno, rank, score, tag = lines[0].split()
    assert (qid, q0, docno, rank, tag) == (lists[0][0], "Q0", lists[0][1][0], "1", stored.method.name)
