"""The pruned-model cache (harness.llm.pruned_cache): a hit gives the very weights a fresh prune
gives, any input that decides the weights changes the key, a broken entry is re-made, the size cap
evicts the least recently used entry, methods that change the model's shape are never cached, and
two workers asking for one key prune once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from harness.kinds import SetupContext
from harness.registry import get_method
from tiny_models import one_thread  # noqa: F401 (autouse fixture)

MODEL = "config:tiny-llama"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HARNESS_PRUNED_CACHE_DIR", raising=False)  # conftest turns it off for the rest
    monkeypatch.delenv("HARNESS_PRUNED_CACHE_GB", raising=False)
    return tmp_path / "setup"


def setup(method: str, cache_dir: Path | None, **params: str):
    info = get_method(method)
    inst = info.cls(info.cls.resolve_params(dict(params), MODEL))
    out = inst.setup(SetupContext(model=MODEL, cache_dir=cache_dir, command=f"test {method}"))
    return out, {k: v.clone() for k, v in out.model.model.state_dict().items()}


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p.parent for p in (cache_dir / "pruned-models").glob("??/*/entry.json"))


WANDA = {"sparsity": "0.5", "nsamples": "2", "seqlen": "16"}


def test_a_hit_gives_the_weights_a_fresh_prune_gives(cache_dir: Path) -> None:
    first, w1 = setup("wanda", cache_dir, **WANDA)
    info = first.sections["pruning"]["details"]["pruned_model_cache"]
    assert info["hit"] is False and info["stored"] is True and len(entries(cache_dir)) == 1
    second, w2 = setup("wanda", cache_dir, **WANDA)
    hit = second.sections["pruning"]["details"]["pruned_model_cache"]
    assert hit["hit"] is True and hit["key"] == info["key"] and hit["command"] == "test wanda"
    assert second.timings["prune_seconds"] == first.timings["prune_seconds"]  # the method's cost, not the load's
    fresh, w3 = setup("wanda", None, **WANDA)
    assert "pruned_model_cache" not in fresh.sections["pruning"]["details"]
    for name in w3:
        assert torch.equal(w2[name], w3[name]) and torch.equal(w1[name], w3[name]), name
    assert second.artifacts["pruning_layers"] == fresh.artifacts["pruning_layers"]  # the per-layer figures


def test_every_input_that_decides_the_weights_changes_the_key(cache_dir: Path) -> None:
    keys = set()
    for params in (WANDA, WANDA | {"sparsity": "0.6"}, WANDA | {"seed": "1"}, WANDA | {"nsamples": "3"},
                   WANDA | {"calibration_order": "reversed"}):
        out, _w = setup("wanda", cache_dir, **params)
        keys.add(out.sections["pruning"]["details"]["pruned_model_cache"]["key"])
    out, _w = setup("magnitude", cache_dir, sparsity="0.5")
    keys.add(out.sections["pruning"]["details"]["pruned_model_cache"]["key"])
    assert len(keys) == 6 and len(entries(cache_dir)) == 6


def test_a_broken_entry_is_dropped_and_made_again(cache_dir: Path) -> None:
    _out, w1 = setup("magnitude", cache_dir, sparsity="0.5")
    (entry,) = entries(cache_dir)
    (entry / "model.safetensors").write_bytes(b"not a safetensors file")
    again, w2 = setup("magnitude", cache_dir, sparsity="0.5")
    assert again.sections["pruning"]["details"]["pruned_model_cache"]["hit"] is False
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    third, _w = setup("magnitude", cache_dir, sparsity="0.5")
    assert third.sections["pruning"]["details"]["pruned_model_cache"]["hit"] is True


def test_the_size_cap_evicts_the_least_recently_used(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup("magnitude", cache_dir, sparsity="0.3")
    (one,) = entries(cache_dir)
    size = sum(f.stat().st_size for f in one.iterdir())
    monkeypatch.setenv("HARNESS_PRUNED_CACHE_GB", str(1.5 * size / 1024**3))  # room for one entry
    setup("magnitude", cache_dir, sparsity="0.5")
    (left,) = entries(cache_dir)
    assert left != one  # the older one went; the one just made stays
    monkeypatch.setenv("HARNESS_PRUNED_CACHE_GB", str(0.5 * size / 1024**3))  # no room at all
    out, _w = setup("magnitude", cache_dir, sparsity="0.7")
    assert out.sections["pruning"]["details"]["pruned_model_cache"]["stored"] is False
    assert entries(cache_dir) == [left]


def test_shape_changing_methods_and_a_disabled_cache_store_nothing(cache_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out, _w = setup("shortgpt", cache_dir, blocks="1", nsamples="2", seqlen="16")
    assert "pruned_model_cache" not in out.sections["pruning"]["details"] and entries(cache_dir) == []
    monkeypatch.setenv("HARNESS_PRUNED_CACHE_DIR", "off")
    out, _w = setup("magnitude", cache_dir, sparsity="0.5")
    assert "pruned_model_cache" not in out.sections["pruning"]["details"] and entries(cache_dir) == []


def test_two_workers_asking_for_one_key_prune_once(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.llm.pruning import PruningMethod

    real, calls = PruningMethod._prune_timed, []

    def counted(self, loaded, calibration):
        calls.append(threading.get_ident())
        return real(self, loaded, calibration)

    monkeypatch.setattr(PruningMethod, "_prune_timed", counted)
    hits: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            out, _w = setup("wanda", cache_dir, **WANDA)
            hits.append(out.sections["pruning"]["details"]["pruned_model_cache"]["hit"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(calls) == 1 and sorted(hits) == [False, True]


def test_a_reproduction_never_uses_the_cache(tmp_path: Path) -> None:
    """`harness reproduce` re-runs a stored cell to check it: it must prune afresh."""
    from fixtures_results import write_synthetic
    from harness.reproduce import request_of
    from harness.results import ResultStore

    store = ResultStore(tmp_path / "results")
    write_synthetic(store, method="wanda", params={"sparsity": 0.5}, task_id="wikitext2", quality=0.0, n_items=4)
    (stored,) = store.scan()[0]
    assert request_of(stored.result, tmp_path / "results").setup_cache is False
