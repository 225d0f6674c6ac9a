"""The noise band: calibration-order repeats, grouping of repeats, their spread, its storage."""

from __future__ import annotations

import json
import math

import pytest
import torch

from harness import noise
from harness.cli import repeat_params
from harness.errors import HarnessError, ParamError
from harness.llm.calibration import RANDOM_TOKENS, load_calibration, order_windows
from harness.params import build_params
from harness.results import validate_result
from methods.pruning.wanda import WandaParams
from tests.fixtures_results import make_doc

CAL = {"nsamples": 32, "seqlen": 512, "calibration": "c4-sample1k", "sparsity": 0.5, "pattern": "unstructured"}


def result(ppl: float, method: str = "wanda", version: int | None = None, **params):
    doc = make_doc(method=method, params={**CAL, "seed": 0, **params}, task_id="wikitext2", limit=8,
                   metrics={"ppl": ppl, "nll": math.log(ppl)},
                   pruning_details={"method_version": version} if version else None,
                   measured_sparsity=0.5)
    return validate_result(doc)


# ---------------------------------------------------------------------------------------------
# calibration_order


@pytest.mark.parametrize("order", ["sampled", "reversed", "shuffle:1", "shuffle:7"])
def test_calibration_order_permutes_only_the_order(order):
    ids = torch.arange(40).reshape(8, 5)
    got = order_windows(ids, order)
    assert got.shape == ids.shape
    # the same windows, each intact: a permutation of the rows
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, ids.tolist()))
    expected = {"sampled": ids, "reversed": ids.flip(0)}.get(order)
    if expected is not None:
        assert torch.equal(got, expected)
    else:
        assert not torch.equal(got, ids)  # 8 rows: a seeded shuffle that moves something
        assert torch.equal(got, order_windows(ids, order))  # deterministic


def test_shuffle_seeds_give_different_orders_of_the_same_windows():
    ids = torch.arange(64).reshape(16, 4)
    a, b = order_windows(ids, "shuffle:1"), order_windows(ids, "shuffle:2")
    assert not torch.equal(a, b)
    assert torch.equal(a.sort(0).values, b.sort(0).values)


def test_load_calibration_applies_the_order_after_sampling():
    kw = dict(name=RANDOM_TOKENS, nsamples=5, seqlen=16, seed=0, vocab_size=50)
    sampled = load_calibration(None, **kw)
    rev = load_calibration(None, **kw, order="reversed")
    assert torch.equal(rev.input_ids, sampled.input_ids.flip(0))
    assert rev.source["order"] == "reversed" and sampled.source["order"] == "sampled"


def test_calibration_order_param_checked_and_default_kept_out_of_the_record():
    p = build_params(WandaParams, {"calibration_order": "shuffle:3"})
    assert p.to_dict()["calibration_order"] == "shuffle:3"
    default = build_params(WandaParams, {})
    # runs made before the parameter existed keep their identity: the default is not recorded
    assert "calibration_order" not in default.to_dict() and "calibration_order" not in default.semantic_dict()
    for bad in ("backwards", "shuffle:", "shuffle:x"):
        with pytest.raises(ParamError, match="calibration_order"):
            build_params(WandaParams, {"calibration_order": bad})


def test_repeat_params_of_the_cli():
    assert [p["seed"] for p in repeat_params({"sparsity": "0.5"}, "seed", 3)] == ["0", "1", "2"]
    orders = [p["calibration_order"] for p in repeat_params({}, "order", 4)]
    assert orders == ["sampled", "reversed", "shuffle:1", "shuffle:2"]
    with pytest.raises(HarnessError, match="seed"):
        repeat_params({"seed": "3"}, "seed", 2)


# ---------------------------------------------------------------------------------------------
# grouping and spread


