"""`harness run`: resolve everything cheaply, set the method up once, evaluate each task, store
each result.

The runner knows no method family: it calls the family's hooks (``resolve_params``,
``check_model``, ``takes_model``, ``setup``) and the task kind's record (accepted families, the
protocol keys it adds, its evaluator).

Order matters for trust: names, parameters, tasks, the model id and the results directory are all
checked before any expensive work (device, batch size, every folder the run writes to, and what the
family checks from the model's config, e.g. layer removal's ``blocks``); a cell counts as stored
only when it passes the checks ``validate`` makes, and is not recomputed (unless forced); each
planned cell is locked (``harness.locks.run_lock``) and re-planned under the lock, so two processes
never compute the same cell; an invalid file under a cell's run id is moved to
``<results>/.quarantine/`` first; a failure is stored as a failed result with its error, never as a
metric.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import config, provenance
from harness.errors import HarnessError, ResultValidationError
from harness.kinds import (
    STAGE_TIMINGS,
    EvalOutput,
    MethodBase,
    RunContext,
    RunSettings,
    SetupContext,
    SetupOutput,
    get_kind,
)
from harness.params import MethodParams
from harness.registry import MethodInfo, get_method
from harness.locks import LOCK_DIR, run_lock
from harness.results import ARTIFACTS_DIR, SCHEMA_VERSION, ResultStore, run_digest
from harness.tasks import Task, definition_digest, get_task


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
    setup_cache: bool = True  # let setup re-use what earlier runs on this machine made (pruned models)


@dataclass
class RunOutcome:
    task: str
    run_id: str
    path: Path
    status: str  # ok | failed | skipped (already stored)
    doc: dict[str, Any] | None = None


log = logging.getLogger("harness")


def resolve_params(info: MethodInfo, raw: dict[str, str], model: str | None) -> MethodParams:
    """Typed parameters, through the family's hook (pruning resolves calibration=auto here)."""
    return info.cls.resolve_params(raw, model)


def limit_for(task: Task, req: RunRequest) -> int | None:
    return req.task_limits.get(task.id, req.limit)


def protocol_for(task: Task, req: RunRequest) -> dict[str, Any]:
    """The protocol stored with the result and hashed into its run id: the task's, the limit, and
    the keys the task's kind adds (latency: device and dtype; others: dtype unless float32)."""
    return get_kind(task.kind).protocol_for(task.protocol, limit_for(task, req), RunSettings(req.device, req.dtype))


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


def check_request(req: RunRequest) -> tuple[MethodInfo, MethodParams, list[Task]]:
    """Every cheap check, before any work: names, parameters, tasks, model id, limits, device."""
    info = get_method(req.method)
    if not issubclass(info.cls, MethodBase):
        raise HarnessError(f"method {info.name}: {info.cls.__qualname__} does not derive from harness.kinds.MethodBase")
    params = resolve_params(info, req.params, req.model)
    if not req.tasks:
        raise HarnessError("give at least one --task")
    for name, lim in [("", req.limit), *req.task_limits.items()]:
        if lim is not None and lim < 1:
            raise HarnessError(f"--limit {name + '=' if name else ''}{lim}: a limit must be >= 1")
    tasks = [get_task(t) for t in req.tasks]
    for task in tasks:
        allowed = get_kind(task.kind).families
        if info.family not in allowed:
            raise HarnessError(
                f"task {task.id} ({task.kind}) takes {'/'.join(allowed)} methods; {info.name} is a {info.family} method"
            )
        info.cls.check_task(params, task, limit_for(task, req))
    if info.cls.takes_model or req.model:
        info.cls.check_model(req.model)  # refuses a missing --model, or one the family does not take
    unknown_limits = set(req.task_limits) - {t.id for t in tasks}
    if unknown_limits:
        raise HarnessError(f"--limit names tasks that are not run: {', '.join(sorted(unknown_limits))}")
    if req.batch_size is not None and req.batch_size < 1:
        raise HarnessError(f"--batch-size {req.batch_size}: a batch size must be >= 1")
    check_device(req.device)
    return info, params, tasks


