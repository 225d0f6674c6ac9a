"""Task definitions: YAML files under ``tasks/`` validated on load.

A task names its kind, pins every data file it reads, fixes its protocol and declares its metrics.
The file's shape is the pydantic model :class:`TaskFile` (``extra="forbid"``); its ``protocol`` is
validated by the kind's protocol model and its metric names by the kind's metric check, so a
misspelt key or an unknown metric fails when the task loads. Errors name the file and the field
(``tasks/x.yaml: field 'data.corpus.sources[0].sha256': ...``). See ``tasks/README.md``.

A broken file does not block the others: :func:`load_tasks` keeps the good ones and
:func:`task_errors` lists the broken files with their error; :func:`get_task` of a broken task
raises that error.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictInt, Tag, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from harness import config
from harness.data import DataSource, DataSpec
from harness.errors import HarnessError, TaskDefinitionError, UnknownNameError
from harness.yamlfile import read_yaml

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
_STRICT = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# The runtime records


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class MetricSpec:
    name: str
    higher_is_better: StrictBool
    primary: bool = False
    description: str = ""


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid", arbitrary_types_allowed=True))
class Task:
    """A loaded task. ``protocol`` is the file's mapping as written (it enters the run id);
    :attr:`settings` is the same mapping parsed by the kind's protocol model (defaults filled in)."""

    id: str
    version: int
    kind: str
    title: str
    description: str
    data: dict[str, DataSpec]
    protocol: dict[str, Any]
    metrics: tuple[MetricSpec, ...]
    options: dict[str, Any] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    path: Path | None = None
    references: tuple[Reference, ...] = ()  # published scores; never part of a run id or digest

    @property
    def settings(self) -> Any:
        """The protocol as the kind's typed model (computed from ``protocol``, so it stays right
        for a task made with ``dataclasses.replace``)."""
        from harness.kinds import get_kind

        try:
            return get_kind(self.kind).protocol.model_validate(self.protocol)
        except ValidationError as exc:
            raise definition_error(self.path or self.id, exc, prefix="protocol") from None

    @property
    def primary_metric(self) -> MetricSpec:
        return next(m for m in self.metrics if m.primary)

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


class ReferenceCondition(BaseModel):
    """The exact condition a published figure was measured under, as a harness run: the method,
    the params that define it (matched against a stored result's params), and the model if any."""

    model_config = _STRICT
    method: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None


class Reference(BaseModel):
    """A published score for this task (``references:`` in a task file). Graded by
    ``harness reproduce --references``, shown on boards as a labelled, unranked row. Not part of
    the task's identity: adding one never changes a run id."""

    model_config = _STRICT
    source: Annotated[str, Field(min_length=1)]  # paper and table, or a regression page (name + URL)
    condition: ReferenceCondition
    metric: str
    value: Annotated[float, Field(allow_inf_nan=False)]
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    note: str = ""  # where the harness differs by design (tokeniser, stemmer, engine ...)


# ---------------------------------------------------------------------------------------------
# The file format


class DataDirSource(BaseModel):
    """A path under the data directory (``HARNESS_DATA_DIR``), pinned by sha256."""

    model_config = _STRICT
    data_dir: str
    sha256: Sha256

    def to_source(self) -> DataSource:
        return DataSource("data_dir", path=self.data_dir, sha256=self.sha256)


class PackageSource(BaseModel):
    """A path inside an installed package that ships the data, pinned by sha256."""

    model_config = _STRICT
    package: str
    path: str
    dist: str | None = None
    sha256: Sha256

    def to_source(self) -> DataSource:
        return DataSource("package", package=self.package, path=self.path, dist=self.dist, sha256=self.sha256)


class HubSource(BaseModel):
    """A Hugging Face dataset at a named revision (its bytes are checked by ``content_sha256``)."""

    model_config = _STRICT
    hub: str
    config: str | None = None
    split: str | None = None
    revision: Annotated[str, Field(min_length=1)]
    files: list[str] = Field(default_factory=list)

    def to_source(self) -> DataSource:
        return DataSource("hub", repo=self.hub, config=self.config, split=self.split, revision=self.revision,
                          files=tuple(self.files))


SOURCE_KEYS = ("data_dir", "package", "hub")


def _source_type(raw: Any) -> str | None:
    if isinstance(raw, BaseModel):
        return next(k for k in SOURCE_KEYS if hasattr(raw, k))
    if isinstance(raw, dict):
        present = [k for k in SOURCE_KEYS if k in raw]
        return present[0] if len(present) == 1 else None
    return None


Source = Annotated[
    Union[Annotated[DataDirSource, Tag("data_dir")], Annotated[PackageSource, Tag("package")],
          Annotated[HubSource, Tag("hub")]],
    Discriminator(_source_type, custom_error_type="source_type",
                  custom_error_message=f"each source needs exactly one of {', '.join(SOURCE_KEYS)}"),
]


class PartAlternatives(BaseModel):
    """One part of a several-file entry that may come from several sources, tried in order."""

    model_config = _STRICT
    sources: Annotated[list[Source], Field(min_length=1)]


