"""A slim install (no PyTerrier / lm-eval / ir-measures: the LLM-pruning-only case, and the GPU
image the latency runs use) still lists and runs the pruning methods, and says what is missing.
Random-weight config: models calibrate on random token ids."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.llm.calibration import RANDOM_TOKENS, load_calibration
from harness.errors import HarnessError, ParamError
from harness.registry import get_method
from harness.results import ResultStore
from harness.runner import RunRequest, execute, resolve_params

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = '''
import importlib.abc, sys
BLOCK = {"pyterrier", "pyterrier_pisa", "lm_eval", "ir_measures", "bm25s", "datasets"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
'''


def _run_without_ir_packages(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_registry_without_pyterrier_keeps_pruning_and_names_what_is_missing(tmp_path):
    code = (
        "import json\n"
        "from harness.registry import list_methods, unavailable_methods, get_method\n"
        "from harness.errors import HarnessError\n"
        "names = [m.name for m in list_methods()]\n"
        "try:\n    get_method('qlm'); err = None\nexcept HarnessError as exc:\n    err = str(exc)\n"
        "print(json.dumps({'names': names, 'missing': unavailable_methods(), 'err': err}))\n"
    )
    proc = _run_without_ir_packages(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("dense", "magnitude", "wanda", "sparsegpt", "shortgpt", "flap"):
        assert name in out["names"]
    assert "qlm" not in out["names"]
    assert "pyterrier" in out["missing"]["methods.reranking.qlm"]
    assert out["err"] and "qlm" in out["err"] and "pyterrier" in out["err"]


def test_random_token_calibration_is_seeded_and_in_vocab():
    a = load_calibration(None, name=RANDOM_TOKENS, nsamples=3, seqlen=16, seed=0, vocab_size=50)
    b = load_calibration(None, name=RANDOM_TOKENS, nsamples=3, seqlen=16, seed=0, vocab_size=50)
    c = load_calibration(None, name=RANDOM_TOKENS, nsamples=3, seqlen=16, seed=1, vocab_size=50)
    assert a.input_ids.shape == (3, 16) and a.input_ids.dtype == torch.long
    assert torch.equal(a.input_ids, b.input_ids) and not torch.equal(a.input_ids, c.input_ids)
    assert int(a.input_ids.min()) >= 0 and int(a.input_ids.max()) < 50
    assert a.source["set"] == RANDOM_TOKENS and a.source["data"] is None
    with pytest.raises(HarnessError, match="random-tokens"):
        load_calibration(None, name="c4-sample1k", nsamples=1, seqlen=16, seed=0)


def test_config_models_default_to_random_token_calibration_and_refuse_text():
    info = get_method("shortgpt")
    assert resolve_params(info, {"blocks": "1"}, "config:tiny-llama").calibration == RANDOM_TOKENS
    with pytest.raises(ParamError, match="no tokenizer"):
        resolve_params(info, {"blocks": "1", "calibration": "c4-sample1k"}, "config:tiny-llama")


def test_shortgpt_on_a_config_model_runs_and_records_its_calibration(tmp_path):
    req = RunRequest(method="shortgpt", params={"blocks": "1", "nsamples": "2", "seqlen": "16"},
                     model="config:tiny-llama", tasks=["llm-latency"], limit=1, results_dir=tmp_path, progress=False)
    (outcome,) = execute(req)
    assert outcome.status == "ok", outcome.doc and outcome.doc.get("error")
    doc = ResultStore(tmp_path).load(outcome.path)
    assert doc["method"]["params"]["calibration"] == RANDOM_TOKENS
    assert doc["pruning"]["calibration"]["set"] == RANDOM_TOKENS
    assert doc["model"]["random_weights"] is True
