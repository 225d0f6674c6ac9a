"""Parity: the harness's pruning equals an independent re-derivation from the papers' equations.

Nothing here is copied from a reference implementation. Each method is re-derived in this file
from its paper (and the reference behaviour the harness documents, docs/PARITY.md) and compared
with the harness's adapter on a tiny Llama and fixed inputs, exactly (``torch.equal``) wherever the
algorithm is deterministic:

- magnitude (Sun et al. 2024, baseline): per matrix, prune every |W| at or below the value at
  position int(numel * s) of the sorted |W|; N:M: the N smallest |W| of each group of M inputs;
- Wanda (Sun et al. 2024): per output row, the int(in * s) lowest |W_ij| * ||X_j||_2 (stable
  order), ||X_j|| over every calibration token reaching the layer; N:M groups likewise;
- SparseGPT (Frantar & Alistarh 2023): H = 2/n sum X X^T, dampened by percdamp * mean(diag H);
  U = upper Cholesky factor of H^-1 (by cholesky_inverse); columns in blocks of B: the block's mask
  is every w^2 / U_jj^2 at or below its value at position int(numel * s); column by column the
  pruned weight's error (w - q) / U_jj is compensated on the later columns of the block with row j
  of U; after the block, the block's errors are applied to all later columns at once (the lazy
  batch update).

The layer-wise order (each block calibrated on the outputs of the already pruned blocks) is
re-derived too: the full model is run forward on each window with the earlier blocks pruned, and
hooks read each linear's inputs (no use of harness.llm.layerwise).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.llm.pruning import Calibration, at_or_below_mask, layer_mask, transformer_blocks
from methods.pruning.magnitude import Magnitude
from methods.pruning.sparsegpt import Hessian, SparseGPT, sparsegpt_prune_weight
from methods.pruning.wanda import Wanda
from tests.tiny_models import make, one_thread, tiny_llama_config  # noqa: F401

NSAMPLES, SEQLEN = 4, 24


def fixed_calibration(vocab: int = 97, seed: int = 3) -> Calibration:
    g = torch.Generator().manual_seed(seed)
    return Calibration(input_ids=torch.randint(0, vocab, (NSAMPLES, SEQLEN), generator=g), source={"set": "fixed"})


def block_linears_of(block: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}


def twin_models(layers: int = 2):
    """Two identical tiny Llamas: one for the harness, one for the re-derivation."""
    return tiny_llama_config(layers, seed=0), tiny_llama_config(layers, seed=0)


# ---------------------------------------------------------------------------------------------
# Independent re-derivations


def lowest_n_per_group(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """True for the n lowest scores of every group of m consecutive inputs of each row."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    for g in range(0, scores.shape[1], m):
        idx = torch.sort(scores[:, g : g + m], dim=1, stable=True).indices[:, :n]
        mask[:, g : g + m].scatter_(1, idx, True)
    return mask


def threshold_rule(scores: torch.Tensor, s: float) -> torch.Tensor:
    """Everything at or below sorted(scores)[int(numel * s)]."""
    thr = torch.sort(scores.flatten()).values[int(scores.numel() * s)]
    return scores <= thr


def per_row_lowest(scores: torch.Tensor, s: float) -> torch.Tensor:
    k = int(scores.shape[1] * s)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(1, torch.sort(scores, dim=1, stable=True).indices[:, :k], True)
    return mask


def sequential(model: nn.Module, ids: torch.Tensor, prune_linear) -> None:
    """Block by block: every window through the whole model (earlier blocks already pruned), the
    inputs of each linear of this block recorded, then each linear pruned from its inputs."""
    for block in transformer_blocks(model):
        linears = block_linears_of(block)
        seen: dict[str, list[torch.Tensor]] = {n: [] for n in linears}
        hooks = [lin.register_forward_hook(lambda _m, inp, _o, n=n: seen[n].append(inp[0].detach()))
                 for n, lin in linears.items()]
        with torch.no_grad():
            for j in range(ids.shape[0]):
                model(input_ids=ids[j : j + 1], use_cache=False)
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for n, lin in linears.items():
                prune_linear(lin, seen[n])


def wanda_by_paper(lin: nn.Linear, inputs: list[torch.Tensor], s: float, nm) -> None:
    x = torch.cat([i.reshape(-1, i.shape[-1]) for i in inputs]).float()  # [tokens, in]
    scores = lin.weight.abs().float() * x.norm(dim=0).reshape(1, -1)
    mask = lowest_n_per_group(scores, *nm) if nm else per_row_lowest(scores, s)
    lin.weight[mask] = 0


