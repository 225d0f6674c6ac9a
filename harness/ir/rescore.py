"""Add an IR diagnostic metric to stored results from their stored ranked lists (``harness rescore``).

A measure such as ``Judged@10`` is a deterministic function of the ranked lists a result stores
(its ``run`` artifact, :mod:`harness.ir.runfile`) and the pinned qrels of its task, so it can be
added to results made before the kind computed it, without re-running the method:

1. the result must be an ``ok`` IR result whose task is defined today as when it was made (its
   definition digest), with a stored run; results that already carry the metric are left alone;
2. the task's collection is loaded (the pinned qrels, checked against their sha256), restricted to
   the result's ``limit``; each per-item row (one per judged query) gets the metric computed on the
   stored ranking by the same code as a run (:func:`harness.ir.evaluate.per_query_scores`), and the
   aggregate is the mean with its standard error; ``task.protocol_details`` gets what a run now
   records beside it (:func:`harness.ir.evaluate.judged_details`: the count of judged-non-relevant
   labels, and for reranking the first stage's Judged@10, ``judged_reference``);
3. the result is rewritten in place (same run id: metrics are not part of it), with its sidecar and
   body digest re-made, and ``provenance.amendments`` records what was added, when, by which
   command and harness commit. ``harness validate`` re-derives the new aggregate from the items.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import HarnessError
from harness.ir.retrieval_task import JUDGED
from harness.results import ResultStore, StoredResult

IR_KINDS = ("retrieval", "reranking")


def stored_run(stored: StoredResult) -> pd.DataFrame:
    """The stored ranked lists as a normalised run frame (qid, docno, rank)."""
    from harness.ir import runfile

    lists, _tag = runfile.stored_lists(stored.path, stored.result)
    rows = [(qid, docno, rank) for qid, docs in lists for rank, docno in enumerate(docs)]
    return pd.DataFrame(rows, columns=["qid", "docno", "rank"]).astype({"qid": str, "docno": str})


def _task_for(stored: StoredResult, tasks_dir: Path | None) -> Any:
    from harness.tasks import definition_digest, load_tasks

    res = stored.result
    task = load_tasks(tasks_dir).get(res.task.id)
    if task is None:
        raise HarnessError(f"{stored.path}: task {res.task.id!r} is not defined here")
    if res.task.definition_digest is not None and definition_digest(task) != res.task.definition_digest:
        raise HarnessError(f"{stored.path}: task {res.task.id!r} is defined differently today (stale); re-run it")
    return task


def rescore_one(store: ResultStore, stored: StoredResult, metric: str = JUDGED, command: str = "",
                tasks_dir: Path | None = None) -> str:
    """Add ``metric`` to one stored result; returns what happened ('added', or why it was skipped)."""
    from harness.ir.collections import load_ir_collection
    from harness.ir.evaluate import aggregate, judged_details, limit_collection, per_query_scores, resolve_measures
    from harness.kinds import get_kind

    res = stored.result
    if res.task.kind not in IR_KINDS or not res.ok:
        return "skipped: not an ok IR result"
    items = stored.items()
    if metric in res.metrics and all(metric in r for r in items):
        return f"skipped: already has {metric}"
    if not (res.artifacts or {}) or res.items is None:
        return "skipped: no stored run or no per-item rows"
    task = _task_for(stored, tasks_dir)
    protocol = res.task.protocol
    coll = limit_collection(load_ir_collection(task), protocol.get("limit"))
    key = res.items.key
    qids = [str(r[key]) for r in items]
    measures = resolve_measures([metric], int(protocol.get("rel_threshold", 1)))
    table = per_query_scores(stored_run(stored), coll.qrels, qids, measures)
    hib = dict(get_kind(res.task.kind).extra_metrics).get(metric, True)
    doc = res.to_dict()
    doc["metrics"][metric] = aggregate(table)[metric].to_dict(hib, False)
    new_items = [dict(r) | {metric: float(table.at[str(r[key]), metric])} for r in items]
    details = judged_details(coll, qids, int(protocol.get("cutoff", 1000)), res.task.kind,
                             int(protocol.get("rel_threshold", 1)))
    doc["task"]["protocol_details"] = dict(doc["task"].get("protocol_details") or {}) | details
    added = [f"metrics.{metric}", f"items[].{metric}", *(f"task.protocol_details.{k}" for k in details)]
    store.amend(stored, doc, {"added": added, "from": "the stored ranked lists (artifact 'run') and the "
                                                     "task's pinned qrels; method not re-run"},
                command or "harness rescore", items=new_items)
    return "added"


def rescore(root: Path | str, metric: str = JUDGED, paths: list[Path] | None = None, dry_run: bool = False,
            command: str = "", tasks_dir: Path | None = None) -> list[tuple[Path, str]]:
    """Add ``metric`` to every valid IR result under ``root`` (or to ``paths``) that lacks it."""
    if metric != JUDGED:
        raise HarnessError(f"rescore adds {JUDGED} only (the IR kinds' diagnostic), not {metric!r}")
    store = ResultStore(root, tasks_dir)
    out: list[tuple[Path, str]] = []
    for path in paths or list(store.iter_paths()):
        try:
            stored = store.check(path)
        except Exception as exc:  # noqa: BLE001 - an invalid file is reported, never rescored
            out.append((Path(path), f"skipped: does not validate ({str(exc)[:120]})"))
            continue
        res = stored.result
        if res.task.kind not in IR_KINDS:
            continue
        if dry_run:
            has = metric in res.metrics
            out.append((stored.path, f"would skip: already has {metric}" if has else f"would add {metric}"))
            continue
        try:
            out.append((stored.path, rescore_one(store, stored, metric, command, tasks_dir)))
        except HarnessError as exc:
            out.append((stored.path, f"skipped: {exc}"))
    return out


def main_args(results: str, metric: str, paths: list[str], dry_run: bool) -> int:
    """What ``harness rescore`` runs: one line per IR result, and a count."""
    command = "harness " + " ".join(sys.argv[1:]) if sys.argv[1:] else "harness rescore"
    done = rescore(results, metric, [Path(p) for p in paths] or None, dry_run, command)
    for path, what in done:
        print(f"{what:<40} {path}")
    added = sum(w == "added" for _p, w in done)
    print(f"{added} results got {metric}; {len(done) - added} unchanged")
    return 0