class DataEntry(BaseModel):
    """One data entry: how it is read (``format`` and the format's options, as further keys) and
    either the sources its one file may come from (``sources``, tried in order) or the files it
    reads in order (``parts``: a corpus split over several files)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    format: str
    sources: Annotated[list[Source], Field(min_length=1)] | None = None
    parts: Annotated[list[Source | PartAlternatives], Field(min_length=1)] | None = None
    content_sha256: Sha256 | None = None

    @model_validator(mode="after")
    def _one_of_sources_or_parts(self) -> DataEntry:
        if (self.sources is None) == (self.parts is None):
            raise ValueError("needs either sources (one file) or parts (several files), not both")
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def to_spec(self, name: str) -> DataSpec:
        parts = tuple(
            tuple(s.to_source() for s in p.sources) if isinstance(p, PartAlternatives) else (p.to_source(),)
            for p in self.parts or ()
        )
        return DataSpec(name=name, format=self.format, sources=tuple(s.to_source() for s in self.sources or ()),
                        content_sha256=self.content_sha256, options=self.options, parts=parts)


class TaskFile(BaseModel):
    """The shape of a task YAML file, field for field."""

    model_config = _STRICT
    id: Annotated[str, Field(pattern=_ID_PATTERN)]
    version: Annotated[StrictInt, Field(ge=1)]
    kind: str
    title: str | None = None
    description: str = ""
    data: dict[str, DataEntry] = Field(default_factory=dict)
    protocol: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricSpec] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)

    @field_validator("data", "protocol", "options", "metrics", "tags", "description", "references", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any, info: Any) -> Any:
        if value is None:
            if info.field_name == "description":
                return ""
            return [] if info.field_name in ("metrics", "tags", "references") else {}
        return value

    @field_validator("metrics")
    @classmethod
    def _one_primary(cls, metrics: list[MetricSpec]) -> list[MetricSpec]:
        if metrics:
            primaries = [m for m in metrics if m.primary]
            if len(primaries) != 1:
                raise ValueError(f"exactly one metric must be primary, found {len(primaries)}")
            names = [m.name for m in metrics]
            if len(set(names)) != len(names):
                raise ValueError("metric names must be unique")
        return metrics


# ---------------------------------------------------------------------------------------------
# Errors that name file and field


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in SOURCE_KEYS and i > 0 and isinstance(loc[i - 1], int) and "sources" in loc[:i]:
            continue  # the union's tag, not a field
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (a key directly under the model, or under a nested model)."""
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        ann = field.annotation if field is not None else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return sorted(model.model_fields) if model is not None else []


def _message(err: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, tuple(err["loc"]))
        if not allowed:
            return "unknown key"
        close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; allowed: {', '.join(allowed)}"
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "string_pattern_mismatch" and "sha256" in str(err["loc"][-1]):
        return "must be 64 lowercase hex digits"
    return msg.removeprefix("Value error, ")


def definition_error(path: Path | str, exc: ValidationError, prefix: str = "",
                     model: type[BaseModel] | None = None) -> TaskDefinitionError:
    """A pydantic ValidationError as "<file>: field '<a.b[0].c>': <why>" (every error, first first).
    ``model`` (the validated model) lets an unknown key list the allowed ones."""
    lines = []
    for err in exc.errors():
        where = _where(tuple(err["loc"]))
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        lines.append(f"{path}: field {where!r}: {_message(err, model)}")
    return TaskDefinitionError("; ".join(lines))


def _fail(path: Path, fieldname: str, msg: str) -> TaskDefinitionError:
    return TaskDefinitionError(f"{path}: field {fieldname!r}: {msg}")


# ---------------------------------------------------------------------------------------------
# Loading


def _check_formats(path: Path, data: dict[str, DataEntry]) -> None:
    """Each data entry's format and options, checked against the registered data formats."""
    from harness.formats import check_options

    for name, entry in data.items():
        check_options(entry.format, entry.options, f"{path}: field 'data.{name}'")


def _check_kind(path: Path, parsed: TaskFile) -> None:
    from harness.kinds import get_kind, kind_names

    try:
        kind = get_kind(parsed.kind)
    except UnknownNameError:
        raise _fail(path, "kind", f"unknown task kind {parsed.kind!r}; must be one of {', '.join(kind_names())}") from None
    except HarnessError as exc:
        raise _fail(path, "kind", str(exc)) from None
    try:
        kind.protocol.model_validate(parsed.protocol)
    except ValidationError as exc:
        raise definition_error(path, exc, prefix="protocol", model=kind.protocol) from None
    if kind.has_metrics and not parsed.metrics:
        raise _fail(path, "metrics", "must be a non-empty list")
    if not kind.has_metrics and parsed.metrics:
        raise _fail(path, "metrics", f"tasks of kind {kind.name!r} declare no metrics")
    for i, m in enumerate(parsed.metrics):
        why = kind.metric_error(m.name)
        if why:
            raise _fail(path, f"metrics[{i}].name", f"{m.name!r} cannot be computed: {why}")


