"""`harness run`: resolve everything cheaply, prune once, evaluate each task, store each result.

Order matters for trust: names, parameters, tasks, the model id and the results directory are all
checked before any expensive work; results already stored are not recomputed (unless forced); a
failure is stored as a failed result with its error, never as a metric.
"""

from __future__ import annotations

import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.llm import models as modelsmod
from harness import provenance
from harness.errors import HarnessError, ParamError, ResultValidationError
from harness.kinds import KIND_FAMILIES, EvalOutput, RunContext, get_evaluator
from harness.params import MethodParams, build_params
from harness.registry import MethodInfo, get_method
from harness.results import SCHEMA_VERSION, ResultStore, run_digest
from harness.tasks import Task, get_task


@dataclass
class RunRequest:
    method: str
    params: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    tasks: list[str] = field(default_factory=list)
    limit: int | None = None
    task_limits: dict[str, int] = field(default_factory=dict)  # per-task override of ``limit``
    device: str = "cpu"
    dtype: str = "float32"
    results_dir: Path = Path("results")
    save_model: Path | None = None
    force: bool = False
    batch_size: int | None = None
    progress: bool = True


@dataclass
class RunOutcome:
    task: str
    run_id: str
    path: Path
    status: str  # ok | failed | skipped (already stored)
    doc: dict[str, Any] | None = None


def log(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def _resolve_params(info: MethodInfo, raw: dict[str, str], model: str | None) -> MethodParams:
    raw = dict(raw)
    defaults = {name: default for name, _, default in info.params_cls.describe()}
    if "calibration" in defaults:
        from harness.llm.calibration import RANDOM_TOKENS, resolve_calibration_name

        # 'auto' becomes a concrete calibration set before the run id is computed. A config: model
        # has random weights and no tokenizer: its only calibration is random token ids.
        name = raw.get("calibration", defaults["calibration"])
        if model and model.startswith("config:"):
            if name == "auto":
                name = RANDOM_TOKENS
            elif name != RANDOM_TOKENS:
                raise ParamError(
                    f"calibration={name!r}: model {model} has random weights and no tokenizer; "
                    f"its calibration is calibration={RANDOM_TOKENS} (the default for config: models)"
                )
        raw["calibration"] = resolve_calibration_name(name)
    return build_params(info.params_cls, raw, method=info.name)


def limit_for(task: Task, req: RunRequest) -> int | None:
    return req.task_limits.get(task.id, req.limit)


def protocol_for(task: Task, req: RunRequest) -> dict[str, Any]:
    protocol = dict(task.protocol)
    protocol["limit"] = limit_for(task, req)
    if task.kind == "latency":
        protocol["device"] = req.device
        protocol["dtype"] = req.dtype
    elif req.dtype != "float32":
        protocol["dtype"] = req.dtype
    return protocol


def reproduce_command(info: MethodInfo, params: MethodParams, req: RunRequest, task: Task) -> str:
    parts = ["harness", "run", "--method", info.name]
    semantic = params.semantic_dict()
    if semantic:
        parts += ["--params", ",".join(f"{k}={v}" for k, v in sorted(semantic.items()))]
    if req.model:
        parts += ["--model", req.model]
    parts += ["--task", task.id]
    if limit_for(task, req) is not None:
        parts += ["--limit", str(limit_for(task, req))]
    if req.device != "cpu":
        parts += ["--device", req.device]
    if req.dtype != "float32":
        parts += ["--dtype", req.dtype]
    return shlex.join(parts)


def _error_dict(exc: BaseException) -> dict[str, str]:
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
    }


