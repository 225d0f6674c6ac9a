"""Evaluation of retrieval and reranking methods on an IR task, through ir-measures.

Protocol (what :func:`evaluate_ir` does):

1. Load the collection (``harness.ir.collections.load_ir_collection``: the task's data formats, or
   the loader named by the task's ``options.loader``, e.g. ``trecdl`` for reranking tasks). ``ctx.limit`` keeps the first N
   judged topics in file order (and their qrels / first-stage rows).
2. Retrieval: ``method.index(corpus)`` (timed; adapters cache indexes by corpus digest), then
   ``method.transformer()`` on the topics. Reranking: the transformer on the first stage.
3. The run is normalised: ids as strings, sorted by score descending then docno ascending (the
   deterministic tie-break), ranks recomputed from 0, cut at ``protocol.cutoff`` (default 1000).
4. Measures: the task's metric names parsed by ir-measures. When ``protocol.rel_threshold`` is
   above 1, measures that take a ``rel`` parameter (RR, R, AP, P, ...) get ``rel=threshold``
   (TREC DL: ``RR(rel=2)@10``); graded measures (nDCG) use the labels as gains. Stored names are
   the declared ones. trec_eval (under ir-measures) re-sorts a run by score and breaks ties by
   docno *descending*; to evaluate exactly the order stored in run.trec, the run is handed to
   ir-measures with strictly decreasing rank-derived scores. A judged topic with no retrieved
   document scores 0 on every measure (trec_eval ``-c``). Aggregates are means over judged topics,
   with the standard error of the mean.
   Every IR result also carries ``Judged@10`` (the kind's diagnostic, :data:`JUDGED`, whatever the
   task declares): per query, the fraction of the top 10 retrieved documents (of all retrieved when
   fewer) that have any label in the qrels, relevant or not (ir-measures ``Judged@10``). Where it is
   low, the unjudged documents count as non-relevant and nDCG@10 is a lower bound (D-MERIT).
   Reranking results also store the pinned first stage's Judged@10 (``protocol_details
   .judged_reference``), the reference the boards compare against.
5. Latency: a separate pass, single-threaded, batch size 1: the first ``warmup`` queries run once
   untimed, then every query is timed alone (:mod:`harness.ir.latency`). Retrieval is timed at
   each cut-off of :func:`latency_cutoffs` (k = 10 and the run's depth, default 1000): the method
   is asked for the top k (``RetrievalMethod.timing_transformer(k)``), because rank-safe dynamic
   pruning (MaxScore, WAND, BMW) skips most at small k. ``efficiency.latency`` is the summary at
   the run's depth (as before); ``efficiency.latency.by_k`` holds one summary per cut-off, with the
   depth the method actually served (a method that cannot change k is timed at its depth and says
   so). The metrics always come from the deep run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from harness.errors import HarnessError
from harness.kinds import EvalOutput, Metric, RunContext
from harness.ir import runfile
from harness.ir.base import IRCollection
from harness.ir.collections import load_ir_collection
from harness.ir.latency import latency_stats, single_thread, time_each_cpu
from harness.ir.retrieval_task import JUDGED  # the kind-level diagnostic (TaskKind.extra_metrics)
from harness.tasks import Task

TIE_BREAK = "score descending, then docno ascending"
DEFAULT_CUTOFF = 1000
DEFAULT_WARMUP = 3
LATENCY_CUTOFFS = (10,)  # timed besides the run's own depth


# --------------------------------------------------------------------------------- loading


def limit_collection(coll: IRCollection, limit: int | None) -> IRCollection:
    """The first ``limit`` topics in file order, with their qrels and first-stage rows."""
    if limit is None or limit >= len(coll.topics):
        return coll
    if limit < 1:
        raise HarnessError(f"limit must be a positive number of topics, got {limit}")
    topics = coll.topics.iloc[:limit].reset_index(drop=True)
    keep = set(topics["qid"].astype(str))
    qrels = coll.qrels[coll.qrels["query_id"].astype(str).isin(keep)].reset_index(drop=True)
    first_stage = None
    if coll.first_stage is not None:
        first_stage = coll.first_stage[coll.first_stage["qid"].astype(str).isin(keep)].reset_index(drop=True)
    return IRCollection(coll.id, topics, qrels, coll.corpus, first_stage, coll.data)


# --------------------------------------------------------------------------------- runs


def normalize_run(run: pd.DataFrame, cutoff: int | None = DEFAULT_CUTOFF) -> pd.DataFrame:
    """qid, docno, score, rank: sorted by qid (first appearance), score desc, docno asc; ranks 0..;
    at most ``cutoff`` rows per qid. Duplicate (qid, docno) rows keep the best-ranked one."""
    missing = {"qid", "docno", "score"} - set(run.columns)
    if missing:
        raise HarnessError(f"the method's run lacks columns {sorted(missing)} (has {list(run.columns)})")
    out = pd.DataFrame({
        "qid": run["qid"].astype(str).to_numpy(dtype=object),
        "docno": run["docno"].astype(str).to_numpy(dtype=object),
        "score": run["score"].astype(np.float64).to_numpy(),
    })
    if out["score"].isna().any():
        raise HarnessError("the method's run has NaN scores")
    order = {q: i for i, q in enumerate(dict.fromkeys(out["qid"]))}
    out["_q"] = out["qid"].map(order)
    out = out.sort_values(["_q", "score", "docno"], ascending=[True, False, True], kind="mergesort")
    out = out.drop_duplicates(["qid", "docno"], keep="first")
    out["rank"] = out.groupby("_q", sort=False).cumcount()
    if cutoff is not None:
        out = out[out["rank"] < cutoff]
    return out.drop(columns="_q").reset_index(drop=True)


# --------------------------------------------------------------------------------- measures


def resolve_measures(names: list[str], rel_threshold: int = 1) -> dict[str, Any]:
    """Declared metric name -> ir-measures measure, with ``rel`` applied to binary measures."""
    import ir_measures

    out = {}
    for name in names:
        try:
            m = ir_measures.parse_measure(name)
        except Exception as exc:  # noqa: BLE001 - ir-measures raises several types
            raise HarnessError(f"metric {name!r} is not an ir-measures measure: {exc}") from None
        if rel_threshold != 1 and "rel" in m.SUPPORTED_PARAMS and "rel" not in m.params:
            m = m(rel=rel_threshold)
        out[name] = m
    return out


def per_query_scores(
    run: pd.DataFrame, qrels: pd.DataFrame, qids: list[str], measures: dict[str, Any]
) -> pd.DataFrame:
    """One row per judged qid (in ``qids`` order), one column per declared metric name."""
    import ir_measures

    eval_run = pd.DataFrame({
        "query_id": run["qid"].astype(str).to_numpy(dtype=object),
        "doc_id": run["docno"].astype(str).to_numpy(dtype=object),
        # strictly decreasing within a query, so trec_eval keeps our (tie-broken) order
        "score": (-run["rank"].astype(np.float64)).to_numpy(),
    })
    eval_qrels = pd.DataFrame({
        "query_id": qrels["query_id"].astype(str).to_numpy(dtype=object),
        "doc_id": qrels["doc_id"].astype(str).to_numpy(dtype=object),
        "relevance": qrels["relevance"].astype(int).to_numpy(),
    })
    by_measure = {str(m): name for name, m in measures.items()}
    table = pd.DataFrame(0.0, index=pd.Index(qids, dtype=object, name="qid"), columns=list(measures))
    if len(eval_run):
        for r in ir_measures.iter_calc(list(measures.values()), eval_qrels, eval_run):
            if r.query_id in table.index:
                table.at[r.query_id, by_measure[str(r.measure)]] = float(r.value)
    return table


def aggregate(table: pd.DataFrame) -> dict[str, Metric]:
    out = {}
    n = len(table)
    for name in table.columns:
        v = table[name].to_numpy(dtype=np.float64)
        stderr = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else None
        out[name] = Metric(float(v.mean()) if n else float("nan"), n, stderr)
    return out


# --------------------------------------------------------------------------------- evaluation


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _topic_rows(topics: pd.DataFrame) -> list[pd.DataFrame]:
    return [topics.iloc[i : i + 1].reset_index(drop=True) for i in range(len(topics))]


def _latency(fn: Any, inputs: list[Any], warmup: int, device: str) -> dict[str, Any]:
    with single_thread() as threads:
        durations, cpu = time_each_cpu(fn, inputs, warmup=warmup)
    return {
        **latency_stats(durations),
        "device": device,
        "threads": threads,
        "batch_size": 1,
        "warmup_queries": min(warmup, len(inputs)),
        "what": "wall time of one query through the method's transformer, measured alone",
        # the same calls' process CPU time: what load from other processes does not inflate
        "cpu": latency_stats(cpu) | {"what": "process CPU time of the same calls (time.process_time)"},
    }


def latency_cutoffs(lat_cfg: Any, cutoff: int) -> list[int]:
    """The top-k depths the retrieval latency pass times: ``latency.cutoffs`` of the protocol, else
    k = 10 and the run's depth; never deeper than the run, deepest first."""
    asked = lat_cfg.get("cutoffs") if isinstance(lat_cfg, dict) else None
    ks = {int(k) for k in (asked if asked else (*LATENCY_CUTOFFS, cutoff))}
    return sorted({min(k, cutoff) for k in ks}, reverse=True)


