"""Tests of the unstructured / N:M pruning adapters (dense, magnitude, wanda, sparsegpt) and of
the layer-by-layer calibration machinery, on tiny random-weight Llama models (no downloads)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from harness.errors import HarnessError, ParamError
from harness.llm.layerwise import capture_block_inputs, forward_block
from harness.params import build_params
from harness.llm.pruning import Calibration, prunable_linears, transformer_blocks, unstructured_mask_from_scores
from harness.registry import get_method, instantiate
from methods.pruning.magnitude import magnitude_mask
from methods.pruning.sparsegpt import Hessian, sparsegpt_prune_weight
from methods.pruning.wanda import wanda_mask, wanda_scores

NSAMPLES, SEQLEN, VOCAB = 4, 32, 128


def tiny_llama(seed: int = 0, layers: int = 2, hidden: int = 64, intermediate: int = 128) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=256, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # RMSNorm weights start at 1: perturb them so they are a real check
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def calibration(seed: int = 1) -> Calibration:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (NSAMPLES, SEQLEN), generator=g)
    return Calibration(input_ids=ids, source={"set": "random-test"})


def run(method: str, model: nn.Module, **params):
    calib = {"nsamples": NSAMPLES, "seqlen": SEQLEN} if get_method(method).cls.needs_calibration else {}
    return instantiate(method, {**calib, **params}).prune(model, calibration())


def zeros_in_linears(model: nn.Module) -> tuple[int, int]:
    lins = prunable_linears(model)
    return sum(int((m.weight == 0).sum()) for m in lins.values()), sum(m.weight.numel() for m in lins.values())


# ---------------------------------------------------------------------------------------------
# The layer-wise machinery


def test_captured_block_inputs_replay_the_model_forward():
    """Catcher + block-by-block replay reproduces the hidden states of the model's own forward."""
    model = tiny_llama(layers=3)
    ids = calibration().input_ids
    with torch.no_grad():
        ref = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states
    inputs = capture_block_inputs(model, ids)
    assert inputs.kwargs["use_cache"] is False
    assert "position_embeddings" in inputs.kwargs  # transformers 5 passes RoPE cos/sin to blocks
    h = inputs.hidden
    torch.testing.assert_close(h, ref[0])
    blocks = transformer_blocks(model)
    for k in range(len(blocks) - 1):  # the last entry of hidden_states is after the final norm
        h = forward_block(blocks[k], h, inputs.kwargs)
        torch.testing.assert_close(h, ref[k + 1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("per_row", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_unstructured_mask_is_stable_sort_lowest_k(per_row, ties):
    torch.manual_seed(0)
    for s in (0.0, 0.3, 0.5, 0.77):
        x = torch.randn(9, 40)
        if ties:
            x = x.round()  # many equal scores: lower index goes first, as a stable sort orders them
        flat = x if per_row else x.reshape(1, -1)
        k = int(flat.shape[1] * s)
        expected = torch.zeros_like(flat, dtype=torch.bool)
        if k:
            expected.scatter_(1, torch.sort(flat, dim=1, stable=True).indices[:, :k], True)
        assert torch.equal(unstructured_mask_from_scores(x, s, per_row), expected.reshape(x.shape))


# ---------------------------------------------------------------------------------------------
# (1) Wanda keeps exactly the top (1 - s) of |W| * ||X|| per output row


@pytest.mark.parametrize("sparsity", [0.5, 0.3])
def test_wanda_mask_is_top_scores_per_row(sparsity):
    dense = tiny_llama()
    pruned = copy.deepcopy(dense)
    run("wanda", pruned, sparsity=sparsity)
    ids = calibration().input_ids
    n_blocks = len(transformer_blocks(dense))
    for i in range(n_blocks):
        # Independent recomputation with the model's own batched forward: blocks before i pruned
        # (as Wanda calibrates each block on the outputs of the pruned blocks), block i dense.
        probe = copy.deepcopy(dense)
        for k in range(i):
            transformer_blocks(probe)[k].load_state_dict(transformer_blocks(pruned)[k].state_dict())
        sq: dict[str, torch.Tensor] = {}
        hooks = []
        block = transformer_blocks(probe)[i]
        for name, lin in block.named_modules():
            if isinstance(lin, nn.Linear):
                def hook(_m, inp, _o, name=name):
                    x = inp[0].reshape(-1, inp[0].shape[-1]).double()
                    sq[name] = sq.get(name, 0) + (x ** 2).sum(0)
                hooks.append(lin.register_forward_hook(hook))
        with torch.no_grad():
            probe(input_ids=ids, use_cache=False)
        for h in hooks:
            h.remove()
        for name, lin in block.named_modules():
            if not isinstance(lin, nn.Linear):
                continue
            W = lin.weight.detach().double()
            score = W.abs() * sq[name].sqrt()  # |W_ij| * ||X_j||_2 over all calibration tokens
            k = int(W.shape[1] * sparsity)
            order = score.argsort(dim=1)
            expected = torch.zeros_like(W, dtype=torch.bool)
            expected.scatter_(1, order[:, :k], True)
            got = dict(transformer_blocks(pruned)[i].named_modules())[name].weight == 0
            assert (got.sum(1) == k).all(), f"block {i} {name}: not exactly {k} zeros per row"
            diff = got != expected
            if diff.any():  # allowed only for near-ties at the row's threshold (float reordering)
                thr = score.gather(1, order[:, k - 1 : k + 1]).mean(1, keepdim=True)
                rel = ((score - thr).abs() / thr)[diff]
                assert rel.max() < 1e-5, f"block {i} {name}: {int(diff.sum())} mask entries differ"
            # kept weights are unchanged (Wanda does no weight update)
            torch.testing.assert_close(
                dict(transformer_blocks(pruned)[i].named_modules())[name].weight[~got], lin.weight[~got]
            )


# ---------------------------------------------------------------------------------------------
# (2) N:M masks have exactly N zeros in every group of M


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
def test_nm_pattern_exact(method, pattern):
    n, m = map(int, pattern.split(":"))
    model = tiny_llama()
    report = run(method, model, sparsity=n / m, pattern=pattern)
    for name, lin in prunable_linears(model).items():
        zeros = (lin.weight == 0).reshape(lin.out_features, lin.in_features // m, m).sum(-1)
        assert (zeros == n).all(), f"{method} {pattern} {name}: groups with {zeros.unique().tolist()} zeros"
    assert report.measured_sparsity == pytest.approx(n / m)


def test_magnitude_nm_prunes_smallest_in_each_group():
    model = tiny_llama()
    before = {k: v.weight.detach().clone() for k, v in prunable_linears(model).items()}
    run("magnitude", model, sparsity=0.5, pattern="2:4")
    for name, lin in prunable_linears(model).items():
        a = before[name].abs().reshape(lin.out_features, -1, 4)
        pruned = (lin.weight == 0).reshape(a.shape)
        # within each group, every pruned |w| <= every kept |w|
        max_pruned = a.masked_fill(~pruned, -math.inf).amax(-1)
        min_kept = a.masked_fill(pruned, math.inf).amin(-1)
        assert (max_pruned <= min_kept).all(), name


@pytest.mark.parametrize("mask_rule", ["reference", "exact"])
def test_magnitude_unstructured_is_a_per_matrix_threshold(mask_rule):
    model = tiny_llama()
    before = {k: v.weight.detach().clone() for k, v in prunable_linears(model).items()}
    run("magnitude", model, sparsity=0.6, mask_rule=mask_rule)
    for name, lin in prunable_linears(model).items():
        a, pruned = before[name].abs(), lin.weight == 0
        if mask_rule == "exact":
            assert int(pruned.sum()) == int(a.numel() * 0.6), name
        else:  # the reference: everything at or below sorted |W| at position int(numel * s)
            thr = a.flatten().sort().values[int(a.numel() * 0.6)]
            assert int(pruned.sum()) == int((a <= thr).sum()) >= int(a.numel() * 0.6) + 1, name
        assert a[pruned].max() <= a[~pruned].min(), name  # comparison over the whole matrix
        # rows differ in their sparsity: not a per-row rule
        assert pruned.float().mean(1).std() > 0, name


# ---------------------------------------------------------------------------------------------
# (3) SparseGPT reconstructs the layer output better than magnitude pruning


def _layer_problem(seed: int = 0, out_f: int = 48, in_f: int = 256, tokens: int = 1024):
    torch.manual_seed(seed)
    W = torch.randn(out_f, in_f)
    # correlated inputs with uneven feature scales, as real activations have
    scales = torch.linspace(0.2, 3.0, in_f)[torch.randperm(in_f)]
    X = torch.randn(tokens, in_f) @ (torch.randn(in_f, in_f) / math.sqrt(in_f)) * scales
    return W, X


def _hessian(X: torch.Tensor, windows: int = 4) -> Hessian:
    hess = Hessian(X.shape[1], X.device)
    for chunk in X.reshape(windows, -1, X.shape[1]):
        hess.add_batch(chunk.unsqueeze(0))
    return hess


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_sparsegpt_reconstruction_beats_magnitude(pattern):
    W, X = _layer_problem()
    nm = None if pattern == "unstructured" else (2, 4)
    hess = _hessian(X)
    # the accumulated Hessian is 2/n X^T X with n the number of windows
    torch.testing.assert_close(hess.H, 2 / 4 * X.t() @ X, rtol=1e-4, atol=1e-2)

    w_sgpt = W.clone()
    sparsegpt_prune_weight(w_sgpt, hess.H.clone(), 0.5, nm, blocksize=128, percdamp=0.01)
    w_mag = W.clone()
    w_mag[magnitude_mask(W, 0.5, nm)] = 0
    w_wanda = W.clone()
    w_wanda[wanda_mask(wanda_scores(W, (X ** 2).sum(0)), 0.5, nm)] = 0
    err = lambda w: float(((X @ W.t() - X @ w.t()) ** 2).sum())  # noqa: E731
    # the reference rule prunes one weight more per column block (2 blocks here)
    assert int((w_sgpt == 0).sum()) == int(W.numel() * 0.5) + (2 if nm is None else 0)
    # margins measured on 4 seeds: sgpt/magnitude 0.27-0.38, sgpt/wanda 0.57-0.68
    assert err(w_sgpt) < 0.6 * err(w_mag), (err(w_sgpt), err(w_mag))
    assert err(w_sgpt) < err(w_wanda), (err(w_sgpt), err(w_wanda))


def test_sparsegpt_lazy_block_updates_are_exact():
    """With N:M masks chosen per group, the blocked (lazy) update must not depend on the block size."""
    W, X = _layer_problem(in_f=128, tokens=512)
    hess = _hessian(X)
    out = []
    for bs in (8, 32, 128):
        w = W.clone()
        sparsegpt_prune_weight(w, hess.H.clone(), 0.5, (2, 4), blocksize=bs)
        out.append(w)
    torch.testing.assert_close(out[0], out[2], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[1], out[2], rtol=1e-4, atol=1e-4)


def test_sparsegpt_handles_dead_inputs():
    torch.manual_seed(0)
    W, X = torch.randn(16, 32), torch.randn(1, 64, 32)
    X[..., 5] = 0  # an input feature that is always zero
    hess = Hessian(32, W.device)
    hess.add_batch(X)
    sparsegpt_prune_weight(W, hess.H, 0.25, blocksize=8)
    assert (W[:, 5] == 0).all()
    assert torch.isfinite(W).all()


# ---------------------------------------------------------------------------------------------
# (4) measured sparsity, reports


@pytest.mark.parametrize("method,rule", [("magnitude", "reference"), ("magnitude", "exact"), ("wanda", None),
                                         ("sparsegpt", "reference"), ("sparsegpt", "exact")])
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.7])
def test_measured_sparsity_matches_target(method, rule, sparsity):
    # widths of 128/256 so that the per-row count int(in_features * s) is within 0.5% of s
    model = tiny_llama(hidden=128, intermediate=256)
    report = run(method, model, sparsity=sparsity, **({"mask_rule": rule} if rule else {}))
    zeros, total = zeros_in_linears(model)
    # the exact number of zeros each method's comparison group implies; the reference rule prunes
    # one more per group (every score at or below the one at position int(n * s); random floats
    # have no ties)
    extra = 1 if rule == "reference" else 0
    expected = 0
    for lin in prunable_linears(model).values():
        rows, cols = lin.weight.shape
        if method == "magnitude":  # whole matrix
            expected += int(rows * cols * sparsity) + extra
        elif method == "wanda":  # each output row
            expected += rows * int(cols * sparsity)
        else:  # sparsegpt: each block of 128 columns
            expected += sum(int(rows * min(128, cols - c) * sparsity) + extra for c in range(0, cols, 128))
    assert zeros == expected
    assert report.measured_sparsity == pytest.approx(zeros / total)
    assert abs(report.measured_sparsity - sparsity) <= 0.005
    assert report.target_sparsity == sparsity
    assert report.params_before - report.params_after == zeros
    assert [e["name"] for e in report.layers] == list(prunable_linears(model))
    for e in report.layers:
        assert abs(e["measured_sparsity"] - sparsity) <= 0.01, e
    if method != "magnitude":
        assert report.details["calibration_tokens"] == NSAMPLES * SEQLEN
        assert all(e["calibration_tokens"] == NSAMPLES * SEQLEN for e in report.layers)


def test_dense_changes_nothing():
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    report = run("dense", model)
    assert report.measured_sparsity == 0.0 and report.target_sparsity == 0.0
    assert report.params_before == report.params_after
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_calibrated_methods_refuse_missing_calibration():
    for method in ("wanda", "sparsegpt"):
        assert get_method(method).cls.needs_calibration
        with pytest.raises(HarnessError, match="calibration"):
            instantiate(method, {}).prune(tiny_llama(), None)
    assert not get_method("magnitude").cls.needs_calibration


# ---------------------------------------------------------------------------------------------
# (5) bad parameters are refused


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("values", [
    {"sparsity": "1.5"},
    {"sparsity": "-0.1"},
    {"pattern": "3:2", "sparsity": "0.5"},
    {"pattern": "2:4", "sparsity": "0.7"},
    {"pattern": "banana"},
])
def test_bad_params_refused(method, values):
    with pytest.raises(ParamError):
        build_params(get_method(method).params_cls, values, method=method)


@pytest.mark.parametrize("values", [{"blocksize": "0"}, {"percdamp": "0"}, {"percdamp": "2"},
                                    {"pattern": "4:8", "blocksize": "12"}, {"nsamples": "0"}])
def test_bad_sparsegpt_params_refused(values):
    with pytest.raises(ParamError):
        build_params(get_method("sparsegpt").params_cls, values, method="sparsegpt")


def test_dense_has_no_params_and_docstrings_cite_papers():
    with pytest.raises(ParamError, match="unknown parameter"):
        build_params(get_method("dense").params_cls, {"sparsity": "0.5"}, method="dense")
    assert "ICLR 2024" in get_method("wanda").doc and "ICML 2023" in get_method("sparsegpt").doc
    for name in ("dense", "magnitude", "wanda", "sparsegpt"):
        assert get_method(name).summary.endswith(".")


def test_nm_refused_when_width_not_divisible():
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=36, intermediate_size=72, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=VOCAB)
    with pytest.raises(ParamError, match="divisible by 8"):
        run("magnitude", LlamaForCausalLM(cfg).eval(), sparsity=0.5, pattern="4:8")


# ---------------------------------------------------------------------------------------------
# (6) embeddings, LM head and norms are untouched


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_only_block_linears_change(method):
    model = tiny_llama()
    before = copy.deepcopy(model.state_dict())
    run(method, model, sparsity=0.5)
    linear_weights = {f"model.{n}.weight" for n in prunable_linears(model)}
    for k, v in model.state_dict().items():
        if k in linear_weights:
            assert not torch.equal(v, before[k]), k
        else:
            assert torch.equal(v, before[k]), f"{method} changed {k}"
    assert "lm_head.weight" in before and "model.embed_tokens.weight" in before


# ---------------------------------------------------------------------------------------------
# Integration on the embedded SmolLM2


@pytest.mark.slow
def test_wanda_on_smollm2():
    from harness.llm.calibration import load_calibration, resolve_calibration_name
    from harness.llm.models import load_model

    try:
        loaded = load_model("smollm2-135m")
        calib = load_calibration(loaded.tokenizer, name=resolve_calibration_name("auto"),
                                 nsamples=8, seqlen=256, seed=0)
    except HarnessError as exc:
        pytest.skip(f"embedded SmolLM2 or calibration data unavailable: {exc}")
    model = loaded.model
    embed = model.get_input_embeddings().weight.detach().clone()
    method = instantiate("wanda", {"sparsity": "0.5", "nsamples": "8", "seqlen": "256"})
    report = method.prune(model, calib)
    assert len(report.layers) == 30 * 7
    assert abs(report.measured_sparsity - 0.5) <= 0.005
    assert report.details["calibration_tokens"] == 8 * 256
    assert torch.equal(model.get_input_embeddings().weight, embed)
    with torch.no_grad():
        logits = model(input_ids=calib.input_ids[:1, :64], use_cache=False).logits
    assert torch.isfinite(logits).all()
