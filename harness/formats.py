"""Data formats: registered readers, each with typed options.

A data entry of a task names its ``format``; every other key of the entry (apart from ``sources``,
``parts`` and ``content_sha256``) is an option of that format. A format is one class:

.. code-block:: python

    class JsonlCorpus(DataFormat):
        '''One JSON object per line: {"id", "title", "text"}; several part files read in order.'''

        name = "jsonl-corpus"
        produces = "corpus"

        class Options(FormatOptions):
            id_field: str = "id"

        def read(self, files, options):
            ...

``Options`` is a pydantic v2 model with ``extra="forbid"``: an unknown or mistyped option is refused
when the task is loaded (:func:`check_options`), with the valid options and the nearest name.
``read`` receives every resolved file of the entry (one, or the ``parts`` of a corpus split over
several files, in the declared order) and the parsed options.

What a format ``produces`` tells the evaluator what it gets back:

========================  ====================================================================
``corpus``                :class:`harness.ir.formats.Parsed` of :class:`harness.ir.base.Document`
``topics``                ``Parsed`` of ``(qid, query)``
``qrels``                 ``Parsed`` of ``(qid, docno, relevance)``
``collection``            corpus, topics and qrels from one file: a tuple of three ``Parsed``
``first-stage``           a ranked candidate list (TREC DL reranking)
``run``                   ``Parsed`` of ``(qid, docno, score)`` rows of a TREC run
``text``                  running text (``str``) for perplexity
``documents``             ``list[str]`` for calibration sampling
``examples``              ``list[dict]`` rows of a zero-shot task, in file order
========================  ====================================================================

Built-in formats are listed as lazy ``"module:attr"`` strings in :data:`harness.builtins.DATA_FORMATS`
(IR readers in ``harness/ir/formats/``, text and zero-shot readers in ``harness/llm/formats/``).
A package adds its own through the entry-point group ``harness.data_formats``; see
``tasks/README.md``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.data import ENTRY_KEYS, DataSpec, ResolvedData, resolve_parts
from harness.errors import HarnessError, TaskDefinitionError, UnknownNameError
from harness.registry import Registry

ENTRY_POINT_GROUP = "harness.data_formats"
PRODUCES = ("corpus", "topics", "qrels", "collection", "first-stage", "run", "text", "documents", "examples")


class FormatOptions(BaseModel):
    """Base of every format's options: unknown keys are refused, values are typed and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFormat:
    """A reader of one file layout. Subclass it, set ``name``, ``produces`` and (if the format has
    options) an ``Options`` model, and implement :meth:`read`. The docstring is the format's
    documentation (its first line is shown in listings)."""

    name: ClassVar[str] = ""
    produces: ClassVar[str] = ""
    Options: ClassVar[type[FormatOptions]] = FormatOptions
    multi_file: ClassVar[bool] = True  # may the entry list several ``parts``?
    local_only: ClassVar[bool] = True  # False when the reader can also read a hub source (path None)
    joins_as_text: ClassVar[bool] = False  # "documents" that may also be read as running text

    def read(self, files: list[ResolvedData], options: Any) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def option_names(cls) -> list[str]:
        return sorted(cls.Options.model_fields)


def _builtin_formats(reg: Registry[type]) -> None:
    from harness import builtins

    builtins.register_all(reg, builtins.DATA_FORMATS)


DATA_FORMATS: Registry[type] = Registry(
    "data format", base=DataFormat, entry_point_group=ENTRY_POINT_GROUP, builtins=_builtin_formats
)


def register_format(cls: type[DataFormat]) -> type[DataFormat]:
    """Class decorator for a plug-in module named by a module entry point (``value = "pkg.mod"``).
    Built-in formats are not decorated: they are listed in :mod:`harness.builtins`."""
    if not cls.name:
        raise HarnessError(f"data format {cls.__qualname__} needs a name")
    DATA_FORMATS.register(cls.name, cls)
    return cls


def get_format(name: str) -> type[DataFormat]:
    """The format class registered as ``name`` (unknown names fail with the valid ones listed)."""
    cls = DATA_FORMATS.get(name)
    if cls.produces not in PRODUCES:
        raise HarnessError(f"data format {name!r}: produces must be one of {', '.join(PRODUCES)}, got {cls.produces!r}")
    return cls


def format_names() -> list[str]:
    return DATA_FORMATS.names()


# --------------------------------------------------------------------------------- options


