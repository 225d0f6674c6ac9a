"""Sweep overhead on trivial cells, side by side: the runner in-process, the local executor (1 and 2
worker processes) and the Ray executor (a private 2-CPU cluster), and a 200-cell grid end to end.

Trivial cells: the toy plug-in of tests/test_sweep.py (a method whose evaluator returns at once), so
every second measured is the harness's own: planning, locks, worker start, the store's writes.
Executor rows include planning the grid and starting the workers (spawned processes that import
the harness; Ray: a private loopback cluster), so small grids show mostly start-up.

    python benchmarks/bench_sweep.py [--cells 24] [--big 200] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _setup(root: Path) -> None:
    from test_sweep import PLUGIN, TOY_TASKS

    (root / "plugin").mkdir()
    (root / "plugin" / "sweep_toy_plugin.py").write_text(PLUGIN)
    (root / "tasks").mkdir()
    for t in TOY_TASKS:
        (root / "tasks" / f"{t}.yaml").write_text(
            f"id: {t}\nversion: 1\nkind: sweep-toy\nmetrics: [{{name: score, higher_is_better: true, primary: true}}]\n")
    (root / "log").mkdir()
    sys.path.insert(0, str(root / "plugin"))
    os.environ.update(PYTHONPATH=os.pathsep.join([str(root / "plugin"), str(REPO)]),
                      HARNESS_TASKS_DIR=str(root / "tasks"), SWEEP_TOY_LOG=str(root / "log"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private loopback instance: no token file left behind


def _grid(root: Path, name: str, units: int) -> Path:
    """``units`` units of 4 cells each (one x value, the four toy tasks)."""
    xs = ", ".join(str(1 + i) for i in range(units))
    path = root / f"{name}.yaml"
    path.write_text(f"id: {name}\nimports: [sweep_toy_plugin]\ncells:\n"
                    f"  - {{method: toy, params: {{x: [{xs}]}}, tasks: [toy-a, toy-b, toy-c, toy-d]}}\n")
    return path


def in_process(root: Path, units: int, name: str) -> float:
    """The runner called directly, warm (imports and registries loaded by a first call, not timed)."""
    import importlib

    from harness.runner import RunRequest, execute

    importlib.import_module("sweep_toy_plugin")
    execute(RunRequest(method="toy", params={"x": "0"}, tasks=["toy-a"], results_dir=root / "warm", progress=False))
    results = root / name
    t0 = time.perf_counter()
    for i in range(units):
        execute(RunRequest(method="toy", params={"x": str(1 + i)}, tasks=["toy-a", "toy-b", "toy-c", "toy-d"],
                           results_dir=results, progress=False))
    return time.perf_counter() - t0


def swept(root: Path, name: str, units: int, executor: str, workers: int | None) -> float:
    from harness.sweep import plan_sweep, run_sweep

    t0 = time.perf_counter()
    s = plan_sweep(_grid(root, name, units), root / name)
    run = run_sweep(s, executor, max_parallel=workers, progress=False)
    assert not run.failed and sum(len(r) for r in run.records.values()) == 4 * units
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=24, help="cells per configuration (a multiple of 4)")
    ap.add_argument("--big", type=int, default=200, help="cells of the end-to-end grid (a multiple of 4)")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    _setup(root)
    units = args.cells // 4
    print("| configuration | cells | wall s | s / cell | cells / s |\n|---|---:|---:|---:|---:|", flush=True)

    def row(name: str, n: int, secs: float) -> None:
        print(f"| {name} | {n} | {secs:.1f} | {secs / n:.3f} | {n / secs:.2f} |", flush=True)

    row("runner in-process, warm (no sweep)", args.cells, in_process(root, units, "inproc"))
    row("local executor, 1 worker", args.cells, swept(root, "local1", units, "local", 1))
    row("local executor, 2 workers", args.cells, swept(root, "local2", units, "local", 2))
    if not args.no_ray:
        row("ray executor, private 2-CPU cluster", args.cells, swept(root, "ray2", units, "ray", None))
    row(f"{args.big}-cell grid, runner in-process, warm", args.big, in_process(root, args.big // 4, "inproc-big"))
    row(f"{args.big}-cell grid, local executor, 2 workers", args.big, swept(root, "big", args.big // 4, "local", 2))
    if not args.no_ray:
        row(f"{args.big}-cell grid, ray executor", args.big, swept(root, "bigray", args.big // 4, "ray", None))
    print(f"(machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; wall includes worker start)")


if __name__ == "__main__":
    main()
