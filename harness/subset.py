"""Reduced item sets that keep a board's ranking, chosen from stored per-item scores (``harness subset``).

A *subset* of a task is a list of its items (with weights) chosen from the per-item scores of the
entries of one board (same task version, model and protocol: :mod:`harness.report.data`). Four
strategies (``STRATEGIES``):

- ``random``: K items drawn uniformly (the baseline).
- ``stratified``: items sorted by difficulty (their mean score across the entries) and cut into
  equal-sized strata; each stratum gets its proportional share of K, drawn at random; an item's
  weight is its stratum's size over the items drawn from it (the stratified mean estimator).
- ``anchor``: the anchor points of tinyBenchmarks (Polo et al., 2024): the items are clustered by
  their score vectors across the entries (k-means, scikit-learn, K clusters), each cluster is
  represented by its medoid, weighted by the cluster's size.
- ``smart``: SMART filtering (Gupta et al., 2025) first: items every entry gets right, every entry
  gets wrong (or all score the same: they cannot change any order), and duplicates (an identical score
  vector, or near-identical item text when texts are given) are dropped; a kept item carries the
  weight of the duplicates it stands for, so the filtered set alone ranks the selecting entries
  exactly as the full set does. K items are then drawn from the survivors as ``stratified`` does.

An entry's score on a subset is the weighted mean of its per-item scores (the primary metric's item
field: for perplexity the mean nll, which orders entries as exp(mean nll) does).

Rank fidelity is measured, never assumed (:func:`fidelity`): Kendall's tau between the board on the
subset and on the full set with the subset chosen from all entries (*in sample*), and *held out*:
for each entry e the subset is chosen again from the other entries only, and e's rank on that subset
(among all entries) is set against its rank on the full set; tau over these held-out ranks, the share
of the full top-k whose held-out rank is within k, and the mean absolute rank shift say how well the
subset ranks an entry it has not seen.

Stored form: ``<results>/subsets/<task>/<id>.subset`` (JSON, suffixed ``.subset`` so the result
store, which reads every ``*.json`` as a result, leaves it alone). The id is
``<task>~subset-<strategy>-<K>-<hash>``: ``~`` can never appear in a task id, so a subset can never
be loaded or run as its full task, and it is no result, so no board ever mixes the two.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.errors import HarnessError
from harness.results import atomic_write_bytes, canonical_json

STRATEGIES = ("random", "stratified", "anchor", "smart")
MIN_ENTRIES = 4  # held-out fidelity chooses from n-1 >= 3 entries, and tau over 4 ranks says something
SUBSETS_DIR = "subsets"
SUBSET_SUFFIX = ".subset"
SUBSET_VERSION = 1
DEFAULT_STRATA = 4
TEXT_THRESHOLD = 0.9  # character-trigram Jaccard at or above which two item texts are near-identical
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*~subset-[a-z]+-\d+-[0-9a-f]{8}$")

Selection = tuple[np.ndarray, np.ndarray]  # (item indices, weights)


@dataclass
class ScoreMatrix:
    """One board's per-item scores: rows are entries (run ids), columns items (their ids)."""

    task_id: str
    version: int
    kind: str
    model: str | None
    protocol: dict[str, Any]
    primary: str
    field: str  # the per-item field the primary metric is the mean of (or a monotone function of)
    hib: bool
    run_ids: list[str]
    labels: list[str]
    items: list[str]
    scores: np.ndarray  # entries x items

    @property
    def full(self) -> np.ndarray:
        return self.scores.mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Reading a board