_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def check_device(device: str) -> None:
    """The device exists here (cheap, before any model is loaded)."""
    if not _DEVICE.fullmatch(device):
        raise HarnessError(f"--device {device!r}: unsupported; use cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HarnessError(f"--device {device} requested but no CUDA device is available")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise HarnessError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise HarnessError("--device mps requested but MPS is not available")


@dataclass(frozen=True)
class Cell:
    """One (method, task) run to compute: its task, protocol and run id, and the invalid file
    stored under that run id, if any (quarantined before the cell is written)."""

    task: Task
    protocol: dict[str, Any]
    run_id: str
    invalid: Path | None = None


def cell_run_id(info: MethodInfo, params: MethodParams, req: RunRequest, task: Task, model_digest: str | None) -> str:
    return run_digest(info.name, params.semantic_dict(), req.model, task.id, task.version, protocol_for(task, req),
                      task_definition=definition_digest(task), method_version=info.cls.version,
                      model_digest=model_digest)


def _plan(info: MethodInfo, params: MethodParams, tasks: list[Task], req: RunRequest,
          store: ResultStore, model_digest: str | None) -> tuple[list[Cell], list[RunOutcome]]:
    """The cells to run, and the outcomes of those already stored (skipped unless forced). A cell
    is stored only when its file passes every check ``validate`` makes."""
    plan: list[Cell] = []
    outcomes: list[RunOutcome] = []
    for task in tasks:
        run_id = cell_run_id(info, params, req, task, model_digest)
        path = store.path_for(task.id, run_id)
        invalid = None
        if path.exists():
            try:
                stored = store.check(path)
            except ResultValidationError as exc:
                log.info("%s: the stored %s does not validate (%s); it will be recomputed", task.id, path, exc)
                invalid = path
            else:
                if stored.result.ok and not req.force:
                    log.info("%s: already stored as %s (use --force to re-run)", task.id, path)
                    outcomes.append(RunOutcome(task.id, run_id, path, "skipped", stored.result.to_dict()))
                    continue
        plan.append(Cell(task, protocol_for(task, req), run_id, invalid))
    return plan, outcomes


def plan_cells(info: MethodInfo, params: MethodParams, tasks: list[Task], req: RunRequest,
               store: ResultStore) -> tuple[list[Cell], list[RunOutcome]]:
    """What ``execute`` would compute and what it would skip, without computing (for sweeps)."""
    model_digest = info.cls.model_digest(req.model) if req.model else None
    return _plan(info, params, tasks, req, store, model_digest)


def _setup(method: Any, req: RunRequest, command: str) -> tuple[SetupOutput, BaseException | None]:
    """``method.setup(ctx)`` once; a failure is kept (stored as failed results), never raised."""
    ctx = SetupContext(device=req.device, dtype=req.dtype, model=req.model, batch_size=req.batch_size,
                       progress=req.progress, save_model=req.save_model, command=command,
                       cache_dir=config.setup_cache_dir() if req.setup_cache else None)
    error: BaseException | None = None
    try:
        method.setup(ctx)
    except Exception as exc:  # stored as failed results
        error = exc
        log.info("setup failed: %s: %s", type(exc).__name__, exc)
    return method.setup_output, error


def _check_outputs(req: RunRequest, store: ResultStore, tasks: list[Task]) -> None:
    """Every folder the run writes to is writable, before any work."""
    store.check_writable([t.id for t in tasks] + [ARTIFACTS_DIR, LOCK_DIR])
    if req.save_model is not None:
        parent = Path(req.save_model).resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise HarnessError(f"--save-model {req.save_model}: {parent} is not a writable directory")


def execute(req: RunRequest) -> list[RunOutcome]:
    info, params, tasks = check_request(req)
    store = ResultStore(req.results_dir)
    _check_outputs(req, store, tasks)
    model_digest = info.cls.model_digest(req.model) if req.model else None
    plan, outcomes = _plan(info, params, tasks, req, store, model_digest)
    if not plan and req.save_model is None:
        return outcomes
    with contextlib.ExitStack() as locks:
        # every planned cell locked (in run-id order, so two runs never wait on each other), then
        # planned again: a cell another process stored meanwhile is skipped, not recomputed
        for run_id in sorted({c.run_id for c in plan}):
            locks.enter_context(run_lock(store.root, run_id))
        plan, outcomes = _plan(info, params, tasks, req, store, model_digest)
        if not plan and req.save_model is None:
            return outcomes
        for cell in plan:
            if cell.invalid is not None and cell.invalid.exists():
                where = store.quarantine(cell.invalid)
                log.warning("%s: moved the invalid stored file %s to %s", cell.task.id, cell.invalid, where)
        outcomes += _compute(info, params, req, plan, store, model_digest)
    return outcomes


def _compute(info: MethodInfo, params: MethodParams, req: RunRequest, plan: list[Cell], store: ResultStore,
             model_digest: str | None) -> list[RunOutcome]:
    """The method set up once, then each planned cell evaluated and stored."""
    base_prov = provenance.collect(req.device) | {"method": provenance.method_source(info.cls)}
    method = info.cls(params)
    started = provenance.utc_now()
    setup, setup_error = _setup(method, req, base_prov["command"])
    outcomes = []
    for cell in plan:
        doc = _result_doc(info, params, req, cell, setup, base_prov, started, model_digest)
        outcomes.append(_evaluate_and_store(doc, cell.task, method, setup, req, store, setup_error))
    return outcomes


def _result_doc(info: MethodInfo, params: MethodParams, req: RunRequest, cell: Cell, setup: SetupOutput,
                base_prov: dict[str, Any], started: str, model_digest: str | None) -> dict[str, Any]:
    """The stored result before evaluation (status ok, no metrics yet)."""
    loaded = setup.model
    task, protocol, run_id = cell.task, cell.protocol, cell.run_id
    return {
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
            "version": info.cls.version,
        },
        "model": {
            "id": req.model,
            "random_weights": bool(loaded and loaded.random_weights),
            "info": loaded.info if loaded else {},
            "digest": model_digest,
        },
        "task": {
            "id": task.id,
            "version": task.version,
            "kind": task.kind,
            "title": task.title,
            "protocol": protocol,
            "primary_metric": task.primary_metric.name,
            "definition_digest": definition_digest(task),
        },
        "metrics": {},
        "pruning": setup.sections.get("pruning"),
        "efficiency": dict.fromkeys(STAGE_TIMINGS) | setup.timings | {"eval_seconds": None},
        "provenance": base_prov
        | {
            "reproduce": reproduce_command(info, params, req, task),
            "seeds": {"seed": getattr(params, "seed", None)},
            "data": [],
            "calibration": setup.sections.get("calibration"),
            "started_at": started,
        },
    }


