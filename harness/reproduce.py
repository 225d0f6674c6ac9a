"""`harness reproduce`: re-run stored cells from their stored request and grade every metric.

Learned from Pyserini's two-click reproductions: a number on the board is only as good as the
proof that the code still makes it. Each selected result is re-run from what it stores (method,
params, model, task id, limit, device, dtype) through :func:`harness.runner.execute` into a scratch
store that is deleted afterwards, so the committed store is never written, and the command keeps
working when run ids change (the re-run's id is logged beside the stored one).

Each metric gets a grade (the policy is ``harness/tolerances.yaml``, documented in the README):

- ``OK``: equal within float noise (``|got - stored| <= max(1e-12, 1e-9 * |stored|)``);
- ``OKish``: within the written tolerance of the metric's kind (timings can only be OKish);
- ``FAIL``: anything else; expected and got are printed.

``--references`` grades stored results against the published figures their task files carry
(``references:``); nothing is re-run. Every grade is appended, with its environment, to
``<results>/reproductions.jsonl`` (one JSON line per run id and metric; earlier lines are never
rewritten). The site shows each cell's last grade.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import config
from harness.errors import HarnessError
from harness.results import Result, ResultStore, StoredResult
from harness.yamlfile import read_yaml

DEFAULT_TOLERANCES = Path(__file__).parent / "tolerances.yaml"
LOG_NAME = "reproductions.jsonl"
GRADES = ("OK", "OKish", "FAIL")
NOISE_REL, NOISE_ABS = 1e-9, 1e-12


# ---------------------------------------------------------------------------------------------
# The tolerance policy


NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Tolerance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    abs: NonNegative = 0.0
    rel: NonNegative = 0.0
    exact: bool = True  # False: a measurement (timings), never graded OK
    note: str = ""

    def bound(self, expected: float) -> float:
        return max(self.abs, self.rel * abs(expected))


class TolerancePolicy(BaseModel):
    """Kinds of metrics with their tolerance; metric-name patterns mapped to kinds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kinds: dict[str, Tolerance]
    metrics: dict[str, str] = Field(default_factory=dict)
    default: str

    def kind_of(self, metric: str) -> tuple[str, Tolerance]:
        name = next((kind for pat, kind in self.metrics.items() if fnmatch.fnmatchcase(metric, pat)), self.default)
        return name, self.kinds[name]


def load_policy(path: Path | str | None = None) -> TolerancePolicy:
    """The tolerance policy of ``path`` (default: the shipped one); errors name the file and field."""
    path = Path(path) if path is not None else DEFAULT_TOLERANCES
    raw = read_yaml(path, "tolerance file")
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: a tolerance file must be a mapping with kinds, metrics and default")
    try:
        policy = TolerancePolicy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise HarnessError(f"{path}: field {where!r}: {msg}") from None
    known = ", ".join(sorted(policy.kinds))
    for pattern, kind in policy.metrics.items():
        if kind not in policy.kinds:
            raise HarnessError(f"{path}: field 'metrics.{pattern}': unknown metric kind {kind!r} (kinds: {known})")
    if policy.default not in policy.kinds:
        raise HarnessError(f"{path}: field 'default': unknown metric kind {policy.default!r} (kinds: {known})")
    return policy


# ---------------------------------------------------------------------------------------------
# Grading


@dataclass
class Grade:
    """One graded figure: a metric of a stored run against a re-run or a published reference."""

    run_id: str
    task: str
    method: str
    metric: str
    grade: str
    expected: Any
    got: Any
    kind: str = ""
    tolerance: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    run_id_now: str | None = None  # the re-run's id, when it differs from the stored one
    reference: dict[str, Any] | None = None

    def line(self, stamp: dict[str, Any]) -> dict[str, Any]:
        out = {"date": stamp["date"], "session": stamp["session"],
               "check": "reference" if self.reference else "rerun", "run_id": self.run_id, "task": self.task,
               "method": self.method, "metric": self.metric, "grade": self.grade, "expected": self.expected,
               "got": self.got, "kind": self.kind, "tolerance": self.tolerance, "note": self.note}
        if self.run_id_now:
            out["run_id_now"] = self.run_id_now
        if self.reference:
            out["reference"] = self.reference
        return out | {"environment": stamp["environment"]}