def _subfield(where: str, key: str) -> str:
    """``"f.yaml: field 'data.corpus'"`` + ``"int_id"`` -> ``"f.yaml: field 'data.corpus.int_id'"``."""
    m = re.match(r"^(.*field ')(.*)'$", where)
    if m:
        return f"{m.group(1)}{m.group(2)}.{key}'"
    return f"{where}: field {key!r}"


def _describe(cls: type[DataFormat]) -> str:
    names = cls.option_names()
    return f"valid options of {cls.name or 'this format'}: {', '.join(names)}" if names else \
        f"{cls.name or 'this format'} takes no options"


def _option_error(fmt: str, cls: type[DataFormat], exc: ValidationError, where: str) -> TaskDefinitionError:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())] or ["?"]
    top, inner = loc[0], ".".join(loc[1:])
    if err.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(top, cls.option_names(), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listing = _describe(cls)
        return TaskDefinitionError(f"{_subfield(where, top)}: unknown option of data format {fmt!r}.{hint} "
                                   f"{listing[:1].upper()}{listing[1:]}")
    at = f" (at {inner})" if inner else ""
    return TaskDefinitionError(f"{_subfield(where, top)}: {err.get('msg')}{at}, got {err.get('input')!r}; "
                               f"{_describe(cls)}")


def parse_options(format_name: str, options: Mapping[str, Any], where: str) -> FormatOptions:
    """The typed options of ``format_name``; errors are :class:`TaskDefinitionError` naming ``where``
    (``"<task file>: field 'data.<name>'"``) refined to the offending key."""
    try:
        cls = get_format(format_name)
    except UnknownNameError as exc:
        raise TaskDefinitionError(f"{_subfield(where, 'format')}: {exc}") from None
    except HarnessError as exc:
        raise TaskDefinitionError(f"{_subfield(where, 'format')}: {exc}") from None
    try:
        return cls.Options(**dict(options))
    except ValidationError as exc:
        raise _option_error(format_name, cls, exc, where) from None
    except TypeError as exc:  # non-string keys
        raise TaskDefinitionError(f"{where}: options of data format {format_name!r}: {exc}") from None


def check_options(format_name: str, options: dict, where: str) -> None:
    """Refuse an unknown format (listing the valid ones) or an unknown/mistyped option (listing the
    valid options, with the nearest name). ``where`` names the data entry, e.g.
    ``"tasks/retrieval/cacm.yaml: field 'data.qrels'"``; the message names the offending key
    (``... field 'data.qrels.int_id': unknown option ...``). The entry's own keys (``sources``,
    ``parts``, ``content_sha256``, ``format``) are not options and are skipped if passed."""
    parse_options(format_name, {k: v for k, v in options.items() if k not in ENTRY_KEYS}, where)


def spec_where(spec: DataSpec, task_file: Any = None) -> str:
    return f"{task_file or 'task'}: field 'data.{spec.name}'"


def check_spec(spec: DataSpec, task_file: Any = None) -> FormatOptions:
    """Typed options of a data entry, checked (also that parts are allowed for its format)."""
    where = spec_where(spec, task_file)
    opts = parse_options(spec.format, spec.options, where)
    if len(spec.part_sources) > 1 and not get_format(spec.format).multi_file:
        raise TaskDefinitionError(f"{_subfield(where, 'parts')}: data format {spec.format!r} reads a single file")
    return opts


def check_task_data(task: Any) -> None:
    """Check every data entry of a loaded task (what the task loader calls at load time)."""
    for spec in task.data.values():
        check_spec(spec, getattr(task, "path", None) or getattr(task, "id", None))


# --------------------------------------------------------------------------------- reading


def reader(name: str) -> DataFormat:
    return get_format(name)()


def read_resolved(files: list[ResolvedData], *, task_file: Any = None, **kwargs: Any) -> Any:
    """Read already-resolved files of one data entry with its format and typed options."""
    spec = files[0].spec
    opts = check_spec(spec, task_file)
    fmt = reader(spec.format)
    if fmt.local_only and any(f.path is None for f in files):
        raise HarnessError(f"data {spec.name!r}: format {spec.format!r} reads local files only "
                           "(a data_dir or package source)")
    return fmt.read(files, opts, **kwargs)


def read_spec(spec: DataSpec, *, task_file: Any = None, **kwargs: Any) -> tuple[Any, list[ResolvedData]]:
    """Resolve every part of a data entry and read it: (what the format produces, resolved files)."""
    files = resolve_parts(spec)
    return read_resolved(files, task_file=task_file, **kwargs), files
