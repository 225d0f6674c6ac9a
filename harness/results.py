"""The result store: one validated JSON file per run, plus sidecars, read back as typed ``Result``s.

Layout: ``<results>/<task id>/<run id>.json`` with ``<run id>.items.jsonl`` (per-item scores; over
4 kB it is stored xz-compressed as ``<run id>.items.jsonl.xz``, its ``items.sha256`` still that of
the JSON lines) and artifacts stored once by content under ``<results>/artifacts/``. The run id is a digest of exactly
the inputs that define the run (method name and version, semantic parameters, model id and content
digest, task id, version and definition digest, protocol), so running the same thing twice finds
the stored result, and two different runs never share a file. Writes are atomic (temporary file +
rename) and validated before anything is replaced.

A stored result defends itself: :meth:`ResultStore.check` (what ``validate``, every scan and the
runner's "already stored" use) re-derives its run id and body digest, checks its sidecar and
artifacts against their sha256, re-derives its aggregate metrics from the per-item scores (the task
kind's ``aggregate``) and refuses it as stale when its task is defined differently today. Hostile
files (over :data:`MAX_RESULT_BYTES`, nested too deep) are a ResultValidationError, never a crash.

A stored result is modelled by :class:`Result` (pydantic v2). ``harness/schema/result-v1.json`` is
generated from that model (``python -m harness.results --write-schema``; a test keeps the committed
file in sync). The top level is closed (``extra="forbid"``); the nested blocks keep the open shape
schema version 1 gave them: their known fields are typed, anything else is kept as stored.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import lzma
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from harness.errors import HarnessError, ResultValidationError

SCHEMA_VERSION = 1
ITEMS_SUFFIX = ".items.jsonl"
ITEMS_XZ_SUFFIX = ITEMS_SUFFIX + ".xz"
ITEMS_COMPRESS_OVER = 4_000  # bytes of JSON lines: a larger sidecar is stored xz-compressed
SIDECAR_SUFFIXES = (ITEMS_SUFFIX, ITEMS_XZ_SUFFIX)  # the two forms a run's sidecar may take
SCHEMA_PATH = Path(__file__).parent / "schema" / "result-v1.json"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def result_json(obj: Any, width: int = 200, indent: int = 2, _level: int = 0) -> str:
    """A result's stored text: indented JSON, with each object or array that fits in ``width``
    characters (a layer's figures, a metric) on one line. Readable and diffable, and about a
    quarter smaller than plain ``indent=2`` on results with per-layer figures. Whitespace only:
    the body digest (canonical JSON) is the same either way."""
    one = json.dumps(obj, ensure_ascii=False, default=str)
    pad = " " * (indent * _level)
    if not isinstance(obj, (dict, list)) or not obj or len(one) + len(pad) <= width:
        return one
    inner = " " * (indent * (_level + 1))
    if isinstance(obj, dict):
        parts = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {result_json(v, width, indent, _level + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(parts) + "\n" + pad + "}"
    parts = [inner + result_json(v, width, indent, _level + 1) for v in obj]
    return "[\n" + ",\n".join(parts) + "\n" + pad + "]"


def run_digest(
    method: str, params: dict[str, Any], model: str | None, task_id: str, task_version: int, protocol: dict[str, Any],
    *, task_definition: str | None = None, method_version: int | None = None, model_digest: str | None = None,
) -> str:
    """16 hex digits identifying a run. Changes when any input changes, and only then: the method
    (name, version, semantic params), the model (id and content digest), the task (id, version and
    the digest of its full definition, :func:`harness.tasks.definition_digest`) and the protocol."""
    payload = {
        "method": method,
        "method_version": method_version,
        "params": params,
        "model": model,
        "model_digest": model_digest,
        "task": task_id,
        "task_version": task_version,
        "task_definition": task_definition,
        "protocol": protocol,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def body_digest(doc: dict[str, Any]) -> str:
    """sha256 of a stored result's canonical JSON without its own ``body_sha256`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in doc.items() if k != "body_sha256"}).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The typed record


def _number(v: Any) -> int | float:
    """A JSON number kept as stored (an int stays an int, so files round-trip); bools refused."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{v!r} is not a number")
    return v


def _finite(v: Any) -> int | float:
    v = _number(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"value {v} is not finite (NaN/inf cannot be stored as a metric)")
    return v


Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]
FiniteNumber = Annotated[int | float, PlainValidator(_finite), WithJsonSchema({"type": "number"})]
Hex64 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


class _Record(BaseModel):
    """Base of the nested blocks: attributes, plus ``rec["key"]`` / ``rec.get("key")`` for code
    that still reads results as the dicts they were (the runner, the CLI's outcome table)."""

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        if key in type(self).model_fields or key in (self.model_extra or {}):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.model_fields_set or key in (self.model_extra or {}):
            return getattr(self, key)
        return default

    def __contains__(self, key: str) -> bool:
        return key in self.model_fields_set or key in (self.model_extra or {})

    def to_dict(self) -> dict[str, Any]:
        """The block as stored (fields never given stay absent)."""
        return self.model_dump(mode="json", exclude_unset=True)


class ErrorInfo(_Record):
    type: StrictStr
    message: StrictStr
    traceback: StrictStr | SkipJsonSchema[None] = None


class MethodInfo(_Record):
    name: StrictStr
    family: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9-]*$")]  # a registered method family
    params: dict[str, Any]
    non_semantic: list[StrictStr] | SkipJsonSchema[None] = None
    module: StrictStr | SkipJsonSchema[None] = None
    version: Annotated[StrictInt, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, description="the method class's version (bumped when its algorithm changes); in the run id")

    @property
    def semantic_params(self) -> dict[str, Any]:
        """Params without the non-semantic ones (batch size, threads, device: they do not change the
        result, are not in the run id, and only clutter tables)."""
        skip = set(self.non_semantic or ())
        return {k: v for k, v in self.params.items() if k not in skip}


class ModelInfo(_Record):
    id: StrictStr | None
    random_weights: StrictBool = False
    info: dict[str, Any] | SkipJsonSchema[None] = None
    digest: StrictStr | None = Field(default=None, description="content digest of the model (in the run id)")

    @property
    def notes(self) -> str | None:
        """The model record's own notes (e.g. a quirk of its checkpoint), when the result carries them."""
        notes = (self.info or {}).get("notes")
        return notes if isinstance(notes, str) and notes.strip() else None


class TaskInfo(_Record):
    id: StrictStr
    version: StrictInt
    kind: StrictStr
    title: StrictStr | SkipJsonSchema[None] = None
    protocol: Annotated[
        dict[str, Any],
        WithJsonSchema({
            "type": "object",
            "required": ["limit"],
            "properties": {"limit": {"type": ["integer", "null"], "minimum": 1}},
        }),
    ]
    protocol_details: dict[str, Any] | SkipJsonSchema[None] = None
    primary_metric: StrictStr | SkipJsonSchema[None] = None
    definition_digest: Hex64 | SkipJsonSchema[None] = Field(
        default=None, description="sha256 of the task's full definition when the run was made (in the run id)")

    @field_validator("protocol")
    @classmethod
    def _limit(cls, protocol: dict[str, Any]) -> dict[str, Any]:
        if "limit" not in protocol:
            raise ValueError("'limit' is a required property")
        limit = protocol["limit"]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"'limit' must be null or an integer >= 1, got {limit!r}")
        return protocol