def within_noise(expected: float, got: float) -> bool:
    return abs(got - expected) <= max(NOISE_ABS, NOISE_REL * abs(expected))


def grade_value(expected: float, got: float | None, tol: Tolerance) -> str:
    """OK / OKish / FAIL of one re-run figure under a tolerance."""
    if got is None or not math.isfinite(float(got)):
        return "FAIL"
    if tol.exact and within_noise(expected, got):
        return "OK"
    return "OKish" if abs(got - expected) <= tol.bound(expected) + NOISE_ABS else "FAIL"


def published_precision(value: float) -> float:
    """Half a unit of the last digit a published figure was given with (0.5058 -> 5e-5)."""
    text = repr(float(value))
    if "e" in text:
        return NOISE_ABS
    decimals = len(text.split(".")[1].rstrip("0")) if "." in text else 0
    return 0.5 * 10.0 ** -decimals


def worst(grades: list[str]) -> str:
    return max(grades, key=GRADES.index) if grades else "OK"


# ---------------------------------------------------------------------------------------------
# Re-running one stored cell


def request_of(res: Result, results_dir: Path):
    """The RunRequest a stored result was made from (typed params are accepted as they are)."""
    from harness.runner import RunRequest

    protocol = res.task.protocol
    device = protocol.get("device") or (res.provenance.device or {}).get("type") or "cpu"
    dtype = protocol.get("dtype") or "float32"
    return RunRequest(method=res.method.name, params=dict(res.method.params), model=res.model.id,
                      tasks=[res.task.id], limit=protocol.get("limit"), device=str(device), dtype=str(dtype),
                      results_dir=results_dir, force=True, progress=False,
                      setup_cache=False)  # a reproduction recomputes everything, the pruning included


def _graded_metrics(res: Result, policy: TolerancePolicy) -> tuple[dict[str, tuple[str, Tolerance]], str]:
    """The metrics that are graded, and a note on what is left out (random weights: quality)."""
    kinds = {m: policy.kind_of(m) for m in res.metrics}
    if not res.random_weights:
        return kinds, ""
    kept = {m: kt for m, kt in kinds.items() if not kt[1].exact}
    skipped = sorted(set(kinds) - set(kept))
    note = "random weights: only timing/memory metrics are graded (OKish at best)"
    return kept, note + (f"; not graded: {', '.join(skipped)}" if skipped else "")


def _failed_cell(stored: StoredResult, doc: dict[str, Any], base: dict[str, Any]) -> list[Grade]:
    """A stored failure is graded on its outcome: failing again with the same error type is OK."""
    old = stored.result.error.type if stored.result.error else "?"
    if doc.get("status") == "ok":
        return [Grade(**base, metric="status", grade="FAIL", expected=f"failed ({old})", got="ok",
                      note="the stored failure no longer happens: re-run the cell and replace it")]
    new = (doc.get("error") or {}).get("type", "?")
    return [Grade(**base, metric="status", grade="OK" if new == old else "OKish", expected=f"failed ({old})",
                  got=f"failed ({new})", note="a failed cell is graded on its status only")]