def hessian_running(inputs: list[torch.Tensor]) -> torch.Tensor:
    """H = 2/n sum_k X_k X_k^T over n windows, kept as a running mean (the order of the sums the
    reference uses, so that the parity can be exact: SparseGPT is sensitive to that rounding)."""
    H, n = None, 0
    for inp in inputs:
        x = inp.reshape(-1, inp.shape[-1]).t().float()
        H = torch.zeros(x.shape[0], x.shape[0]) if H is None else H
        H *= n / (n + 1)
        n += 1
        x = (2 / n) ** 0.5 * x
        H += x @ x.t()
    return H


def obs_prune(W: torch.Tensor, H: torch.Tensor, s: float, nm=None, B: int = 128, percdamp: float = 0.01) -> torch.Tensor:
    """SparseGPT's blocked OBS update with lazy batch updates, from the paper (Algorithm 1)."""
    W, H = W.clone().float(), H.clone()
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H = H + percdamp * torch.mean(torch.diag(H)) * torch.eye(cols)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for b0 in range(0, cols, B):
        b1 = min(b0 + B, cols)
        Wb, Ub = W[:, b0:b1].clone(), U[b0:b1, b0:b1]
        d = torch.diag(Ub)
        mask = threshold_rule(Wb ** 2 / d.reshape(1, -1) ** 2, s) if nm is None else torch.zeros_like(Wb, dtype=torch.bool)
        Q, E = torch.zeros_like(Wb), torch.zeros_like(Wb)
        for c in range(b1 - b0):
            if nm is not None and c % nm[1] == 0:
                group = Wb[:, c : c + nm[1]] ** 2 / d[c : c + nm[1]].reshape(1, -1) ** 2
                mask[:, c : c + nm[1]] = lowest_n_per_group(group, nm[0], nm[1])
            w = Wb[:, c]
            q = torch.where(mask[:, c], torch.zeros_like(w), w)
            e = (w - q) / Ub[c, c]
            Wb[:, c:] -= e.unsqueeze(1) @ Ub[c, c:].unsqueeze(0)  # compensate the later columns
            Q[:, c], E[:, c] = q, e
        W[:, b0:b1] = Q
        W[:, b1:] -= E @ U[b0:b1, b1:]  # lazy batch update of everything after the block
    return W


# ---------------------------------------------------------------------------------------------
# Magnitude


@pytest.mark.parametrize("pattern,sparsity", [("unstructured", 0.5), ("unstructured", 0.3), ("2:4", 0.5)])
def test_magnitude_equals_rederivation(pattern, sparsity):
    ours, theirs = twin_models()
    make(Magnitude, {"sparsity": str(sparsity), "pattern": pattern}).prune(ours, None)
    with torch.no_grad():
        for block in transformer_blocks(theirs):
            for lin in block_linears_of(block).values():
                a = lin.weight.abs()
                lin.weight[lowest_n_per_group(a, 2, 4) if pattern == "2:4" else threshold_rule(a, sparsity)] = 0
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(p, q), name


def tied_weights() -> torch.Tensor:
    """A matrix whose |W| take 8 values only: hundreds of weights tie with any threshold."""
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(1, 9, (16, 32), generator=g).float() / 8
    signs = torch.where(torch.rand(16, 32, generator=g) < 0.5, -1.0, 1.0)
    return levels * signs


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.6])
def test_at_or_below_rule_prunes_every_tie(sparsity):
    W = tied_weights()
    a = W.abs()
    thr = torch.sort(a.flatten()).values[int(a.numel() * sparsity)]
    at_or_below = int((a <= thr).sum())
    assert at_or_below > int(a.numel() * sparsity) + 1  # the construction has ties at the threshold
    lin = nn.Linear(32, 16, bias=False)
    with torch.no_grad():
        lin.weight.copy_(W)
    model = nn.Module()
    model.model = nn.Module()
    model.model.layers = nn.ModuleList([nn.Sequential(lin)])
    make(Magnitude, {"sparsity": str(sparsity)}).prune(model, None)
    assert int((lin.weight == 0).sum()) == at_or_below  # number of zeros == count at or below
    assert torch.equal(lin.weight == 0, a <= thr)
    assert torch.equal(at_or_below_mask(a, sparsity), a <= thr)
    # the exact rule prunes exactly int(numel * s), ties to the lower index
    assert int(layer_mask(a, sparsity, "exact").sum()) == int(a.numel() * sparsity)


