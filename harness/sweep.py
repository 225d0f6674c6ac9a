"""`harness sweep GRID.yaml`: a declared grid (:mod:`harness.sweep_grid`) run cell by cell, on local
worker processes or on a Ray cluster, resumable and safe to run twice at once.

* Identity: each cell's run id comes from the runner's own planning (``runner.plan_cells``), so a
  cell stored by ``harness run`` is the same cell here, and re-running a sweep skips it.
* A unit of work (one :func:`harness.runner.execute` call, see ``sweep_grid``) runs under the
  sweep lock of each of its run ids (:func:`harness.locks.run_lock`, taken in sorted order), and
  re-checks what is stored after acquiring them: two sweeps on one results directory never compute
  the same cell. The sweep's lock key is ``<run id>.sweep``, not the bare run id, so that the
  runner taking the bare run id's lock inside ``execute`` cannot deadlock against its own process.
* Faults: a cell that raises is stored as failed by the runner and the sweep goes on; a worker
  killed mid-unit is retried (``retries`` times; the store writes atomically, and stale temporary
  files of the unit's run ids are removed under the lock before a retry); a killed driver is
  resumed by running the same command again.

Pruned models are not cached across units: a pruned model loaded back from a directory would be a
different ``--model`` and so a different run id. Grouping gives the sharing instead: every cell
that prunes a model the same way is in one unit, which prunes once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.locks import LOCK_DIR, run_lock
from harness.results import ResultStore
from harness.runner import RunRequest, check_request, execute, plan_cells
from harness.table import Table
from harness.sweep_grid import GridFile, SweepError, Unit, expand, import_plugins, load_grid

log = logging.getLogger("harness")


def sweep_lock_id(run_id: str) -> str:
    return f"{run_id}.sweep"


@dataclass
class Cell:
    unit: int  # index into the sweep's units
    task: str
    run_id: str
    state: str  # stored | failed (stored as failed; re-run) | to run


@dataclass
class Sweep:
    path: Path
    grid: GridFile
    units: list[Unit]
    cells: list[Cell]
    results_dir: Path


def plan_sweep(path: Path | str, results_dir: Path | str) -> Sweep:
    """Load, validate and expand the grid; each cell with its run id and what the store holds."""
    path, results_dir = Path(path), Path(results_dir)
    grid = load_grid(path)
    units = expand(path, grid, results_dir)
    store = ResultStore(results_dir)
    cells: list[Cell] = []
    for i, unit in enumerate(units):
        info, params, tasks = check_request(unit.request)
        with _quiet():
            todo, stored = plan_cells(info, params, tasks, unit.request, store)
        by_task = {o.task: ("stored", o.run_id) for o in stored}
        for cell in todo:
            task, run_id = cell.task, cell.run_id
            prev = store.existing(task.id, run_id) if store.path_for(task.id, run_id).is_file() else None
            by_task[task.id] = ("failed" if prev is not None else "to run", run_id)
        cells += [Cell(i, t, by_task[t][1], by_task[t][0]) for t in unit.request.tasks]
    return Sweep(path, grid, units, cells, results_dir)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Planning a sweep: the runner's per-cell "already stored" lines are not news."""
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


# ---------------------------------------------------------------------------------------------
# One unit of work, as run by a worker (a local process or a Ray task)


def request_spec(req: RunRequest) -> dict[str, Any]:
    d = asdict(req)
    d["results_dir"] = str(req.results_dir)
    d["save_model"] = None
    return d


