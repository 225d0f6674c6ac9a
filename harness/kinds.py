"""Task kinds: one registered record per kind, and what an evaluator takes and returns.

A task kind is one file. It defines a :class:`TaskKind` record next to its evaluator and the
record is registered in :data:`TASK_KINDS` (built-ins as lazy strings in :mod:`harness.builtins`;
other packages through the entry-point group ``harness.task_kinds``). The record says:

* ``evaluator``: ``(task, RunContext) -> EvalOutput`` (a callable or a lazy ``"module:attr"``);
  it reads its data through :func:`harness.data.resolve` (so the result records the source),
  honours ``ctx.limit`` and returns aggregate metrics plus per-item scores for paired tests;
* ``families``: the method families whose methods it evaluates;
* ``track``: where its boards sit on the site (id, title, order);
* ``protocol``: a pydantic model (``extra="forbid"``) of the task file's ``protocol`` mapping, so a
  misspelt key fails when the task loads;
* ``metric_error``: which metric names the evaluator can compute (``None`` when it can, else why);
* ``run_protocol``: the keys the runner adds to the task's protocol (they enter the run id);
* ``aggregate``: ``(metric, items) -> value | None``, how a stored metric follows from the per-item
  scores (``validate`` re-derives it; None: not a function of the items);
* ``plots``: :class:`BoardPlot` records, the figures this kind's boards draw from their entries'
  stored results (beside the generic quality-vs-sparsity and quality-vs-latency ones);
* ``extra_metrics``: ``(name, higher_is_better)`` of metrics the kind adds to every task of it
  beyond those the task file declares (diagnostics such as IR's ``Judged@10``; never primary, and
  not part of the task definition, so adding one changes no run id).

The report reads the tracks through :func:`tracks`; the runner and the task loader through
:func:`get_kind`.

The method side of a run lives here too: :class:`MethodBase` is the lifecycle every method
family's base class shares (``resolve_params``, ``check_model``, ``takes_model``, ``setup(ctx)``
with a :class:`SetupContext`, filling a :class:`SetupOutput`), so the runner needs no family branch.
A family's base class also names what the tooling needs of it: the :class:`Scaffold` that
``harness new-method`` writes and the :class:`CheapTask` that ``harness check-submission`` runs, so
neither command lists families.
"""

from __future__ import annotations

import math
import re
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.errors import HarnessError
from harness.params import MethodParams, build_params
from harness.registry import Registry, load_target

if TYPE_CHECKING:
    from harness.tasks import Task


@dataclass
class Metric:
    value: float
    n: int
    stderr: float | None = None

    def to_dict(self, higher_is_better: bool, primary: bool) -> dict[str, Any]:
        return {
            "value": float(self.value),
            "n": int(self.n),
            "stderr": None if self.stderr is None else float(self.stderr),
            "higher_is_better": higher_is_better,
            "primary": primary,
        }


@dataclass
class EvalOutput:
    metrics: dict[str, Metric]
    items: list[dict[str, Any]] | None = None  # per-item scores; each has the key ``item_key``
    item_key: str = "item"
    data: list[dict[str, Any]] = field(default_factory=list)  # ResolvedData.provenance() of what was read
    protocol_details: dict[str, Any] = field(default_factory=dict)  # e.g. windows actually evaluated
    efficiency: dict[str, Any] = field(default_factory=dict)  # e.g. latency percentiles
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (format, bytes)


@dataclass
class RunContext:
    """What an evaluator may use: the (possibly pruned) model, the method, the run's settings."""

    method: Any  # the method adapter instance (after ``setup``)
    model: Any | None  # harness.llm.models.LoadedModel for LLM tasks, None for IR-only runs
    device: str = "cpu"
    limit: int | None = None
    seed: int = 0
    batch_size: int | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


Evaluator = Callable[["Task", RunContext], EvalOutput]


@dataclass(frozen=True)
class SetupContext:
    """What ``method.setup(ctx)`` receives, once per run, before any task is evaluated."""

    device: str = "cpu"
    dtype: str = "float32"
    model: str | None = None  # the model id given with --model (families with ``takes_model``)
    batch_size: int | None = None
    progress: bool = True
    save_model: Any | None = None  # a Path: write the (pruned) model there
    command: str = ""  # the command line, recorded with a saved model
    # A directory where setup may keep what it makes for later runs on this machine (a pruned
    # model, an index); None: make everything afresh (``harness run --no-setup-cache``).
    cache_dir: Any | None = None


# The stage timings of the result schema's ``efficiency`` section (None: the stage did not run).
STAGE_TIMINGS = ("load_seconds", "calibration_seconds", "prune_seconds")


