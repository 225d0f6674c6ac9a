"""The result store: one validated JSON file per run, plus sidecars.

Layout: ``<results>/<task id>/<run id>.json`` with ``<run id>.items.jsonl`` (per-item scores) and
any artifacts (``<run id>.run.trec`` ...) beside it. The run id is a digest of exactly the inputs
that define the run (method, semantic parameters, model, task id and version, protocol), so running
the same thing twice finds the stored result, and two different runs never share a file.
Writes are atomic (temporary file + rename) and validated before anything is replaced.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, ResultValidationError

SCHEMA_VERSION = 1
ITEMS_SUFFIX = ".items.jsonl"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def run_digest(
    method: str, params: dict[str, Any], model: str | None, task_id: str, task_version: int, protocol: dict[str, Any]
) -> str:
    """16 hex digits identifying a run. Changes when any input changes, and only then."""
    payload = {
        "method": method,
        "params": params,
        "model": model,
        "task": task_id,
        "task_version": task_version,
        "protocol": protocol,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def semantic_params(method: dict[str, Any]) -> dict[str, Any]:
    """A result's ``method`` block -> its params without the non-semantic ones (batch size, threads,
    device: they do not change the result, are not in the run id, and only clutter tables)."""
    skip = set(method.get("non_semantic") or ())
    return {k: v for k, v in method["params"].items() if k not in skip}


def identity_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The inputs a stored result was made from (what the digest covers)."""
    return {
        "method": doc["method"]["name"],
        "params": semantic_params(doc["method"]),
        "model": doc["model"]["id"],
        "task": doc["task"]["id"],
        "task_version": doc["task"]["version"],
        "protocol": doc["task"]["protocol"],
    }


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads((Path(__file__).parent / "schema" / "result-v1.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _check_finite(obj: Any, where: str) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ResultValidationError(f"{where}: value {obj} is not finite (NaN/inf cannot be stored as a metric)")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{where}.{k}")


def validate_result(doc: Any, source: str = "<result>") -> None:
    """Raise ResultValidationError naming the file and the first offending field."""
    if not isinstance(doc, dict):
        raise ResultValidationError(f"{source}: not a JSON object (not a harness result)")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ResultValidationError(
            f"{source}: field 'schema_version': expected {SCHEMA_VERSION}, got {doc.get('schema_version')!r}"
            " (not a harness result, or written by another version)"
        )
    validator = _validator()
    errors = [] if validator.is_valid(doc) else sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        fieldpath = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ResultValidationError(f"{source}: field {fieldpath!r}: {err.message}")
    _check_finite(doc.get("metrics", {}), f"{source}: field 'metrics'")
    expected = run_digest(**{k: v for k, v in _digest_args(doc).items()})
    if doc["run_id"] != expected:
        raise ResultValidationError(
            f"{source}: field 'run_id': {doc['run_id']} does not match the digest of its inputs ({expected});"
            " the file was edited or its inputs do not belong to it"
        )


def _digest_args(doc: dict[str, Any]) -> dict[str, Any]:
    ident = identity_of(doc)
    return {
        "method": ident["method"],
        "params": ident["params"],
        "model": ident["model"],
        "task_id": ident["task"],
        "task_version": ident["task_version"],
        "protocol": ident["protocol"],
    }


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


@dataclass(frozen=True)
class StoredResult:
    path: Path
    doc: dict[str, Any]

    def items(self) -> list[dict[str, Any]]:
        return load_items(self.path, self.doc)


def load_items(result_path: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    meta = doc.get("items")
    if not meta:
        return []
    path = result_path.parent / meta["file"]
    if not path.is_file():
        raise ResultValidationError(f"{result_path}: field 'items.file': sidecar {path.name} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ResultValidationError(f"{path}: sha256 differs from 'items.sha256' in {result_path.name}")
    rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    if len(rows) != meta["count"]:
        raise ResultValidationError(f"{path}: {len(rows)} items, but 'items.count' says {meta['count']}")
    return rows


class ResultStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path_for(self, task_id: str, run_id: str) -> Path:
        return self.root / task_id / f"{run_id}.json"

    def check_writable(self) -> None:
        """Fail before any work when results cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".write-test-", dir=self.root)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise HarnessError(f"results directory {self.root} is not writable: {exc}") from None

    def load(self, path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ResultValidationError(f"{path}: not valid JSON ({exc})") from None
        except UnicodeDecodeError:
            raise ResultValidationError(f"{path}: not a UTF-8 text file") from None
        validate_result(doc, str(path))
        return doc

    def existing(self, task_id: str, run_id: str) -> dict[str, Any] | None:
        path = self.path_for(task_id, run_id)
        return self.load(path) if path.is_file() else None

    def write(
        self,
        doc: dict[str, Any],
        items: list[dict[str, Any]] | None = None,
        item_key: str = "item",
        artifacts: dict[str, tuple[str, bytes]] | None = None,
    ) -> Path:
        """Validate and write a result with its sidecars. Never replaces a different run."""
        path = self.path_for(doc["task"]["id"], doc["run_id"])
        if path.is_file():
            try:
                old = json.loads(path.read_text())
                same = identity_of(old) == identity_of(doc)
            except Exception:
                same = False
            if not same:
                raise ResultValidationError(
                    f"{path} exists and holds a different run (or is not a harness result); refusing to overwrite it"
                )
        doc = dict(doc)
        if items is not None:
            blob = items_to_jsonl(items)
            fields = sorted({k for item in items for k in item})
            doc["items"] = {
                "file": f"{doc['run_id']}{ITEMS_SUFFIX}",
                "sha256": hashlib.sha256(blob).hexdigest(),
                "count": len(items),
                "key": item_key,
                "fields": fields,
            }
        else:
            doc.setdefault("items", None)
        arts = {}
        for name, (fmt, data) in (artifacts or {}).items():
            arts[name] = {"file": f"{doc['run_id']}.{name}", "sha256": hashlib.sha256(data).hexdigest(), "format": fmt}
        if arts:
            doc["artifacts"] = arts
        validate_result(doc, str(path))
        if items is not None:
            atomic_write_bytes(path.parent / doc["items"]["file"], blob)
        for name, (_fmt, data) in (artifacts or {}).items():
            atomic_write_bytes(path.parent / arts[name]["file"], data)
        atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n").encode())
        return path

    def iter_paths(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        yield from sorted(p for p in self.root.rglob("*.json") if not p.name.startswith("."))

    def scan(self) -> tuple[list[StoredResult], list[tuple[Path, str]]]:
        """All results that validate, and (path, problem) for the rest. Touches nothing."""
        good: list[StoredResult] = []
        bad: list[tuple[Path, str]] = []
        for path in self.iter_paths():
            try:
                doc = self.load(path)
                if doc.get("items"):
                    load_items(path, doc)
                good.append(StoredResult(path, doc))
            except ResultValidationError as exc:
                bad.append((path, str(exc)))
        return good, bad