def test_band_of_constructed_repeats_has_the_known_spread():
    repeats = [result(10.0, seed=0), result(12.0, seed=1), result(14.0, seed=2)]
    other = [result(30.0, sparsity=0.7, seed=s) for s in (0, 1)]  # another configuration
    lone = [result(50.0, method="sparsegpt", seed=0)]  # a single run: no band
    bands = noise.noise_bands(repeats + other + lone + [repeats[0]])  # a duplicate counts once
    assert len(bands) == 2
    band = next(b for b in bands if b.params["sparsity"] == 0.5)
    s = band.metrics["ppl"]
    assert (s.k, s.min, s.max, s.mean) == (3, 10.0, 14.0, 12.0)
    assert s.std == pytest.approx(2.0)  # sample standard deviation (ddof=1) of 10, 12, 14
    assert s.higher_is_better is False and s.width == 4.0
    assert [r["seed"] for r in band.runs] == [0, 1, 2]
    assert "seed" not in band.params and band.k == 3
    assert next(b for b in bands if b.params["sparsity"] == 0.7).metrics["ppl"].std == 0.0


def test_order_repeats_join_the_seed_repeats_and_versions_split_them():
    rs = [result(10.0), result(11.0, calibration_order="reversed"), result(13.0, calibration_order="shuffle:1")]
    band = noise.band_of(rs)
    assert band.metrics["ppl"].k == 3 and band.metrics["ppl"].max == 13.0
    assert [r["calibration_order"] for r in band.runs] == ["reversed", "sampled", "shuffle:1"]
    # a method version is part of the configuration: v1 and v2 results never form one band
    with pytest.raises(HarnessError, match="2 configurations"):
        noise.band_of([result(10.0, seed=0), result(11.0, seed=1, version=2)])
    assert noise.band_of([result(10.0, version=2)]).method_version == 2


def test_indistinguishable_and_overlap():
    a = noise.Spread.of([10.0, 11.0, 12.0])  # width 2
    b = noise.Spread.of([11.5, 12.0, 12.5])  # width 1
    assert noise.bands_overlap(a, b)
    assert noise.indistinguishable(11.0, a, 12.0, b)  # difference 1: inside both bands
    assert not noise.indistinguishable(10.0, a, 12.0, b)  # 2 > width of b
    assert not noise.indistinguishable(11.0, a, 11.5, None)  # no band: no claim
    assert not noise.bands_overlap(a, noise.Spread.of([12.5, 13.0]))


def test_band_written_and_read_back(tmp_path):
    band = noise.band_of([result(10.0, seed=0), result(12.0, seed=1)])
    path = noise.write_band(tmp_path, band, command="harness noise-band ...", created_at="2026-01-01T00:00:00Z")
    assert path.parent == tmp_path / "noise-bands" / "wikitext2" and path.suffix == ".band"
    back = noise.read_bands(tmp_path)
    assert list(back) == [band.band_id]
    got = back[band.band_id]
    assert got.metrics["ppl"] == band.metrics["ppl"] and got.runs == band.runs and got.params == band.params
    # a result finds its band by id, a repeat or not
    assert noise.band_id_of(result(99.0, seed=5)) == band.band_id
    assert noise.band_id_of(result(99.0, sparsity=0.7)) != band.band_id


def test_band_for_finds_the_band_of_a_board_entry(tmp_path):
    band = noise.band_of([result(10.0, seed=0), result(12.0, seed=1)])
    noise.write_band(tmp_path, band)
    bands = noise.read_bands(tmp_path)
    assert noise.band_for(result(10.0, seed=0), bands).metrics["ppl"].max == 12.0
    assert noise.band_for(result(10.0, sparsity=0.7), bands) is None


def _store(results_dir, ppls):
    from harness.results import ResultStore

    store = ResultStore(results_dir)
    for seed, ppl in enumerate(ppls):
        doc = make_doc(method="wanda", params={**CAL, "seed": seed}, task_id="wikitext2", limit=8,
                       metrics={"ppl": ppl, "nll": math.log(ppl)}, measured_sparsity=0.5)
        store.write(doc)