def board_matrix(results_dir: Path, task_id: str, model: str | None = None) -> ScoreMatrix:
    """The per-item scores of the task's board (the one with most ranked entries, or the given
    model's); refused with the reason when no board of the task has per-item scores."""
    from harness.report import data
    from harness.results import ResultStore

    from harness.errors import ResultValidationError

    store, folder = ResultStore(results_dir), Path(results_dir) / task_id
    mine = []
    for path in sorted(folder.glob("*.json")) if "~" not in task_id else []:
        try:
            stored = store.check(path)
        except ResultValidationError:
            continue  # `harness validate` reports it; it is no entry
        if stored.result.task.id == task_id:
            mine.append(stored)
    if not mine:
        root = Path(results_dir)
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.json"))) if root.is_dir() else []
        raise HarnessError(f"task {task_id!r}: no valid stored result in {results_dir} (tasks with results: "
                           f"{', '.join(known) or 'none'})")
    boards, _lat, _failed = data.group_boards(mine, data.tracks())
    data.protocol_labels(boards)
    if model is not None:
        boards = [b for b in boards if b.model == model]
        if not boards:
            raise HarnessError(f"task {task_id!r}: no board for model {model!r}")
    best = None
    for b in boards:
        data.prepare_board(b)
        ranked = [e for e in b.entries if e.rank is not None]
        if best is None or len(ranked) > len(best[1]):
            best = (b, ranked)
    b, ranked = best  # type: ignore[misc]
    if len(ranked) < MIN_ENTRIES:
        raise HarnessError(
            f"task {task_id!r}: {len(ranked)} stored result(s) with per-item scores on one board "
            f"({b.model or 'no model'}, {_short(b.protocol_label)}); a subset is chosen from at least {MIN_ENTRIES}")
    key = ranked[0].result.items.key  # type: ignore[union-attr]
    items = sorted({str(r[key]) for r in ranked[0].items}, key=_natural)
    mat = np.empty((len(ranked), len(items)))
    for i, e in enumerate(ranked):
        by = {str(r[key]): float(r[b.test_field]) for r in e.items}
        mat[i] = [by[k] for k in items]
    return ScoreMatrix(task_id=b.task_id, version=b.version, kind=b.kind, model=b.model, protocol=b.protocol,
                       primary=b.primary, field=b.test_field, hib=b.hib,  # type: ignore[arg-type]
                       run_ids=[e.run_id for e in ranked],
                       labels=[f"{e.method} ({e.params_text})" if e.params_text else e.method for e in ranked],
                       items=items, scores=mat)


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _natural(key: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key))


def read_texts(path: Path, items: list[str]) -> list[str | None]:
    """Item texts from a JSONL file of {"item": id, "text": ...} lines (for near-duplicate text)."""
    texts: dict[str, str] = {}
    try:
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "item" not in row:
                    raise HarnessError(f"{path}: line {n}: needs 'item' and a string 'text'")
                texts[str(row["item"])] = row["text"]
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: cannot read item texts ({exc})") from None
    return [texts.get(k) for k in items]


# ---------------------------------------------------------------------------------------------
# SMART filtering


def smart_filter(scores: np.ndarray, hib: bool = True, texts: list[str | None] | None = None,
                 threshold: float = TEXT_THRESHOLD) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """(kept item indices, their multiplicities, dropped indices by reason). Reasons: ``all_right``
    (every entry has the best score any item gets), ``all_wrong`` (the worst), ``all_same`` (equal
    otherwise), ``duplicate_scores`` (the same score vector as an earlier kept item),
    ``duplicate_text`` (near-identical text). A kept item's multiplicity counts the duplicates it
    stands for, so the weighted mean over the kept items orders the entries as the full mean does."""
    n = scores.shape[1]
    top, bottom = (scores.max(), scores.min()) if hib else (scores.min(), scores.max())
    dropped: dict[str, list[int]] = defaultdict(list)
    weight = np.zeros(n)
    seen: dict[bytes, int] = {}
    grams = [_trigrams(t) if t else None for t in (texts or [None] * n)]
    kept: list[int] = []
    for j in range(n):
        col = scores[:, j]
        if np.all(col == col[0]):
            reason = "all_right" if col[0] == top else "all_wrong" if col[0] == bottom else "all_same"
            dropped[reason].append(j)
            continue
        sig = np.round(col, 12).tobytes()
        twin = seen.get(sig)
        if twin is None and grams[j] is not None:
            twin = next((k for k in kept if grams[k] is not None and _jaccard(grams[j], grams[k]) >= threshold), None)
            if twin is not None:
                dropped["duplicate_text"].append(j)
        elif twin is not None:
            dropped["duplicate_scores"].append(j)
        if twin is None:
            seen[sig] = j
            kept.append(j)
            weight[j] = 1.0
        else:
            weight[twin] += 1.0
    idx = np.array(kept, dtype=int)
    return idx, weight[idx], dict(dropped)


