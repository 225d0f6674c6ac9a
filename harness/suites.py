"""Suites: a YAML list of member tasks sharing a protocol, with an aggregate (the unit of a paper table).

A suite file lives under ``tasks/suites/`` and is validated on load like a task file (pydantic,
``extra="forbid"``; errors name the file and the field; an unknown member task is refused)::

    id: zeroshot-7
    title: Seven zero-shot tasks of the pruning papers
    protocol: {limit: 50}          # pinned for every member (a member's own protocol overrides it)
    members:
      - {task: boolq, label: BoolQ}
      - {task: hellaswag, label: HellaSwag, metric: acc_norm}   # default metric: the task's primary
    aggregate: {label: Mean, over: [boolq, hellaswag]}           # or: aggregate: none

A stored result belongs to a member when its task id and version are the member task's and its
stored protocol agrees with the task's protocol and every pinned key (``limit: null`` = all items).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness import config
from harness.errors import TaskDefinitionError, UnknownNameError
from harness.results import canonical_json
from harness.tasks import Task, definition_error, load_tasks
from harness.yamlfile import read_yaml

SUITES_DIR = "suites"  # under the tasks directory
_STRICT = ConfigDict(extra="forbid", frozen=True)
_ID = r"^[a-z0-9][a-z0-9._-]*$"
RUN_KEYS = ("limit", "dtype")  # protocol keys the runner adds (harness.kinds.KindRecord.protocol_for)


class MemberFile(BaseModel):
    model_config = _STRICT
    task: str
    label: str | None = None  # the column header (default: the task id)
    metric: str | None = None  # default: the task's primary metric
    protocol: dict[str, Any] = Field(default_factory=dict)


class AggregateFile(BaseModel):
    model_config = _STRICT
    kind: Literal["mean"] = "mean"
    label: str = "Mean"
    over: list[str] | None = None  # member task ids (default: every member)


class SuiteFile(BaseModel):
    """The shape of a suite YAML file, field for field."""

    model_config = _STRICT
    id: Annotated[str, Field(pattern=_ID)]
    title: str
    description: str = ""
    protocol: dict[str, Any] = Field(default_factory=dict)
    members: Annotated[list[MemberFile | str], Field(min_length=1)]
    aggregate: AggregateFile | None  # written "none" in the file

    @field_validator("aggregate", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if value == "none":
            return None
        if not isinstance(value, dict):
            raise ValueError(f"must be none or a mapping (label, over), got {value!r}")
        return value

    @field_validator("members")
    @classmethod
    def _unique(cls, members: list[MemberFile | str]) -> list[MemberFile | str]:
        ids = [m if isinstance(m, str) else m.task for m in members]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"member task {dup[0]!r} is listed twice")
        return members


@dataclass(frozen=True)
class Member:
    task: Task
    label: str
    metric: str
    higher_is_better: bool
    pinned: dict[str, Any]  # protocol keys a result must have exactly (beyond the task's own)

    @property
    def id(self) -> str:
        return self.task.id

    def matches(self, protocol: dict[str, Any]) -> bool:
        """Whether a stored protocol is this member's (task protocol and pinned keys agree)."""
        want = dict(self.task.protocol) | self.pinned
        return all(canonical_json(protocol.get(k)) == canonical_json(v) for k, v in want.items())

    def protocol_words(self) -> str:
        p = self.pinned
        if "limit" in p:
            lim = "all items" if p["limit"] is None else f"the first {p['limit']} items"
        else:
            lim = "any limit"
        rest = ", ".join(f"{k}={canonical_json(v)}" for k, v in sorted(p.items()) if k != "limit")
        return f"{self.label}: {lim}" + (f", {rest}" if rest else "")


@dataclass(frozen=True)
class Suite:
    id: str
    title: str
    description: str
    members: tuple[Member, ...]
    aggregate: tuple[str, ...] | None  # member ids averaged, or None (no aggregate)
    aggregate_label: str
    path: Path | None = None

    def member(self, task_id: str) -> Member:
        return next(m for m in self.members if m.id == task_id)


