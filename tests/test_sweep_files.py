"""The committed grid files: the leaderboard grid covers every committed result, and the paper
protocol declares the full protocol (no limits, 128 x 2048 C4 calibration, one GPU per unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_committed_result_comes_from_the_leaderboard_grid():
    s = plan_sweep(REPO / "sweeps" / "leaderboard.yaml", REPO / "results")
    committed = {p.stem for p in (REPO / "results").glob("*/*.json") if p.parent.name != "artifacts"}
    assert {c.run_id for c in s.cells} == committed
    assert {c.state for c in s.cells} == {"stored"}
    assert len(s.cells) == len(committed) == 188


def test_the_paper_protocol_is_the_full_protocol(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # it is a grid for GPU machines
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    s = plan_sweep(REPO / "sweeps" / "paper-protocol.yaml", REPO / "results")
    assert len(s.cells) == 7 * 9 and all(c.state == "to run" for c in s.cells)
    for unit in s.units:
        r = unit.request
        assert r.device == "cuda" and r.task_limits == {} and r.limit is None  # full test sets
        assert unit.resources.gpus == 1
        if r.method in ("wanda", "sparsegpt"):
            assert (r.params["nsamples"], r.params["seqlen"], r.params["calibration"]) == ("128", "2048", "c4")
    assert {u.request.params.get("pattern") for u in s.units} == {None, "unstructured", "2:4"}