def _trigrams(text: str) -> frozenset[str]:
    t = " ".join(text.lower().split())
    return frozenset(t[i:i + 3] for i in range(max(1, len(t) - 2)))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ---------------------------------------------------------------------------------------------
# Strategies: (scores, K, seed) -> (item indices, weights)


def select_random(scores: np.ndarray, k: int, seed: int, **_: Any) -> Selection:
    idx = np.sort(np.random.default_rng(seed).choice(scores.shape[1], size=k, replace=False))
    return idx, np.ones(k)


def select_stratified(scores: np.ndarray, k: int, seed: int, strata: int = DEFAULT_STRATA,
                      base: np.ndarray | None = None, **_: Any) -> Selection:
    """Strata by difficulty (mean score across entries; ties broken at random), equal-sized; each
    stratum gets a proportional share of K (largest remainder, at least one when K allows); weight =
    stratum weight / items drawn from it. ``base``: the items' own weights (multiplicities)."""
    rng = np.random.default_rng(seed)
    n = scores.shape[1]
    base = np.ones(n) if base is None else np.asarray(base, dtype=float)
    order = np.lexsort((rng.random(n), scores.mean(axis=0)))
    groups = [g for g in np.array_split(order, min(strata, k, n)) if len(g)]
    sizes = np.array([len(g) for g in groups], dtype=float)
    share = sizes / sizes.sum() * k
    take = np.maximum(np.floor(share).astype(int), 1)
    while take.sum() > k:
        take[np.argmax(take - share)] -= 1
    while take.sum() < k:
        room = np.where(take < sizes, share - take, -np.inf)
        take[np.argmax(room)] += 1
    idx, w = [], []
    for g, t in zip(groups, take):
        pick = rng.choice(g, size=int(t), replace=False)
        idx += list(pick)
        w += list(base[pick] * base[g].sum() / base[pick].sum())
    order = np.argsort(idx)
    return np.array(idx)[order], np.array(w)[order]


def select_anchor(scores: np.ndarray, k: int, seed: int, **_: Any) -> Selection:
    """tinyBenchmarks' anchor points: k-means on the items' score vectors (K clusters), each cluster
    represented by its medoid (the member nearest all others), weighted by the cluster's size. With
    fewer distinct vectors than K, the groups of identical vectors are the clusters and the spare
    picks go to the largest groups (sharing their weight)."""
    from sklearn.cluster import KMeans

    points = scores.T
    distinct, labels = np.unique(np.round(points, 12), axis=0, return_inverse=True)
    labels = labels.ravel()
    if len(distinct) > k:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(points).labels_
    rng = np.random.default_rng(seed)
    clusters = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    picks = {i: 1 for i in range(len(clusters))}
    spare = k - len(clusters)
    while spare > 0:  # only when groups of identical vectors are the clusters
        room = [i for i in picks if picks[i] < len(clusters[i])]
        i = max(room, key=lambda i: len(clusters[i]) / picks[i])
        picks[i] += 1
        spare -= 1
    idx, w = [], []
    for i, members in enumerate(clusters):
        if picks[i] == 1:
            d = np.abs(points[members][:, None, :] - points[members][None, :, :]).sum(axis=(1, 2))
            chosen = [members[int(np.argmin(d))]]
        else:
            chosen = list(rng.choice(members, size=picks[i], replace=False))
        idx += chosen
        w += [len(members) / picks[i]] * picks[i]
    order = np.argsort(idx)
    return np.array(idx)[order], np.array(w, dtype=float)[order]


