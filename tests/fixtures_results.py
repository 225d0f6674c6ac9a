"""Synthetic but schema-valid stored results for the report/compare tests and the render benchmark.

Every document is built field by field as the result schema (harness/schema/result-v1.json) asks,
its run id is :func:`harness.results.run_digest` of its inputs, and it is stored with
:meth:`ResultStore.write` (which validates it), so a schema change breaks these fixtures loudly
instead of letting the tests drift. Scores are drawn from seeded generators: the same call always
writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import ResultStore, run_digest

CREATED_AT = "2025-01-01T00:00:00+00:00"

# task id -> (kind, version, base protocol, metrics [(name, higher_is_better, primary)], item key)
TASKS: dict[str, tuple[str, int, dict[str, Any], list[tuple[str, bool, bool]], str]] = {
    "wikitext2": ("perplexity", 1, {"seqlen": 2048}, [("ppl", False, True), ("nll", False, False)], "item"),
    "boolq": ("zeroshot", 1, {"num_fewshot": 0}, [("acc", True, True), ("acc_norm", True, False)], "doc_id"),
    "arc_easy": ("zeroshot", 1, {"num_fewshot": 0}, [("acc", True, True), ("acc_norm", True, False)], "doc_id"),
    "msmarco-dev-small": (
        "retrieval",
        1,
        {"cutoff": 1000},
        [("nDCG@10", True, True), ("RR@10", True, False), ("R@100", True, False), ("AP", True, False)],
        "qid",
    ),
    "trec-dl-2019-rerank": (
        "reranking",
        1,
        {"first_stage": "bm25", "depth": 100},
        [("nDCG@10", True, True), ("RR@10", True, False)],
        "qid",
    ),
    "llm-latency": ("latency", 1, {"prompt_tokens": 128, "new_tokens": 32}, [("prefill_ms_p50", False, True)], "rep"),
}

FAMILY_OF_KIND = {
    "perplexity": "pruning",
    "zeroshot": "pruning",
    "latency": "pruning",
    "retrieval": "retrieval",
    "reranking": "reranking",
}


def _seed_of(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8], 16)


def make_doc(
    *,
    method: str,
    params: dict[str, Any],
    task_id: str,
    model: str | None = "smollm2-135m",
    random_weights: bool = False,
    limit: int | None = None,
    protocol_extra: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    status: str = "ok",
    error: dict[str, str] | None = None,
    measured_sparsity: float | None = None,
    prune_seconds: float | None = None,
    eval_seconds: float | None = 1.0,
    latency: dict[str, Any] | None = None,
    efficiency_extra: dict[str, Any] | None = None,
    family: str | None = None,
    non_semantic: list[str] | None = None,
    model_info: dict[str, Any] | None = None,
    pruning_details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete result document for one synthetic run (``metrics``: name -> value)."""
    kind, version, base_protocol, metric_defs, _key = TASKS[task_id]
    protocol = {**base_protocol, **(protocol_extra or {}), "limit": limit}
    family = family or FAMILY_OF_KIND[kind]
    doc: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_digest(method, {k: v for k, v in params.items() if k not in (non_semantic or [])},
                             model, task_id, version, protocol),
        "status": status,
        "created_at": CREATED_AT,
        "method": {"name": method, "family": family, "params": params, "module": f"methods.{family}.{method}",
                   **({"non_semantic": non_semantic} if non_semantic is not None else {})},
        "model": {"id": model, "random_weights": random_weights, **({"info": model_info} if model_info else {})},
        "task": {"id": task_id, "version": version, "kind": kind, "title": f"{task_id} (synthetic)", "protocol": protocol},
        "metrics": {},
        "pruning": None,
        "efficiency": {"prune_seconds": prune_seconds, "eval_seconds": eval_seconds, "latency": latency},
        "provenance": {
            "harness_version": "0.1.0",
            "git_commit": "0" * 40,
            "git_dirty": False,
            "command": f"harness run --method {method} --task {task_id}",
            "reproduce": _reproduce(method, params, model, task_id, limit),
            "python": "3.11.2",
            "platform": "Linux-x86_64",
            "packages": {"torch": "2.13.0", "numpy": "2.4.6"},
            "device": {"type": "cpu", "threads": 2},
            "seeds": {"global": 0},
            "data": [{"name": task_id, "sha256": hashlib.sha256(task_id.encode()).hexdigest(), "source": "data_dir"}],
            "calibration": None,
            "started_at": CREATED_AT,
            "finished_at": CREATED_AT,
        },
    }
    if efficiency_extra:
        doc["efficiency"].update(efficiency_extra)
    if status == "failed":
        doc["error"] = error or {"type": "RuntimeError", "message": "synthetic failure"}
    else:
        for name, hib, primary in metric_defs:
            if metrics is not None and name in metrics:
                doc["metrics"][name] = {
                    "value": float(metrics[name]),
                    "n": 0,
                    "stderr": None,
                    "higher_is_better": hib,
                    "primary": primary,
                }
    if family == "pruning" and measured_sparsity is not None:
        doc["pruning"] = {
            "target_sparsity": params.get("sparsity"),
            "measured_sparsity": measured_sparsity,
            "params_before": 1000,
            "params_after": int(round(1000 * (1 - measured_sparsity))),
            "layers": [],
            **({"details": pruning_details} if pruning_details else {}),
        }
    return doc