def _fail(path: Path, where: str, msg: str) -> TaskDefinitionError:
    return TaskDefinitionError(f"{path}: field {where!r}: {msg}")


def _member(path: Path, i: int, raw: MemberFile | str, shared: dict[str, Any], tasks: dict[str, Task]) -> Member:
    m = MemberFile(task=raw) if isinstance(raw, str) else raw
    where = f"members[{i}]"
    if m.task not in tasks:
        err = UnknownNameError("task", m.task, tasks)
        raise _fail(path, f"{where}.task", str(err))
    task = tasks[m.task]
    from harness.kinds import get_kind

    allowed = set(get_kind(task.kind).protocol.model_fields) | set(RUN_KEYS)
    pinned = dict(shared) | dict(m.protocol)
    for k, v in sorted(pinned.items()):
        src = f"{where}.protocol.{k}" if k in m.protocol else f"protocol.{k}"
        if k not in allowed:
            raise _fail(path, src, f"task {task.id} (kind {task.kind}) has no protocol key {k!r}; "
                                   f"allowed: {', '.join(sorted(allowed))}")
        if k in task.protocol and canonical_json(task.protocol[k]) != canonical_json(v):
            raise _fail(path, src, f"task {task.id} fixes {k}={canonical_json(task.protocol[k])}, not {canonical_json(v)}")
    metric = m.metric or task.primary_metric.name
    spec = task.metric(metric)
    if spec is None:
        raise _fail(path, f"{where}.metric", f"task {task.id} has no metric {metric!r}; "
                                             f"it has {', '.join(x.name for x in task.metrics)}")
    return Member(task, m.label or task.id, metric, spec.higher_is_better, pinned)


def parse_suite(raw: Any, path: Path, tasks: dict[str, Task]) -> Suite:
    if not isinstance(raw, dict):
        raise TaskDefinitionError(f"{path}: a suite file must be a mapping")
    try:
        parsed = SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise definition_error(path, exc, model=SuiteFile) from None
    members = tuple(_member(path, i, m, parsed.protocol, tasks) for i, m in enumerate(parsed.members))
    ids = [m.id for m in members]
    agg: tuple[str, ...] | None = None
    label = ""
    if isinstance(parsed.aggregate, AggregateFile):
        over = parsed.aggregate.over if parsed.aggregate.over is not None else ids
        for j, t in enumerate(over):
            if t not in ids:
                raise _fail(path, f"aggregate.over[{j}]", f"{t!r} is not a member of this suite ({', '.join(ids)})")
        if len({next(m for m in members if m.id == t).higher_is_better for t in over}) > 1:
            raise _fail(path, "aggregate.over", "a mean over metrics that point in different directions is meaningless")
        agg, label = tuple(over), parsed.aggregate.label
    return Suite(parsed.id, parsed.title, parsed.description.strip(), members, agg, label, path)


def load_suite_file(path: Path, tasks: dict[str, Task] | None = None) -> Suite:
    raw = read_yaml(path, "suite file", TaskDefinitionError)
    return parse_suite(raw, path, tasks if tasks is not None else load_tasks(path.parent.parent))


def load_suites(directory: Path | None = None) -> dict[str, Suite]:
    """Every suite under ``<tasks dir>/suites/`` by id; a broken file raises its error (file + field)."""
    tasks_dir = (directory or config.tasks_dir()).resolve()
    tasks = load_tasks(tasks_dir)
    suites: dict[str, Suite] = {}
    for path in sorted((tasks_dir / SUITES_DIR).glob("*.yaml")):
        s = load_suite_file(path, tasks)
        if s.id in suites:
            raise _fail(path, "id", f"{s.id!r} is also defined in {suites[s.id].path}")
        suites[s.id] = s
    return suites


def get_suite(suite_id: str, directory: Path | None = None) -> Suite:
    suites = load_suites(directory)
    if suite_id not in suites:
        raise UnknownNameError("suite", suite_id, suites)
    return suites[suite_id]