def _evaluate(doc: dict[str, Any], task: Task, method: Any, setup: SetupOutput, req: RunRequest) -> EvalOutput:
    """Run the task's evaluator and fill the result's metrics, details and efficiency."""
    evaluator = get_kind(task.kind).load_evaluator()
    lim = limit_for(task, req)
    ctx = RunContext(method=method, model=setup.model, device=req.device, limit=lim,
                     batch_size=req.batch_size, progress=req.progress)
    log.info("evaluating %s%s", task.id, f" (limit {lim})" if lim else "")
    t0 = time.perf_counter()
    out: EvalOutput = evaluator(task, ctx)
    doc["efficiency"]["eval_seconds"] = time.perf_counter() - t0
    doc["metrics"] = _metrics_doc(task, out)
    doc["task"]["protocol_details"] = out.protocol_details
    doc["provenance"]["data"] = out.data
    if out.efficiency:
        doc["efficiency"] |= out.efficiency
    if method.stats:
        doc["efficiency"]["method_stats"] = dict(method.stats)
    return out


def _evaluate_and_store(doc: dict[str, Any], task: Task, method: Any, setup: SetupOutput, req: RunRequest,
                        store: ResultStore, error: BaseException | None) -> RunOutcome:
    out: EvalOutput | None = None
    if error is None:
        try:
            out = _evaluate(doc, task, method, setup, req)
        except Exception as exc:
            error = exc
            log.info("%s failed: %s: %s", task.id, type(exc).__name__, exc)
    if error is not None:
        doc |= {"status": "failed", "error": _error_dict(error), "metrics": {}}
        out = None
    doc["provenance"]["finished_at"] = provenance.utc_now()
    try:
        if out is None:
            path = store.write(doc, items=None, artifacts=None)
        else:
            path = store.write(doc, items=out.items, item_key=out.item_key,
                               artifacts=(setup.artifacts | (out.artifacts or {})) or None)
    except ResultValidationError as exc:
        if doc["status"] != "ok":
            raise
        # e.g. a non-finite perplexity: store the run as failed, with the reason
        log.info("%s: result does not validate, storing it as failed: %s", task.id, exc)
        doc |= {"status": "failed", "error": _error_dict(exc), "metrics": {}}
        path = store.write(doc, items=None, artifacts=None)
    return RunOutcome(task.id, doc["run_id"], path, doc["status"], doc)


def _metrics_doc(task: Task, out: EvalOutput) -> dict[str, Any]:
    declared = {m.name: (m.higher_is_better, m.primary) for m in task.metrics}
    # the kind's own diagnostics (TaskKind.extra_metrics), after the declared ones, never primary
    declared |= {name: (hib, False) for name, hib in get_kind(task.kind).extra_metrics if name not in declared}
    unknown = set(out.metrics) - set(declared)
    if unknown:
        raise HarnessError(f"task {task.id}: evaluator produced undeclared metrics {sorted(unknown)}")
    if task.primary_metric.name not in out.metrics:
        raise HarnessError(f"task {task.id}: evaluator did not produce the primary metric {task.primary_metric.name}")
    return {name: out.metrics[name].to_dict(*declared[name]) for name in declared if name in out.metrics}