def execute(req: RunRequest) -> list[RunOutcome]:
    # ---- cheap checks, before any work
    info = get_method(req.method)
    params = _resolve_params(info, req.params, req.model)
    if not req.tasks:
        raise HarnessError("give at least one --task")
    tasks = [get_task(t) for t in req.tasks]
    for task in tasks:
        allowed = KIND_FAMILIES.get(task.kind, ())
        if info.family not in allowed:
            raise HarnessError(
                f"task {task.id} ({task.kind}) takes {'/'.join(allowed)} methods; {info.name} is a {info.family} method"
            )
    if info.family == "pruning":
        if not req.model:
            raise HarnessError(f"method {info.name} prunes a model: give --model (e.g. smollm2-135m)")
        modelsmod.check_model_id(req.model)
    elif req.model:
        raise HarnessError(
            f"{info.family} methods take their model as a parameter (--params model=...), not --model"
        )
    for name, lim in [("", req.limit), *req.task_limits.items()]:
        if lim is not None and lim < 1:
            raise HarnessError(f"--limit {name + '=' if name else ''}{lim}: a limit must be >= 1")
    unknown_limits = set(req.task_limits) - {t.id for t in tasks}
    if unknown_limits:
        raise HarnessError(f"--limit names tasks that are not run: {', '.join(sorted(unknown_limits))}")
    if req.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HarnessError("--device cuda requested but no CUDA device is available")
    store = ResultStore(req.results_dir)
    store.check_writable()

    base_prov = provenance.collect(req.device)
    semantic = params.semantic_dict()
    plan: list[tuple[Task, dict[str, Any], str]] = []
    outcomes: list[RunOutcome] = []
    for task in tasks:
        protocol = protocol_for(task, req)
        run_id = run_digest(info.name, semantic, req.model, task.id, task.version, protocol)
        existing = store.existing(task.id, run_id)
        if existing is not None and existing["status"] == "ok" and not req.force:
            log(f"{task.id}: already stored as {store.path_for(task.id, run_id)} (use --force to re-run)")
            outcomes.append(RunOutcome(task.id, run_id, store.path_for(task.id, run_id), "skipped", existing))
            continue
        plan.append((task, protocol, run_id))
    if not plan and req.save_model is None:
        return outcomes

    # ---- the method and the model, once for all tasks
    method = info.cls(params)
    started = provenance.utc_now()
    loaded = None
    timings: dict[str, float | None] = {"load_seconds": None, "calibration_seconds": None, "prune_seconds": None}
    pruning_doc: dict[str, Any] | None = None
    setup_error: BaseException | None = None
    try:
        if info.family == "pruning":
            t0 = time.perf_counter()
            log(f"loading model {req.model}")
            loaded = modelsmod.load_model(req.model, device=req.device, dtype=req.dtype)
            timings["load_seconds"] = time.perf_counter() - t0
            calibration = None
            if getattr(method, "needs_calibration", False):
                from harness.llm.calibration import load_calibration

                t0 = time.perf_counter()
                p = params  # CalibrationParams fields
                log(f"calibration: {p.nsamples} x {p.seqlen} tokens from {p.calibration} (seed {p.seed})")
                calibration = load_calibration(
                    loaded.tokenizer, name=p.calibration, nsamples=p.nsamples, seqlen=p.seqlen, seed=p.seed,
                    vocab_size=int(loaded.model.config.vocab_size),
                )
                timings["calibration_seconds"] = time.perf_counter() - t0
            log(f"pruning with {info.name} {semantic}")
            t0 = time.perf_counter()
            report = method.prune(loaded.model, calibration)
            timings["prune_seconds"] = time.perf_counter() - t0
            pruning_doc = report.to_dict() | {"calibration": calibration.source if calibration else None}
            if req.save_model is not None:
                modelsmod.save_model(
                    loaded, req.save_model,
                    {"method": info.name, "params": params.to_dict(), "pruning": pruning_doc,
                     "command": base_prov["command"]},
                )
                log(f"saved pruned model to {req.save_model}")
    except Exception as exc:  # stored as failed results below
        setup_error = exc
        log(f"setup failed: {type(exc).__name__}: {exc}")

    for task, protocol, run_id in plan:
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "status": "ok",
            "error": None,
            "created_at": provenance.utc_now(),
            "method": {
                "name": info.name,
                "family": info.family,
                "params": params.to_dict(),
                "non_semantic": list(params.NON_SEMANTIC),
                "module": info.module,
            },
            "model": {
                "id": req.model,
                "random_weights": bool(loaded and loaded.random_weights),
                "info": loaded.info if loaded else {},
            },
            "task": {
                "id": task.id,
                "version": task.version,
                "kind": task.kind,
                "title": task.title,
                "protocol": protocol,
                "primary_metric": task.primary_metric.name,
            },
            "metrics": {},
            "pruning": pruning_doc,
            "efficiency": dict(timings) | {"eval_seconds": None},
            "provenance": base_prov
            | {
                "reproduce": reproduce_command(info, params, req, task),
                "seeds": {"seed": getattr(params, "seed", None)},
                "data": [],
                "calibration": (pruning_doc or {}).get("calibration"),
                "started_at": started,
            },
        }
        items = None
        item_key = "item"
        artifacts = None
        error = setup_error
        if error is None:
            try:
                evaluator = get_evaluator(task.kind)
                ctx = RunContext(
                    method=method, model=loaded, device=req.device, limit=limit_for(task, req),
                    batch_size=req.batch_size, progress=req.progress,
                )
                lim = limit_for(task, req)
                log(f"evaluating {task.id}" + (f" (limit {lim})" if lim else ""))
                t0 = time.perf_counter()
                out: EvalOutput = evaluator(task, ctx)
                doc["efficiency"]["eval_seconds"] = time.perf_counter() - t0
                doc["metrics"] = _metrics_doc(task, out)
                doc["task"]["protocol_details"] = out.protocol_details
                doc["provenance"]["data"] = out.data
                if out.efficiency:
                    doc["efficiency"] |= out.efficiency
                if getattr(method, "stats", None):
                    doc["efficiency"]["method_stats"] = dict(method.stats)
                items, item_key, artifacts = out.items, out.item_key, out.artifacts
            except Exception as exc:
                error = exc
                log(f"{task.id} failed: {type(exc).__name__}: {exc}")
        if error is not None:
            doc["status"] = "failed"
            doc["error"] = _error_dict(error)
            doc["metrics"] = {}
            items, artifacts = None, None
        doc["provenance"]["finished_at"] = provenance.utc_now()
        try:
            path = store.write(doc, items=items, item_key=item_key, artifacts=artifacts)
        except ResultValidationError as exc:
            if doc["status"] != "ok":
                raise
            # e.g. a non-finite perplexity: store the run as failed, with the reason
            log(f"{task.id}: result does not validate, storing it as failed: {exc}")
            doc |= {"status": "failed", "error": _error_dict(exc), "metrics": {}}
            path = store.write(doc, items=None, artifacts=None)
        outcomes.append(RunOutcome(task.id, run_id, path, doc["status"], doc))
    return outcomes


def _metrics_doc(task: Task, out: EvalOutput) -> dict[str, Any]:
    declared = {m.name: m for m in task.metrics}
    unknown = set(out.metrics) - set(declared)
    if unknown:
        raise HarnessError(f"task {task.id}: evaluator produced undeclared metrics {sorted(unknown)}")
    if task.primary_metric.name not in out.metrics:
        raise HarnessError(f"task {task.id}: evaluator did not produce the primary metric {task.primary_metric.name}")
    return {
        name: out.metrics[name].to_dict(declared[name].higher_is_better, declared[name].primary)
        for name in declared
        if name in out.metrics
    }
