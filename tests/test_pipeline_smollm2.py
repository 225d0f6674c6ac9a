"""Integration on the embedded SmolLM2-135M with small, declared settings."""

import math

import pytest
import torch

from harness.llm.calibration import load_calibration, resolve_calibration_name
from harness.llm.perplexity import tokenize_windows, window_nll
from harness.llm.models import load_model, save_model
from harness.registry import instantiate
from harness.tasks import get_task
from harness.data import resolve
from harness.llm.textdata import read_text

pytestmark = pytest.mark.slow

SEQLEN = 256
WINDOWS = 3


@pytest.fixture(scope="module")
def eval_windows():
    task = get_task("wikipedia-gensim-ppl")  # ships with gensim: runs without a data directory
    tok = load_model("smollm2-135m").tokenizer
    return tokenize_windows(tok, read_text(resolve(task.data["text"])), SEQLEN)[:WINDOWS]


def ppl(model, windows) -> float:
    sums = window_nll(model, windows, "cpu", batch_size=WINDOWS, progress=False)
    return math.exp(float(sums.sum()) / (windows.shape[0] * (SEQLEN - 1)))


@pytest.fixture(scope="module")
def calibration():
    tok = load_model("smollm2-135m").tokenizer
    return load_calibration(tok, name=resolve_calibration_name("auto"), nsamples=8, seqlen=SEQLEN, seed=0)


def pruned(method: str, params: dict, calibration):
    loaded = load_model("smollm2-135m")
    adapter = instantiate(method, params)
    report = adapter.prune(loaded.model, calibration if adapter.needs_calibration else None)
    return loaded, report


def test_dense_beats_wanda_beats_magnitude_at_half_sparsity(eval_windows, calibration, tmp_path):
    dense, _ = pruned("dense", {}, calibration)
    wanda, wanda_report = pruned("wanda", {"sparsity": "0.5", "nsamples": "8", "seqlen": str(SEQLEN)}, calibration)
    magnitude, mag_report = pruned("magnitude", {"sparsity": "0.5"}, calibration)
    p_dense, p_wanda, p_mag = (ppl(m.model, eval_windows) for m in (dense, wanda, magnitude))
    assert p_dense < p_wanda < p_mag, (p_dense, p_wanda, p_mag)
    for report in (wanda_report, mag_report):
        assert abs(report.measured_sparsity - 0.5) < 0.005
    # a saved pruned model reloads with identical perplexity
    save_model(wanda, tmp_path / "wanda50", {"method": "wanda"})
    reloaded = load_model(str(tmp_path / "wanda50"))
    assert reloaded.info["source"] == "local"
    assert ppl(reloaded.model, eval_windows) == pytest.approx(p_wanda, rel=1e-6)
    w = reloaded.model.model.layers[0].mlp.down_proj.weight
    assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.005)