def _check_references(path: Path, parsed: TaskFile) -> None:
    """Each reference names a metric the task declares (methods are not imported at load: an
    unknown method simply matches no stored result)."""
    names = [m.name for m in parsed.metrics]
    for i, ref in enumerate(parsed.references):
        if ref.metric not in names:
            raise _fail(path, f"references[{i}].metric", f"{ref.metric!r} is not a metric of this task ({', '.join(names)})")


def parse_task(raw: Any, path: Path) -> Task:
    """Validate one task file's content; errors name ``path`` and the field."""
    if not isinstance(raw, dict):
        raise TaskDefinitionError(f"{path}: a task file must be a mapping")
    try:
        parsed = TaskFile.model_validate(raw)
    except ValidationError as exc:
        raise definition_error(path, exc, model=TaskFile) from None
    _check_kind(path, parsed)
    _check_formats(path, parsed.data)
    _check_references(path, parsed)
    return Task(
        id=parsed.id,
        version=parsed.version,
        kind=parsed.kind,
        title=parsed.title if parsed.title is not None else parsed.id,
        description=parsed.description.strip(),
        data={name: entry.to_spec(name) for name, entry in parsed.data.items()},
        protocol=dict(parsed.protocol),
        metrics=tuple(parsed.metrics),
        options=dict(parsed.options),
        tags=tuple(parsed.tags),
        path=path,
        references=tuple(parsed.references),
    )


def load_task_file(path: Path) -> Task:
    return parse_task(read_yaml(path, "task file", TaskDefinitionError), path)


class TaskSet(dict):
    """Tasks by id (a dict), with the files that failed to load in :attr:`errors` (path -> error)
    and the ids those files declare, where readable, in :attr:`broken_ids`."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[Path, TaskDefinitionError] = {}
        self.broken_ids: dict[str, Path] = {}


def _declared_id(path: Path) -> str | None:
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError):
        return None
    return str(raw["id"]) if isinstance(raw, dict) and "id" in raw else None


_cache: dict[Path, TaskSet] = {}


def load_tasks(directory: Path | None = None) -> TaskSet:
    """All tasks under the tasks directory that load, keyed by id (ids must be unique). Files
    that do not load are kept in the returned set's ``errors``; they never block the others."""
    directory = (directory or config.tasks_dir()).resolve()
    if directory in _cache:
        return _cache[directory]
    tasks = TaskSet()
    for path in sorted(p for p in directory.rglob("*.yaml") if p.relative_to(directory).parts[0] != "suites"):
        try:
            task = load_task_file(path)
            if task.id in tasks:
                raise _fail(path, "id", f"{task.id!r} is also defined in {tasks[task.id].path}")
        except TaskDefinitionError as exc:
            tasks.errors[path] = exc
            declared = _declared_id(path)
            if declared:
                tasks.broken_ids.setdefault(declared, path)
            continue
        tasks[task.id] = task
    _cache[directory] = tasks
    return tasks


def task_errors(directory: Path | None = None) -> dict[Path, TaskDefinitionError]:
    """Task files that failed to load, with their error."""
    return dict(load_tasks(directory).errors)


def _get(name: str, what: str, calibration: bool, directory: Path | None) -> Task:
    all_tasks = load_tasks(directory)
    tasks = {k: v for k, v in all_tasks.items() if (v.kind == "calibration") == calibration}
    if name in tasks:
        return tasks[name]
    if name in all_tasks.broken_ids:
        raise all_tasks.errors[all_tasks.broken_ids[name]]
    raise UnknownNameError(what, name, tasks)


def get_task(task_id: str, directory: Path | None = None) -> Task:
    return _get(task_id, "task", False, directory)


def get_calibration(name: str, directory: Path | None = None) -> Task:
    return _get(name, "calibration set", True, directory)



# ---------------------------------------------------------------------------------------------
# Identity


def _source_pin(src: DataSource) -> dict[str, Any]:
    """What identifies a source's bytes: its sha256 (a file) or its hub coordinates (where it lies
    on disk is not part of it: moving a pinned file changes nothing)."""
    if src.type == "hub":
        return {"hub": src.repo, "config": src.config, "split": src.split, "revision": src.revision,
                "files": list(src.files)}
    return {"sha256": src.sha256}


def definition(task: Task) -> dict[str, Any]:
    """The parts of a task's file that decide its numbers: data pins, formats and their options,
    protocol, metrics, options. Prose (title, description), tags and published ``references`` are
    left out: editing them must not make stored results stale."""
    return {
        "id": task.id,
        "version": task.version,
        "kind": task.kind,
        "data": {
            name: {"format": spec.format, "options": dict(spec.options), "content_sha256": spec.content_sha256,
                   "parts": [[_source_pin(s) for s in part] for part in spec.part_sources]}
            for name, spec in sorted(task.data.items())
        },
        "protocol": dict(task.protocol),
        "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better, "primary": m.primary}
                    for m in task.metrics],
        "options": dict(task.options),
    }


def definition_digest(task: Task) -> str:
    """sha256 (64 hex digits) of the canonical JSON of :func:`definition`; it enters the run id."""
    import hashlib
    import json

    text = json.dumps(definition(task), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
