"""Grid files (``sweeps/*.yaml``): a declared sweep, validated on load, expanded into units of work.

A grid lists cell entries; each names a method, its parameter grid (a list value expands), the
models (absent for methods that take none), the tasks or suites, per-task limits, and the
resources one unit of work asks for. Expansion resolves every cell with the runner's own checks
(:func:`harness.runner.check_request`: names, typed params, task kinds, model, limits), so a bad
grid is refused, naming the file and field, before any cell runs.

Cells that prune the same model the same way (same method, semantic params, model, device, dtype)
are grouped into one unit: one :func:`harness.runner.execute` call with all their tasks, so the
model is loaded, calibrated and pruned once for all of them.
"""

from __future__ import annotations

import importlib
import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from harness.errors import HarnessError
from harness.results import canonical_json
from harness.runner import RunRequest, check_request
from harness.yamlfile import read_yaml

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
_STRICT = ConfigDict(extra="forbid", frozen=True)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


class SweepError(HarnessError):
    """A grid file that cannot be run (names the file and field)."""


def parse_memory(value: int | str | None) -> int | None:
    """``2GiB`` / ``512MB`` / ``1000000`` -> bytes."""
    if value is None or isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a memory size (e.g. 4GiB, 512MB, or bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


class Resources(BaseModel):
    """What one unit of work asks the executor for (Ray: ``num_cpus``, ``num_gpus``, ``memory``)."""

    model_config = _STRICT
    cpus: float = Field(default=1, ge=0)
    gpus: float = Field(default=0, ge=0)
    memory: int | str | None = None

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: int | str | None) -> int | str | None:
        if v is not None and (parse_memory(v) or 0) <= 0:
            raise ValueError("memory must be > 0")
        return v

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory)


class CellEntry(BaseModel):
    model_config = _STRICT
    method: StrictStr
    params: dict[str, Scalar | list[Scalar]] = {}
    models: list[StrictStr] | None = None
    tasks: list[StrictStr] = []
    suites: list[StrictStr] = []
    limit: StrictInt | None = Field(default=None, ge=1)
    limits: dict[str, StrictInt] = {}
    device: StrictStr | None = None
    dtype: StrictStr | None = None
    batch_size: StrictInt | None = Field(default=None, ge=1)
    resources: Resources | None = None


class GridFile(BaseModel):
    model_config = _STRICT
    id: StrictStr = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: StrictStr = ""
    description: StrictStr = ""
    imports: list[StrictStr] = []  # modules that register plug-in methods/kinds (imported by every worker)
    device: StrictStr = "cpu"
    dtype: StrictStr = "float32"
    retries: StrictInt = Field(default=2, ge=0)
    resources: Resources = Resources()
    cells: list[CellEntry]


