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


def test_workers_converting_the_embedded_model_together_convert_it_once(tmp_path, monkeypatch):
    """Sweep workers start together: without the lock each converted the GGUF and the last one
    replaced the checkpoint another was loading ("no file named model.safetensors")."""
    import threading

    from harness.llm import models

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    conversions = []

    def fake_convert(name, pkg, gguf, out):  # noqa: ANN001 - stands in for the 30 s dequantisation
        conversions.append(out)
        time.sleep(0.5)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", fake_convert)
    seen, errors = [], []

    def worker():
        try:
            path, _info = models.embedded_checkpoint("smollm2-135m", progress=False)
            seen.append(sorted(p.name for p in path.iterdir()))
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(conversions) == 1
    assert seen == [["config.json", "harness-model.json"]] * 3
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".smollm2")]  # no temp left