def served_depth(fn: Any, topic: pd.DataFrame) -> int:
    """How many documents the transformer returns for one topic (untimed call)."""
    out = fn(topic)
    return int(out.groupby(out["qid"].astype(str)).size().max()) if len(out) else 0


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


def retrieval_latency(method: Any, deep: Any, inputs: list[Any], cutoff: int, ks: list[int], warmup: int,
                      device: str) -> dict[str, Any]:
    """Per-query latency at each cut-off in ``ks``: the method is asked for the top k
    (``timing_transformer(k)``; the deep run's own transformer at k = ``cutoff``). Returns the
    summary at ``cutoff`` with ``by_k``: {str(k): summary + requested/served depth}."""
    by_k: dict[str, Any] = {}
    try:
        for k in ks:
            fn = deep if k == cutoff else method.timing_transformer(k)
            served = served_depth(fn, inputs[0]) if inputs else 0
            load = _load_average()
            stats = _latency(fn, inputs, warmup, device)
            stats["k"] = k
            stats["served_depth"] = served
            if load is not None:  # wall times on a shared machine: how busy it was (1-min load, before)
                stats["load_average_1m"] = load
            if served > k:
                stats["note"] = f"the method cannot be asked for the top {k}: timed at its depth {served}"
            by_k[str(k)] = stats
    finally:
        method.set_depth(cutoff)
    deep_stats = dict(by_k.get(str(cutoff)) or _latency(deep, inputs, warmup, device))
    return deep_stats | {"k": cutoff, "by_k": by_k}