def identity_change(stored: dict[str, Any], now: dict[str, Any]) -> str:
    """Why a re-run got another run id than the stored cell: what in its identity changed (the
    method's version, the task's definition, the model's content), so a difference in the figures
    is read as a change of what was computed, not as a failure to reproduce it."""
    def get(doc: dict[str, Any], *path: str) -> Any:
        for key in path:
            doc = doc.get(key) if isinstance(doc, dict) else None
        return doc

    what = []
    for label, path, default in (("method version", ("method", "version"), 1),
                                 ("task definition", ("task", "definition_digest"), None),
                                 ("model digest", ("model", "digest"), None)):
        a, b = get(stored, *path), get(now, *path)
        a, b = default if a is None else a, default if b is None else b
        if a != b:
            shown = (f"{a} -> {b}" if label == "method version"
                     else f"{str(a)[:19]} -> {str(b)[:19]}")
            what.append(f"{label} {shown}")
    if not what:
        return "the re-run has another run id"
    return ("the re-run computed something else: " + ", ".join(what)
            + " (differences are expected; the stored cell is of the older definition)")


def reproduce_cell(stored: StoredResult, policy: TolerancePolicy, scratch: Path) -> list[Grade]:
    """Re-run one stored cell into ``scratch`` and grade each of its metrics."""
    from harness.runner import execute

    res = stored.result
    try:
        outcomes = execute(request_of(res, scratch))
    except HarnessError as exc:  # e.g. a CUDA cell on a machine without CUDA: not reproduced here
        return [Grade(run_id=res.run_id, task=res.task.id, method=res.method.name, metric="(re-run)",
                      grade="FAIL", expected="a re-run", got="refused", note=f"cannot re-run here: {exc}")]
    doc = (outcomes[0].doc if outcomes else None) or {}
    doc = doc.to_dict() if isinstance(doc, Result) else doc
    now = doc.get("run_id")
    base = {"run_id": res.run_id, "task": res.task.id, "method": res.method.name,
            "run_id_now": now if now and now != res.run_id else None}
    if not res.ok:
        return _failed_cell(stored, doc, base)
    graded, note = _graded_metrics(res, policy)
    changed = identity_change(res.to_dict(), doc) if base["run_id_now"] else ""
    note = "; ".join(x for x in (changed, note) if x)
    if doc.get("status") != "ok":
        err = (doc.get("error") or {}).get("message", "")[:200]
        return [Grade(**base, metric=m, grade="FAIL", expected=res.value(m), got=None, kind=k,
                      note=f"the re-run failed: {err}") for m, (k, _t) in graded.items()]
    grades = []
    for metric, (kind, tol) in graded.items():
        expected = res.value(metric)
        got = ((doc.get("metrics") or {}).get(metric) or {}).get("value")
        grades.append(Grade(**base, metric=metric, grade=grade_value(float(expected), got, tol), expected=expected,
                            got=got, kind=kind, tolerance=tol.model_dump(exclude={"note"}), note=note))
    return grades


# ---------------------------------------------------------------------------------------------
# Published references


def reference_matches(ref: Any, res: Result) -> bool:
    """Whether a stored result ran the condition a reference was published for (full protocol only)."""
    cond = ref.condition
    params = res.method.params
    return (res.ok and not res.random_weights and res.method.name == cond.method and res.model.id == cond.model
            and res.task.protocol.get("limit") is None
            and all(k in params and params[k] == v for k, v in cond.params.items()))


def reference_dict(ref: Any) -> dict[str, Any]:
    return ref.model_dump(mode="json")


def grade_reference(ref: Any, stored: StoredResult) -> Grade:
    res = stored.result
    got = res.value(ref.metric)
    diff = None if got is None else abs(float(got) - ref.value)
    if diff is None:
        grade = "FAIL"
    elif diff <= published_precision(ref.value) + NOISE_ABS:
        grade = "OK"
    else:
        grade = "OKish" if diff <= ref.tolerance + NOISE_ABS else "FAIL"
    return Grade(run_id=res.run_id, task=res.task.id, method=res.method.name, metric=ref.metric, grade=grade,
                 expected=ref.value, got=got, kind="reference",
                 tolerance={"abs": ref.tolerance, "published_precision": published_precision(ref.value)},
                 note=ref.note, reference=reference_dict(ref))


