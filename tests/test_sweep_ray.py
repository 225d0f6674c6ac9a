"""`harness sweep --executor ray` on a real local Ray cluster (loopback, 2 CPUs), bounded in time.

The cluster is started once for the module with ``ray start --head --block`` in its own process
group, and that group is ended by its id afterwards (never ``ray stop``, which would end every Ray
process on the machine). Workers inherit the toy plug-in's path and task directory from it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from harness.cli import main  # noqa: E402
from test_sweep import EIGHT, PLUGIN, REPO, TOY_TASKS, no_temp_files, stored_docs  # noqa: E402

RAY_BIN = Path(os.sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-toy")
    (root / "plugin").mkdir()
    (root / "plugin" / "sweep_toy_plugin.py").write_text(PLUGIN)
    (root / "tasks").mkdir()
    for t in TOY_TASKS:
        (root / "tasks" / f"{t}.yaml").write_text(
            f"id: {t}\nversion: 1\nkind: sweep-toy\nmetrics: [{{name: score, higher_is_better: true, primary: true}}]\n")
    (root / "log").mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(root / "plugin"), str(REPO)]), "HARNESS_TASKS_DIR": str(root / "tasks"),
           "SWEEP_TOY_LOG": str(root / "log"),
           # loopback-only test clusters: no token (Ray 2.60 turns token auth on once a past
           # instance left ~/.ray/auth_token, and the cluster and this driver must then agree)
           "RAY_AUTH_MODE": "disabled"}
    return root, env


@pytest.fixture(scope="module")
def cluster(toy_env):
    """A head node on 127.0.0.1 with 2 CPUs; its address."""
    if not RAY_BIN.is_file():
        pytest.skip("the ray command is not installed next to this Python")
    _root, env = toy_env
    port = _free_port()
    proc = subprocess.Popen(
        [str(RAY_BIN), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--include-dashboard=false", "--num-cpus", "2", "--disable-usage-stats", "--block"],
        env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the Ray head did not come up within 120 s")
                time.sleep(0.5)
        time.sleep(3)  # the GCS listens before the raylet has registered
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture started, by its id
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def toy(toy_env, monkeypatch, tmp_path):
    root, env = toy_env
    for f in (root / "log").iterdir():
        f.unlink()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(root / "plugin"))
    return {"dir": tmp_path, "results": tmp_path / "results", "log": root / "log"}


def _grid(toy, text: str) -> Path:
    path = toy["dir"] / "grid.yaml"
    path.write_text("imports: [sweep_toy_plugin]\n" + textwrap.dedent(text))
    return path


def test_an_address_with_no_cluster_fails_fast(toy, capsys):
    path = _grid(toy, EIGHT)
    t0 = time.monotonic()
    rc = main(["sweep", str(path), "--executor", "ray", "--address", f"127.0.0.1:{_free_port()}",
               "--results", str(toy["results"])])
    assert rc == 2 and time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "no Ray cluster there" in err and "ray start --head" in err
    assert not toy["results"].exists() or not list(toy["results"].rglob("*.json"))


@pytest.mark.slow
def test_ray_runs_eight_cells_identical_to_the_local_executor(toy, cluster, capsys):
    path = _grid(toy, EIGHT)
    ray_results, local_results = toy["dir"] / "ray", toy["dir"] / "local"
    assert main(["sweep", str(path), "--executor", "ray", "--address", cluster, "--results", str(ray_results),
                 "--no-progress"]) == 0, capsys.readouterr()
    assert "| all | 8 | 0 | 0 |" in capsys.readouterr().out
    assert main(["sweep", str(path), "--max-parallel", "2", "--results", str(local_results), "--no-progress"]) == 0
    on_ray, local = stored_docs(ray_results), stored_docs(local_results)
    assert len(on_ray) == 8 and sorted(on_ray) == sorted(local)  # the same run ids
    for rid, doc in on_ray.items():
        assert doc.ok and doc.metrics == local[rid].metrics and doc.items.sha256 == local[rid].items.sha256
    pids = {line.split()[0] for line in (toy["log"] / "computed.log").read_text().splitlines()}
    assert len(pids) >= 3  # 2 local workers plus at least one Ray worker


@pytest.mark.slow
def test_ray_retries_a_killed_worker_and_leaves_no_partial_file(toy, cluster, capsys):
    path = _grid(toy, """\
        id: kill
        cells:
          - {method: toy, params: {x: 1, sleep: 4}, tasks: [toy-a]}
          - {method: toy, params: {x: [2, 3]}, tasks: [toy-a, toy-b]}
        """)

    def killer() -> None:
        pid_file = toy["log"] / "pid-toy-a-1.0"
        deadline = time.monotonic() + 120
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the Ray worker process running the cell

    t = threading.Thread(target=killer)
    t.start()
    rc = main(["sweep", str(path), "--executor", "ray", "--address", cluster, "--results", str(toy["results"]),
               "--no-progress"])
    t.join()
    assert rc == 0, capsys.readouterr()
    docs = stored_docs(toy["results"])
    assert len(docs) == 5 and all(d.ok for d in docs.values())
    log = (toy["log"] / "computed.log").read_text().split("\n")
    assert sum(1 for line in log if line.endswith("toy-a 1.0")) == 2  # killed once, retried once
    no_temp_files(toy["results"])


def test_auto_with_no_cluster_fails_fast(toy, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_free_port()}")  # what `auto` finds first
    path = _grid(toy, EIGHT)
    t0 = time.monotonic()
    rc = main(["sweep", str(path), "--executor", "ray", "--address", "auto", "--results", str(toy["results"])])
    assert rc == 2 and time.monotonic() - t0 < 30
    assert "no Ray cluster there" in capsys.readouterr().err