def select_smart(scores: np.ndarray, k: int, seed: int, hib: bool = True, texts: list[str | None] | None = None,
                 **_: Any) -> Selection:
    """SMART filtering, then K of the survivors drawn as ``stratified`` does (all of them when fewer)."""
    keep, mult, _dropped = smart_filter(scores, hib, texts)
    if len(keep) == 0:
        raise HarnessError("SMART filtering left no item: every item scores the same for every entry")
    if k >= len(keep):
        return keep, mult
    sub, w = select_stratified(scores[:, keep], k, seed, base=mult)
    return keep[sub], w


SELECTORS: dict[str, Callable[..., Selection]] = {
    "random": select_random, "stratified": select_stratified, "anchor": select_anchor, "smart": select_smart,
}


def select(strategy: str, scores: np.ndarray, k: int, seed: int = 0, hib: bool = True,
           texts: list[str | None] | None = None) -> Selection:
    """The strategy's items and weights. Entries with identical per-item scores (e.g. one retriever
    under several query algorithms) count once: they are one behaviour, and counting it five times
    would let it dominate the clustering and the difficulty estimates."""
    check_strategy(strategy)
    return SELECTORS[strategy](np.unique(scores, axis=0), k, seed, hib=hib, texts=texts)


def check_strategy(strategy: str) -> None:
    if strategy not in SELECTORS:
        raise HarnessError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


# ---------------------------------------------------------------------------------------------
# Rank fidelity