@dataclass
class SetupOutput:
    """What ``setup`` made: the model the evaluators use, stage timings (efficiency), and the
    result sections the family fills (``pruning``, ``calibration``)."""

    model: Any | None = None
    timings: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(STAGE_TIMINGS))
    sections: dict[str, Any] = field(default_factory=dict)
    # name -> (format, bytes), stored with the result of every task of the run: the store keeps
    # each content once, so what setup made (a pruned model's per-layer figures) is not repeated
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scaffold:
    """What ``harness new-method NAME --family F`` writes for a family: a real, minimal adapter and
    its test, as ``str.format`` templates (fields ``name``, ``cls``, ``title``, ``summary``,
    ``module``, ``family``; literal braces doubled), and the one-line summary of the template's
    algorithm (the adapter's docstring, to be replaced by the submitter's own)."""

    code: str
    test: str
    summary: str
    folder: str | None = None  # the built-in adapters' folder under methods/ (default: the family)


@dataclass(frozen=True)
class CheapTask:
    """The cheapest real task of a family, run by ``harness check-submission`` in seconds."""

    task: str
    limit: int
    model: str | None = None
    small_params: dict[str, str] = field(default_factory=dict)  # applied where the method has the field
    needs_data_dir: bool = False


class MethodBase(ABC):
    """The lifecycle every method family's base class shares; the runner calls only these.

    1. ``resolve_params(raw, model)`` (class method): typed parameters, before the run id;
    2. ``check_model(model)`` (class method): called when ``takes_model`` or a --model is given;
    3. ``setup(ctx)`` once per run, before any task; it fills and returns ``self.setup_output``
       (kept even when setup fails half-way, so a failed result still records what was done);
    4. the evaluator of each task, with the method in its ``RunContext``.
    """

    method_name: ClassVar[str]
    family: ClassVar[str]
    Params: ClassVar[type[MethodParams]]
    takes_model: ClassVar[bool] = False  # True: the runner requires --model; False: refuses it
    version: ClassVar[int] = 1  # bump when the algorithm changes: it enters the run id
    # Family tooling, set on each family's base class: "module:attr" of its Scaffold (lazy: the
    # templates are read only by `new-method`), its CheapTask, and the template methods a
    # subclass must not override (check-submission flags an override).
    scaffold: ClassVar[str | None] = None
    cheap_task: ClassVar[CheapTask | None] = None
    final_methods: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: MethodParams):
        self.params = params
        self.stats: dict[str, Any] = {}  # counters the method keeps (model calls...), stored per result
        self.setup_output = SetupOutput()

    @classmethod
    def resolve_params(cls, raw: dict[str, str], model: str | None) -> MethodParams:
        return build_params(cls.Params, raw, method=cls.method_name)

    @classmethod
    def check_task(cls, params: MethodParams, task: Any, limit: int | None = None) -> None:
        """Refuse parameters a task cannot run with (e.g. more feedback documents than its depth, a
        budget longer than every evaluated passage), before any work and before anything is stored.
        Called by ``check_request`` for each task with the run's limit of it; the default accepts all."""

    @classmethod
    def check_model(cls, model: str | None) -> None:
        if not cls.takes_model and model:
            raise HarnessError(
                f"{cls.family} methods take their model as a parameter (--params model=...), not --model"
            )

    @classmethod
    def model_digest(cls, model: str | None) -> str | None:
        """A digest of the model's content (enters the run id); None when the family has none."""
        return None

    def setup(self, ctx: SetupContext) -> SetupOutput:
        return self.setup_output


class Protocol(BaseModel):
    """Base of the protocol models: unknown keys are refused (a misspelt key fails at load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoProtocol(Protocol):
    """A kind whose tasks take no protocol keys."""


@dataclass(frozen=True)
class Track:
    """A section of the site: its boards show the tasks of the kinds on this track."""

    id: str
    title: str
    order: int = 100


@dataclass(frozen=True)
class RunSettings:
    """What the runner knows when it computes a task's protocol (and so its run id)."""

    device: str = "cpu"
    dtype: str = "float32"


def dtype_unless_float32(settings: RunSettings) -> dict[str, Any]:
    """The default ``run_protocol``: the dtype enters the protocol only when not float32."""
    return {"dtype": settings.dtype} if settings.dtype != "float32" else {}


def device_and_dtype(settings: RunSettings) -> dict[str, Any]:
    """``run_protocol`` of kinds whose numbers depend on the machine (latency)."""
    return {"device": settings.device, "dtype": settings.dtype}


def fixed_metrics(*names: str) -> Callable[[str], str | None]:
    """A metric check accepting exactly ``names``."""

    def check(name: str) -> str | None:
        return None if name in names else f"this kind computes {', '.join(names)}"

    return check