def grade_references(results: list[StoredResult], tasks: dict[str, Any]) -> list[Grade]:
    """Every (reference, matching stored result) pair of the given tasks, graded."""
    out = []
    for task_id in sorted(tasks):
        for ref in getattr(tasks[task_id], "references", ()) or ():
            for stored in results:
                if stored.result.task.id == task_id and reference_matches(ref, stored.result):
                    out.append(grade_reference(ref, stored))
    return out


# ---------------------------------------------------------------------------------------------
# The log


def environment(device: str = "cpu") -> dict[str, Any]:
    """What a grade was made with: harness version and commit, python and torch, the device."""
    import platform

    from harness import __version__, provenance

    commit, dirty = provenance.git_state()
    return {"harness_version": __version__, "git_commit": commit, "git_dirty": dirty,
            "python": platform.python_version(), "torch": provenance.package_versions(("torch",)).get("torch"),
            "device": provenance.device_info(device)}


def append_log(path: Path, lines: list[dict[str, Any]]) -> None:
    """Append the lines in one O_APPEND write: earlier lines are never rewritten, and two
    concurrent writers never interleave within a line batch."""
    if not lines:
        return
    data = "".join(json.dumps(line, sort_keys=True, ensure_ascii=False, default=str) + "\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def check_log_writable(path: Path) -> None:
    target = path if path.exists() else path.parent
    if not (target.is_dir() or path.exists()) or not os.access(target, os.W_OK):
        raise HarnessError(f"{path}: the reproduction log cannot be written (use --no-log to grade without it)")


def read_log(results_dir: Path | str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The log's lines, and (file, problem) for lines that do not parse (they are skipped)."""
    path = Path(results_dir) / LOG_NAME
    if not path.is_file():
        return [], []
    lines, problems = [], []
    for i, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            problems.append((LOG_NAME, f"line {i}: not valid JSON"))
            continue
        if not isinstance(line, dict) or not {"run_id", "metric", "grade", "date"} <= set(line):
            problems.append((LOG_NAME, f"line {i}: not a reproduction record (needs run_id, metric, grade, date)"))
            continue
        lines.append(line)
    return lines, problems


def last_grades(lines: list[dict[str, Any]], check: str = "rerun") -> dict[str, dict[str, Any]]:
    """run id -> its last graded session of ``check``: {grade (the worst), date, metrics}."""
    sessions: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.get("check", "rerun") != check:
            continue
        key = (line.get("date", ""), line.get("session", ""))
        cur = sessions.get(line["run_id"])
        if cur is None or key > cur["key"]:
            cur = sessions[line["run_id"]] = {"key": key, "date": line["date"], "metrics": []}
        if key == cur["key"]:
            cur["metrics"].append({k: line.get(k) for k in ("metric", "grade", "expected", "got", "note", "kind")})
    return {rid: {"grade": worst([m["grade"] for m in s["metrics"]]), "date": s["date"], "metrics": s["metrics"]}
            for rid, s in sessions.items()}


# ---------------------------------------------------------------------------------------------
# The command


def _by_id(store: ResultStore, rid: str) -> list[StoredResult]:
    """Stored results whose file name starts with ``rid`` (read and checked like a scan)."""
    from harness.results import check_artifacts

    out = []
    for path in sorted(store.root.glob(f"*/{rid.lower()}*.json")):
        if path.name.startswith(".") or not path.is_file():
            continue
        stored = StoredResult(path, store.load(path))
        stored.items()
        check_artifacts(path, stored.result)
        out.append(stored)
    return out


def select(store: ResultStore, run_ids: list[str], all_: bool, task: str | None,
           method: str | None = None) -> list[StoredResult]:
    """The stored cells to re-run: every one, those of a task, or those named (by id or prefix);
    ``method`` narrows --all / --task to one method (a selection that survives run id changes)."""
    if all_ or task:
        good, bad = store.scan()
        for _path, msg in bad:
            print(f"skipped (invalid): {msg}")
        found = [s for s in good if (all_ or s.result.task.id == task)
                 and (method is None or s.result.method.name == method)]
        if not found:
            what = " ".join(x for x in (f"--task {task}" if task else "--all", f"--method {method}" if method else "") if x)
            raise HarnessError(f"{what}: no valid stored result matches in {store.root}")
        return found
    out = []
    for rid in run_ids:
        matches = _by_id(store, rid)
        if not matches:
            raise HarnessError(f"no stored result with run id {rid!r} in {store.root}")
        if len({s.run_id for s in matches}) > 1:
            raise HarnessError(f"run id prefix {rid!r} is ambiguous: {', '.join(sorted(s.run_id for s in matches))}")
        out += matches
    return out


def _show(g: Grade) -> str:
    def num(v: Any) -> str:
        return f"{v:.6g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)

    text = f"{g.grade:5s}  {g.run_id}  {g.task:14s} {g.method:14s} {g.metric:22s}"
    if g.grade != "OK" or g.reference:
        text += f" expected {num(g.expected)} got {num(g.got)}"
    if g.run_id_now:
        text += f" (re-run id {g.run_id_now})"
    note = " ".join(g.note.split())
    shown = note if g.grade == "FAIL" else (note if g.run_id_now and "computed something else" in note else "")
    return text + (f"  [{shown[:200]}{'…' if len(shown) > 200 else ''}]" if shown else "")


def run_from_args(args: argparse.Namespace) -> int:
    results_dir = Path(args.results)
    policy = load_policy(args.tolerance)  # bad policy fails before any work
    if not (args.run_ids or args.all or args.task or args.references):
        raise HarnessError("reproduce: give run ids, --all, --task T or --references")
    store = ResultStore(results_dir)
    grades: list[Grade] = []
    if args.method and not (args.all or args.task):
        raise HarnessError("--method narrows --all or --task; give one of them")
    chosen = select(store, args.run_ids, args.all, args.task, args.method) if (args.run_ids or args.all or args.task) else []
    if not args.no_log:
        check_log_writable(results_dir / LOG_NAME)  # before any re-run: the grades must be kept
    if args.references:
        from harness.tasks import load_tasks

        good, bad = store.scan()
        for _path, msg in bad:
            print(f"skipped (invalid): {msg}")
        grades += grade_references(good, dict(load_tasks()))
    if chosen:
        with tempfile.TemporaryDirectory(prefix="harness-reproduce-") as scratch:
            for stored in chosen:
                grades += reproduce_cell(stored, policy, Path(scratch) / stored.run_id)
    from harness import provenance

    devices = sorted({str(s.result.task.protocol.get("device") or (s.result.provenance.device or {}).get("type") or "cpu")
                      for s in chosen}) or ["cpu"]
    stamp = {"date": provenance.utc_now(), "session": os.urandom(6).hex(), "environment": environment(devices[-1])}
    for g in grades:
        print(_show(g))
    if not args.no_log:
        append_log(results_dir / LOG_NAME, [g.line(stamp) for g in grades])
    counts = {k: sum(g.grade == k for g in grades) for k in GRADES}
    print(", ".join(f"{n} {k}" for k, n in counts.items()) + ("" if args.no_log else f"; logged to {results_dir / LOG_NAME}"))
    return 1 if counts["FAIL"] else 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="run ids (or unique prefixes) to re-run")
    p.add_argument("--all", action="store_true", help="re-run every stored cell")
    p.add_argument("--task", help="re-run every stored cell of this task")
    p.add_argument("--method", help="with --all or --task: only the cells of this method")
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--tolerance", help=f"tolerance policy YAML (default: {DEFAULT_TOLERANCES.name} shipped with harness)")
    p.add_argument("--references", action="store_true",
                   help="grade stored results against the published references of their task files (no re-run)")
    p.add_argument("--no-log", action="store_true", help=f"do not append to <results>/{LOG_NAME}")