def weighted_scores(scores: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    return scores[:, idx] @ w / w.sum()


def ranks(values: np.ndarray, hib: bool) -> np.ndarray:
    """Competition ranks (1 = best; equal values share a rank)."""
    v = np.asarray(values, dtype=float)
    better = (v[None, :] > v[:, None]) if hib else (v[None, :] < v[:, None])
    return 1 + better.sum(axis=1)


def kendall(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return None if tau is None or np.isnan(tau) else float(tau)


def fidelity(scores: np.ndarray, hib: bool, strategy: str, k: int, seed: int = 0, top_k: int = 3,
             texts: list[str | None] | None = None) -> dict[str, Any]:
    """In-sample and held-out (leave one entry out) rank fidelity of ``strategy`` at size ``k``."""
    full = ranks(scores.mean(axis=1), hib)
    idx, w = select(strategy, scores, k, seed, hib, texts)
    tau_in = kendall(ranks(weighted_scores(scores, idx, w), hib), full)
    held = np.empty(len(full), dtype=int)
    for e in range(len(full)):
        others = np.delete(np.arange(len(full)), e)
        idx_e, w_e = select(strategy, scores[others], k, seed, hib, texts)
        held[e] = ranks(weighted_scores(scores, idx_e, w_e), hib)[e]
    top = min(top_k, len(full))
    best = full <= top
    return {
        "tau_in_sample": tau_in,
        "tau_held_out": kendall(held, full),
        "top_k": top,
        "top_k_held_out": float(np.mean(held[best] <= top)),
        "mean_abs_rank_shift_held_out": float(np.mean(np.abs(held - full))),
        "full_ranks": full.tolist(),
        "held_out_ranks": held.tolist(),
        "subset_ranks": ranks(weighted_scores(scores, idx, w), hib).tolist(),
        "selection": (idx, w),
    }


# ---------------------------------------------------------------------------------------------
# The stored subset


def subset_id(task_id: str, strategy: str, k: int, payload: dict[str, Any]) -> str:
    digest = hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:8]
    return f"{task_id}~subset-{strategy}-{k}-{digest}"


def check_request(m: ScoreMatrix, strategy: str, k: int, texts: list[str | None] | None = None) -> None:
    """Refusals before any selection: unknown strategy, a size the task (or SMART's survivors) cannot give."""
    check_strategy(strategy)
    n = len(m.items)
    if k < 1:
        raise HarnessError(f"--size {k}: must be at least 1")
    if k > n:
        raise HarnessError(f"--size {k}: larger than the task: board {m.task_id} has {n} items")
    if strategy == "smart":
        keep, _mult, dropped = smart_filter(m.scores, m.hib, texts)
        if k > len(keep):
            why = ", ".join(f"{len(v)} {r}" for r, v in sorted(dropped.items()))
            raise HarnessError(f"--size {k}: SMART filtering keeps {len(keep)} of {n} items ({why}); ask for at most "
                               f"{len(keep)}")


def make_subset(m: ScoreMatrix, strategy: str, k: int, seed: int = 0, top_k: int = 3,
                texts: list[str | None] | None = None, command: str = "", created_at: str = "") -> dict[str, Any]:
    """The stored record of one subset: its items and weights, provenance and rank fidelity."""
    check_request(m, strategy, k, texts)
    fid = fidelity(m.scores, m.hib, strategy, k, seed, top_k, texts)
    idx, w = fid.pop("selection")
    items = [m.items[i] for i in idx]
    source = {"task": m.task_id, "task_version": m.version, "kind": m.kind, "model": m.model, "protocol": m.protocol,
              "primary": m.primary, "item_field": m.field, "higher_is_better": m.hib, "n_items": len(m.items),
              "run_ids": list(m.run_ids)}
    rec: dict[str, Any] = {"subset_version": SUBSET_VERSION}
    rec["id"] = subset_id(m.task_id, strategy, k, {"source": source, "strategy": strategy, "size": k, "seed": seed,
                                                   "items": items})
    rec |= {"strategy": strategy, "size": k, "seed": seed, "source": source,
            "items": items, "weights": [round(float(x), 12) for x in w]}
    if strategy == "smart":
        _keep, _mult, dropped = smart_filter(m.scores, m.hib, texts)
        rec["filtered"] = {r: [m.items[j] for j in v] for r, v in sorted(dropped.items())}
    rec["fidelity"] = {key: fid[key] for key in ("tau_in_sample", "tau_held_out", "top_k", "top_k_held_out",
                                                 "mean_abs_rank_shift_held_out")}
    rec["entries"] = [{"run_id": r, "label": lab, "full_rank": f, "subset_rank": s, "held_out_rank": h}
                      for r, lab, f, s, h in zip(m.run_ids, m.labels, fid["full_ranks"], fid["subset_ranks"],
                                                 fid["held_out_ranks"])]
    rec |= {"command": command, "created_at": created_at}
    return rec


def subset_path(results_dir: Path, rec: dict[str, Any]) -> Path:
    return Path(results_dir) / SUBSETS_DIR / rec["source"]["task"] / f"{rec['id']}{SUBSET_SUFFIX}"


def write_subset(results_dir: Path, rec: dict[str, Any]) -> Path:
    path = subset_path(results_dir, rec)
    atomic_write_bytes(path, (json.dumps(rec, indent=2) + "\n").encode())
    return path


def load_subsets(results_dir: Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Every stored subset (sorted by id) and (path, problem) for files that are not one."""
    root = Path(results_dir) / SUBSETS_DIR
    good, bad = [], []
    for path in sorted(root.rglob(f"*{SUBSET_SUFFIX}")) if root.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            if not isinstance(rec, dict) or not _ID.match(str(rec.get("id"))) or path.stem != rec["id"]:
                raise ValueError("field 'id': missing, malformed, or not the file's name")
            if len(rec["items"]) != rec["size"] or len(rec["weights"]) != rec["size"]:
                raise ValueError("field 'items': as many items and weights as 'size' are needed")
            good.append(rec)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            bad.append((path.relative_to(results_dir).as_posix(), str(exc)))
    return sorted(good, key=lambda r: r["id"]), bad


def load_subset(results_dir: Path, sid: str) -> dict[str, Any]:
    """A stored subset by id; a plain task id is refused (a subset is never its full task)."""
    if "~subset-" not in sid:
        raise HarnessError(f"{sid!r} is a task id, not a subset id (<task>~subset-<strategy>-<K>-<hash>)")
    for rec in load_subsets(results_dir)[0]:
        if rec["id"] == sid:
            return rec
    raise HarnessError(f"no stored subset {sid!r} under {Path(results_dir) / SUBSETS_DIR}")


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness import config

    p.add_argument("task", help="task id")
    p.add_argument("--strategy", help=f"one of {', '.join(STRATEGIES)}")
    p.add_argument("--size", type=int, metavar="K", help="items in the subset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="the board's model, when the task has boards for several")
    p.add_argument("--top-k", type=int, default=3, help="top-k agreement reported (default 3)")
    p.add_argument("--texts", help="JSONL of {item, text}: SMART also drops near-identical item texts")
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--dry-run", action="store_true", help="print the subset and its fidelity; store nothing")
    p.add_argument("--adaptive", action="store_true",
                   help="simulate adaptive evaluation of the stored run --run against the rest of its board")
    p.add_argument("--run", metavar="RUN_ID", help="with --adaptive: the entry to evaluate item by item")
    p.add_argument("--alpha", type=float, default=0.05, help="with --adaptive: error rate of the sequential test")
    p.add_argument("--margin", type=float, default=0.0,
                   help="with --adaptive: a pair whose mean difference is shown to be within ±margin counts as tied")
    p.add_argument("--bounds", help="with --adaptive: LO,HI per-item score bounds (default: the stored scores' range)")


def main(args: argparse.Namespace) -> int:
    if args.adaptive:
        from harness.subset_adaptive import main as adaptive_main

        if args.strategy is not None or args.size is not None:
            raise HarnessError("--adaptive evaluates an entry item by item; it takes no --strategy or --size")

        return adaptive_main(args)
    if args.strategy is None or args.size is None:
        raise HarnessError("--strategy and --size are needed (or --adaptive --run RUN_ID)")
    check_strategy(args.strategy)
    if args.size < 1:
        raise HarnessError(f"--size {args.size}: must be at least 1")
    m = board_matrix(Path(args.results), args.task, args.model)
    texts = read_texts(Path(args.texts), m.items) if args.texts else None
    check_request(m, args.strategy, args.size, texts)
    from harness import provenance

    rec = make_subset(m, args.strategy, args.size, args.seed, args.top_k, texts, command=_command(args),
                      created_at=provenance.utc_now())
    print(summary(rec))
    if not args.dry_run:
        print(f"stored at {write_subset(Path(args.results), rec)}")
    return 0


def summary(rec: dict[str, Any]) -> str:
    f, s = rec["fidelity"], rec["source"]
    tau = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{rec['id']}: {rec['size']} of {s['n_items']} items of {s['task']} v{s['task_version']} "
             f"({s['model'] or 'no model'}), {rec['strategy']}, seed {rec['seed']}, from {len(s['run_ids'])} entries",
             f"  Kendall tau vs the full board: in sample {tau(f['tau_in_sample'])}, held out {tau(f['tau_held_out'])}; "
             f"top-{f['top_k']} held out {f['top_k_held_out']:.2f}; mean |rank shift| held out "
             f"{f['mean_abs_rank_shift_held_out']:.2f}"]
    for r, items in rec.get("filtered", {}).items():
        lines.append(f"  SMART dropped {len(items)} item(s): {r}")
    return "\n".join(lines)


def _command(args: argparse.Namespace) -> str:
    import shlex

    parts = ["harness", "subset", args.task, "--strategy", args.strategy, "--size", str(args.size),
             "--seed", str(args.seed)]
    for flag, v in (("--model", args.model), ("--texts", args.texts)):
        if v:
            parts += [flag, v]
    if args.top_k != 3:
        parts += ["--top-k", str(args.top_k)]
    return shlex.join(parts)
