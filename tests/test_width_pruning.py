"""FLAP width pruning: real smaller matrices, hand-computed parameter counts, the metric and the
bias compensation checked against their definitions, GQA-consistent head removal, save/reload."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from harness.errors import ParamError
from harness.llm.pruning import Calibration
from methods.pruning.flap import FLAP, ChannelStats, compensated_output_bias
from tiny_models import make, one_thread, tiny_llama_config  # noqa: F401 (autouse fixture)

H, I, NL, NQ, NKV, V = 32, 64, 3, 4, 2, 97
HEAD = H // NQ


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    return tiny_llama_config(layers=NL, hidden=H, intermediate=I, heads=NQ, kv_heads=NKV, vocab=V, seed=seed)


def calibration(n: int = 6, seqlen: int = 10) -> Calibration:
    g = torch.Generator().manual_seed(3)
    return Calibration(torch.randint(0, V, (n, seqlen), generator=g), {"set": "random"})


def capture_inputs(model: LlamaForCausalLM, ids: torch.Tensor, attr: str) -> list[torch.Tensor]:
    """Inputs of mlp.down_proj or self_attn.o_proj of every block: [tokens, in_features]."""
    got: list[list[torch.Tensor]] = [[] for _ in range(NL)]
    hooks = []
    for i, b in enumerate(model.model.layers):
        lin = b.mlp.down_proj if attr == "down" else b.self_attn.o_proj
        hooks.append(lin.register_forward_pre_hook(lambda _m, a, i=i: got[i].append(a[0].reshape(-1, a[0].shape[-1]))))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    for h in hooks:
        h.remove()
    return [torch.cat(x).double() for x in got]


def test_channel_stats_are_exact_sample_variance() -> None:
    x = torch.randn(3, 7, 5)
    st = ChannelStats(5)
    st.add(x[:1])
    st.add(x[1:])
    flat = x.reshape(-1, 5).double()
    assert torch.allclose(st.mean, flat.mean(0))
    assert torch.allclose(st.variance, flat.var(0, unbiased=True))


def test_bias_compensation_is_exact_when_removed_inputs_sit_at_their_mean() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 4, bias=False).double()
    mean = torch.randn(6, dtype=torch.float64)
    removed = torch.tensor([1, 4])
    kept = torch.tensor([0, 2, 3, 5])
    bias = compensated_output_bias(lin, removed, mean)
    x = torch.randn(8, 6, dtype=torch.float64)
    x[:, removed] = mean[removed]
    shrunk = x[:, kept] @ lin.weight[:, kept].T + bias
    assert torch.allclose(shrunk, lin(x))


def test_flap_mlp_shapes_count_and_choice() -> None:
    model = tiny_llama()
    cal = calibration()
    inputs = capture_inputs(model, cal.input_ids, "down")
    expected_removed = []
    for i, b in enumerate(model.model.layers):
        score = inputs[i].var(0, unbiased=True) * b.mlp.down_proj.weight.double().pow(2).sum(0)
        expected_removed.append(sorted(torch.argsort(score)[:16].tolist()))  # round(0.25 * 64) = 16
    before = sum(p.numel() for p in model.parameters())
    report = make(FLAP, {"fraction": 0.25, "scope": "mlp"}).prune(model, cal)
    # by hand: each block loses 16 channels of gate, up (16 x 32 each) and down (32 x 16), and gains
    # biases gate 48 + up 48 + down 32 (mlp_bias=True covers all three)
    assert report.params_before == before
    assert report.params_after == before - NL * 3 * 16 * H + NL * (48 + 48 + 32)
    assert sum(p.numel() for p in model.parameters()) == report.params_after
    for i, b in enumerate(model.model.layers):
        assert tuple(b.mlp.gate_proj.weight.shape) == (48, H) and tuple(b.mlp.up_proj.weight.shape) == (48, H)
        assert tuple(b.mlp.down_proj.weight.shape) == (H, 48) and b.mlp.down_proj.bias is not None
        assert tuple(b.self_attn.q_proj.weight.shape) == (H, H)  # attention untouched
        assert report.layers[i]["removed_channels"] == expected_removed[i]
    assert model.config.intermediate_size == 48 and model.config.mlp_bias is True
    # block linears: 4 attention (32x32, 16x32, 16x32, 32x32) + 3 MLP (64x32): removed 3*16*32 of them
    total = 32 * 32 * 2 + 16 * 32 * 2 + 3 * 64 * 32
    assert report.measured_sparsity == pytest.approx(3 * 16 * 32 / total)


def test_flap_attention_removes_whole_kv_groups_and_reloads(tmp_path) -> None:
    model = tiny_llama(seed=1)
    cal = calibration()
    inputs = capture_inputs(model, cal.input_ids, "o")
    keep_expected = []
    for i, b in enumerate(model.model.layers):
        ch = inputs[i].var(0, unbiased=True) * b.self_attn.o_proj.weight.double().pow(2).sum(0)
        groups = ch.view(NKV, -1).sum(1)  # group g = query heads 2g, 2g+1 = channels [16g, 16g+16)
        keep_expected.append([int(torch.argmax(groups))])
    report = make(FLAP, {"fraction": 0.5, "scope": "attention"}).prune(model, cal)
    for i, b in enumerate(model.model.layers):
        a = b.self_attn
        assert tuple(a.q_proj.weight.shape) == (2 * HEAD, H)  # one KV group = 2 query heads of 8
        assert tuple(a.k_proj.weight.shape) == (HEAD, H) and tuple(a.v_proj.weight.shape) == (HEAD, H)
        assert tuple(a.o_proj.weight.shape) == (H, 2 * HEAD)
        assert report.layers[i]["kept_kv_groups"] == keep_expected[i]
    cfg = model.config
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (2, 1, HEAD)
    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        a = model.generate(prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=True)
        b = model.generate(prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(a, b)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(model(prompt).logits, reloaded(prompt).logits, atol=1e-6)
    assert sum(p.numel() for p in reloaded.parameters()) == report.params_after


def test_flap_params_refused() -> None:
    with pytest.raises(ParamError):
        make(FLAP, {"fraction": 1.0})
    with pytest.raises(ParamError):
        make(FLAP, {"scope": "heads"})
    with pytest.raises(ParamError, match="KV groups"):
        make(FLAP, {"fraction": 0.2, "scope": "attention"}).prune(tiny_llama(), calibration())


def test_registered_under_their_names() -> None:
    from harness.registry import get_method

    assert get_method("flap").cls is FLAP
