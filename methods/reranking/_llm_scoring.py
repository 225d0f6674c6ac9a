"""Causal-LM scoring helpers shared by LLM rerankers (query likelihood, pairwise prompting).

Two primitives, both batched with left padding and explicit position ids (so a padded sequence
scores exactly as it would alone) and sorted by length to keep padding small:

* :func:`continuation_logprobs`: sum and count of ``log P(continuation tokens | prefix)``;
* :func:`next_token_logprobs`: ``log P(token | prompt)`` for a few candidate next tokens, taken
  from the full-vocabulary log-softmax at the prompt's last position.

Prefix and continuation are tokenised separately and their ids concatenated, so the scored tokens
are exactly the continuation's own tokens whatever the tokenizer does at the boundary. Passages
are cut to a token budget with :func:`truncate_text` before the prompt is built, so the prompt's
instructions are never truncated away.

Each helper returns the number of sequences it ran through the model (``model_calls``): one per
(prefix, continuation) pair or prompt, counted once however the batches fall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError


@dataclass
class ScoredBatch:
    values: list[Any]
    model_calls: int  # sequences run through the model
    forward_passes: int  # batched forward calls


def truncate_text(tokenizer: Any, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_tokens`` tokens (decoded back)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)


def single_token_id(tokenizer: Any, text: str) -> int:
    """Id of ``text`` as one token; refuses strings the tokenizer splits (the comparison would be wrong)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise HarnessError(f"{text!r} is {len(ids)} tokens for this tokenizer; a single token is needed")
    return int(ids[0])


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    return 0 if pad is None else int(pad)


def _batches(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _forward_last(model: Any, seqs: list[list[int]], pad: int, keep: int) -> Any:
    """Logits of the last ``keep`` positions of each sequence, shape [batch, keep, vocab] (float32).

    Sequences are left-padded so that their ends line up, with explicit position ids (0 at each
    sequence's first real token), so models with absolute positions see the same inputs as
    unpadded; only the kept positions go through the output layer when the model allows it.
    """
    import torch

    from harness.llm.latency import accepts_logits_to_keep

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[r, width - len(s) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    device = _device(model)
    kwargs: dict[str, Any] = dict(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device))
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep
    logits = model(**kwargs).logits
    return logits[:, -keep:].float()


def continuation_logprobs(
    model: Any,
    tokenizer: Any,
    prefixes: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "scoring",
) -> ScoredBatch:
    """For each pair, ``(sum of log P(continuation token | all before), number of continuation tokens)``.

    The prefix is tokenised with the tokenizer's special tokens (BOS where it adds one), the
    continuation without; an empty continuation is refused.
    """
    import torch
    from tqdm.auto import tqdm

    if len(prefixes) != len(continuations):
        raise ValueError("prefixes and continuations differ in length")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    seqs: list[tuple[list[int], int]] = []  # (ids, number of continuation tokens)
    for p, c in zip(prefixes, continuations):
        pids = list(tokenizer(p, add_special_tokens=True)["input_ids"])
        cids = list(tokenizer(c, add_special_tokens=False)["input_ids"])
        if not cids:
            raise HarnessError(f"empty continuation to score after prefix {p[-60:]!r}")
        if not pids:  # nothing to condition the first token on: prepend BOS (or pad)
            pids = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else _pad_id(tokenizer)]
        seqs.append((pids + cids, len(cids)))

    out: list[Any] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
    pad = _pad_id(tokenizer)
    passes = 0
    bar = tqdm(total=len(seqs), desc=desc, disable=not progress, leave=False)
    with torch.inference_mode():
        for idx in _batches(order, batch_size):
            keep = max(seqs[i][1] for i in idx) + 1
            logits = _forward_last(model, [seqs[i][0] for i in idx], pad, keep)
            passes += 1
            for r, i in enumerate(idx):
                s, n_c = seqs[i]
                # kept position k holds sequence position len(s) - keep + k; positions
                # len(s)-n_c-1 .. len(s)-2 predict the continuation tokens
                lp = torch.log_softmax(logits[r, keep - n_c - 1 : keep - 1], dim=-1)
                tgt = torch.tensor(s[-n_c:], dtype=torch.long, device=lp.device)
                out[i] = (float(lp.gather(-1, tgt.unsqueeze(-1)).sum()), n_c)
            bar.update(len(idx))
    bar.close()
    return ScoredBatch(out, len(seqs), passes)


def next_token_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    token_ids: Sequence[int],
    *,
    batch_size: int = 16,
) -> ScoredBatch:
    """For each prompt, ``[log P(t | prompt) for t in token_ids]`` (full-vocabulary log-softmax)."""
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    seqs = [list(tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]
    out: list[Any] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    pad = _pad_id(tokenizer)
    passes = 0
    with torch.inference_mode():
        for idx in _batches(order, batch_size):
            logits = _forward_last(model, [seqs[i] for i in idx], pad, 1)[:, -1]
            passes += 1
            lp = torch.log_softmax(logits, dim=-1)[:, list(token_ids)]
            for r, i in enumerate(idx):
                out[i] = [float(v) for v in lp[r]]
    return ScoredBatch(out, len(seqs), passes)
