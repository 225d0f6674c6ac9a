"""Task definitions: YAML files under ``tasks/`` validated on load.

A task names its kind, pins every data file it reads, fixes its protocol and declares its metrics.
Errors name the file and the field. See ``tasks/README.md`` for the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import config
from harness.data import SOURCE_TYPES, DataSource, DataSpec
from harness.errors import TaskDefinitionError, UnknownNameError

KINDS = ("perplexity", "zeroshot", "retrieval", "reranking", "latency", "calibration")
TOP_LEVEL_KEYS = {"id", "version", "kind", "title", "description", "data", "protocol", "metrics", "options", "tags"}
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    primary: bool = False
    description: str = ""


@dataclass(frozen=True)
class Task:
    id: str
    version: int
    kind: str
    title: str
    description: str
    data: dict[str, DataSpec]
    protocol: dict[str, Any]
    metrics: tuple[MetricSpec, ...]
    options: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    path: Path | None = None

    @property
    def primary_metric(self) -> MetricSpec:
        return next(m for m in self.metrics if m.primary)

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


def _fail(path: Path, fieldname: str, msg: str) -> TaskDefinitionError:
    return TaskDefinitionError(f"{path}: field {fieldname!r}: {msg}")


def _parse_source(path: Path, where: str, raw: Any) -> DataSource:
    if not isinstance(raw, dict):
        raise _fail(path, where, "each source must be a mapping")
    types = [t for t in SOURCE_TYPES if t in raw]
    if len(types) != 1:
        raise _fail(path, where, f"each source needs exactly one of {', '.join(SOURCE_TYPES)}")
    kind = types[0]
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA_RE.match(sha)):
        raise _fail(path, f"{where}.sha256", "must be 64 lowercase hex digits")
    allowed = {
        "data_dir": {"data_dir", "sha256"},
        "package": {"package", "path", "dist", "sha256"},
        "hub": {"hub", "config", "split", "revision", "files"},
    }[kind]
    extra = set(raw) - allowed
    if extra:
        raise _fail(path, where, f"unknown keys {sorted(extra)} for a {kind} source")
    if kind == "data_dir":
        if sha is None:
            raise _fail(path, f"{where}.sha256", "a data_dir source must be pinned by sha256")
        return DataSource("data_dir", path=str(raw["data_dir"]), sha256=sha)
    if kind == "package":
        if sha is None or "path" not in raw:
            raise _fail(path, where, "a package source needs path and sha256")
        return DataSource(
            "package", package=str(raw["package"]), path=str(raw["path"]), dist=raw.get("dist"), sha256=sha
        )
    if not raw.get("revision"):
        raise _fail(path, f"{where}.revision", "a hub source must name a revision")
    return DataSource(
        "hub",
        repo=str(raw["hub"]),
        config=raw.get("config"),
        split=raw.get("split"),
        revision=str(raw["revision"]),
        files=tuple(raw.get("files") or ()),
    )


def _parse_data(path: Path, raw: Any) -> dict[str, DataSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, "data", "must be a mapping of name -> {format, sources}")
    out = {}
    for name, spec in raw.items():
        where = f"data.{name}"
        if not isinstance(spec, dict):
            raise _fail(path, where, "must be a mapping")
        sources = spec.get("sources")
        if not isinstance(sources, list) or not sources:
            raise _fail(path, f"{where}.sources", "must be a non-empty list")
        content = spec.get("content_sha256")
        if content is not None and not _SHA_RE.match(str(content)):
            raise _fail(path, f"{where}.content_sha256", "must be 64 lowercase hex digits")
        if "format" not in spec:
            raise _fail(path, f"{where}.format", "is required (how the file is read)")
        options = {k: v for k, v in spec.items() if k not in ("sources", "content_sha256", "format")}
        out[name] = DataSpec(
            name=name,
            format=str(spec["format"]),
            sources=tuple(_parse_source(path, f"{where}.sources[{i}]", s) for i, s in enumerate(sources)),
            content_sha256=content,
            options=options,
        )
    return out


def _parse_metrics(path: Path, raw: Any, kind: str) -> tuple[MetricSpec, ...]:
    if kind == "calibration":
        return ()
    if not isinstance(raw, list) or not raw:
        raise _fail(path, "metrics", "must be a non-empty list")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or "name" not in m or "higher_is_better" not in m:
            raise _fail(path, f"metrics[{i}]", "needs name and higher_is_better")
        if not isinstance(m["higher_is_better"], bool):
            raise _fail(path, f"metrics[{i}].higher_is_better", "must be true or false")
        out.append(
            MetricSpec(str(m["name"]), m["higher_is_better"], bool(m.get("primary", False)), m.get("description", ""))
        )
    primaries = [m for m in out if m.primary]
    if len(primaries) != 1:
        raise _fail(path, "metrics", f"exactly one metric must be primary, found {len(primaries)}")
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise _fail(path, "metrics", "metric names must be unique")
    return tuple(out)


def load_task_file(path: Path) -> Task:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise TaskDefinitionError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise TaskDefinitionError(f"{path}: a task file must be a mapping")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise _fail(path, sorted(unknown)[0], f"unknown key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    for key in ("id", "version", "kind"):
        if key not in raw:
            raise _fail(path, key, "is required")
    task_id = str(raw["id"])
    if not _ID_RE.match(task_id):
        raise _fail(path, "id", "use lowercase letters, digits, '.', '_' and '-'")
    if not isinstance(raw["version"], int) or raw["version"] < 1:
        raise _fail(path, "version", "must be a positive integer")
    kind = raw["kind"]
    if kind not in KINDS:
        raise _fail(path, "kind", f"must be one of {', '.join(KINDS)}")
    protocol = raw.get("protocol") or {}
    if not isinstance(protocol, dict):
        raise _fail(path, "protocol", "must be a mapping")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise _fail(path, "options", "must be a mapping")
    return Task(
        id=task_id,
        version=raw["version"],
        kind=kind,
        title=str(raw.get("title", task_id)),
        description=str(raw.get("description", "")).strip(),
        data=_parse_data(path, raw.get("data")),
        protocol=protocol,
        metrics=_parse_metrics(path, raw.get("metrics"), kind),
        options=options,
        tags=tuple(raw.get("tags") or ()),
        path=path,
    )


_cache: dict[Path, dict[str, Task]] = {}


def load_tasks(directory: Path | None = None) -> dict[str, Task]:
    """All tasks under the tasks directory, keyed by id (ids must be unique)."""
    directory = (directory or config.tasks_dir()).resolve()
    if directory in _cache:
        return _cache[directory]
    tasks: dict[str, Task] = {}
    for path in sorted(directory.rglob("*.yaml")):
        task = load_task_file(path)
        if task.id in tasks:
            raise TaskDefinitionError(f"{path}: field 'id': {task.id!r} is also defined in {tasks[task.id].path}")
        tasks[task.id] = task
    _cache[directory] = tasks
    return tasks


def get_task(task_id: str, directory: Path | None = None) -> Task:
    tasks = {k: v for k, v in load_tasks(directory).items() if v.kind != "calibration"}
    if task_id not in tasks:
        raise UnknownNameError("task", task_id, tasks)
    return tasks[task_id]


def get_calibration(name: str, directory: Path | None = None) -> Task:
    tasks = {k: v for k, v in load_tasks(directory).items() if v.kind == "calibration"}
    if name not in tasks:
        raise UnknownNameError("calibration set", name, tasks)
    return tasks[name]