class Metric(_Record):
    value: FiniteNumber
    n: Annotated[StrictInt, Field(ge=0)]
    stderr: FiniteNumber | None = None
    higher_is_better: StrictBool
    primary: StrictBool = False


class ItemsInfo(_Record):
    file: StrictStr = Field(description="sidecar JSONL next to this file, one line per item")
    sha256: Hex64
    count: Annotated[StrictInt, Field(ge=0)]
    key: StrictStr = Field(description="the field that identifies an item")
    fields: list[StrictStr] | SkipJsonSchema[None] = None


class Artifact(_Record):
    """A file a run produced (e.g. its ranked run). ``file`` is relative to the result's folder;
    artifacts are stored once by content under ``<results>/artifacts/`` (see ResultStore)."""

    file: StrictStr
    sha256: StrictStr
    format: StrictStr | SkipJsonSchema[None] = None
    bytes: StrictInt | SkipJsonSchema[None] = None


class Pruning(_Record):
    """What a pruning method did; its known keys typed, the rest (per-layer figures, details) kept."""

    measured_sparsity: Number | None = None
    details: dict[str, Any] | None = None
    layers: list[Any] | None = None


class Efficiency(_Record):
    prune_seconds: Number | None = None
    eval_seconds: Number | None = None
    latency: dict[str, Any] | None = None

    def numbers(self) -> dict[str, int | float]:
        """Every numeric figure except the latency block (seconds of each phase ...)."""
        out = {k: v for k, v in self.to_dict().items() if k != "latency"}
        return {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Provenance(_Record):
    harness_version: StrictStr
    git_commit: StrictStr | None = None
    git_dirty: StrictBool | None = None
    command: StrictStr
    reproduce: StrictStr
    python: StrictStr | SkipJsonSchema[None] = None
    platform: StrictStr | SkipJsonSchema[None] = None
    packages: dict[str, Any]
    device: dict[str, Any]
    seeds: dict[str, Any] | SkipJsonSchema[None] = None
    data: list[dict[str, Any]]
    calibration: dict[str, Any] | None = None
    started_at: StrictStr | SkipJsonSchema[None] = None
    finished_at: StrictStr | SkipJsonSchema[None] = None
    method: dict[str, Any] | SkipJsonSchema[None] = Field(
        default=None, description="where the adapter came from: module, distribution, version, source sha256")


class Result(_Record):
    """One run of one method (with its parameters) on one model and one task under one protocol."""

    model_config = ConfigDict(
        extra="forbid",
        title="harness result, schema version 1",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "harness/result-v1",
            # what _consistent checks, for readers of the schema (the run id digest cannot be written here)
            "allOf": [
                {"if": {"properties": {"status": {"const": "failed"}}},
                 "then": {"required": ["error"],
                          "properties": {"error": {"type": "object"}, "metrics": {"maxProperties": 0}}}},
                {"if": {"properties": {"status": {"const": "ok"}}},
                 "then": {"properties": {"metrics": {"minProperties": 1}}}},
            ],
        },
    )

    schema_version: Literal[1]
    run_id: StrictStr = Field(pattern=r"^[0-9a-f]{16}$", description="digest of method (name, version) + params + model (id, digest) + task (id, version, definition digest) + protocol")
    status: Literal["ok", "failed"]
    error: ErrorInfo | None = None
    created_at: StrictStr
    method: MethodInfo
    model: ModelInfo
    task: TaskInfo
    metrics: dict[str, Metric]
    pruning: Pruning | None = None
    efficiency: Efficiency
    provenance: Provenance
    items: ItemsInfo | None = None
    artifacts: dict[str, Artifact] | SkipJsonSchema[None] = None
    body_sha256: Hex64 | SkipJsonSchema[None] = Field(
        default=None, description="sha256 of this document's canonical JSON without this field")

    @model_validator(mode="after")
    def _consistent(self) -> Result:
        if self.status == "failed":
            if self.error is None:
                raise ValueError("field 'error': required when status is 'failed'")
            if self.metrics:
                raise ValueError("field 'metrics': a failed result carries no metric")
        elif not self.metrics:
            raise ValueError("field 'metrics': an 'ok' result needs at least one metric")
        expected = run_digest(**self.digest_args())
        if self.run_id != expected:
            raise ValueError(
                f"field 'run_id': {self.run_id} does not match the digest of its inputs ({expected});"
                " the file was edited or its inputs do not belong to it"
            )
        return self

    def digest_args(self) -> dict[str, Any]:
        return {
            "method": self.method.name,
            "params": self.method.semantic_params,
            "model": self.model.id,
            "task_id": self.task.id,
            "task_version": self.task.version,
            "protocol": self.task.protocol,
            "task_definition": self.task.definition_digest,
            "method_version": self.method.version,
            "model_digest": self.model.digest,
        }

    def identity(self) -> dict[str, Any]:
        """The inputs this result was made from (what the run id covers)."""
        a = self.digest_args()
        return {"method": a["method"], "params": a["params"], "model": a["model"], "task": a["task_id"],
                "task_version": a["task_version"], "protocol": a["protocol"],
                "task_definition": a["task_definition"], "method_version": a["method_version"],
                "model_digest": a["model_digest"]}

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def random_weights(self) -> bool:
        return bool(self.model.random_weights)

    @property
    def measured_sparsity(self) -> float | None:
        sp = self.pruning.measured_sparsity if self.pruning is not None else None
        return float(sp) if sp is not None else None

    def value(self, metric: str | None) -> int | float | None:
        """The stored value of ``metric`` (as stored: an int stays an int), None when absent."""
        m = self.metrics.get(metric) if metric else None
        return m.value if m is not None else None