def _reproduce(method: str, params: dict[str, Any], model: str | None, task_id: str, limit: int | None) -> str:
    parts = ["harness", "run", "--method", method]
    if params:
        parts += ["--params", ",".join(f"{k}={v}" for k, v in sorted(params.items()))]
    if model:
        parts += ["--model", model]
    parts += ["--task", task_id]
    if limit is not None:
        parts += ["--limit", str(limit)]
    return " ".join(parts)


def synth_items(task_id: str, quality: float, n_items: int, seed: int) -> list[dict[str, Any]]:
    """Per-item scores for a system of the given ``quality`` (higher = better) on ``task_id``.
    Items share a per-item difficulty across systems (seeded by the task) so paired tests bite."""
    kind, _v, _p, metric_defs, key = TASKS[task_id]
    difficulty = np.random.default_rng(_seed_of("difficulty", task_id)).normal(size=n_items)
    noise = np.random.default_rng(seed).normal(size=(len(metric_defs), n_items))
    items: list[dict[str, Any]] = []
    for i in range(n_items):
        row: dict[str, Any] = {key: f"{key}-{i:05d}"}
        if kind == "perplexity":
            nll = 3.0 + 0.3 * difficulty[i] - quality + 0.05 * noise[0, i]
            row.update({"nll": round(float(nll), 6), "ppl": round(math.exp(float(nll)), 6), "tokens": 2047})
        elif kind == "zeroshot":
            z = quality + difficulty[i] + noise[0, i]
            row.update({"acc": 1.0 if z > 0 else 0.0, "acc_norm": 1.0 if z + 0.2 * noise[1, i] > 0 else 0.0})
        elif kind in ("retrieval", "reranking"):
            for j, (name, _hib, _pr) in enumerate(metric_defs):
                v = 1 / (1 + math.exp(-(quality + difficulty[i] + 0.5 * noise[j, i])))
                row[name] = round(float(v), 6)
        elif kind == "latency":
            row["prefill_ms_p50"] = round(float(20.0 - 5 * quality + 0.5 * noise[0, i]), 4)
        items.append(row)
    return items


def aggregate(task_id: str, items: list[dict[str, Any]]) -> dict[str, float]:
    """The task's metrics from per-item scores (ppl = exp(mean nll), the rest means)."""
    _kind, _v, _p, metric_defs, _key = TASKS[task_id]
    out: dict[str, float] = {}
    for name, _hib, _pr in metric_defs:
        if name == "ppl":
            out[name] = math.exp(float(np.mean([r["nll"] for r in items])))
        else:
            out[name] = float(np.mean([r[name] for r in items]))
    return out


def write_synthetic(
    store: ResultStore,
    *,
    method: str,
    params: dict[str, Any],
    task_id: str,
    quality: float,
    n_items: int = 30,
    model: str | None = "smollm2-135m",
    limit: int | None = None,
    seed: int | None = None,
    **kwargs: Any,
) -> tuple[Path, dict[str, Any]]:
    """Write one successful synthetic run (doc + items) and return (path, doc)."""
    seed = _seed_of(method, params, task_id, model, limit) if seed is None else seed
    items = synth_items(task_id, quality, n_items, seed)
    metrics = aggregate(task_id, items)
    doc = make_doc(method=method, params=params, task_id=task_id, model=model, limit=limit, metrics=metrics, **kwargs)
    for m in doc["metrics"].values():
        m["n"] = n_items
    path = store.write(doc, items=items, item_key=TASKS[task_id][4])
    return path, json.loads(path.read_text())


def write_failed(store: ResultStore, *, method: str, params: dict[str, Any], task_id: str, message: str, **kw: Any) -> Path:
    doc = make_doc(method=method, params=params, task_id=task_id, status="failed",
                   error={"type": "RuntimeError", "message": message}, **kw)
    return store.write(doc)


