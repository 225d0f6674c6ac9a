import json
import math
import random
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from harness.llm.calibration import sample_windows
from harness.cli import main
from harness.errors import HarnessError, UnknownNameError
from harness.llm.perplexity import window_nll
from harness.params import MethodParams
from harness.llm.pruning import PruningMethod
from harness.registry import register_method
from harness.results import ResultStore
from harness.runner import RunRequest, execute


class UniformLM(torch.nn.Module):
    """Logits all equal: every token has probability 1/V, so perplexity must be exactly V."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


def test_perplexity_of_uniform_model_is_vocab_size():
    windows = torch.randint(0, 50, (3, 17))
    sums = window_nll(UniformLM(50), windows, "cpu", batch_size=2, progress=False)
    assert sums.shape == (3,)
    ppl = math.exp(float(sums.sum()) / (3 * 16))
    assert ppl == pytest.approx(50.0, rel=1e-6)  # float32 log-softmax


class CharTokenizer:
    def __call__(self, text, return_tensors=None):
        return SimpleNamespace(input_ids=torch.tensor([[ord(c) for c in text]]))


def test_calibration_sampler_matches_reference_procedure():
    docs = ["a" * n for n in (5, 40, 12, 90, 33, 64, 8, 70)]
    got = sample_windows(docs, CharTokenizer(), nsamples=6, seqlen=32, seed=0)
    # the reference loop (SparseGPT/Wanda get_c4), written out
    random.seed(0)
    ref = []
    for _ in range(6):
        while True:
            i = random.randint(0, len(docs) - 1)
            enc = torch.tensor([[ord(c) for c in docs[i]]])
            if enc.shape[1] > 32:
                break
        i = random.randint(0, enc.shape[1] - 32 - 1)
        ref.append(enc[:, i : i + 32])
    assert torch.equal(got, torch.cat(ref))


@dataclass(frozen=True)
class BoomParams(MethodParams):
    when: str = "prune"


@register_method("test-boom", "pruning", BoomParams)
class Boom(PruningMethod):
    """Fails on purpose (tests)."""

    def _prune(self, model, calibration):
        raise RuntimeError("exploded while pruning")


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def test_bad_names_fail_before_any_work(results):
    with pytest.raises(UnknownNameError, match="wanda"):
        execute(RunRequest(method="wandaa", model="smollm2-135m", tasks=["wikitext2"], results_dir=results))
    with pytest.raises(UnknownNameError, match="wikitext2"):
        execute(RunRequest(method="dense", model="smollm2-135m", tasks=["wikitxt2"], results_dir=results))
    with pytest.raises(UnknownNameError, match="smollm2-135m"):
        execute(RunRequest(method="dense", model="smollm2-13m", tasks=["wikitext2"], results_dir=results))
    with pytest.raises(HarnessError, match="give --model"):
        execute(RunRequest(method="dense", tasks=["wikitext2"], results_dir=results))
    assert not results.exists() or not list(results.rglob("*.json"))


def test_unwritable_results_fail_before_model_load(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HarnessError, match="not writable"):
        execute(RunRequest(method="dense", model="config:tiny-llama", tasks=["wikipedia-gensim-ppl"],
                           results_dir=tmp_path / "f" / "results"))


def test_cli_reports_errors_without_traceback(capsys, results):
    code = main(["run", "--method", "magnitude", "--params", "sparsity=1.5", "--model", "smollm2-135m",
                 "--task", "wikitext2", "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and "sparsity=1.5 must be in [0, 1)" in err and "Traceback" not in err


@pytest.mark.slow
def test_failed_pruning_is_stored_as_failed_not_as_metric(results):
    outcomes = execute(RunRequest(method="test-boom", model="config:tiny-llama", tasks=["wikipedia-gensim-ppl"],
                                  limit=1, results_dir=results, progress=False))
    assert [o.status for o in outcomes] == ["failed"]
    doc = json.loads(outcomes[0].path.read_text())
    assert doc["status"] == "failed" and doc["metrics"] == {}
    assert doc["error"]["message"] == "exploded while pruning"
    ResultStore(results).load(outcomes[0].path)  # validates


@pytest.mark.slow
def test_run_is_stored_once_and_is_idempotent(results, capsys):
    req = RunRequest(method="magnitude", params={"sparsity": "0.5"}, model="config:tiny-llama",
                     tasks=["wikipedia-gensim-ppl"], limit=1, results_dir=results, progress=False)
    first = execute(req)
    assert first[0].status == "ok"
    doc = ResultStore(results).load(first[0].path)
    assert doc["model"]["random_weights"] is True
    assert doc["task"]["protocol"] == {"seqlen": 2048, "limit": 1}
    assert abs(doc["pruning"]["measured_sparsity"] - 0.5) < 0.005
    assert doc["provenance"]["reproduce"] == (
        "harness run --method magnitude --params mask_rule=reference,pattern=unstructured,sparsity=0.5 "
        "--model config:tiny-llama --task wikipedia-gensim-ppl --limit 1"
    )
    assert doc["provenance"]["data"][0]["source"] == "package"
    assert len(ResultStore(results).scan()[0][0].items()) == 1
    mtime = first[0].path.stat().st_mtime_ns
    again = execute(req)
    assert again[0].status == "skipped" and first[0].path.stat().st_mtime_ns == mtime
    forced = execute(RunRequest(**{**req.__dict__, "force": True}))
    assert forced[0].status == "ok" and forced[0].run_id == first[0].run_id
