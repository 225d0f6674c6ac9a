"""The pruning family's scaffold: what `harness new-method NAME --family pruning` writes.

A real, minimal algorithm (the smallest-|W| fraction of each layer) and its test on a tiny random
Llama, to be replaced by the submitter's own.
"""

from harness.kinds import Scaffold

_CODE = '''"""{title}: {summary}"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.errors import ParamError
from harness.llm.pruning import (
    Calibration,
    PruneReport,
    PruningMethod,
    SparsityParams,
    build_report,
    prunable_linears,
    unstructured_mask_from_scores,
)
from harness.registry import register_method


@dataclass(frozen=True)
class {cls}Params(SparsityParams):
    """Parameters of {name}: the target sparsity of every block linear (unstructured only)."""

    def check(self) -> None:
        super().check()
        if self.pattern != "unstructured":
            raise ParamError(f"{name} supports pattern=unstructured only, got {{self.pattern!r}}")


@register_method("{name}", "pruning", {cls}Params)
class {cls}(PruningMethod):
    """{title}: {summary}

    Replace this with your algorithm and cite its paper here. ``_prune`` receives the model (change
    it in place) and, when ``needs_calibration = True``, calibration windows; the fixed ``prune``
    around it times the call and counts parameters.
    """

    needs_calibration = False

    @torch.no_grad()
    def _prune(self, model: nn.Module, calibration: Calibration | None) -> PruneReport:
        linears = prunable_linears(model)
        for lin in linears.values():
            scores = lin.weight.abs().float()
            lin.weight[unstructured_mask_from_scores(scores, self.params.sparsity, per_row=False)] = 0
        return build_report(linears, self.params.sparsity, details={{"criterion": "|W|, per layer"}})
'''

_TEST = '''"""Tests of the {name} pruning adapter on a tiny random Llama (seconds, no data)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.errors import ParamError
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=97, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_registered_as_a_pruning_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "pruning"


def test_prunes_every_block_linear_to_the_target_sparsity():
    method = {cls}(build_params({cls}Params, {{"sparsity": "0.5"}}, method="{name}"))
    model = tiny_llama()
    report = method.prune(model, None)
    assert abs(report.measured_sparsity - 0.5) < 1e-3
    assert all(abs(layer["measured_sparsity"] - 0.5) < 1e-2 for layer in report.layers)
    assert report.params_after < report.params_before
    assert torch.count_nonzero(model.model.embed_tokens.weight) == model.model.embed_tokens.weight.numel()


def test_refuses_out_of_range_params():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"sparsity": "1.5"}}, method="{name}")
'''

PRUNING = Scaffold(_CODE, _TEST, 'zero the smallest-|W| fraction of every block linear, layer by layer.')
