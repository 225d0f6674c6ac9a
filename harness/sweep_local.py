"""The local executor: N long-lived worker processes (``spawn``), one unit of work at a time each.

Each worker has its own inbox, so the driver knows which unit a worker holds: when a worker dies
mid-unit (killed, out of memory), that unit is retried on a fresh worker up to ``retries`` times,
then reported as an error. Workers leave when the driver is gone (they poll its pid), so a killed
driver leaves no worker behind once the worker's current unit ends.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import traceback
from collections import deque
from typing import Any

from harness.sweep import OnDone, Sweep, request_spec, run_unit, unit_error_records

log = logging.getLogger("harness")


def _worker_main(inbox: Any, outbox: Any, imports: list[str], driver_pid: int) -> None:
    logging.getLogger("harness").setLevel(logging.WARNING)
    while True:
        try:
            msg = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != driver_pid:  # the driver died: stop taking work
                return
            continue
        if msg is None:
            return
        index, spec = msg
        try:
            records = run_unit(spec, imports)
        except Exception as exc:  # the runner stores cell failures; this is a unit that could not start
            records = [{"task": t, "run_id": None, "status": "error", "seconds": 0.0, "pid": os.getpid(),
                        "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"}
                       for t in spec["tasks"]]
        outbox.put((index, records))


class _Worker:
    def __init__(self, ctx: Any, outbox: Any, imports: list[str]):
        self.inbox = ctx.Queue()
        self.process = ctx.Process(target=_worker_main, args=(self.inbox, outbox, imports, os.getpid()), daemon=True)
        self.process.start()
        self.unit: int | None = None


def run_local(sweep: Sweep, pending: list[int], workers: int, retries: int, on_done: OnDone) -> None:
    ctx = mp.get_context("spawn")
    outbox = ctx.Queue()
    imports = list(sweep.grid.imports)
    todo = deque(pending)
    tries = dict.fromkeys(pending, 0)
    pool = [_Worker(ctx, outbox, imports) for _ in range(min(workers, len(pending)))]
    finished: set[int] = set()
    try:
        while len(finished) < len(pending):
            for w in pool:
                if w.unit is None and todo:
                    w.unit = todo.popleft()
                    tries[w.unit] += 1
                    w.inbox.put((w.unit, request_spec(sweep.units[w.unit].request)))
            try:
                index, records = outbox.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                for w in pool:
                    if w.unit == index:
                        w.unit = None
                if index not in finished:  # a retried unit may answer twice: the first answer wins
                    finished.add(index)
                    on_done(index, records)
            for k, w in enumerate(pool):
                if w.process.is_alive():
                    continue
                if w.unit is not None and w.unit not in finished and _give_up(sweep, w, tries, retries, todo, on_done):
                    finished.add(w.unit)
                pool[k] = _Worker(ctx, outbox, imports)
    finally:
        for w in pool:
            if w.process.is_alive():
                w.inbox.put(None)
        for w in pool:
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()


def _give_up(sweep: Sweep, w: _Worker, tries: dict[int, int], retries: int, todo: deque, on_done: OnDone) -> bool:
    """A worker died holding a unit: queue the unit again, or report it (True) after ``retries``."""
    index = w.unit
    label = sweep.units[index].label
    if tries[index] <= retries:
        log.info("worker %s died (exit %s) during %s; retrying (%d of %d)", w.process.pid, w.process.exitcode,
                 label, tries[index], retries)
        todo.appendleft(index)
        return False
    on_done(index, unit_error_records(sweep.units[index],
                                      f"worker died {tries[index]} times (last exit {w.process.exitcode})"))
    return True