# ---------------------------------------------------------------------------------------------
# Wanda


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_wanda_equals_rederivation(pattern):
    ours, theirs = twin_models()
    calib = fixed_calibration()
    params = {"sparsity": "0.5", "pattern": pattern, "nsamples": str(NSAMPLES), "seqlen": str(SEQLEN)}
    make(Wanda, params).prune(ours, calib)
    nm = (2, 4) if pattern == "2:4" else None
    sequential(theirs, calib.input_ids, lambda lin, inputs: wanda_by_paper(lin, inputs, 0.5, nm))
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(p == 0, q == 0), f"{name}: masks differ"
        assert torch.equal(p, q), name


# ---------------------------------------------------------------------------------------------
# SparseGPT


def _layer(seed: int = 0, out_f: int = 24, in_f: int = 64, windows: int = 4, tokens: int = 16):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out_f, in_f, generator=g)
    mix = torch.randn(in_f, in_f, generator=g) / in_f ** 0.5
    xs = [torch.randn(1, tokens, in_f, generator=g) @ mix for _ in range(windows)]
    xs[0][..., 7] = 0  # keep the always-zero input of the reference in play: feature 7 is dead
    for x in xs[1:]:
        x[..., 7] = 0
    return W, xs


@pytest.mark.parametrize("nm,blocksize", [(None, 128), (None, 16), ((2, 4), 16)])
def test_sparsegpt_layer_equals_obs_rederivation(nm, blocksize):
    W, xs = _layer()
    hess = Hessian(W.shape[1], W.device)
    for x in xs:
        hess.add_batch(x)
    H = hessian_running(xs)
    assert torch.equal(hess.H, H)
    expected = obs_prune(W, H, 0.5, nm, blocksize)
    got = W.clone()
    sparsegpt_prune_weight(got, hess.H, 0.5, nm, blocksize=blocksize)
    assert torch.equal(got == 0, expected == 0)
    assert torch.equal(got, expected)
    if nm is None:  # one weight more than the target per block (no ties among random scores)
        blocks = -(-W.shape[1] // blocksize)
        assert int((got == 0).sum()) == int(W.numel() * 0.5) + blocks


def test_sparsegpt_exact_rule_is_the_triangular_solve_and_exact_k():
    """``mask_rule=exact``: exactly int(numel * s) per block, and not the reference's weights."""
    W, xs = _layer(seed=1)
    hess = Hessian(W.shape[1], W.device)
    for x in xs:
        hess.add_batch(x)
    exact, ref = W.clone(), W.clone()
    sparsegpt_prune_weight(exact, hess.H.clone(), 0.5, None, blocksize=16, rule="exact")
    sparsegpt_prune_weight(ref, hess.H.clone(), 0.5, None, blocksize=16, rule="reference")
    assert int((exact == 0).sum()) == int(W.numel() * 0.5)
    assert int((ref == 0).sum()) == int(W.numel() * 0.5) + 4
    torch.testing.assert_close(exact[(exact != 0) & (ref != 0)], ref[(exact != 0) & (ref != 0)], rtol=0.5, atol=0.5)


def test_sparsegpt_lazy_update_is_the_column_by_column_obs_update():
    """The lazy batch update is a reordering: it equals updating every later column at once."""
    W, xs = _layer(seed=2)
    H = hessian_running(xs)
    lazy = obs_prune(W, H, 0.5, (2, 4), B=8)
    eager = obs_prune(W, H, 0.5, (2, 4), B=W.shape[1])  # one block: every column updated immediately
    assert torch.equal(lazy == 0, eager == 0)
    torch.testing.assert_close(lazy, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_sparsegpt_model_equals_rederivation(pattern):
    ours, theirs = twin_models()
    calib = fixed_calibration()
    params = {"sparsity": "0.5", "pattern": pattern, "nsamples": str(NSAMPLES), "seqlen": str(SEQLEN),
              "blocksize": "16"}
    make(SparseGPT, params).prune(ours, calib)
    nm = (2, 4) if pattern == "2:4" else None

    def prune(lin: nn.Linear, inputs: list[torch.Tensor]) -> None:
        lin.weight.copy_(obs_prune(lin.weight, hessian_running(inputs), 0.5, nm, 16))

    sequential(theirs, calib.input_ids, prune)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(p == 0, q == 0), f"{name}: masks differ"
        assert torch.equal(p, q), name


def test_versions_are_declared():
    assert Magnitude.version == 2 and SparseGPT.version == 2
    assert getattr(Wanda, "version", 1) == 1  # Wanda's results did not change