def small_results(root: Path) -> dict[str, Any]:
    """A small results tree covering every page type; returns what the tests need to know."""
    store = ResultStore(root)
    info: dict[str, Any] = {"boards": {}}
    ppl_runs = []
    for method, params, q, sp in [
        ("dense", {}, 0.0, 0.0),
        ("magnitude", {"sparsity": 0.5, "pattern": "unstructured"}, -0.8, 0.5),
        ("wanda", {"sparsity": 0.5, "pattern": "unstructured", "nsamples": 128}, -0.3, 0.5),
        ("wanda", {"sparsity": 0.7, "pattern": "unstructured", "nsamples": 128}, -1.2, 0.7),
        ("magnitude", {"sparsity": 0.7, "pattern": "unstructured"}, -2.0, 0.7),
    ]:
        for limit in (None, 8):
            path, doc = write_synthetic(
                store, method=method, params=params, task_id="wikitext2", quality=q,
                n_items=8 if limit else 40, limit=limit, measured_sparsity=sp,
                prune_seconds=None if method == "dense" else 3.5,
            )
            ppl_runs.append(doc)
    info["ppl_runs"] = ppl_runs
    # Tied pair: two wanda variants whose scores differ by noise only (nsamples is semantic here).
    info["script_param"] = "<script>alert('x')</script>"
    _, doc = write_synthetic(store, method="magnitude", params={"sparsity": 0.5, "note": info["script_param"]},
                             task_id="boolq", quality=0.3, n_items=60, measured_sparsity=0.5)
    info["script_run"] = doc["run_id"]
    acc_runs = [doc]
    for method, params, q in [("dense", {}, 0.8), ("wanda", {"sparsity": 0.5}, 0.6)]:
        _, d = write_synthetic(store, method=method, params=params, task_id="boolq", quality=q, n_items=60,
                               measured_sparsity=params.get("sparsity", 0.0))
        acc_runs.append(d)
    info["acc_runs"] = acc_runs
    for method, params, q, p50 in [("bm25", {"k1": 0.9, "b": 0.4}, 0.0, 2.0), ("splade", {"top_k": 1000}, 0.9, 35.0),
                                   ("unregistered-retriever", {"encoder": "minilm"}, 0.6, 12.0)]:
        write_synthetic(store, method=method, params=params, task_id="msmarco-dev-small", quality=q, n_items=50,
                        model=None, latency={"unit": "ms", "per": "query", "p50": p50, "p95": p50 * 2,
                                             "p99": p50 * 3, "mean": p50 * 1.2, "device": "cpu"})
    for method, params, q, calls in [("monot5", {"depth": 100}, 1.0, 100), ("cross-encoder", {"depth": 50}, 0.8, 50)]:
        write_synthetic(store, method=method, params=params, task_id="trec-dl-2019-rerank", quality=q, n_items=43,
                        model=None, efficiency_extra={"model_calls": calls * 43})
    _, d = write_synthetic(store, method="dense", params={}, task_id="llm-latency", quality=0.0, n_items=10,
                           model="config:tiny-llama", random_weights=True,
                           latency={"unit": "ms", "prefill": {"p50": 20.1, "p95": 21.0}, "device": "cpu"})
    info["random_run"] = d["run_id"]
    # A random-weights run on a quality task: must never appear on the quality board.
    _, d = write_synthetic(store, method="wanda", params={"sparsity": 0.5}, task_id="boolq", quality=5.0, n_items=60,
                           model="config:smollm2-135m", random_weights=True)
    info["random_quality_run"] = d["run_id"]
    fp = write_failed(store, method="sparsegpt", params={"sparsity": 0.5}, task_id="wikitext2",
                      message="CUDA out of memory <in block 3>", measured_sparsity=None)
    info["failed_path"] = fp
    # Broken files: a corrupt JSON and a foreign JSON.
    (root / "wikitext2" / "corrupt.json").write_text('{"schema_version": 1, "run_id": ')
    (root / "foreign.json").write_text(json.dumps({"name": "package.json-like", "version": "1.0"}))
    info["problem_files"] = [root / "wikitext2" / "corrupt.json", root / "foreign.json"]
    return info


def many_results(root: Path, n: int = 10_000, n_items: int = 100) -> int:
    """~``n`` results spread over realistic boards: pruning sweeps (methods x sparsity x pattern x
    nsamples) on several models and protocols, retrieval and reranking sweeps. Returns the count."""
    store = ResultStore(root)
    count = 0
    pruning_methods = ["magnitude", "wanda", "sparsegpt", "wanda-ls", "ria", "owl", "gblm", "dsnot"]
    models = [f"model-{i}" for i in range(8)]
    tasks = ["wikitext2", "boolq", "arc_easy"]
    sparsities = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    variants = [{"nsamples": 32}, {"nsamples": 128}, {"nsamples": 128, "seed": 1}]
    combos: list[tuple[str, str, int | None, str, dict[str, Any], float]] = []
    for task in tasks:
        for model in models:
            for limit in (None, 50):
                for method in pruning_methods:
                    for sp in sparsities:
                        for var in variants:
                            params = {"sparsity": sp, "pattern": "unstructured", **var}
                            q = -3 * sp * sp - 0.1 * pruning_methods.index(method) * sp
                            combos.append((task, model, limit, method, params, q))
    for i, (task, model, limit, method, params, q) in enumerate(combos):
        if count >= n:
            break
        write_synthetic(store, method=method, params=params, task_id=task, quality=q, n_items=n_items,
                        model=model, limit=limit, measured_sparsity=params["sparsity"] * 0.998, prune_seconds=1.0 + i % 7)
        count += 1
    i = 0
    while count < n:
        task = "msmarco-dev-small" if i % 2 == 0 else "trec-dl-2019-rerank"
        method = ["bm25", "splade", "colbert", "monot5"][i % 4]
        params = {"k": 10 + i}
        write_synthetic(store, method=method, params=params, task_id=task, quality=0.001 * (i % 500), n_items=n_items,
                        model=None, latency={"unit": "ms", "p50": 1.0 + i % 50, "p95": 2.0 + i % 50})
        count += 1
        i += 1
    return count
