"""`harness check-submission MODULE_OR_PATH`: what a reviewer would check, before the pull request.

The target is a module name (``methods.pruning.mine``), an adapter file (``methods/pruning/mine.py``),
or a package directory (with ``pyproject.toml`` declaring the ``harness.methods`` entry point). The
checks, each reported PASS, FAIL or SKIP with the reason:

1. import: the module imports (and so its ``@register_method`` decorators run);
2. registration: the method names it registered and their family (and, for a package, the entry
   point that registers it once installed);
3. params: a frozen ``MethodParams`` dataclass, every field with a default, defaults valid, a
   ``check()`` where numeric fields have ranges; no override of the family's fixed template
   methods (``final_methods``: a pruning adapter implements ``_prune``, not ``prune``);
4. docstring: the class docstring's first line is a one-line summary (it is the leaderboard's);
5. tests: the submission's test files, run by pytest in a subprocess with a time limit;
6. task: one cheap real task per family, run by ``harness run`` in a subprocess into a temporary
   results directory, and the stored result validated (schema, per-item sidecar, artifacts) with its
   provenance (data pinned by sha256, a reproduce command naming the method, the module recorded).

Exit status (of the CLI): non-zero on any FAIL.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness import config
from harness.errors import HarnessError
from harness.kinds import CheapTask

Status = Literal["PASS", "FAIL", "SKIP"]
SUMMARY_MAX = 120  # characters of a docstring's first line (the leaderboard's method summary)


def cheap_task(family: str) -> CheapTask | None:
    """The family's cheap real task (its base class's ``cheap_task``); None when it names none."""
    from harness.registry import FAMILIES

    return getattr(FAMILIES.get(family), "cheap_task", None) if family in FAMILIES else None


@dataclass
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class SubmissionReport:
    target: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str) -> Check:
        self.checks.append(Check(name, status, detail))
        return self.checks[-1]

    @property
    def ok(self) -> bool:
        return not any(c.status == "FAIL" for c in self.checks)

    def text(self) -> str:
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"check-submission {self.target}"]
        lines += [f"{c.status:4s}  {c.name.ljust(width)}  {c.detail}" for c in self.checks]
        fails = sum(c.status == "FAIL" for c in self.checks)
        lines.append("all checks passed" if not fails else f"{fails} check(s) failed")
        return "\n".join(lines)


@dataclass
class Target:
    """What to import and test: module names, files to import under a module name (an adapter in a
    ``methods/<family>/`` tree outside this checkout), a folder for sys.path, the test files."""

    modules: list[str]
    tests: list[Path]
    cwd: Path
    path: list[Path] = field(default_factory=list)
    aliases: dict[str, Path] = field(default_factory=dict)
    entry_points: dict[str, str] | None = None  # name -> value, for a package


# ------------------------------------------------------------------------------------- resolve


def _tests_for(stem: str, folders: list[Path]) -> list[Path]:
    names = (f"test_method_{stem}.py", f"test_{stem}.py")
    return [f / n for f in folders for n in names if (f / n).is_file()]


def _package_target(folder: Path) -> Target:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        raise HarnessError(f"{folder}: not a package directory (no pyproject.toml)")
    try:
        meta = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{pyproject}: not valid TOML ({exc})") from None
    eps = (meta.get("project", {}).get("entry-points", {}) or {}).get("harness.methods") or {}
    modules = sorted({str(v).split(":")[0].strip() for v in eps.values()})
    tests = sorted((folder / "tests").glob("test_*.py"))
    return Target(modules, tests, folder, path=[folder], entry_points=dict(eps))


def _file_target(path: Path) -> Target:
    path = path.resolve()
    stem = path.stem
    if path.parent.parent.name == "methods":  # <root>/methods/<family>/<stem>.py
        root = path.parents[2]
        module = f"methods.{path.parent.name}.{stem}"
        aliases = {} if root == config.REPO_ROOT.resolve() else {module: path}
        return Target([module], _tests_for(stem, [root / "tests"]), root, aliases=aliases)
    folders = [path.parent, path.parent / "tests", path.parent.parent / "tests"]
    return Target([stem], _tests_for(stem, folders), path.parent, path=[path.parent])


def _module_target(name: str) -> Target:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        raise HarnessError(f"cannot find module {name!r}: {exc}") from None
    if spec is None or not spec.origin:
        raise HarnessError(f"cannot find module {name!r} (not a file path, package directory or importable module)")
    origin = Path(spec.origin).resolve()
    stem = name.rsplit(".", 1)[-1]
    folders = [config.REPO_ROOT / "tests"] if name.startswith("methods.") else []
    folders += [origin.parent / "tests", origin.parent.parent / "tests"]
    return Target([name], _tests_for(stem, folders), config.REPO_ROOT if name.startswith("methods.") else origin.parent)


def resolve_target(target: str) -> Target:
    p = Path(target)
    if p.is_dir():
        return _package_target(p.resolve())
    if target.endswith(".py"):
        if not p.is_file():
            raise HarnessError(f"{target}: no such file")
        return _file_target(p)
    return _module_target(target)


# ------------------------------------------------------------------------------------- import


def import_target(t: Target) -> None:
    """Import the target's modules in this process (their decorators register the methods)."""
    for folder in t.path:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    for name, path in t.aliases.items():
        if name in sys.modules:
            continue
        importlib.import_module(name.rsplit(".", 1)[0])  # the parent package (methods.<family>)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    for name in t.modules:
        if name not in t.aliases:
            importlib.import_module(name)


