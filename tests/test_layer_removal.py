"""Layer removal (ShortGPT, SLEB, angular): real shrinking, scores checked against their definitions."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from harness.errors import ParamError
from harness.llm.pruning import Calibration
from methods.pruning._layer_removal import remove_blocks
from methods.pruning.angular import Angular, angular_distances, last_token_states
from methods.pruning.shortgpt import ShortGPT, block_influence
from methods.pruning.sleb import SLEB
from tiny_models import make, one_thread, tiny_llama_config  # noqa: F401 (autouse fixture)

L = 6


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    model = tiny_llama_config(layers=L, seed=seed)
    with torch.no_grad():  # larger residual updates than the default init, so blocks differ clearly
        for p in model.model.layers.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
        # the final norm's weight stays 1: then output_hidden_states' last (normed) entry has the
        # direction of the last block's output, which is all cosine/angle computations need
        model.model.norm.weight.fill_(1.0)
    return model


def calibration(n: int = 5, seqlen: int = 12, seed: int = 1) -> Calibration:
    g = torch.Generator().manual_seed(seed)
    return Calibration(torch.randint(0, 97, (n, seqlen), generator=g), {"set": "random"})


def hidden_states(model: LlamaForCausalLM, ids: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return list(model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states)


def test_removed_model_has_l_minus_k_blocks_generates_and_round_trips(tmp_path) -> None:
    model = tiny_llama()
    prompt = torch.tensor([[5, 7, 11, 13]])
    remove_blocks(model, [1, 4])
    assert len(model.model.layers) == L - 2 and model.config.num_hidden_layers == L - 2
    assert [b.self_attn.layer_idx for b in model.model.layers] == list(range(L - 2))
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=6, min_new_tokens=6, do_sample=False, use_cache=False)
    assert cached.shape == (1, 10)
    assert torch.equal(cached, uncached)  # the KV cache is indexed consistently after renumbering
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert len(reloaded.model.layers) == L - 2
    with torch.no_grad():
        assert torch.allclose(model(prompt).logits, reloaded(prompt).logits, atol=1e-6)


def test_removal_equals_skipping_the_blocks() -> None:
    model = tiny_llama()
    ref = copy.deepcopy(model)
    ids = calibration().input_ids
    remove_blocks(model, [0, 3])
    h = ref.model.embed_tokens(ids)
    pos = torch.arange(ids.shape[1])[None]
    emb = ref.model.rotary_emb(h, pos)
    with torch.no_grad():
        from transformers.masking_utils import create_causal_mask

        mask = create_causal_mask(config=ref.config, inputs_embeds=h, attention_mask=None,
                                  past_key_values=None, position_ids=pos)
        for i, block in enumerate(ref.model.layers):
            if i not in (0, 3):
                h = block(h, attention_mask=mask, position_embeddings=emb, position_ids=pos)
        expected = ref.lm_head(ref.model.norm(h))
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)


def test_shortgpt_block_influence_matches_definition_and_removes_lowest() -> None:
    model = tiny_llama()
    cal = calibration()
    hs = hidden_states(model, cal.input_ids)
    by_hand = []
    for i in range(L):
        cos = torch.nn.functional.cosine_similarity(hs[i].double(), hs[i + 1].double(), dim=-1)
        by_hand.append(1.0 - cos.mean().item())  # every window has the same length: mean over all tokens
    assert block_influence(model, cal.input_ids, batch_size=2) == pytest.approx(by_hand, abs=1e-5)
    report = make(ShortGPT, {"blocks": 2}).prune(model, cal)
    assert report.details["removed_blocks"] == sorted(sorted(range(L), key=lambda i: by_hand[i])[:2])
    assert report.details["scores"]["block_influence"] == pytest.approx(by_hand, abs=1e-5)
    assert len(model.model.layers) == L - 2
    assert report.params_before - report.params_after == report.details["removed_block_parameters"]
    assert report.measured_sparsity == pytest.approx(2 / L) and report.target_sparsity == pytest.approx(2 / L)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_angular_choice_matches_brute_force(n: int) -> None:
    model = tiny_llama(seed=n)
    cal = calibration(seed=n)
    hs = hidden_states(model, cal.input_ids)
    brute = []
    for start in range(L - n + 1):
        angles = []
        for w in range(cal.input_ids.shape[0]):
            a, b = hs[start][w, -1].double(), hs[start + n][w, -1].double()
            c = float(a @ b / (a.norm() * b.norm()))
            angles.append(math.acos(max(-1.0, min(1.0, c))) / math.pi)
        brute.append(sum(angles) / len(angles))
    dist = angular_distances(last_token_states(model, cal.input_ids, batch_size=3), n)
    assert dist.tolist() == pytest.approx(brute, abs=1e-6)
    best = min(range(len(brute)), key=lambda s: (brute[s], s))
    report = make(Angular, {"blocks": n}).prune(model, cal)
    assert report.details["removed_blocks"] == list(range(best, best + n))
    assert len(model.model.layers) == L - n


def _ppl_without(model: LlamaForCausalLM, ids: torch.Tensor, drop: list[int]) -> float:
    m = copy.deepcopy(model)
    remove_blocks(m, drop)
    with torch.no_grad():
        logits = m(input_ids=ids, use_cache=False).logits
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return math.exp(float(nll))


def test_sleb_greedy_rounds_match_brute_force() -> None:
    model = tiny_llama()
    cal = calibration()
    first = {c: _ppl_without(model, cal.input_ids, [c]) for c in range(L)}
    b1 = min(first, key=first.get)
    second = {c: _ppl_without(model, cal.input_ids, [b1, c]) for c in range(L) if c != b1}
    b2 = min(second, key=second.get)
    report = make(SLEB, {"blocks": 2, "batch_size": 2}).prune(model, cal)
    assert report.details["removal_order"] == [b1, b2]
    assert report.details["removed_blocks"] == sorted([b1, b2])
    assert report.details["scores"]["rounds"][0]["ppl"] == pytest.approx(first[b1], rel=1e-5)
    assert len(model.model.layers) == L - 2


def test_block_count_params() -> None:
    with pytest.raises(ParamError, match="exactly one"):
        make(ShortGPT, {})
    with pytest.raises(ParamError, match="exactly one"):
        make(SLEB, {"blocks": 2, "fraction": 0.1})
    model = tiny_llama()
    with pytest.raises(ParamError, match="between 1 and 5"):
        make(Angular, {"blocks": 6}).prune(model, calibration())
    report = make(ShortGPT, {"fraction": 0.34}).prune(model, calibration())  # round(0.34 * 6) = 2
    assert len(report.details["removed_blocks"]) == 2


@pytest.mark.slow
def test_shortgpt_on_smollm2_perplexity_worsens_with_more_removed_blocks() -> None:
    from harness.llm.calibration import load_calibration, resolve_calibration_name
    from harness.data import resolve
    from harness.llm.perplexity import tokenize_windows, window_nll
    from harness.llm.models import load_model
    from harness.tasks import get_task
    from harness.llm.textdata import read_text

    try:
        name = resolve_calibration_name("auto")
    except Exception as exc:  # noqa: BLE001 - neither the data dir nor gensim
        pytest.skip(f"no calibration data: {exc}")
    base = load_model("smollm2-135m")
    cal = load_calibration(base.tokenizer, name=name, nsamples=4, seqlen=128, seed=0)
    text = read_text(resolve(get_task("wikipedia-gensim-ppl").data["text"]))
    windows = tokenize_windows(base.tokenizer, text, 256)[:3]
    ppl = {}
    for k in (0, 2, 6):
        model = copy.deepcopy(base.model)
        if k:
            make(ShortGPT, {"blocks": k, "nsamples": 4, "seqlen": 128}).prune(model, cal)
        assert len(model.model.layers) == 30 - k
        nll = window_nll(model, windows, "cpu", batch_size=1, progress=False)
        ppl[k] = math.exp(float(nll.sum()) / (windows.shape[0] * 255))
    print(f"shortgpt on smollm2-135m, ppl by blocks removed: {ppl}")
    assert ppl[0] < ppl[2] < ppl[6], ppl


def test_registered_under_their_names() -> None:
    from harness.registry import get_method

    assert get_method("shortgpt").cls is ShortGPT
    assert get_method("sleb").cls is SLEB
    assert get_method("angular").cls is Angular