def judged_details(coll: IRCollection, qids: list[str], cutoff: int, kind: str, rel_threshold: int
                   ) -> dict[str, Any]:
    """What a board needs to read Judged@10: how many judged-non-relevant labels the evaluated qrels
    hold (0: the qrels list relevant documents only, and Judged@10 is P@10), and for reranking the
    first stage's Judged@10 (``judged_reference``)."""
    q = coll.qrels[coll.qrels["query_id"].astype(str).isin(set(qids))]
    out: dict[str, Any] = {"qrels_nonrelevant_labels": int((q["relevance"].astype(int) < rel_threshold).sum())}
    if kind == "reranking" and (ref := judged_reference(coll, qids, cutoff)) is not None:
        out["judged_reference"] = ref
    return out


def judged_reference(coll: IRCollection, qids: list[str], cutoff: int) -> dict[str, Any] | None:
    """The pinned first stage's Judged@10 over ``qids`` (what a reranker's Judged@10 is compared with)."""
    if coll.first_stage is None:
        return None
    fs = normalize_run(coll.first_stage, cutoff)
    table = per_query_scores(fs, coll.qrels, qids, resolve_measures([JUDGED]))
    return {"what": "the pinned first stage (the run being reranked)", JUDGED: float(table[JUDGED].mean())}


def _retrieve(task: Task, method: Any, coll: IRCollection, topics: pd.DataFrame, cutoff: int,
              efficiency: dict[str, Any]) -> tuple[Any, pd.DataFrame]:
    """Index (timed; adapters cache by corpus digest), then one pass over all topics (timed)."""
    method.set_depth(cutoff)  # retrieval adapters retrieve exactly the protocol's depth
    if coll.corpus is None:
        raise HarnessError(f"task {task.id!r}: a retrieval task needs a corpus")
    t0 = time.perf_counter()
    method.index(coll.corpus)
    efficiency["index_seconds"] = time.perf_counter() - t0
    transformer = method.transformer()
    t0 = time.perf_counter()
    raw = transformer(topics)
    efficiency["retrieval_seconds"] = time.perf_counter() - t0
    return transformer, raw