# ---------------------------------------------------------------------------------------------
# Validation


def _error_message(exc: ValidationError, source: str) -> str:
    """One line naming the file and the first offending field (worded as the JSON-schema validators word it)."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a model-level check: its message names the field
        return f"{source}: {msg}"
    if err["type"] == "missing":
        parent = ".".join(loc[:-1]) or "(top level)"
        return f"{source}: field {parent!r}: {loc[-1]!r} is a required property"
    if err["type"] == "extra_forbidden":
        return f"{source}: field {'.'.join(loc)!r}: not a field of a harness result (additional fields are not allowed)"
    got = err.get("input")
    shown = repr(got) if isinstance(got, (str, int, float, bool)) or got is None else type(got).__name__
    if msg.startswith("Input should") and len(shown) <= 60:
        msg += f", got {shown}"
    return f"{source}: field {'.'.join(loc)!r}: {msg}"


def validate_result(doc: Any, source: str = "<result>") -> Result:
    """The ``Result`` of a stored document; ResultValidationError names the file and the first
    offending field."""
    if isinstance(doc, Result):
        doc = doc.to_dict()
    if not isinstance(doc, dict):
        raise ResultValidationError(f"{source}: not a JSON object (not a harness result)")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ResultValidationError(
            f"{source}: field 'schema_version': expected {SCHEMA_VERSION}, got {doc.get('schema_version')!r}"
            " (not a harness result, or written by another version)"
        )
    try:
        result = Result.model_validate(doc)
    except ValidationError as exc:
        raise ResultValidationError(_error_message(exc, source)) from None
    if result.body_sha256 is not None and body_digest(doc) != result.body_sha256:
        raise ResultValidationError(
            f"{source}: field 'body_sha256': stored {result.body_sha256}, the body has {body_digest(doc)}"
            " (the file was edited after it was written)"
        )
    return result


def semantic_params(method: dict[str, Any] | MethodInfo) -> dict[str, Any]:
    """A result's ``method`` block -> its params without the non-semantic ones."""
    if isinstance(method, MethodInfo):
        return method.semantic_params
    skip = set(method.get("non_semantic") or ())
    return {k: v for k, v in method["params"].items() if k not in skip}


