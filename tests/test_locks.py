"""The per-run-id lock: a second holder waits until the first releases; a dead holder frees it."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from harness.locks import run_lock


def _hold(root: str, run_id: str, seconds: float, started) -> None:  # noqa: ANN001
    with run_lock(root, run_id):
        started.set()
        time.sleep(seconds)


def test_second_holder_waits_for_the_first(tmp_path):
    ctx = mp.get_context("fork")
    started = ctx.Event()
    p = ctx.Process(target=_hold, args=(str(tmp_path), "abc", 1.0, started))
    p.start()
    assert started.wait(10)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        with run_lock(tmp_path, "abc", poll_seconds=0.05, timeout=0.2):
            pass
    with run_lock(tmp_path, "other", timeout=0.2):  # another run id is not blocked
        pass
    with run_lock(tmp_path, "abc", poll_seconds=0.05, timeout=10):
        waited = time.monotonic() - t0
    p.join()
    assert waited >= 0.5  # it waited for the holder


def test_a_killed_holder_leaves_no_lock(tmp_path):
    ctx = mp.get_context("fork")
    started = ctx.Event()
    p = ctx.Process(target=_hold, args=(str(tmp_path), "abc", 60.0, started))
    p.start()
    assert started.wait(10)
    p.kill()
    p.join()
    with run_lock(tmp_path, "abc", timeout=2):
        pass
