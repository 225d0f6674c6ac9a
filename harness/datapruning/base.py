"""The data-pruning family: what a method selects from, the learner a task fixes, shared scores.

A data-pruning method receives a :class:`Pool` (item ids, texts, integer labels, frozen L2-normalised
embeddings) and the task's :class:`Learner`, and returns, for every fraction the task evaluates, the
indices of the pool items it keeps (exactly ``keep_count(fraction, len(pool))`` of them). The task
then trains the same learner, from the same seed, on each selection and scores it on the test set.

Score-based methods (EL2N, GraNd, prototypes, perplexity) derive from :class:`ScoreMethod`: they
compute one score per pool item and keep the top of an ordering (``keep``: hard = highest first,
easy = lowest first, middle = closest to the median first).

Methods count their own cost in ``self.stats``: ``scoring_examples_seen`` (examples passed through
a training step while scoring, e.g. EL2N's early epochs over the full pool, summed over seeds) and
``learner_fits``; this is the cost the selection itself spends, stored with every result.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.errors import HarnessError
from harness.kinds import CheapTask, MethodBase, Protocol

Keep = Literal["hard", "easy", "middle"]


class LearnerSpec(Protocol):
    """The learner a task fixes: a softmax head on the frozen embeddings, trained with Adam on
    shuffled mini-batches for a fixed number of epochs (so a smaller subset costs fewer steps)."""

    hidden: int = Field(0, ge=0)  # 0: a linear (softmax-regression) head; > 0: one ReLU layer this wide
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0  # initialisation and batch order of the evaluated training runs


@dataclass
class Pool:
    """The training pool a method selects from (indices refer to this order)."""

    ids: list[str]
    texts: list[str]
    labels: np.ndarray  # int64, in [0, num_classes)
    embeddings: np.ndarray  # float32 [n, d], L2-normalised
    num_classes: int
    digest: str = ""  # sha256 over (id, text, label) in pool order: caches key on it

    def __len__(self) -> int:
        return len(self.ids)


def keep_count(fraction: float, n: int) -> int:
    """How many of ``n`` pool items a fraction keeps: round half up, at least 1, at most n."""
    return max(1, min(n, int(math.floor(fraction * n + 0.5))))


class Learner:
    """Trains the task's head on (embeddings, labels); deterministic on CPU for a given seed."""

    def __init__(self, spec: LearnerSpec, dim: int, num_classes: int):
        self.spec, self.dim, self.num_classes = spec, dim, num_classes

    def build(self, seed: int):
        import torch

        torch.manual_seed(seed)
        if self.spec.hidden:
            return torch.nn.Sequential(
                torch.nn.Linear(self.dim, self.spec.hidden), torch.nn.ReLU(),
                torch.nn.Linear(self.spec.hidden, self.num_classes),
            )
        return torch.nn.Linear(self.dim, self.num_classes)

    def fit(self, x: np.ndarray, y: np.ndarray, *, seed: int | None = None,
            epochs: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Train from ``seed`` (default: the task's) for ``epochs`` (default: the task's; 0 returns
        the initialised model). Returns the model and ``{examples_seen, steps, seconds}``."""
        import torch

        seed = self.spec.seed if seed is None else seed
        epochs = self.spec.epochs if epochs is None else epochs
        t0 = time.perf_counter()
        model = self.build(seed)
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        n = len(yt)
        opt = torch.optim.Adam(model.parameters(), lr=self.spec.lr, weight_decay=self.spec.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        steps = 0
        model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, self.spec.batch_size):
                idx = order[start:start + self.spec.batch_size]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                steps += 1
        model.eval()
        return model, {"examples_seen": epochs * n, "steps": steps, "seconds": time.perf_counter() - t0}

    @staticmethod
    def logits(model: Any, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return model(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


# ------------------------------------------------------------------------------------- scores


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def el2n(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """EL2N (Paul et al. 2021): ``||softmax(f(x)) - onehot(y)||_2`` per example."""
    p = softmax(np.asarray(logits, dtype=np.float64))
    onehot = np.zeros_like(p)
    onehot[np.arange(len(labels)), np.asarray(labels)] = 1.0
    return np.linalg.norm(p - onehot, axis=1)


def grand(model: Any, x: np.ndarray, labels: np.ndarray, chunk: int = 256) -> np.ndarray:
    """GraNd (Paul et al. 2021): the L2 norm of the per-example gradient of the cross-entropy loss
    with respect to every parameter of ``model`` (per-sample gradients with ``torch.func``)."""
    import torch
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    out = []
    for start in range(0, len(yt), chunk):
        g = per_example(params, xt[start:start + chunk], yt[start:start + chunk])
        sq = sum(v.reshape(v.shape[0], -1).double().pow(2).sum(1) for v in g.values())
        out.append(sq.sqrt().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def early_training_scores(method: MethodBase, pool: Pool, learner: Learner, score: str, epochs: int,
                          seeds: Sequence[int]) -> np.ndarray:
    """EL2N or GraNd of every pool item after ``epochs`` epochs of the task's learner on the full
    pool, averaged over the training ``seeds`` (Paul et al.: "a few epochs, averaged over seeds")."""
    total = np.zeros(len(pool))
    for s in seeds:
        model, info = learner.fit(pool.embeddings, pool.labels, seed=s, epochs=epochs)
        method.stats["learner_fits"] = method.stats.get("learner_fits", 0) + 1
        method.stats["scoring_examples_seen"] = method.stats.get("scoring_examples_seen", 0) + info["examples_seen"]
        if score == "el2n":
            total += el2n(learner.logits(model, pool.embeddings), pool.labels)
        elif score == "grand":
            total += grand(model, pool.embeddings, pool.labels)
        else:
            raise HarnessError(f"unknown training score {score!r}")
    return total / len(seeds)


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (numpy, deterministic for a seed):
    ``(centroids [k, d], assignment [n])``. ``k`` is capped at the number of points."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(n)]]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centroids.append(x[i])
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = np.stack(centroids)
    assign = np.full(n, -1)
    for _ in range(iters):
        dist = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
        new = dist.argmin(1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c, assign


def order_by_score(scores: np.ndarray, keep: str) -> np.ndarray:
    """Pool indices in the order a score-based method keeps them; ties by pool index.
    hard: highest score first; easy: lowest first; middle: closest to the median first."""
    scores = np.asarray(scores, dtype=np.float64)
    if keep == "hard":
        key = -scores
    elif keep == "easy":
        key = scores
    elif keep == "middle":
        key = np.abs(scores - np.median(scores))
    else:
        raise HarnessError(f"keep must be hard, easy or middle, got {keep!r}")
    return np.argsort(key, kind="stable")


# ------------------------------------------------------------------------------------- methods


class DataPruningMethod(MethodBase):
    """Base class of the data-pruning family. Implement :meth:`select_count` (and optionally
    :meth:`prepare`, called once per pool before the fractions are selected)."""

    family: ClassVar[str] = "data-pruning"
    takes_model: ClassVar[bool] = False
    scaffold: ClassVar[str | None] = "harness.datapruning.scaffold_template:DATA_PRUNING"
    # the first 100 pool items (the split's embeddings are computed once per machine, then cached)
    cheap_task: ClassVar[CheapTask | None] = CheapTask("mmlu-subjects-pruning", 100)
    final_methods: ClassVar[tuple[str, ...]] = ("select",)  # it checks every selection

    def prepare(self, pool: Pool, learner: Learner) -> None:
        """Compute what every fraction's selection shares (scores, clusters), once per pool."""

    @abstractmethod
    def select_count(self, pool: Pool, m: int, learner: Learner) -> np.ndarray:
        """The indices of the ``m`` pool items to keep."""

    def select(self, pool: Pool, fractions: Sequence[float], learner: Learner) -> dict[float, np.ndarray]:
        """For each fraction, the sorted indices of the kept pool items (checked: distinct, in
        range, exactly ``keep_count(fraction, len(pool))`` of them)."""
        self.prepare(pool, learner)
        out = {}
        for f in fractions:
            m = keep_count(f, len(pool))
            idx = np.asarray(self.select_count(pool, m, learner), dtype=np.int64)
            if len(np.unique(idx)) != len(idx) or len(idx) != m:
                raise HarnessError(f"{self.method_name}: fraction {f} must keep {m} distinct items, "
                                   f"got {len(idx)} ({len(np.unique(idx))} distinct)")
            if len(idx) and (idx.min() < 0 or idx.max() >= len(pool)):
                raise HarnessError(f"{self.method_name}: fraction {f} selected an index outside the pool")
            out[f] = np.sort(idx)
        return out


class ScoreMethod(DataPruningMethod):
    """A method that scores every pool item once and keeps the top ``m`` of ``order_by_score``
    (its params carry ``keep``)."""

    @abstractmethod
    def scores(self, pool: Pool, learner: Learner) -> np.ndarray:
        """One score per pool item (higher = harder for EL2N, GraNd, prototypes, perplexity)."""

    def prepare(self, pool: Pool, learner: Learner) -> None:
        self.item_scores = np.asarray(self.scores(pool, learner), dtype=np.float64)
        if self.item_scores.shape != (len(pool),) or not np.isfinite(self.item_scores).all():
            raise HarnessError(f"{self.method_name}: scores must be {len(pool)} finite numbers")
        self.order = order_by_score(self.item_scores, self.keep_rule())

    def keep_rule(self) -> str:
        """hard, easy or middle (default: the ``keep`` parameter)."""
        return self.params.keep

    def select_count(self, pool: Pool, m: int, learner: Learner) -> np.ndarray:
        return self.order[:m]
