"""The fixed method lifecycle: setup(ctx) once per run; PruningMethod.prune as a template method."""

from __future__ import annotations

import json
import lzma
from dataclasses import dataclass

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.errors import HarnessError
from harness.ir.base import RerankingMethod, RetrievalMethod
from harness.kinds import SetupContext
from harness.llm import models as modelsmod
from harness.llm.pruning import (
    CalibrationParams,
    PruneReport,
    PruningMethod,
    build_report,
    count_parameters,
    prunable_linears,
)
from harness.params import MethodParams
from harness.registry import METHODS, register_method
from harness.results import ResultStore
from harness.runner import RunRequest, execute


def tiny() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=61, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


@dataclass(frozen=True)
class ZeroFirstParams(MethodParams):
    rows: int = 1


class ZeroFirstRows(PruningMethod):
    """Zeroes the first rows of every block linear (tests)."""

    method_name = "test-zero-first-rows"
    Params = ZeroFirstParams

    def __init__(self, params):
        super().__init__(params)
        self.calls = 0

    @torch.no_grad()
    def _prune(self, model, calibration):
        self.calls += 1
        linears = prunable_linears(model)
        for lin in linears.values():
            lin.weight[: self.params.rows] = 0
        return build_report(linears, 0.0, details={"rows": self.params.rows})


def test_prune_calls_the_adapter_once_and_fills_the_common_fields():
    model = tiny()
    before = count_parameters(model)
    zeroed = sum(lin.in_features for lin in prunable_linears(model).values())
    method = ZeroFirstRows(ZeroFirstParams())
    report = method.prune(model, None)
    assert method.calls == 1
    assert report.params_before == before and report.params_after == before - zeroed  # masks: non-zero count
    assert list(report.details) == ["method", "rows", "seconds"]
    assert report.details["method"] == "test-zero-first-rows" and report.details["seconds"] >= 0


def test_removal_methods_count_the_parameters_that_remain():
    class DropLastBlock(ZeroFirstRows):
        removes_weights = True

        def _prune(self, model, calibration):
            self.calls += 1
            del model.model.layers[-1]
            return PruneReport(target_sparsity=0.5, measured_sparsity=0.5)

    model = tiny()
    with torch.no_grad():  # zeros in a kept block: a removal counts them as remaining parameters
        model.model.layers[0].self_attn.q_proj.weight[0] = 0
    before = count_parameters(model)
    block = sum(p.numel() for p in model.model.layers[-1].parameters())
    report = DropLastBlock(ZeroFirstParams()).prune(model, None)
    assert report.params_before == before and report.params_after == before - block


def test_a_method_that_needs_calibration_is_refused_without_it():
    class Needy(ZeroFirstRows):
        needs_calibration = True

    method = Needy(ZeroFirstParams())
    with pytest.raises(HarnessError, match="needs calibration data"):
        method.prune(tiny(), None)
    assert method.calls == 0


def test_family_hooks_replace_the_runner_branches():
    assert PruningMethod.takes_model and not RetrievalMethod.takes_model and not RerankingMethod.takes_model
    with pytest.raises(HarnessError, match="give --model"):
        ZeroFirstRows.check_model(None)
    with pytest.raises(HarnessError, match="not --model"):
        RerankingMethod.check_model("smollm2-135m")

    @dataclass(frozen=True)
    class P(CalibrationParams):
        pass

    class Calibrated(ZeroFirstRows):
        Params = P

    # calibration=auto becomes a concrete set before the run id is computed
    assert Calibrated.resolve_params({}, "config:tiny-llama").calibration == "random-tokens"
    assert ZeroFirstRows.resolve_params({"rows": "3"}, "smollm2-135m").rows == 3


def test_reranker_setup_takes_the_device():
    class R(RerankingMethod):
        def transformer(self):
            raise NotImplementedError

    r = R(ZeroFirstParams())
    out = r.setup(SetupContext(device="cuda:1"))
    assert r.device == "cuda:1" and out is r.setup_output and out.model is None


def test_pruning_setup_runs_once_and_records_its_timings(tmp_path, monkeypatch):
    calls = {"setup": 0, "load": 0}
    load_model = modelsmod.load_model

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return load_model(*args, **kwargs)

    monkeypatch.setattr(modelsmod, "load_model", counting_load)

    @register_method("test-lifecycle", "pruning", ZeroFirstParams)
    class Lifecycle(ZeroFirstRows):
        """Counts setup calls (tests)."""

        def setup(self, ctx):
            calls["setup"] += 1
            assert ctx.model == "config:tiny-llama" and ctx.device == "cpu" and ctx.dtype == "float32"
            return super().setup(ctx)

    try:
        outcomes = execute(RunRequest(method="test-lifecycle", model="config:tiny-llama",
                                      tasks=["llm-latency", "llm-latency-2to4"], limit=1, results_dir=tmp_path,
                                      progress=False))
    finally:
        METHODS.unregister("test-lifecycle")
    assert calls == {"setup": 1, "load": 1}  # two tasks, one setup, one model load
    # the 2:4 task needs CUDA: stored as failed; the dense one is ok, both carry the one setup's figures
    assert [o.status for o in outcomes] == ["ok", "failed"]
    doc = ResultStore(tmp_path).load(outcomes[0].path)
    eff = doc["efficiency"]
    assert eff["load_seconds"] > 0 and eff["prune_seconds"] > 0 and eff["calibration_seconds"] is None
    assert doc["pruning"]["details"]["method"] == "test-lifecycle" and doc["pruning"]["calibration"] is None
    assert doc["pruning"]["params_before"] - doc["pruning"]["params_after"] > 0
    # the per-layer figures are an artifact (stored once by content for every task of the run)
    art = doc["artifacts"]["pruning_layers"]
    assert art["format"] == "json+xz"
    layers = json.loads(lzma.decompress((outcomes[0].path.parent / art["file"]).read_bytes()))
    assert "layers" not in doc["pruning"] and doc["pruning"]["layer_count"] == len(layers) > 0
    assert {"name", "target_sparsity", "measured_sparsity"} <= set(layers[0])
    assert doc["task"]["protocol"] == {**doc["task"]["protocol"], "device": "cpu", "dtype": "float32", "limit": 1}


def test_model_notes_come_from_the_model_record():
    assert "Q4_1" in modelsmod.model_notes("smollm2-135m")
    assert modelsmod.EMBEDDED["smollm2-135m"]["notes"] == modelsmod.model_notes("smollm2-135m")
    assert modelsmod.model_notes("config:tiny-llama") == "" and modelsmod.model_notes(None) == ""