# ---------------------------------------------------------------------------------------------
# YAML: a YAML 1.2 reading of numbers, so `pattern: 2:4` stays the string "2:4" (YAML 1.1 reads
# it as the base-60 integer 124) and `1e-3` is a float.


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_message(path: Path, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("list[", "function-"))))
    loc = tuple(p for p in loc if p not in ("bool", "int", "float", "str"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        model = GridFile if len(loc) == 1 else (CellEntry if loc[0] == "cells" and len(loc) == 3 else Resources)
        msg = f"unknown key (allowed: {', '.join(model.model_fields)})"
    elif err["type"] == "missing":
        msg = "required"
    return f"{path}: field {_where(loc) or '(top level)'!r}: {msg}"


def load_grid(path: Path | str) -> GridFile:
    path = Path(path)
    raw = read_yaml(path, "grid file", SweepError, loader=_Loader)
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a grid file is a mapping with 'id' and 'cells'")
    try:
        return GridFile.model_validate(raw)
    except ValidationError as exc:
        raise SweepError(_validation_message(path, exc)) from None


# ---------------------------------------------------------------------------------------------
# Expansion into cells and units


@dataclass
class Unit:
    """One unit of work: one ``execute()`` call (a method, its params and model, several tasks)."""

    request: RunRequest
    resources: Resources
    labels: list[str] = field(default_factory=list)  # the grid entries it came from ("cells[0]")
    identity: str = ""  # the method's canonical name and typed semantic params (what prunes the same)

    @property
    def key(self) -> tuple[Any, ...]:
        r = self.request
        return (self.identity, r.model, r.device, r.dtype, r.batch_size, self.resources)

    @property
    def label(self) -> str:
        r = self.request
        params = ",".join(f"{k}={v}" for k, v in sorted(r.params.items()))
        return " ".join(x for x in (r.method, params, r.model or "") if x)


def _param_text(v: Scalar) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _param_grid(entry: CellEntry) -> list[dict[str, str]]:
    keys = sorted(entry.params)
    values = [v if isinstance(v, list) else [v] for v in (entry.params[k] for k in keys)]
    return [{k: _param_text(v) for k, v in zip(keys, combo)} for combo in itertools.product(*values)]


def _suite_tasks(path: Path, where: str, names: list[str]) -> tuple[list[str], dict[str, int]]:
    """The member tasks of the named suites (and the limits they pin), through harness.suites."""
    if not names:
        return [], {}
    try:
        suitesmod = importlib.import_module("harness.suites")
    except ModuleNotFoundError:
        raise SweepError(f"{path}: field '{where}.suites': this installation has no suites (harness.suites); "
                         "list the tasks under 'tasks' instead") from None
    tasks: list[str] = []
    limits: dict[str, int] = {}
    for name in names:
        try:
            suite = suitesmod.get_suite(name)
        except HarnessError as exc:
            raise SweepError(f"{path}: field '{where}.suites': {exc}") from None
        for member in suite.members:
            tasks.append(member.task.id)
            pinned = getattr(member, "pinned", {}).get("limit")
            if pinned is not None:
                limits[member.task.id] = pinned
    return tasks, limits


def _entry_units(path: Path, grid: GridFile, i: int, entry: CellEntry) -> list[Unit]:
    where = f"cells[{i}]"
    suite_tasks, suite_limits = _suite_tasks(path, where, entry.suites)
    tasks = list(dict.fromkeys([*entry.tasks, *suite_tasks]))
    if not tasks:
        raise SweepError(f"{path}: field '{where}': no tasks (give 'tasks' or 'suites'): this entry has zero cells")
    for k, v in entry.params.items():
        if v == []:
            raise SweepError(f"{path}: field '{where}.params.{k}': an empty list: this entry has zero cells")
    if entry.models == []:
        raise SweepError(f"{path}: field '{where}.models': an empty list: this entry has zero cells")
    limits = {t: suite_limits[t] for t in tasks if t in suite_limits} | dict(entry.limits)
    bad = {t: n for t, n in limits.items() if n < 1}
    if bad:
        raise SweepError(f"{path}: field '{where}.limits': a limit must be >= 1 (got {bad})")
    unknown = sorted(set(limits) - set(tasks))
    if unknown:
        raise SweepError(f"{path}: field '{where}.limits': names tasks this entry does not run: {', '.join(unknown)}")
    out = []
    for params in _param_grid(entry):
        for model in entry.models or [None]:
            req = RunRequest(method=entry.method, params=params, model=model, tasks=tasks,
                             task_limits={t: limits.get(t, entry.limit) for t in tasks if limits.get(t, entry.limit)},
                             device=entry.device or grid.device, dtype=entry.dtype or grid.dtype,
                             batch_size=entry.batch_size, progress=False)
            try:
                info, typed, _tasks = check_request(req)
            except HarnessError as exc:
                shown = ",".join(f"{k}={v}" for k, v in params.items())
                raise SweepError(f"{path}: field '{where}' ({entry.method}{' ' + shown if shown else ''}"
                                 f"{' on ' + model if model else ''}): {exc}") from None
            identity = canonical_json([info.name, typed.semantic_dict()])
            out.append(Unit(req, entry.resources or grid.resources, [where], identity))
    return out


def expand(path: Path | str, grid: GridFile, results_dir: Path) -> list[Unit]:
    """The grid's units of work, every cell checked; cells sharing a pruned model grouped."""
    path = Path(path)
    import_plugins(grid.imports, path)
    units: dict[tuple[Any, ...], list[Unit]] = {}
    for i, entry in enumerate(grid.cells):
        for unit in _entry_units(path, grid, i, entry):
            unit.request.results_dir = results_dir
            _merge(units.setdefault(unit.key, []), unit)
    flat = [u for group in units.values() for u in group]
    if not flat:
        raise SweepError(f"{path}: the grid has zero cells ('cells' is empty)")
    return flat


def _merge(group: list[Unit], unit: Unit) -> None:
    """Add ``unit``'s tasks to the first unit of its group that does not run them yet (the same
    task under another limit is another cell, so it goes to another execute() call)."""
    for task in unit.request.tasks:
        limit = unit.request.task_limits.get(task)
        same = next((u for u in group if task in u.request.tasks and u.request.task_limits.get(task) == limit), None)
        if same is not None:  # the same cell declared twice: one computation
            same.labels.extend(x for x in unit.labels if x not in same.labels)
            continue
        target = next((u for u in group if task not in u.request.tasks), None)
        if target is None:
            target = Unit(replace(unit.request, tasks=[], task_limits={}), unit.resources, [], unit.identity)
            group.append(target)
        target.request.tasks.append(task)
        if task in unit.request.task_limits:
            target.request.task_limits[task] = unit.request.task_limits[task]
        for label in unit.labels:
            if label not in target.labels:
                target.labels.append(label)


def import_plugins(modules: list[str], path: Path | str | None = None) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            where = f"{path}: field 'imports': " if path else ""
            raise SweepError(f"{where}cannot import {name!r}: {exc}") from None
