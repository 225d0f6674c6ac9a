"""The committed grid files: the leaderboard grid covers every committed result, and the paper
protocol declares the full protocol (no limits, 128 x 2048 C4 calibration, one GPU per unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_committed_result_comes_from_the_leaderboard_grid():
    """Each committed result is a stored cell of the grid, or a result of an older version of its
    method (magnitude and SparseGPT v1, exact-k masks) whose v2 cell the grid lists as to run."""
    import json

    from harness.registry import get_method

    s = plan_sweep(REPO / "sweeps" / "leaderboard.yaml", REPO / "results")
    committed = {p.stem: p for p in (REPO / "results").glob("*/*.json")}
    stored = {c.run_id for c in s.cells if c.state == "stored"}
    assert stored <= set(committed)
    legacy = set(committed) - stored
    for run_id in legacy:
        method = json.loads(committed[run_id].read_text())["method"]
        assert method.get("version", 1) < getattr(get_method(method["name"]).cls, "version", 1), run_id
    to_run = [c for c in s.cells if c.state != "stored"]
    assert len(to_run) == len(legacy) and {c.state for c in to_run} <= {"to run"}


def test_the_paper_protocol_is_the_full_protocol(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # it is a grid for GPU machines
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    s = plan_sweep(REPO / "sweeps" / "paper-protocol.yaml", REPO / "results")
    assert len(s.cells) == 7 * 9
    # nothing of it is stored but the full WikiText-2 of the methods without calibration (dense,
    # magnitude): the leaderboard's 148-window cells are those same cells (the device is not part
    # of a run id)
    board = {c.run_id for c in plan_sweep(REPO / "sweeps" / "leaderboard.yaml", REPO / "results").cells}
    for c in s.cells:
        if c.state != "to run":
            assert c.run_id in board and c.task == "wikitext2", c
            assert s.units[c.unit].request.method in ("dense", "magnitude"), c
    for unit in s.units:
        r = unit.request
        assert r.device == "cuda" and r.task_limits == {} and r.limit is None  # full test sets
        assert unit.resources.gpus == 1
        if r.method in ("wanda", "sparsegpt"):
            assert (r.params["nsamples"], r.params["seqlen"], r.params["calibration"]) == ("128", "2048", "c4")
    assert {u.request.params.get("pattern") for u in s.units} == {None, "unstructured", "2:4"}