def registered(t: Target) -> list[Any]:
    """The MethodInfo of every method the target's modules registered."""
    from harness.registry import METHODS

    return [info for _, info in METHODS.items() if info.module in t.modules]


# ------------------------------------------------------------------------------------- checks


def _check_registration(t: Target, infos: list[Any], report: SubmissionReport) -> None:
    if not infos:
        report.add("registration", "FAIL", f"{', '.join(t.modules)} registered no method "
                                           "(decorate the class with @register_method(name, family, Params))")
        return
    report.add("registration", "PASS", ", ".join(f"{i.name} ({i.family}, {i.cls.__qualname__})" for i in infos))
    if t.entry_points is None:
        return
    if not t.entry_points:
        report.add("entry point", "FAIL", 'pyproject.toml declares no [project.entry-points."harness.methods"]')
    else:
        report.add("entry point", "PASS", "harness.methods: " + ", ".join(f"{k} = {v}" for k, v in t.entry_points.items()))


def _numeric_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = typing.get_args(tp) or (tp,)
        if any(a in (int, float) for a in args):
            out.append(f.name)
    return out


def params_problems(info: Any) -> list[str]:
    """Why a method's params class is not a proper typed, checked MethodParams (empty: fine)."""
    from harness.params import MethodParams

    cls = info.params_cls
    if not (dataclasses.is_dataclass(cls) and issubclass(cls, MethodParams)):
        return [f"{cls.__qualname__} is not a MethodParams dataclass"]
    problems = []
    if not cls.__dataclass_params__.frozen:
        problems.append(f"{cls.__qualname__} is not frozen (use @dataclass(frozen=True))")
    no_default = [f.name for f in dataclasses.fields(cls)
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if no_default:
        problems.append(f"fields without a default: {', '.join(no_default)}")
    else:
        try:
            cls()
        except Exception as exc:  # noqa: BLE001 - any failure of the defaults is the finding
            problems.append(f"the defaults are invalid: {exc}")
    numeric = _numeric_fields(cls)
    if numeric and cls.check is MethodParams.check:
        problems.append(f"numeric parameters ({', '.join(numeric)}) but no check() of their ranges")
    overridden = [m for m in getattr(info.cls, "final_methods", ()) if m in vars(info.cls)]
    if overridden:
        problems.append(f"{info.family} adapters must not override {', '.join(overridden)} (the family's fixed "
                        "template: implement the hook it calls, see the family's base class)")
    return problems


def docstring_problem(info: Any) -> str | None:
    doc = (info.cls.__doc__ or "").strip()
    if not doc:
        return f"{info.cls.__qualname__} has no docstring (its first line is the leaderboard summary)"
    first = doc.splitlines()[0].strip()
    if len(first) > SUMMARY_MAX:
        return f"first line is {len(first)} characters; keep the summary under {SUMMARY_MAX}"
    return None


_BOOT = """
import importlib, importlib.util, json, sys
cfg = json.loads(sys.argv[1])
for p in cfg["path"]:
    sys.path.insert(0, p)
for name, path in cfg["aliases"].items():
    importlib.import_module(name.rsplit(".", 1)[0])
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
for name in cfg["modules"]:
    importlib.import_module(name)
sys.argv = [cfg["prog"], *sys.argv[2:]]
if cfg["prog"] == "pytest":
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_booted(t: Target, prog: str, args: list[str], timeout_s: int) -> subprocess.CompletedProcess[str]:
    """``pytest ARGS`` or ``harness ARGS`` in a subprocess that first imports the target (so a
    method from an uninstalled package or another checkout is registered there too)."""
    cfg = {"path": [str(p) for p in t.path], "aliases": {k: str(v) for k, v in t.aliases.items()},
           "modules": [m for m in t.modules if m not in t.aliases], "prog": prog}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(config.REPO_ROOT), *(p for p in [env.get("PYTHONPATH")] if p)])
    return subprocess.run([sys.executable, "-c", _BOOT, json.dumps(cfg), *args], cwd=t.cwd, env=env,
                          capture_output=True, text=True, timeout=timeout_s)


def _tail(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def _check_tests(t: Target, report: SubmissionReport, timeout_s: int) -> None:
    if not t.tests:
        report.add("tests", "FAIL", "no test file found (tests/test_method_<module>.py, or name it with --tests FILE)")
        return
    args = ["-q", "-rfE", "-p", "no:cacheprovider", "-m", "not slow", *map(str, t.tests)]
    try:
        proc = run_booted(t, "pytest", args, timeout_s)
    except subprocess.TimeoutExpired:
        report.add("tests", "FAIL", f"{', '.join(p.name for p in t.tests)} did not finish within {timeout_s} s")
        return
    summary = _tail(proc.stdout, 1)
    if proc.returncode == 0:
        report.add("tests", "PASS", f"{', '.join(p.name for p in t.tests)}: {summary}")
    else:
        # the FAILED/ERROR lines name the tests (pytest's diffs above them are longer under CI=true)
        failed = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith(("FAILED ", "ERROR "))]
        detail = " | ".join(failed[:5] + [summary]) if failed else _tail(proc.stdout + proc.stderr)
        report.add("tests", "FAIL", f"pytest exit {proc.returncode}: {detail}")


def task_args(info: Any, cheap: CheapTask, results: Path) -> list[str]:
    """The `harness run` arguments of the family's cheap task for this method."""
    names = {f.name for f in dataclasses.fields(info.params_cls)}
    params = ",".join(f"{k}={v}" for k, v in cheap.small_params.items() if k in names)
    args = ["run", "--method", info.name, "--task", cheap.task, "--limit", str(cheap.limit),
            "--results", str(results), "--no-progress"]
    if params:
        args += ["--params", params]
    if cheap.model:
        args += ["--model", cheap.model]
    return args


def validate_stored(results: Path, info: Any) -> tuple[Any, str]:
    """The one stored result of the run, validated, and a line on its provenance; HarnessError
    names what is wrong."""
    from harness.results import ResultStore, check_artifacts, load_items

    store = ResultStore(results)
    good, bad = store.scan()
    if bad:
        raise HarnessError(f"stored result invalid: {bad[0][1]}")
    if len(good) != 1:
        raise HarnessError(f"expected one stored result, found {len(good)}")
    stored = good[0]
    r = stored.result
    load_items(stored.path, r)
    check_artifacts(stored.path, r)
    if not r.ok:
        raise HarnessError(f"the run failed: {r.error.type}: {r.error.message}")
    p = r.provenance
    unpinned = [d.get("name", "?") for d in p.data if not isinstance(d.get("sha256"), str) or len(d["sha256"]) != 64]
    if unpinned:
        raise HarnessError(f"data without a sha256 in provenance: {', '.join(unpinned)}")
    if f"--method {info.name}" not in p.reproduce:
        raise HarnessError(f"provenance.reproduce does not name the method: {p.reproduce}")
    if r.method.module != info.module:
        raise HarnessError(f"method.module is {r.method.module!r}, expected {info.module!r}")
    primary = next((n for n, m in r.metrics.items() if m.primary), next(iter(r.metrics)))
    line = (f"{r.task.id} (limit {r.task.protocol.get('limit')}): {primary}={r.metrics[primary].value:.4f}; "
            f"{len(p.data)} data file(s) pinned by sha256; harness {p.harness_version}"
            f"{' @ ' + p.git_commit[:12] if p.git_commit else ''}")
    return r, line


def _check_task(t: Target, info: Any, report: SubmissionReport, timeout_s: int) -> None:
    name = f"task {info.name}"
    cheap = cheap_task(info.family)
    if cheap is None:
        report.add(name, "SKIP", f"no cheap task is known for family {info.family!r}")
        return
    if cheap.needs_data_dir and config.data_dir() is None:
        report.add(name, "SKIP", f"{cheap.task} needs the mirrored data (set HARNESS_DATA_DIR)")
        return
    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
        args = task_args(info, cheap, Path(tmp) / "results")
        try:
            proc = run_booted(t, "harness", args, timeout_s)
        except subprocess.TimeoutExpired:
            report.add(name, "FAIL", f"harness {' '.join(args[:7])} did not finish within {timeout_s} s")
            return
        if proc.returncode != 0:
            report.add(name, "FAIL", f"harness run exit {proc.returncode}: {_tail(proc.stdout + proc.stderr)}")
            return
        try:
            _result, line = validate_stored(Path(tmp) / "results", info)
        except HarnessError as exc:
            report.add(name, "FAIL", str(exc))
            return
    report.add(name, "PASS", line)


def check_submission(target: str, real_task: bool = True, timeout_s: int = 600,
                     tests: list[Path] | None = None) -> SubmissionReport:
    """Every check on ``target``; the report says what passed and why anything failed. ``tests``
    replaces the test files found by name (``tests/test_method_<module>.py``)."""
    report = SubmissionReport(target)
    try:
        t = resolve_target(target)
        if tests:
            t.tests = [Path(p).resolve() for p in tests]
        import_target(t)
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        report.add("import", "FAIL", f"{type(exc).__name__}: {exc}")
        return report
    if not t.modules:
        report.add("import", "FAIL", "no module to import (a package declares it in its harness.methods entry point)")
        _check_registration(t, [], report)
        return report
    report.add("import", "PASS", ", ".join(t.modules))
    infos = registered(t)
    _check_registration(t, infos, report)
    for info in infos:
        problems = params_problems(info)
        fields = ", ".join(f"{n}: {tp} = {d!r}" for n, tp, d in info.params_cls.describe()) or "(none)"
        report.add(f"params {info.name}", "FAIL" if problems else "PASS",
                   "; ".join(problems) if problems else f"{info.params_cls.__qualname__}({fields})")
        problem = docstring_problem(info)
        report.add(f"docstring {info.name}", "FAIL" if problem else "PASS", problem or repr(info.summary))
    _check_tests(t, report, timeout_s)
    for info in infos:
        if real_task:
            _check_task(t, info, report, timeout_s)
        else:
            report.add(f"task {info.name}", "SKIP", "--no-task")
    return report