def identity_of(doc: dict[str, Any] | Result) -> dict[str, Any]:
    """The inputs a stored result was made from (what the digest covers)."""
    if isinstance(doc, Result):
        return doc.identity()
    return {
        "method": doc["method"]["name"],
        "params": semantic_params(doc["method"]),
        "model": doc["model"]["id"],
        "task": doc["task"]["id"],
        "task_version": doc["task"]["version"],
        "protocol": doc["task"]["protocol"],
        "task_definition": doc["task"].get("definition_digest"),
        "method_version": doc["method"].get("version"),
        "model_digest": doc["model"].get("digest"),
    }


def result_json_schema() -> dict[str, Any]:
    """The JSON schema of a stored result, generated from :class:`Result`."""
    schema = Result.model_json_schema()
    schema["description"] = Result.__doc__
    head = {k: schema.pop(k) for k in ("$schema", "$id", "title", "description")}
    return head | schema


def schema_text() -> str:
    return json.dumps(result_json_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are shared files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def items_to_jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(canonical_json(item) + "\n" for item in items).encode()


def _items_file_of(result_path: Path) -> str | None:
    """The sidecar file a stored result names (None when it cannot be read or names none)."""
    try:
        items = json.loads(result_path.read_text()).get("items")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None
    return str(items["file"]) if isinstance(items, dict) and "file" in items else None


def load_items(result_path: Path, doc: Result | dict[str, Any]) -> list[dict[str, Any]]:
    """The per-item rows of a stored result, checked against its ``items`` block."""
    meta = doc.items if isinstance(doc, Result) else doc.get("items")
    if not meta:
        return []
    if isinstance(meta, dict):
        meta = ItemsInfo.model_validate(meta)
    path = result_path.parent / meta.file
    if not path.is_file():
        raise ResultValidationError(f"{result_path}: field 'items.file': sidecar {path.name} is missing")
    data = path.read_bytes()
    if meta.file.endswith(".xz"):
        try:
            data = lzma.decompress(data)
        except lzma.LZMAError as exc:
            raise ResultValidationError(f"{path}: not an xz-compressed sidecar ({exc})") from None
    if hashlib.sha256(data).hexdigest() != meta.sha256:
        raise ResultValidationError(f"{path}: sha256 differs from 'items.sha256' in {result_path.name}")
    rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    if len(rows) != meta.count:
        raise ResultValidationError(f"{path}: {len(rows)} items, but 'items.count' says {meta.count}")
    return rows


ARTIFACTS_DIR = "artifacts"
ORPHAN_BLOB_AGE = 600.0  # seconds: a younger unnamed blob may belong to a result being written
_artifact_sha_cache: dict[tuple[str, int, int], str] = {}


def artifact_path(result_path: Path, art: Artifact) -> Path:
    """Where an artifact of the result at ``result_path`` lies; refuses a ``file`` that points
    outside the results directory (``<results>/<task>/<run id>.json``)."""
    root = result_path.parent.parent.resolve()
    path = (result_path.parent / art.file).resolve()
    if root not in path.parents:
        raise ResultValidationError(f"{result_path}: field 'artifacts': {art.file!r} points outside {root.name}/")
    return path


def _sha256_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _artifact_sha_cache:
        _artifact_sha_cache[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _artifact_sha_cache[key]


def check_artifacts(result_path: Path, doc: Result) -> None:
    """Every artifact present with its recorded sha256 (a replaced or deleted run file is a problem)."""
    for name, art in (doc.artifacts or {}).items():
        path = artifact_path(result_path, art)
        if not path.is_file():
            raise ResultValidationError(f"{result_path}: field 'artifacts.{name}': {art.file} is missing")
        actual = _sha256_cached(path)
        if actual != art.sha256:
            raise ResultValidationError(
                f"{result_path}: field 'artifacts.{name}.sha256': stored {art.sha256}, file {art.file} has {actual}"
            )


def load_artifact(result_path: Path, doc: Result, name: str) -> tuple[str | None, bytes]:
    """(format, bytes) of one artifact, checked against its sha256."""
    arts = doc.artifacts or {}
    if name not in arts:
        raise ResultValidationError(f"{result_path}: no artifact {name!r} (has: {', '.join(sorted(arts)) or 'none'})")
    check_artifacts(result_path, doc.model_copy(update={"artifacts": {name: arts[name]}}))
    return arts[name].format, artifact_path(result_path, arts[name]).read_bytes()


@dataclass
class StoredResult:
    """A result as found in a store: where it lies, the typed record, and its per-item rows
    (read and checked on first use, then kept)."""

    path: Path
    result: Result
    _items: list[dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def items(self) -> list[dict[str, Any]]:
        if self._items is None:
            self._items = load_items(self.path, self.result)
        return self._items

    @property
    def doc(self) -> Result:
        """Old name of :attr:`result` (it was the JSON dict; the record still reads as one)."""
        return self.result

    @property
    def run_id(self) -> str:
        return self.result.run_id


class StaleResultError(ResultValidationError):
    """A valid result whose task definition has changed since it was made."""


MAX_RESULT_BYTES = 64 << 20
METRIC_REL_TOL = 1e-9  # float noise: a sum of a few thousand doubles in another order
METRIC_ABS_TOL = 1e-12


def current_definition_digest(task_id: str, tasks_dir: Path | None = None) -> str | None:
    """The definition digest of ``task_id`` as the tasks directory defines it today (None when no
    loadable task has that id)."""
    from harness.tasks import definition_digest, load_tasks

    try:
        task = load_tasks(tasks_dir).get(task_id)
    except (HarnessError, OSError):
        return None
    return definition_digest(task) if task is not None else None


def check_metrics(result_path: Path, doc: Result, items: list[dict[str, Any]]) -> None:
    """Each aggregate metric that its task kind can re-derive from the per-item scores (``TaskKind
    .aggregate``) equals the stored value within float noise; a mismatch names file, field, stored
    and recomputed values."""
    if not doc.ok or not items:
        return
    from harness.kinds import TASK_KINDS

    try:
        aggregate = TASK_KINDS.get(doc.task.kind).aggregate
    except Exception:  # a kind that is not installed here cannot be re-derived
        return
    if aggregate is None:
        return
    for name, metric in doc.metrics.items():
        try:
            recomputed = aggregate(name, items)
        except (TypeError, ValueError, KeyError, ZeroDivisionError, OverflowError) as exc:
            raise ResultValidationError(
                f"{result_path}: field 'metrics.{name}.value': cannot be re-derived from the items ({exc})") from None
        if recomputed is None:
            continue
        if not math.isclose(metric.value, recomputed, rel_tol=METRIC_REL_TOL, abs_tol=METRIC_ABS_TOL):
            raise ResultValidationError(
                f"{result_path}: field 'metrics.{name}.value': stored {metric.value!r}, recomputed from"
                f" {len(items)} items {recomputed!r}"
            )
        if metric.n != len(items):
            raise ResultValidationError(
                f"{result_path}: field 'metrics.{name}.n': stored {metric.n}, the sidecar has {len(items)} items")


QUARANTINE_DIR = ".quarantine"


class ResultStore:
    def __init__(self, root: Path | str, tasks_dir: Path | None = None):
        self.root = Path(root)
        self.tasks_dir = tasks_dir  # where current task definitions are read (None: the configured one)

    def path_for(self, task_id: str, run_id: str) -> Path:
        return self.root / task_id / f"{run_id}.json"

    def check_writable(self, subdirs: tuple[str, ...] | list[str] = ()) -> None:
        """Fail before any work when results cannot be written: the directory itself and each
        folder a run will write into (``<results>/<task id>``, the artifacts, the locks)."""
        for folder in [self.root, *(self.root / d for d in subdirs)]:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=folder)
                os.close(fd)
                os.unlink(tmp)
            except OSError as exc:
                raise HarnessError(f"results directory {folder} is not writable: {exc}") from None

    def load(self, path: Path) -> Result:
        """The typed result stored at ``path``; hostile files (too large, nested too deep, not
        JSON) are a ResultValidationError naming the file, never a crash."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_RESULT_BYTES:
                raise ResultValidationError(
                    f"{path}: {size} bytes, more than the {MAX_RESULT_BYTES >> 20} MB a result file may have")
            doc = json.loads(path.read_text())
            return validate_result(doc, str(path))
        except json.JSONDecodeError as exc:
            raise ResultValidationError(f"{path}: not valid JSON ({exc})") from None
        except UnicodeDecodeError:
            raise ResultValidationError(f"{path}: not a UTF-8 text file") from None
        except RecursionError:
            raise ResultValidationError(f"{path}: JSON nested too deeply to be a harness result") from None
        except OSError as exc:
            raise ResultValidationError(f"{path}: cannot be read ({exc.strerror or exc})") from None

    def check(self, path: Path) -> StoredResult:
        """Every check ``validate`` makes, on one stored file: schema and run id, body digest,
        sidecar and artifacts against their sha256, aggregate metrics re-derived from the per-item
        scores, and the task definition still the one the result was made with (else stale).
        ``run`` trusts a stored cell only when this passes."""
        stored = StoredResult(Path(path), self.load(path))
        try:
            items = stored.items()
        except RecursionError:
            raise ResultValidationError(f"{path}: field 'items.file': a line is nested too deeply") from None
        check_artifacts(stored.path, stored.result)
        check_metrics(stored.path, stored.result, items)
        self.check_fresh(stored.path, stored.result)
        return stored

    def check_fresh(self, path: Path, result: Result) -> None:
        """StaleResultError when the result's task is defined differently today."""
        stored = result.task.definition_digest
        if stored is None:
            return  # made before definitions were digested (or synthetic): its run id cannot match a new run
        current = current_definition_digest(result.task.id, self.tasks_dir)
        if current is not None and current != stored:
            raise StaleResultError(
                f"{path}: field 'task.definition_digest': stale: task {result.task.id} is defined differently"
                f" today ({current[:12]}, stored {stored[:12]}); re-run it"
            )

    def existing(self, task_id: str, run_id: str) -> Result | None:
        path = self.path_for(task_id, run_id)
        return self.load(path) if path.is_file() else None

    def write(
        self,
        doc: Result | dict[str, Any],
        items: list[dict[str, Any]] | None = None,
        item_key: str = "item",
        artifacts: dict[str, tuple[str, bytes]] | None = None,
    ) -> Path:
        """Validate and write a result (a ``Result`` or its dict) with its sidecars. Never replaces
        a different run."""
        doc = doc.to_dict() if isinstance(doc, Result) else dict(doc)
        path = self.path_for(doc["task"]["id"], doc["run_id"])
        if path.is_file():
            try:
                same = identity_of(json.loads(path.read_text())) == identity_of(doc)
            except Exception:
                same = False
            if not same:
                raise ResultValidationError(
                    f"{path} exists and holds a different run (or is not a harness result); refusing to overwrite it"
                )
        blob = items_to_jsonl(items) if items is not None else b""
        if items is not None:
            doc["items"] = {
                "file": f"{doc['run_id']}{ITEMS_XZ_SUFFIX if len(blob) > ITEMS_COMPRESS_OVER else ITEMS_SUFFIX}",
                "sha256": hashlib.sha256(blob).hexdigest(),
                "count": len(items),
                "key": item_key,
                "fields": sorted({k for item in items for k in item}),
            }
        else:
            doc.setdefault("items", None)
        arts = {}
        for name, (fmt, data) in (artifacts or {}).items():
            sha = hashlib.sha256(data).hexdigest()
            arts[name] = {"file": f"../{ARTIFACTS_DIR}/{sha[:2]}/{sha}", "sha256": sha, "format": fmt,
                          "bytes": len(data)}
        if arts:
            doc["artifacts"] = arts
        doc["body_sha256"] = body_digest(doc)
        validate_result(doc, str(path))
        if items is not None:
            sidecar = path.parent / doc["items"]["file"]
            atomic_write_bytes(sidecar, lzma.compress(blob, preset=9) if sidecar.suffix == ".xz" else blob)
        for name, (_fmt, data) in (artifacts or {}).items():
            self.put_blob(data, arts[name]["sha256"])
        atomic_write_bytes(path, (result_json(doc) + "\n").encode())
        if items is not None:  # a rewrite that changed the sidecar's form leaves no stale other form
            for suffix in SIDECAR_SUFFIXES:
                other = path.parent / f"{doc['run_id']}{suffix}"
                if other.name != doc["items"]["file"] and other.is_file():
                    other.unlink()
        return path

    def amend(self, stored: StoredResult, doc: dict[str, Any], change: dict[str, Any], command: str,
              items: list[dict[str, Any]] | None = None) -> StoredResult:
        """Rewrite ``stored`` in place as ``doc``, the same run (:meth:`write` refuses another
        identity), recording in ``provenance.amendments`` what ``change`` says (``added``,
        ``moved``, ``changed``, and ``from``: what the new content derives from) with the time, the
        command and the harness commit. ``items``: new per-item rows (default: the stored ones).
        Returns the rewritten result, checked as ``validate`` checks it."""
        from harness import provenance

        commit, dirty = provenance.git_state()
        doc = dict(doc)
        doc["provenance"] = dict(doc["provenance"])
        doc["provenance"]["amendments"] = [*(doc["provenance"].get("amendments") or []), {
            **change, "at": provenance.utc_now(), "command": command, "harness_commit": commit,
            "harness_dirty": dirty}]
        doc.pop("body_sha256", None)
        meta = stored.result.items
        if items is None and meta is not None:
            items = stored.items()
        self.write(doc, items=items, item_key=meta.key if meta is not None else "item")
        return self.check(stored.path)

    def put_blob(self, data: bytes, sha: str) -> Path:
        """Store ``data`` once by content: identical artifacts of different runs share one file."""
        path = self.root / ARTIFACTS_DIR / sha[:2] / sha
        if not (path.is_file() and _sha256_cached(path) == sha):
            atomic_write_bytes(path, data)
        return path

    def iter_paths(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        yield from sorted(p for p in self.root.rglob("*.json")
                          if not any(part.startswith(".") for part in p.relative_to(self.root).parts))

    def scan(self) -> tuple[list[StoredResult], list[tuple[Path, str]]]:
        """All results that pass :meth:`check`, and (path, problem) for the rest (invalid,
        tampered or stale). Touches nothing."""
        good: list[StoredResult] = []
        bad: list[tuple[Path, str]] = []
        for path in self.iter_paths():
            try:
                good.append(self.check(path))
            except ResultValidationError as exc:
                bad.append((path, str(exc)))
        return good, bad

    def referenced_blobs(self) -> set[str] | None:
        """The sha256 of every artifact some stored result names; None when a result file cannot be
        read (then no blob can be called unreferenced)."""
        shas: set[str] = set()
        for path in self.iter_paths():
            try:
                if path.stat().st_size > MAX_RESULT_BYTES:
                    return None
                doc = json.loads(path.read_text())
            except (OSError, ValueError, RecursionError):  # hostile files: see check()
                return None
            arts = doc.get("artifacts") if isinstance(doc, dict) else None
            if isinstance(arts, dict):
                shas |= {str(a.get("sha256")) for a in arts.values() if isinstance(a, dict)}
        quarantined = self.root / QUARANTINE_DIR
        if quarantined.is_dir():  # a quarantined result may be restored: keep what it names
            for path in quarantined.rglob("*.json.*"):
                with contextlib.suppress(OSError, ValueError, AttributeError, RecursionError):
                    arts = json.loads(path.read_text()).get("artifacts") or {}
                    shas |= {str(a.get("sha256")) for a in arts.values() if isinstance(a, dict)}
        return shas

    def orphans(self, min_blob_age: float = ORPHAN_BLOB_AGE) -> list[tuple[Path, str]]:
        """Leftovers of interrupted writes: temporary files (``.*.tmp``), per-item sidecars whose
        result file is gone, and artifact blobs no result names (older than ``min_blob_age``
        seconds: a writer stores its blobs just before its result file). Never a result file, an
        artifact a result names, or a quarantined file."""
        if not self.root.is_dir():
            return []
        found: list[tuple[Path, str]] = []
        for path in sorted(self.root.rglob(".*.tmp")):
            if path.is_file() and QUARANTINE_DIR not in path.relative_to(self.root).parts:
                found.append((path, "temporary file left by an interrupted write"))
        for path in sorted(p for suffix in SIDECAR_SUFFIXES for p in self.root.rglob(f"*{suffix}")):
            rel = path.relative_to(self.root).parts
            if any(part.startswith(".") for part in rel):
                continue
            run_id = path.name.removesuffix(ITEMS_XZ_SUFFIX).removesuffix(ITEMS_SUFFIX)
            result = path.with_name(run_id + ".json")
            if not result.exists():
                found.append((path, f"sidecar without its result {result.name}"))
            elif (named := _items_file_of(result)) is not None and named != path.name:
                found.append((path, f"sidecar its result {result.name} does not name (it names {named})"))
        blobs = self.root / ARTIFACTS_DIR
        named = self.referenced_blobs() if blobs.is_dir() else None
        if named is not None:
            now = time.time()
            for path in sorted(blobs.glob("??/*")):
                if (path.is_file() and not path.name.startswith(".") and path.name not in named
                        and now - path.stat().st_mtime >= min_blob_age):
                    found.append((path, "artifact that no stored result names"))
        return found

    def quarantine(self, path: Path) -> Path:
        """Move a stored file that does not validate (and its sidecar) to ``<results>/.quarantine/``,
        keeping it for inspection; returns where it went."""
        path = Path(path)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target_dir = self.root / QUARANTINE_DIR / path.parent.name
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{path.name}.{stamp}"
        os.replace(path, target)
        for suffix in SIDECAR_SUFFIXES:
            sidecar = path.with_name(path.name.removesuffix(".json") + suffix)
            if sidecar.exists():
                os.replace(sidecar, target_dir / f"{sidecar.name}.{stamp}")
        return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.results", description=__doc__.splitlines()[0])
    parser.add_argument("--write-schema", action="store_true", help=f"write {SCHEMA_PATH.name} from the model")
    args = parser.parse_args(argv)
    if args.write_schema:
        SCHEMA_PATH.write_text(schema_text())
        print(f"wrote {SCHEMA_PATH}")
    else:
        print(schema_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