def _rerank(task: Task, ctx: RunContext, coll: IRCollection, lat_cfg: Any,
            efficiency: dict[str, Any]) -> tuple[Any, pd.DataFrame]:
    """Each query reranked once, alone; that call is also its latency."""
    method = ctx.method
    if coll.first_stage is None:
        raise HarnessError(f"task {task.id!r}: a reranking task needs a first stage")
    fs = coll.first_stage.copy()
    fs["qid"] = fs["qid"].astype(str)
    transformer = method.transformer()
    if hasattr(transformer, "progress"):  # one bar over the queries here, not one per call
        transformer.progress = False
    # Rerankers are expensive (LLM calls): each query is reranked once, alone, and that call is
    # the per-query latency (no second pass that would double the cost and the call counts).
    groups = [g.reset_index(drop=True) for _, g in fs.groupby("qid", sort=False)]
    parts, durations = [], []
    t0 = time.perf_counter()
    for g in tqdm(groups, desc=f"rerank {task.id}", unit="query", disable=not ctx.progress):
        t1 = time.perf_counter()
        parts.append(transformer(g))
        durations.append(time.perf_counter() - t1)
    efficiency["rerank_seconds"] = time.perf_counter() - t0
    raw = pd.concat(parts, ignore_index=True) if parts else fs.iloc[:0]
    # the first query pays the model load; later ones are warm (override with latency.warmup)
    rr_warmup = int(lat_cfg.get("warmup", 1)) if isinstance(lat_cfg, dict) else 1
    timed = durations[rr_warmup:] if len(durations) > rr_warmup else durations
    if timed and not ctx.extra.get("skip_latency", False):
        efficiency["latency"] = {
            **latency_stats(timed),
            "device": ctx.device,
            "threads": _torch_threads(),
            "batch_size": getattr(getattr(method, "params", None), "batch_size", None),
            "warmup_queries": len(durations) - len(timed),
            "what": "wall time of reranking one query's candidates in the evaluation pass "
                    "(the first queries are excluded as warm-up: model loading)",
        }
    return transformer, raw


def evaluate_ir(task: Task, ctx: RunContext) -> EvalOutput:
    if task.kind not in ("retrieval", "reranking"):
        raise HarnessError(f"task {task.id!r} of kind {task.kind!r} is not an IR task")
    method = ctx.method
    protocol = task.protocol
    cutoff = int(protocol.get("cutoff", DEFAULT_CUTOFF))
    rel_threshold = int(protocol.get("rel_threshold", 1))
    declared = [m.name for m in task.metrics]
    measures = resolve_measures(declared + ([JUDGED] if JUDGED not in declared else []), rel_threshold)
    lat_cfg = protocol.get("latency") or {}
    warmup = int(lat_cfg.get("warmup", DEFAULT_WARMUP)) if isinstance(lat_cfg, dict) else DEFAULT_WARMUP

    coll = limit_collection(load_ir_collection(task), ctx.limit)
    topics = coll.topics[["qid", "query"]].astype({"qid": str, "query": str}).reset_index(drop=True)
    qids = list(topics["qid"])
    efficiency: dict[str, Any] = {}

    if task.kind == "retrieval":
        transformer, raw = _retrieve(task, method, coll, topics, cutoff, efficiency)
        latency_inputs = _topic_rows(topics)
    else:
        transformer, raw = _rerank(task, ctx, coll, lat_cfg, efficiency)
        latency_inputs = []

    run = normalize_run(raw, cutoff)
    unknown = set(run["qid"]) - set(qids)
    if unknown:
        raise HarnessError(f"the method returned results for unknown query ids {sorted(unknown)[:5]}")
    table = per_query_scores(run, coll.qrels, qids, measures)
    metrics = aggregate(table)
    items = [{"item": qid, **{k: float(v) for k, v in row.items()}} for qid, row in table.iterrows()]
    # per-query costs a method recorded (``method.item_stats``: qid -> {field: number}, e.g. LLM
    # calls and tokens) become extra fields of that query's item; metric names are never replaced
    item_stats = getattr(method, "item_stats", None) or {}
    for item in items:
        extra = item_stats.get(item["item"], {})
        item.update({k: v for k, v in extra.items() if k not in item})

    # snapshot the method's counters (model calls...) before the retrieval latency pass re-runs it
    efficiency["method_stats"] = dict(getattr(method, "stats", {}) or {})
    if not ctx.extra.get("skip_latency", False) and latency_inputs:
        device = str(getattr(getattr(method, "params", None), "device", None) or ctx.device)
        efficiency["latency"] = retrieval_latency(method, transformer, latency_inputs, cutoff,
                                                  latency_cutoffs(lat_cfg, cutoff), warmup, device)

    return EvalOutput(
        metrics=metrics,
        items=items,
        item_key="item",
        data=list(coll.data),
        protocol_details={
            "cutoff": cutoff,
            "rel_threshold": rel_threshold,
            "measures": {name: str(m) for name, m in measures.items()},
            "topics_evaluated": len(qids),
            "limit": ctx.limit,
            "tie_break": TIE_BREAK,
            "unretrieved_topics_score": 0.0,
            "queries_without_results": int(len(set(qids) - set(run["qid"]))),
            **judged_details(coll, qids, cutoff, task.kind, rel_threshold),
        },
        efficiency=efficiency,
        # ranked lists (xz): what the metrics were computed on; `harness export-run` gives the TREC file
        artifacts={"run": (runfile.FORMAT, runfile.from_frame(run))},
    )