def test_cli_band_of_stored_repeats(tmp_path, capsys):
    from harness.cli import main

    _store(tmp_path, [20.0, 21.0, 23.0])
    args = ["noise-band", "--method", "wanda", "--params", "nsamples=32,seqlen=512,calibration=c4-sample1k,sparsity=0.5",
            "--model", "smollm2-135m", "--task", "wikitext2", "--limit", "wikitext2=8", "--repeats", "3",
            "--stored-only", "--results", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "k=3" in out and "min=20.0000 max=23.0000" in out
    (band,) = noise.read_bands(tmp_path).values()
    assert band.metrics["ppl"].std == pytest.approx(math.sqrt(7 / 3))
    assert [r["seed"] for r in band.runs] == [0, 1, 2]
    # fewer stored repeats than asked: the band of those there, the missing ones named
    assert main(args[:-5] + ["--repeats", "4", "--stored-only", "--results", str(tmp_path)]) == 0
    assert "not stored" in capsys.readouterr().err
    (band,) = noise.read_bands(tmp_path).values()
    stored = json.loads(next((tmp_path / "noise-bands").rglob("*.band")).read_text())
    assert stored["command"].startswith("harness noise-band --method wanda --params nsamples=32")
    assert stored["band_id"] == band.band_id and stored["repeat_params"] == ["seed", "calibration_order"]


def _band_board(tmp_path, with_bands: bool):
    """wikitext2 entries: wanda and sparsegpt (two seeds each, 200 items: the paired test separates
    them) whose perplexities differ by less than either band's width; magnitude far below, no band."""
    import json as _json

    from fixtures_results import write_synthetic
    from harness.noise import noise_bands, write_band
    from harness.report import build_site
    from harness.results import ResultStore

    results = tmp_path / ("with" if with_bands else "without") / "results"
    store = ResultStore(results)
    docs = {}
    for method, q in (("wanda", 0.0), ("sparsegpt", -0.012)):
        for seed, dq in ((0, 0.0), (1, -0.03)):
            _p, docs[method, seed] = write_synthetic(store, method=method, params={"sparsity": 0.5, "seed": seed},
                                                     task_id="wikitext2", quality=q + dq, n_items=200, seed=7)
    write_synthetic(store, method="magnitude", params={"sparsity": 0.5}, task_id="wikitext2", quality=-0.5,
                    n_items=200, seed=7)
    if with_bands:
        for band in noise_bands(store.scan()[0]):
            write_band(results, band, command="test")
    out = tmp_path / ("with" if with_bands else "without") / "site"
    build_site(results, out)
    board = next(b for b in _json.loads((out / "downloads" / "boards.json").read_text())
                 if b["task"] == "wikitext2")
    page = (out / board["page"]).read_text()
    rows = _json.loads((out / board["page"].replace(".html", ".json")).read_text())["rows"]
    return {(r["method"], _json.loads(r["params"]).get("seed") if isinstance(r["params"], str)
             else r["params"].get("seed")): r for r in rows}, page, docs


def test_a_board_never_separates_entries_inside_both_noise_bands(tmp_path):
    plain, page, docs = _band_board(tmp_path, with_bands=False)
    # the precondition: the per-item test alone separates wanda seed 0 from sparsegpt seed 0
    assert plain["wanda", 0]["rank"] != plain["sparsegpt", 0]["rank"]
    assert "noise band" not in page
    rows, page, docs = _band_board(tmp_path, with_bands=True)
    w0, s0 = docs["wanda", 0]["metrics"]["ppl"]["value"], docs["sparsegpt", 0]["metrics"]["ppl"]["value"]
    band_w = rows["wanda", 0]["band"]
    band_s = rows["sparsegpt", 0]["band"]
    assert band_w["k"] == 2 and band_s["k"] == 2
    assert abs(w0 - s0) <= band_w["max"] - band_w["min"] and abs(w0 - s0) <= band_s["max"] - band_s["min"]
    assert rows["wanda", 0]["rank"] == rows["sparsegpt", 0]["rank"]  # the band rule overrides the test
    assert "inside both noise bands" in rows["sparsegpt", 0]["rank_note"]
    assert rows["magnitude", None]["band"] is None
    assert rows["magnitude", None]["rank"] > rows["sparsegpt", 0]["rank"]  # no band: ranked by the test alone
    assert "noise band" in page and "whatever the per-item test says" in page
