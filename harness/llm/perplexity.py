"""Token perplexity with the protocol of the pruning papers.

Text joined once, tokenised once, cut into non-overlapping windows of ``seqlen`` tokens (the trailing
partial window is dropped); perplexity = exp(total NLL / predicted tokens). Every window predicts
``seqlen - 1`` tokens, so this equals SparseGPT's/Wanda's exp(mean of per-window mean losses).
"""

from __future__ import annotations

import hashlib
import math
import os

from typing import TYPE_CHECKING

from pydantic import Field

from harness import config
from harness.data import resolve
from harness.errors import HarnessError
from harness.kinds import EvalOutput, Metric, Protocol, RunContext, TaskKind, Track, fixed_metrics
from harness.tasks import Task
from harness.llm.textdata import read_text

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: loading the task files must not pay for it.


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (fast tokenizers), else of its class and vocab."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    blob = backend.to_str() if backend is not None else f"{type(tokenizer).__name__}:{sorted(tokenizer.get_vocab().items())}"
    return hashlib.sha256(blob.encode()).hexdigest()


def _token_ids(tokenizer, text: str) -> torch.Tensor:
    old_max = getattr(tokenizer, "model_max_length", None)
    tokenizer.model_max_length = int(1e12)  # silence the 'sequence too long' warning: we window ourselves
    try:
        return tokenizer(text, return_tensors="pt").input_ids[0]
    finally:
        if old_max is not None:
            tokenizer.model_max_length = old_max


def tokenize_windows(tokenizer, text: str, seqlen: int, cache: bool = True) -> torch.Tensor:
    """[n_windows, seqlen] token ids of the whole text (partial last window dropped).

    Tokenising a whole test set takes seconds; the ids are cached on disk by (text digest,
    tokenizer digest), so repeated evaluations cost only the model's forward passes."""
    import torch

    if not cache:
        ids = _token_ids(tokenizer, text)
    else:
        key = hashlib.sha256(text.encode()).hexdigest()[:16] + "-" + tokenizer_fingerprint(tokenizer)[:16]
        path = config.cache_dir() / "tokens" / f"{key}.pt"
        if path.is_file():
            ids = torch.load(path)
        else:
            ids = _token_ids(tokenizer, text)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(ids.clone(), tmp)
            os.replace(tmp, path)
    n = ids.numel() // seqlen
    if n == 0:
        raise HarnessError(f"the text has {ids.numel()} tokens, fewer than one window of {seqlen}")
    return ids[: n * seqlen].view(n, seqlen)


class PerplexityProtocol(Protocol):
    seqlen: int = Field(2048, ge=2)  # tokens per window


def window_nll(model, windows: torch.Tensor, device: str, batch_size: int = 1, progress: bool = True) -> torch.Tensor:
    """Sum of token NLLs of each window (float64), predicting tokens 1..seqlen-1 from their prefix."""
    import torch

    with torch.inference_mode():
        return _window_nll(model, windows, device, batch_size, progress)


def _window_nll(model, windows: torch.Tensor, device: str, batch_size: int, progress: bool) -> torch.Tensor:
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    sums = []
    bar = tqdm(total=windows.shape[0], desc="perplexity windows", unit="win", disable=not progress)
    for start in range(0, windows.shape[0], batch_size):
        batch = windows[start : start + batch_size].to(device)
        logits = model(input_ids=batch, use_cache=False).logits
        nll = F.cross_entropy(
            logits[:, :-1, :].reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="none"
        ).view(batch.shape[0], -1)
        sums.append(nll.sum(dim=1).double().cpu())
        bar.update(batch.shape[0])
    bar.close()
    return torch.cat(sums)


def evaluate_perplexity(task: Task, ctx: RunContext) -> EvalOutput:
    if ctx.model is None or ctx.model.tokenizer is None:
        raise HarnessError(f"task {task.id} needs a causal LM with a tokenizer")
    seqlen = task.settings.seqlen
    resolved = resolve(task.data["text"])
    text = read_text(resolved)
    windows = tokenize_windows(ctx.model.tokenizer, text, seqlen)
    total_windows = windows.shape[0]
    if ctx.limit is not None:
        windows = windows[: ctx.limit]
    sums = window_nll(ctx.model.model, windows, ctx.device, ctx.batch_size or 1, ctx.progress)
    per_token = seqlen - 1
    means = sums / per_token
    n = means.numel()
    mean_nll = float(sums.sum() / (n * per_token))
    std = float(means.std(unbiased=True)) if n > 1 else None
    nll_se = std / math.sqrt(n) if std is not None else None
    ppl = math.exp(mean_nll)
    items = [
        {"item": f"window-{i:04d}", "nll": float(m), "ppl": math.exp(float(m)), "tokens": per_token}
        for i, m in enumerate(means.tolist())
    ]
    return EvalOutput(
        metrics={
            "ppl": Metric(ppl, n, ppl * nll_se if nll_se is not None else None),  # delta method
            "nll": Metric(mean_nll, n, nll_se),
        },
        items=items,
        data=[resolved.provenance()],
        protocol_details={
            "windows_evaluated": n,
            "windows_available": int(total_windows),
            "tokens_predicted": n * per_token,
            "tokenizer": f"{type(ctx.model.tokenizer).__name__} (vocab {len(ctx.model.tokenizer)})",
        },
    )


def aggregate(metric: str, items: list[dict]) -> float | None:
    """nll = token-weighted mean of the windows' mean NLL; ppl = exp of it."""
    if metric not in ("nll", "ppl") or not items or any("nll" not in i or "tokens" not in i for i in items):
        return None
    tokens = math.fsum(float(i["tokens"]) for i in items)
    mean_nll = math.fsum(float(i["nll"]) * float(i["tokens"]) for i in items) / tokens
    return mean_nll if metric == "nll" else math.exp(mean_nll)


KIND = TaskKind(
    name="perplexity",
    evaluator=evaluate_perplexity,
    families=("pruning",),
    track=Track("llm", "LLM pruning", order=10),
    protocol=PerplexityProtocol,
    metric_error=fixed_metrics("ppl", "nll"),
    description="token perplexity over non-overlapping windows of a pinned text",
    aggregate=aggregate,
)
