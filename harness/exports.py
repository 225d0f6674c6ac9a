"""Exports of stored runs for neighbouring tools: lm-evaluation-harness results JSON, ir_metadata.

* :func:`lm_eval_results`: the layout lm-eval writes (``results_<date>.json``): per task
  ``"<metric>,none"`` and ``"<metric>_stderr,none"`` (``"N/A"`` without a stderr), ``configs``,
  ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples`` and ``config`` (``model``,
  ``model_args`` ...), so ``lm_eval.utils.make_table`` and scripts that read lm-eval output read ours.
  Several runs of one method + params + model (one per task) merge into one file, as lm-eval writes
  one file per model. The harness's own identity of each run is kept under ``"harness"``.
* :func:`ir_metadata`: an ir_metadata-style description (https://www.ir-metadata.org: platform,
  implementation, data, method, research goal) of an IR run, as YAML, written beside its TREC run.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.results import StoredResult

LM_FILTER = "none"  # lm-eval's filter key of unfiltered metrics ("acc,none")


def _is_ir(stored: StoredResult) -> bool:
    return "run" in (stored.result.artifacts or {})


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return float(calendar.timegm(datetime.fromisoformat(stamp).utctimetuple()))


def _lm_task_block(stored: StoredResult) -> dict[str, Any]:
    r = stored.result
    details = r.task.protocol_details or {}
    metrics: dict[str, Any] = {"alias": r.task.id}
    for name, m in r.metrics.items():
        metrics[f"{name},{LM_FILTER}"] = m.value
        metrics[f"{name}_stderr,{LM_FILTER}"] = m.stderr if m.stderr is not None else "N/A"
    shots = int(r.task.protocol.get("num_fewshot", details.get("num_fewshot", 0)) or 0)
    config = {
        "task": details.get("lm_eval_task", r.task.id),
        "num_fewshot": shots,
        "metric_list": [{"metric": n, "aggregation": "mean", "higher_is_better": m.higher_is_better}
                        for n, m in r.metrics.items()],
        "output_type": (details.get("prompt") or {}).get("output_type", r.task.kind),
        "metadata": {"version": float(r.task.version), "harness_kind": r.task.kind,
                     "harness_protocol": r.task.protocol},
    }
    n = max((m.n for m in r.metrics.values()), default=0)
    original = details.get("docs_in_split", details.get("windows_available", n))
    return {"results": metrics, "config": config, "shots": shots, "n": n, "original": original}


def _lm_identity(stored: StoredResult) -> tuple[str, str, str | None]:
    r = stored.result
    return r.method.name, repr(sorted(r.method.semantic_params.items())), r.model.id


def lm_eval_results(runs: list[StoredResult]) -> dict[str, Any]:
    """One lm-eval results document for LM runs of one method + params + model."""
    if not runs:
        raise HarnessError("lm-eval export needs at least one run")
    for s in runs:
        if _is_ir(s) or s.result.model.id is None:
            raise HarnessError(f"{s.path}: run {s.run_id} is not a language-model run ({s.result.task.kind}); "
                               "use --format ir-metadata for IR runs")
        if not s.result.ok:
            raise HarnessError(f"{s.path}: run {s.run_id} failed; a failed run has no metrics to export")
    ids = {_lm_identity(s) for s in runs}
    if len(ids) > 1:
        raise HarnessError("lm-eval export merges runs of one method, params and model only; got "
                           + "; ".join(f"{m} {p} on {mo}" for m, p, mo in sorted(ids, key=str)))
    tasks = [s.result.task.id for s in runs]
    dup = sorted({t for t in tasks if tasks.count(t) > 1})
    if dup:
        raise HarnessError(f"two runs of task {dup[0]} (different protocols): export them separately")
    return _lm_document(runs)


def _lm_document(runs: list[StoredResult]) -> dict[str, Any]:
    first = runs[0].result
    blocks = {s.result.task.id: _lm_task_block(s) for s in runs}
    prov = first.provenance
    starts = [t for t in (_epoch(s.result.provenance.started_at) for s in runs) if t is not None]
    ends = [t for t in (_epoch(s.result.provenance.finished_at) for s in runs) if t is not None]
    limits = {s.result.task.id: s.result.task.protocol.get("limit") for s in runs}
    model_args = f"pretrained={first.model.id},dtype={(first.model.info or {}).get('dtype', 'float32')}"
    return {
        "results": {t: b["results"] for t, b in blocks.items()},
        "group_subtasks": {t: [] for t in blocks},
        "configs": {t: b["config"] for t, b in blocks.items()},
        "versions": {t: b["config"]["metadata"]["version"] for t, b in blocks.items()},
        "n-shot": {t: b["shots"] for t, b in blocks.items()},
        "higher_is_better": {s.result.task.id: {n: m.higher_is_better for n, m in s.result.metrics.items()}
                             for s in runs},
        "n-samples": {t: {"original": b["original"], "effective": b["n"]} for t, b in blocks.items()},
        "config": {
            "model": "hf",
            "model_args": model_args,
            "model_num_parameters": (first.model.info or {}).get("parameters"),
            "batch_size": None,
            "device": prov.device.get("type"),
            # one number when the runs share it; per task otherwise (null = every item)
            "limit": next(iter(limits.values())) if len(set(limits.values())) == 1 else limits,
            "random_seed": (prov.seeds or {}).get("seed"),
            "pruning": {"method": first.method.name, "params": first.method.semantic_params,
                        "measured_sparsity": first.measured_sparsity},
        },
        "git_hash": (prov.git_commit or "")[:7] or None,
        "date": min(starts) if starts else None,
        "transformers_version": prov.packages.get("transformers"),
        "lm_eval_version": prov.packages.get("lm_eval"),
        "model_name": first.model.id,
        "model_name_sanitized": (first.model.id or "").replace("/", "__"),
        "start_time": min(starts) if starts else None,
        "end_time": max(ends) if ends else None,
        "total_evaluation_time_seconds": str(max(ends) - min(starts)) if starts and ends else None,
        "harness": {s.result.task.id: {"run_id": s.run_id, "reproduce": s.result.provenance.reproduce,
                                       "protocol": s.result.task.protocol} for s in runs},
    }


# ------------------------------------------------------------------------------------ ir_metadata


def _platform(stored: StoredResult) -> dict[str, Any]:
    p = stored.result.provenance
    dev = p.device
    # provenance.device_info: "type" is the device string (cpu, cuda, cuda:1) and "name" the CPU's or,
    # on a GPU, the GPU's (the CPU's name is not recorded then)
    cuda = str(dev.get("type") or "").startswith("cuda")
    hardware: dict[str, Any] = {"cpu": {"architecture": None if cuda else dev.get("name"),
                                        "number of cores": dev.get("cpu_count"), "threads used": dev.get("threads")}}
    if cuda:
        hardware["gpu"] = {"model": dev.get("name") or "cuda"}
    return {
        "hardware": hardware,
        "operating system": {"kernel": p.platform},
        "software": {"libraries": {"python": [f"python {p.python}" if p.python else "python"]
                                   + [f"{k} {v}" for k, v in sorted(p.packages.items())]},
                     "retrieval toolkit": [f"harness {p.harness_version}"]},
    }


def _data(stored: StoredResult) -> dict[str, Any]:
    r = stored.result
    files = {d.get("name", "?"): {"source": d.get("source"), "location": d.get("location"), "sha256": d.get("sha256")}
             for d in r.provenance.data}
    return {"test collection": {"name": r.task.id, "title": r.task.title, "version": r.task.version,
                                "protocol": r.task.protocol, "files": files}}


def _method(stored: StoredResult) -> dict[str, Any]:
    r = stored.result
    details = r.task.protocol_details or {}
    step: dict[str, Any] = {"name": r.method.name, "method": r.method.family, "params": r.method.semantic_params}
    if r.method.module:
        step["implementation"] = r.method.module
    return {"automatic": True, "score_ties": details.get("tie_break", "score descending, then docno ascending"),
            "retrieval": [step]}


def ir_metadata(stored: StoredResult) -> dict[str, Any]:
    """An ir_metadata-style description of one stored IR run."""
    r = stored.result
    if not _is_ir(stored):
        raise HarnessError(f"{stored.path}: run {r.run_id} has no ranked run ({r.task.kind}); "
                           "ir-metadata describes IR runs only (use --format lm-eval for LM runs)")
    p = r.provenance
    measures = {name: m.value for name, m in r.metrics.items()}
    return {
        "tag": r.run_id,
        "research goal": {"description": f"{r.method.name} on {r.task.id}: a stored harness run",
                          "evaluation": {"reported measures": list(measures), "results": measures,
                                         "per-topic scores": r.items.file if r.items else None}},
        "platform": _platform(stored),
        "implementation": {"executable": {"cmd": p.reproduce, "invoked as": p.command},
                           "source": {"lang": ["python"], "commit": p.git_commit, "dirty": p.git_dirty}},
        "data": _data(stored),
        "method": _method(stored),
        "run": {"started": p.started_at, "finished": p.finished_at},
    }


def ir_metadata_yaml(stored: StoredResult) -> str:
    return yaml.safe_dump(ir_metadata(stored), sort_keys=False, allow_unicode=True, width=120)


def write_ir_pair(stored: StoredResult, folder: Path) -> tuple[Path, Path]:
    """``<folder>/<run id>.trec`` and ``<run id>.ir_metadata.yaml`` beside it."""
    from harness.ir.runfile import export_trec

    meta = ir_metadata_yaml(stored)  # refuses a non-IR run before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    run_path = folder / f"{stored.run_id}.trec"
    meta_path = folder / f"{stored.run_id}.ir_metadata.yaml"
    run_path.write_bytes(export_trec(stored.path, stored.result))
    meta_path.write_text(meta)
    return run_path, meta_path
