"""`harness sweep`: grid files checked before any cell runs, the local executor, faults and resuming.

Cheap cells come from a toy plug-in (a method family, a task kind and its tasks) written into a
temporary directory and named in the grid's ``imports``, so spawned workers register it too. The
toy evaluator logs every computation (pid, task, x) to ``$SWEEP_TOY_LOG/computed.log``, so the tests
can count how often each cell was computed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.results import ResultStore
from harness.sweep import plan_sweep, run_sweep
from harness.sweep_grid import SweepError, load_grid

REPO = Path(__file__).resolve().parents[1]
TOY_TASKS = ["toy-a", "toy-b", "toy-c", "toy-d"]

PLUGIN = '''
"""A toy method family and task kind for the sweep tests."""
import os, time
from dataclasses import dataclass
from harness.kinds import TASK_KINDS, EvalOutput, Metric, MethodBase, TaskKind, fixed_metrics
from harness.params import MethodParams
from harness.registry import FAMILIES, register_method


class ToyBase(MethodBase):
    """Toy family: nothing to set up."""


def evaluate(task, ctx):
    p = ctx.method.params
    log = os.environ["SWEEP_TOY_LOG"]
    with open(os.path.join(log, "computed.log"), "a") as fh:
        fh.write(f"{os.getpid()} {task.id} {p.x}\\n")
    with open(os.path.join(log, f"pid-{task.id}-{p.x}"), "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(p.sleep)
    if p.fail:
        raise RuntimeError(f"toy failure on {task.id}")
    return EvalOutput(metrics={"score": Metric(p.x * len(task.id), n=1)}, items=[{"item": "a", "score": p.x}])


if "sweep-toy" not in FAMILIES:
    FAMILIES.register("sweep-toy", ToyBase)
    TASK_KINDS.register("sweep-toy", TaskKind("sweep-toy", evaluate, families=("sweep-toy",),
                                              metric_error=fixed_metrics("score")))

    @dataclass(frozen=True)
    class ToyParams(MethodParams):
        x: float = 1.0
        sleep: float = 0.0
        fail: bool = False

    @register_method("toy", "sweep-toy", ToyParams)
    class Toy(ToyBase):
        """Scores x times the length of the task id."""
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy plug-in on the path (this process and spawned workers), its tasks, a results dir."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "sweep_toy_plugin.py").write_text(PLUGIN)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for t in TOY_TASKS:
        (tasks / f"{t}.yaml").write_text(textwrap.dedent(f"""\
            id: {t}
            version: 1
            kind: sweep-toy
            metrics: [{{name: score, higher_is_better: true, primary: true}}]
            """))
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin_dir), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks))
    monkeypatch.setenv("SWEEP_TOY_LOG", str(log))
    return {"dir": tmp_path, "results": tmp_path / "results", "log": log}


def grid(toy, text: str, name: str = "grid.yaml") -> Path:
    path = toy["dir"] / name
    path.write_text("imports: [sweep_toy_plugin]\n" + textwrap.dedent(text))
    return path


def computed(toy) -> list[tuple[str, str]]:
    path = toy["log"] / "computed.log"
    if not path.is_file():
        return []
    return [tuple(line.split()[1:]) for line in path.read_text().splitlines()]


EIGHT = """\
    id: eight
    cells:
      - method: toy
        params: {x: [1, 2]}
        tasks: [toy-a, toy-b, toy-c, toy-d]
    """


def stored_docs(results: Path) -> dict[str, dict]:
    good, bad = ResultStore(results).scan()
    assert not bad
    return {s.run_id: s.result for s in good}


def no_temp_files(results: Path) -> None:
    left = [p for p in results.rglob("*") if p.name.endswith(".tmp")]
    assert not left, left


# ---------------------------------------------------------------------------------------------
# Grid files


def test_the_issue_example_form_expands_and_groups(toy, monkeypatch, tmp_path, data_dir):
    monkeypatch.delenv("HARNESS_TASKS_DIR")
    path = tmp_path / "small.yaml"
    path.write_text(textwrap.dedent("""\
        id: small-grid
        cells:
          - method: bm25
            params: {query_algorithm: [maxscore, wand]}
            tasks: [vaswani, cacm]
          - method: magnitude
            params: {sparsity: [0.3, 0.5]}
            models: [smollm2-135m]
            tasks: [wikitext2]
            limits: {wikitext2: 1}
        resources: {cpus: 1}
        """))
    s = plan_sweep(path, REPO / "results")
    assert len(s.cells) == 6 and len(s.units) == 4  # bm25: one unit per algorithm, both tasks in it
    assert [u.request.tasks for u in s.units[:2]] == [["vaswani", "cacm"], ["vaswani", "cacm"]]
    assert {c.state for c in s.cells if c.task in ("vaswani", "cacm")} == {"stored"}  # committed results
    assert s.units[2].request.task_limits == {"wikitext2": 1}


@pytest.mark.parametrize(("text", "expect"), [
    ("id: g\ncells:\n  - method: toy\n    tasks: [toy-a]\n    paramz: {x: 1}\n", "field 'cells[0].paramz': unknown key"),
    ("id: g\ncells:\n  - method: tyo\n    tasks: [toy-a]\n", "field 'cells[0]' (tyo): unknown method"),
    ("id: g\ncells:\n  - method: toy\n    tasks: [toy-z]\n", "field 'cells[0]' (toy): unknown task"),
    ("id: g\ncells:\n  - method: toy\n    params: {y: [1, 2]}\n    tasks: [toy-a]\n", "unknown parameter 'y'"),
    ("id: g\ncells:\n  - method: toy\n    params: {x: abc}\n    tasks: [toy-a]\n", "not a valid float"),
    ("id: g\nresources: {cpu: 1}\ncells:\n  - method: toy\n    tasks: [toy-a]\n", "field 'resources.cpu': unknown key"),
    ("id: g\nresources: {memory: lots}\ncells:\n  - method: toy\n    tasks: [toy-a]\n", "field 'resources.memory'"),
    ("id: g\ncells:\n  - method: toy\n    tasks: [toy-a]\n    resources: {gpus: -1}\n", "field 'cells[0].resources.gpus'"),
    ("id: g\ncells: []\n", "zero cells"),
    ("id: g\ncells:\n  - method: toy\n    params: {x: []}\n    tasks: [toy-a]\n", "field 'cells[0].params.x': an empty list"),
    ("id: g\ncells:\n  - method: toy\n", "field 'cells[0]': no tasks"),
    ("id: g\ncells:\n  - method: toy\n    tasks: [toy-a]\n    limits: {toy-b: 3}\n", "names tasks this entry does not run"),
    ("cells:\n  - method: toy\n    tasks: [toy-a]\n", "field 'id': required"),
])
def test_bad_grids_are_refused_naming_file_and_field_before_any_cell_runs(toy, text, expect):
    path = grid(toy, text)
    with pytest.raises(SweepError) as exc:
        plan_sweep(path, toy["results"])
    assert str(path) in str(exc.value) and expect in str(exc.value), str(exc.value)
    assert computed(toy) == [] and not toy["results"].exists()


def test_suites_are_resolved_or_refused_clearly(toy):
    path = grid(toy, "id: g\ncells:\n  - method: toy\n    suites: [zeroshot-7]\n")
    try:
        import harness.suites  # noqa: F401  (added in parallel; absent on this branch alone)
    except ModuleNotFoundError:
        with pytest.raises(SweepError, match="field 'cells\\[0\\].suites': this installation has no suites"):
            plan_sweep(path, toy["results"])
    else:
        with pytest.raises(SweepError, match="cells\\[0\\]"):  # the toy task dir has no such suite
            plan_sweep(path, toy["results"])


def test_yaml_reads_2_to_4_as_a_string(toy):
    path = grid(toy, "id: g\ncells:\n  - method: toy\n    tasks: [toy-a]\n    params: {x: 1e-3}\n"
                     "    device: '2:4'\n")  # any string field: YAML 1.1 would read 2:4 as 124
    g = load_grid(path)
    assert g.cells[0].params == {"x": 0.001} and g.cells[0].device == "2:4"


def test_identical_cells_declared_twice_are_one_computation(toy):
    path = grid(toy, """\
        id: dup
        cells:
          - {method: toy, params: {x: 1}, tasks: [toy-a, toy-b]}
          - {method: toy, params: {x: 1.0}, tasks: [toy-b, toy-c]}
        """)
    s = plan_sweep(path, toy["results"])
    assert len(s.units) == 1 and s.units[0].request.tasks == ["toy-a", "toy-b", "toy-c"]


# ---------------------------------------------------------------------------------------------
# Running: local executor


def test_dry_run_lists_cells_and_runs_nothing(toy, capsys):
    path = grid(toy, EIGHT)
    assert main(["sweep", str(path), "--dry-run", "--results", str(toy["results"])]) == 0
    out = capsys.readouterr().out
    assert out.count("would run") == 8 + 1 and "8 cells in 2 units" in out
    assert computed(toy) == []


@pytest.mark.slow  # spawns two workers (~50 s on 2 loaded cores)
def test_local_sweep_runs_eight_cells_on_two_workers_then_skips_them(toy, capsys):
    path = grid(toy, EIGHT)
    rc = main(["sweep", str(path), "--max-parallel", "2", "--results", str(toy["results"]), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    docs = stored_docs(toy["results"])
    assert len(docs) == 8 and all(d.ok for d in docs.values())
    assert sorted(d.value("score") for d in docs.values()) == sorted(x * 5.0 for x in (1, 2) for _ in range(4))
    assert len({pid for pid, *_ in [line.split() for line in (toy["log"] / "computed.log").read_text().splitlines()]}) == 2
    assert "| all | 8 | 0 | 0 |" in out
    # the same command again: every cell stored, nothing computed
    assert main(["sweep", str(path), "--results", str(toy["results"]), "--no-progress"]) == 0
    assert len(computed(toy)) == 8
    assert "| all | 0 | 0 | 8 |" in capsys.readouterr().out
    assert main(["sweep", str(path), "--status", "--results", str(toy["results"])]) == 0
    out = capsys.readouterr().out
    assert out.count("| stored |") == 8 and "8 stored" in out
    no_temp_files(toy["results"])


@pytest.mark.slow  # spawns workers that import the harness (~10 s each on 2 loaded cores)
def test_a_cell_that_raises_is_stored_failed_and_the_others_complete(toy, capsys):
    path = grid(toy, """\
        id: fail
        cells:
          - {method: toy, params: {x: [1, 2, 3]}, tasks: [toy-a, toy-b]}
          - {method: toy, params: {x: 4, fail: true}, tasks: [toy-c]}
        """)
    rc = main(["sweep", str(path), "--max-parallel", "2", "--results", str(toy["results"]), "--no-progress"])
    assert rc == 1  # a failed cell: non-zero exit
    docs = stored_docs(toy["results"])
    failed = [d for d in docs.values() if not d.ok]
    assert len(docs) == 7 and len(failed) == 1
    assert "toy failure on toy-c" in failed[0].error.traceback
    assert "| all | 6 | 1 | 0 |" in capsys.readouterr().out
    main(["sweep", str(path), "--status", "--results", str(toy["results"])])
    assert "1 stored as failed" in capsys.readouterr().out


@pytest.mark.slow  # spawns workers that import the harness (~10 s each on 2 loaded cores)
def test_a_killed_worker_is_retried_and_leaves_no_partial_file(toy, capsys):
    path = grid(toy, """\
        id: kill
        cells:
          - {method: toy, params: {x: 1, sleep: 3}, tasks: [toy-a]}
          - {method: toy, params: {x: [2, 3]}, tasks: [toy-a, toy-b]}
        """)
    import threading

    def killer() -> None:  # kill the worker by its pid while it is inside the slow cell, once
        pid_file = toy["log"] / "pid-toy-a-1.0"
        deadline = time.monotonic() + 60
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    rc = main(["sweep", str(path), "--max-parallel", "2", "--results", str(toy["results"]), "--no-progress"])
    t.join()
    assert rc == 0, capsys.readouterr()
    docs = stored_docs(toy["results"])
    assert len(docs) == 5 and all(d.ok for d in docs.values())
    assert computed(toy).count(("toy-a", "1.0")) == 2  # the killed try and the retry
    no_temp_files(toy["results"])


@pytest.mark.slow  # spawns workers that import the harness (~10 s each on 2 loaded cores)
def test_a_worker_that_dies_every_time_is_given_up_after_the_retries(toy, capsys):
    path = grid(toy, "id: k\nretries: 1\ncells:\n  - {method: toy, params: {x: 1, sleep: 30}, tasks: [toy-a]}\n")
    s = plan_sweep(path, toy["results"])
    import threading

    killed = []

    def killer() -> None:
        pid_file = toy["log"] / "pid-toy-a-1.0"
        for _ in range(2):
            deadline = time.monotonic() + 60
            while not pid_file.is_file() and time.monotonic() < deadline:
                time.sleep(0.05)
            pid = int(pid_file.read_text())
            pid_file.unlink()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    t = threading.Thread(target=killer)
    t.start()
    run = run_sweep(s, max_parallel=1, progress=False)
    t.join()
    assert run.failed and len(killed) == 2
    assert run.records[0][0]["status"] == "error" and "worker died 2 times" in run.records[0][0]["error"]
    assert stored_docs(toy["results"]) == {}  # nothing partial stored
    no_temp_files(toy["results"])


def _sweep_process(toy, path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "sweep", str(path), "--results", str(toy["results"]),
                             "--no-progress", *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


SLOW = """\
    id: slow
    cells:
      - method: toy
        params: {x: [1, 2, 3, 4, 5, 6], sleep: 0.4}
        tasks: [toy-a]
    """


@pytest.mark.slow  # spawns workers that import the harness (~10 s each on 2 loaded cores)
def test_a_killed_driver_is_resumed_by_the_same_command(toy):
    path = grid(toy, SLOW)
    p = _sweep_process(toy, path)
    deadline = time.monotonic() + 90
    while len(computed(toy)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # the driver only; its worker notices and leaves after its cell
    p.wait(timeout=30)
    time.sleep(1.5)
    before = computed(toy)
    assert 2 <= len(before) < 6
    q = _sweep_process(toy, path)
    out, _ = q.communicate(timeout=120)
    assert q.returncode == 0, out
    after = computed(toy)
    assert sorted(after) == sorted(set(after)) and len(after) == 6, after  # each cell computed once
    assert f"| all | {6 - len(before)} | 0 | {len(before)} |" in out or len(stored_docs(toy["results"])) == 6
    assert len(stored_docs(toy["results"])) == 6
    no_temp_files(toy["results"])


@pytest.mark.slow  # spawns workers that import the harness (~10 s each on 2 loaded cores)
def test_two_concurrent_sweeps_compute_every_cell_once(toy):
    path = grid(toy, SLOW)
    procs = [_sweep_process(toy, path, "--max-parallel", "1") for _ in range(2)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    done = computed(toy)
    assert len(done) == 6 and len(set(done)) == 6, done
    assert len(stored_docs(toy["results"])) == 6


def test_unknown_executor_and_bad_parallelism_are_refused(toy, capsys):
    path = grid(toy, EIGHT)
    assert main(["sweep", str(path), "--max-parallel", "0", "--results", str(toy["results"])]) == 2
    assert "--max-parallel must be >= 1" in capsys.readouterr().err
    with pytest.raises(HarnessError, match="choose local or ray"):
        run_sweep(plan_sweep(path, toy["results"]), "slurm", progress=False)


def test_status_shows_a_cell_another_sweep_holds_as_running(toy, capsys):
    import multiprocessing as mp

    from harness.locks import run_lock
    from harness.sweep import sweep_lock_id

    path = grid(toy, EIGHT)
    cell = plan_sweep(path, toy["results"]).cells[0]
    ctx = mp.get_context("fork")
    held, release = ctx.Event(), ctx.Event()

    def hold() -> None:
        with run_lock(toy["results"], sweep_lock_id(cell.run_id)):
            held.set()
            release.wait(30)

    p = ctx.Process(target=hold)
    p.start()
    try:
        assert held.wait(10)
        assert main(["sweep", str(path), "--status", "--results", str(toy["results"])]) == 0
        out = capsys.readouterr().out
        assert out.count("| running |") == 1 and f"| {cell.run_id} | running |" in out and "1 running now" in out
    finally:
        release.set()
        p.join(10)
    assert computed(toy) == []
