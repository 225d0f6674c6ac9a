"""Calibration windows for pruning, sampled as the reference implementations do.

SparseGPT's and Wanda's C4 loader: with ``random.seed(seed)``, repeatedly draw a document index
uniformly, skip documents whose tokenisation is not longer than ``seqlen``, then draw a window start
uniformly inside it. On the same shard, tokenizer and seed this gives the same batches as theirs.
Calibration sets are declared like tasks (``tasks/calibration/*.yaml``) and pinned by sha256.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from harness import data as datamod
from harness.errors import HarnessError
from harness.kinds import TaskKind
from harness.tasks import Task, get_calibration
from harness.llm.textdata import read_documents

if TYPE_CHECKING:
    import torch

    from harness.llm.pruning import Calibration

# torch is imported where it is used: loading the task files (this kind's record) must not pay for it.

DEFAULT_ORDER = ("c4", "c4-sample1k", "wikipedia-gensim")  # 'auto': the first available
# Uniform random token ids: the calibration of random-weight config: models (no tokenizer, and no
# text would make their statistics meaningful). Good for shapes and latency, never for quality.
RANDOM_TOKENS = "random-tokens"

# Calibration sets are declared like tasks, as a kind that is never evaluated and has no metrics.
KIND = TaskKind(name="calibration", evaluator=None, has_metrics=False,
                description="a calibration set for pruning (tasks/calibration/*.yaml)")


def resolve_calibration_name(name: str) -> str:
    """Turn 'auto' into a concrete calibration set id (stored in the run's parameters)."""
    if name == RANDOM_TOKENS:
        return name
    if name != "auto":
        get_calibration(name)  # raises with suggestions when unknown
        return name
    for candidate in DEFAULT_ORDER:
        task = get_calibration(candidate)
        if all(datamod.is_available(spec) for spec in task.data.values()):
            return candidate
    raise HarnessError(
        "no calibration data available: set HARNESS_DATA_DIR (C4 sample) or install gensim==4.4.0 (fallback)"
    )


def sample_windows(docs: list[str], tokenizer, nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    import torch

    rng = random.Random(seed)  # same stream as random.seed(seed) + random.randint in the references
    long_enough = 0
    windows = []
    cache: dict[int, torch.Tensor] = {}
    for _ in range(nsamples):
        tries = 0
        while True:
            i = rng.randint(0, len(docs) - 1)
            if i not in cache:
                cache[i] = tokenizer(docs[i], return_tensors="pt").input_ids
            enc = cache[i]
            if enc.shape[1] > seqlen:
                long_enough += 1
                break
            tries += 1
            if tries > 100_000:
                raise HarnessError(f"no calibration document is longer than seqlen={seqlen} tokens")
        start = rng.randint(0, enc.shape[1] - seqlen - 1)
        windows.append(enc[:, start : start + seqlen])
    return torch.cat(windows, dim=0)


def random_token_windows(vocab_size: int, nsamples: int, seqlen: int, seed: int) -> torch.Tensor:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (nsamples, seqlen), generator=gen)


def order_windows(ids: torch.Tensor, order: str) -> torch.Tensor:
    """The same windows (rows of ``ids``) in the order ``order`` asks for: 'sampled' (as drawn),
    'reversed', or 'shuffle:<seed>' (a permutation drawn from ``torch.Generator`` seeded with
    ``seed``, independent of the sampling seed). Only the order changes, never a window."""
    import torch

    from harness.llm.pruning import parse_calibration_order

    kind, shuffle_seed = parse_calibration_order(order)
    if kind == "sampled":
        return ids
    if kind == "reversed":
        return ids.flip(0)
    perm = torch.randperm(ids.shape[0], generator=torch.Generator().manual_seed(shuffle_seed))
    return ids[perm]


def load_calibration(tokenizer, *, name: str, nsamples: int, seqlen: int, seed: int,
                     vocab_size: int | None = None, order: str = "sampled") -> Calibration:
    """The calibration windows of set ``name`` (sampled with ``seed``), fed in ``order``."""
    calibration = _load_windows(tokenizer, name=name, nsamples=nsamples, seqlen=seqlen, seed=seed,
                                vocab_size=vocab_size)
    calibration.input_ids = order_windows(calibration.input_ids, order)
    calibration.source["order"] = order
    return calibration


def _load_windows(tokenizer, *, name: str, nsamples: int, seqlen: int, seed: int,
                  vocab_size: int | None = None) -> Calibration:
    from harness.llm.pruning import Calibration

    if name == RANDOM_TOKENS:
        if vocab_size is None:
            raise HarnessError("calibration=random-tokens needs the model's vocabulary size")
        return Calibration(
            input_ids=random_token_windows(vocab_size, nsamples, seqlen, seed),
            source={"set": RANDOM_TOKENS, "title": "uniform random token ids (random-weight models: shape and latency only)",
                    "documents": 0, "nsamples": nsamples, "seqlen": seqlen, "seed": seed, "data": None},
        )
    if tokenizer is None:
        raise HarnessError(
            f"calibration={name!r} needs a tokenizer, and this model has none (a config: model with random "
            f"weights); use calibration={RANDOM_TOKENS} (the default for config: models)"
        )
    task: Task = get_calibration(name)
    spec = task.data["documents"]
    resolved = datamod.resolve(spec)
    docs = read_documents(resolved)
    ids = sample_windows(docs, tokenizer, nsamples, seqlen, seed)
    return Calibration(
        input_ids=ids,
        source={
            "set": name,
            "title": task.title,
            "documents": len(docs),
            "nsamples": nsamples,
            "seqlen": seqlen,
            "seed": seed,
            "data": resolved.provenance(),
        },
    )