def pattern_metrics(pattern: str, what: str) -> Callable[[str], str | None]:
    """A metric check accepting names that match the regular expression ``pattern``."""
    rx = re.compile(pattern)

    def check(name: str) -> str | None:
        return None if rx.fullmatch(name) else f"this kind computes {what}"

    return check


def item_mean(metric: str, items: list[dict[str, Any]]) -> float | None:
    """``aggregate`` of kinds whose metrics are the mean of a per-item field of the same name
    (per-query IR measures, per-example accuracy); None when the items carry no such field."""
    if not items or any(metric not in item for item in items):
        return None
    return math.fsum(float(item[metric]) for item in items) / len(items)


def no_metrics(name: str) -> str | None:
    return "this kind computes no metrics"


@dataclass(frozen=True)
class BoardPlot:
    """A figure the boards of a kind draw from their entries' stored results.

    ``points(result)`` gives one entry's ``(x, y)`` points (the y of the board's primary metric, or
    of ``ylabel``'s quantity: the kind decides). ``pareto=False``: each entry's points are a line
    (one line per entry, e.g. quality vs fraction kept); ``pareto=True``: every point is a dot and
    the Pareto front over all entries is marked (lower x is better: cost, tokens, seconds). Entries
    with no points are left out; the figure is drawn when at least two points remain.
    """

    name: str  # the file suffix: boards/<board>-<name>.svg
    xlabel: str
    caption: str
    points: Callable[[Any], list[tuple[float, float]]]
    pareto: bool = False
    ylabel: str | None = None  # default: the board's primary metric with its direction


@dataclass(frozen=True)
class TaskKind:
    """One task kind. See the module docstring for the fields."""

    name: str
    evaluator: Evaluator | str | None  # None: tasks of this kind are not run (calibration sets)
    families: tuple[str, ...] = ()
    track: Track | None = None
    protocol: type[Protocol] = NoProtocol
    metric_error: Callable[[str], str | None] = no_metrics
    run_protocol: Callable[[RunSettings], dict[str, Any]] = dtype_unless_float32
    has_metrics: bool = True  # False: tasks of this kind declare no metrics (calibration sets)
    description: str = ""
    aggregate: Callable[[str, list[dict[str, Any]]], float | None] | None = None
    plots: tuple[BoardPlot, ...] = ()
    extra_metrics: tuple[tuple[str, bool], ...] = ()

    def load_evaluator(self) -> Evaluator:
        if self.evaluator is None:
            raise HarnessError(f"tasks of kind {self.name!r} are not evaluated")
        if isinstance(self.evaluator, str):
            try:
                return load_target(self.evaluator)
            except ModuleNotFoundError as exc:
                raise HarnessError(f"tasks of kind {self.name!r} are not available: {exc}") from None
        return self.evaluator

    def protocol_for(self, task_protocol: dict[str, Any], limit: int | None, settings: RunSettings) -> dict[str, Any]:
        """The protocol stored with a result and hashed into its run id."""
        return dict(task_protocol) | {"limit": limit} | self.run_protocol(settings)


def _builtin_kinds(reg: Registry[TaskKind]) -> None:
    from harness import builtins

    builtins.register_all(reg, builtins.TASK_KINDS)


TASK_KINDS: Registry[TaskKind] = Registry("task kind", base=TaskKind, entry_point_group="harness.task_kinds",
                                          builtins=_builtin_kinds)


def get_kind(name: str) -> TaskKind:
    """The registered kind ``name``; an unknown name fails listing the valid kinds."""
    kind = TASK_KINDS.get(name)
    if kind.name != TASK_KINDS.canonical(name):
        raise HarnessError(f"task kind registered as {name!r} names itself {kind.name!r}")
    return kind


def kind_names() -> list[str]:
    return TASK_KINDS.names()


def tracks() -> list[tuple[str, str, tuple[str, ...]]]:
    """The site's tracks in display order: ``(id, title, kinds)``, kinds sorted by name. Kinds
    without a track (calibration sets) are left out; kinds that cannot load are skipped."""
    by_id: dict[str, tuple[Track, list[str]]] = {}
    for name, kind in TASK_KINDS.items():
        if kind.track is None:
            continue
        track, names = by_id.setdefault(kind.track.id, (kind.track, []))
        names.append(name)
    ordered = sorted(by_id.values(), key=lambda tn: (tn[0].order, tn[0].id))
    return [(t.id, t.title, tuple(sorted(names))) for t, names in ordered]


def get_evaluator(kind: str) -> Evaluator:
    """The evaluator of a task kind (kept for callers that hold only the kind's name)."""
    return get_kind(kind).load_evaluator()