def _clean_temp_files(results_dir: Path, tasks: list[str], run_ids: list[str]) -> None:
    """Temporary files a killed writer left for these run ids (atomic writes: ``.<name>.*.tmp``)."""
    for task in tasks:
        folder = results_dir / task
        for rid in run_ids:
            for tmp in folder.glob(f".{rid}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


@contextlib.contextmanager
def _locks(results_dir: Path, run_ids: list[str]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for rid in sorted(set(run_ids)):  # one order for every process: no lock-order deadlock
            stack.enter_context(run_lock(results_dir, sweep_lock_id(rid)))
        yield


def run_unit(spec: dict[str, Any], imports: list[str]) -> list[dict[str, Any]]:
    """Run one unit: lock its run ids, re-check what is stored, ``execute`` the rest. Returns one
    record per cell: task, run id, status (ok | failed | skipped), seconds, error message."""
    import_plugins(imports)
    req = RunRequest(**(spec | {"results_dir": Path(spec["results_dir"])}))
    info, params, tasks = check_request(req)
    store = ResultStore(req.results_dir)
    todo, _stored = plan_cells(info, params, tasks, req, store)
    ids = [cell.run_id for cell in todo]
    with _locks(req.results_dir, ids):
        _clean_temp_files(req.results_dir, req.tasks, ids)
        t0 = time.perf_counter()
        outcomes = execute(req)  # re-plans: cells stored meanwhile by another sweep are skipped
        seconds = time.perf_counter() - t0
    computed = [o for o in outcomes if o.status != "skipped"]
    records = []
    for o in outcomes:
        error = ((o.doc or {}).get("error") or {}).get("message") if o.status == "failed" else None
        records.append({"task": o.task, "run_id": o.run_id, "status": o.status, "error": error,
                        "seconds": seconds / len(computed) if o.status != "skipped" and computed else 0.0,
                        "pid": os.getpid()})
    return records


def unit_error_records(unit: Unit, message: str) -> list[dict[str, Any]]:
    """Cells of a unit that could not run at all (e.g. its worker died on every try): not stored."""
    return [{"task": t, "run_id": None, "status": "error", "error": message, "seconds": 0.0, "pid": None}
            for t in unit.request.tasks]


# ---------------------------------------------------------------------------------------------
# Running a sweep


@dataclass
class SweepRun:
    sweep: Sweep
    records: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # unit index -> cell records
    wall_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(r["status"] in ("failed", "error") for rs in self.records.values() for r in rs)


OnDone = Callable[[int, list[dict[str, Any]]], None]


def run_sweep(sweep: Sweep, executor: str = "local", *, max_parallel: int | None = None,
              address: str | None = None, retries: int | None = None, progress: bool = True) -> SweepRun:
    """Run every unit that has a cell to run; stored cells are not touched."""
    retries = sweep.grid.retries if retries is None else retries
    pending = sorted({c.unit for c in sweep.cells if c.state != "stored"})
    run = SweepRun(sweep)
    todo_cells = sum(1 for c in sweep.cells if c.state != "stored")
    bar = _progress_bar(todo_cells, sweep.grid.id, progress)

    def on_done(i: int, records: list[dict[str, Any]]) -> None:
        run.records[i] = records
        if bar is not None:
            bar.update(sum(1 for c in sweep.cells if c.unit == i and c.state != "stored"))
        for r in records:
            if r["status"] in ("failed", "error"):
                log.info("cell failed: %s %s: %s", sweep.units[i].label, r["task"], r["error"])

    t0 = time.perf_counter()
    try:
        if not pending:
            pass
        elif executor == "local":
            from harness.sweep_local import run_local

            run_local(sweep, pending, max_parallel or 1, retries, on_done)
        elif executor == "ray":
            from harness.sweep_ray import run_ray

            run_ray(sweep, pending, address, max_parallel, retries, on_done)
        else:
            raise HarnessError(f"--executor {executor!r}: choose local or ray")
    finally:
        if bar is not None:
            bar.close()
    run.wall_seconds = time.perf_counter() - t0
    return run


def _progress_bar(total: int, name: str, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="cell", dynamic_ncols=True)


def cell_is_running(results_dir: Path, run_id: str) -> bool:
    """Whether a sweep holds this cell's lock now (probes the lock without waiting)."""
    if not (results_dir / LOCK_DIR / f"{sweep_lock_id(run_id)}.lock").is_file():
        return False
    try:
        with _quiet(), run_lock(results_dir, sweep_lock_id(run_id), poll_seconds=0.0, timeout=0.0):
            return False
    except TimeoutError:
        return True


# ---------------------------------------------------------------------------------------------
# Views (harness.table.Table, rendered as markdown on the terminal)


def cells_table(sweep: Sweep, states: dict[int, str] | None = None) -> Table:
    """One row per cell: where it comes from, the unit, the task, its run id and its state."""
    from harness.table import Column, Table

    cols = [Column("unit", kind="int"), Column("entry"), Column("cell"), Column("task"), Column("run_id", "run id"),
            Column("state")]
    rows = [{"unit": c.unit, "entry": ",".join(sweep.units[c.unit].labels), "cell": sweep.units[c.unit].label,
             "task": c.task, "run_id": c.run_id, "state": (states or {}).get(k, c.state)}
            for k, c in enumerate(sweep.cells)]
    return Table(cols, rows)


def status_states(sweep: Sweep) -> dict[int, str]:
    """Where each cell stands now: stored, failed, running (a sweep holds its lock) or to run."""
    out = {}
    for k, c in enumerate(sweep.cells):
        if c.state != "stored" and cell_is_running(sweep.results_dir, c.run_id):
            out[k] = "running"
    return out


def summary_table(run: SweepRun) -> Table:
    """Per grid cell (method, params, model): ok, failed, skipped (stored before), seconds per cell."""
    from harness.table import Column, Table

    rows: dict[str, dict[str, Any]] = {}
    for c in run.sweep.cells:
        label = run.sweep.units[c.unit].label
        row = rows.setdefault(label, {"cell": label, "ok": 0, "failed": 0, "skipped": 0, "seconds": []})
        rec = next((r for r in run.records.get(c.unit, []) if r["task"] == c.task), None)
        status = "skipped" if rec is None and c.state == "stored" else (rec or {}).get("status", "not run")
        key = {"ok": "ok", "skipped": "skipped"}.get(status, "failed")
        row[key] += 1
        if rec is not None and status != "skipped":
            row["seconds"].append(rec["seconds"])
    total = {"cell": "all", "ok": 0, "failed": 0, "skipped": 0, "seconds": []}
    for row in rows.values():
        for key in ("ok", "failed", "skipped", "seconds"):
            total[key] += row[key]
    for row in [*rows.values(), total]:
        secs = row.pop("seconds")
        row["seconds_per_cell"] = sum(secs) / len(secs) if secs else None
    cols = [Column("cell"), Column("ok", kind="int"), Column("failed", kind="int"), Column("skipped", kind="int"),
            Column("seconds_per_cell", "s / cell", kind="num")]
    return Table(cols, [*rows.values(), total],
                 caption=f"sweep {run.sweep.grid.id}: {total['ok']} ok, {total['failed']} failed, "
                         f"{total['skipped']} skipped, {run.wall_seconds:.1f} s")


__all__ = ["Cell", "Sweep", "SweepError", "SweepRun", "plan_sweep", "run_sweep", "run_unit"]
