"""Provenance of a run: versions, commit, device, the exact command."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any

from harness import __version__, config

PACKAGES = (
    "torch", "transformers", "lm_eval", "datasets", "tokenizers", "accelerate", "numpy", "scipy", "pandas",
    "ir_measures", "python-terrier", "pyterrier-pisa", "bm25s", "gguf",
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_state() -> tuple[str | None, bool | None]:
    root = config.REPO_ROOT
    if not (root / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=normal", "--", "harness", "methods", "tasks"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty  # untracked (not ignored) files under these folders count: they change what runs


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"type": device, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.cuda.current_device()
        info |= {
            "name": torch.cuda.get_device_name(idx),
            "cuda": torch.version.cuda,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(idx))),
        }
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def invoked_command() -> str:
    argv = list(sys.argv)
    prog = os.path.basename(argv[0]) if argv else "harness"
    if prog in ("__main__.py", "cli.py"):
        prog = "harness"
    return shlex.join([prog, *argv[1:]])


def collect(device: str) -> dict[str, Any]:
    commit, dirty = git_state()
    return {
        "harness_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device_info(device),
        "command": invoked_command(),
    }


def _distribution_of(module: str) -> str:
    """``"harness <version>"`` for a built-in adapter, ``"<dist> <version>"`` for a plug-in."""
    top = module.split(".")[0]
    if top in ("methods", "harness"):
        return f"harness {__version__}"
    dists = importlib.metadata.packages_distributions().get(top) or []
    for dist in dists:
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"{top} (no installed distribution)"


def source_sha256(cls: type) -> str | None:
    """sha256 of the file that defines ``cls`` (None when it has no readable source file)."""
    try:
        path = inspect.getsourcefile(cls)
        with open(path, "rb") as fh:  # type: ignore[arg-type]
            return hashlib.sha256(fh.read()).hexdigest()
    except (TypeError, OSError):
        return None


def method_source(cls: type) -> dict[str, Any]:
    """Where a method adapter came from: its module, distribution and version, its source digest."""
    return {
        "module": cls.__module__,
        "class": cls.__qualname__,
        "distribution": _distribution_of(cls.__module__),
        "source_sha256": source_sha256(cls),
    }


def adapter_change(method_name: str, stored: dict[str, Any] | None) -> str | None:
    """A sentence when the adapter of ``method_name`` differs today from the one recorded in a
    result's ``provenance.method`` (its source file or distribution), else None."""
    if not stored or not stored.get("source_sha256"):
        return None
    from harness.registry import get_method

    try:
        now = method_source(get_method(method_name).cls)
    except Exception as exc:  # not installed here: say so, it cannot be compared
        return f"adapter of {method_name} cannot be loaded here ({type(exc).__name__}: {exc})"
    if now["source_sha256"] != stored["source_sha256"]:
        return (f"adapter source of {method_name} changed since this result was made"
                f" ({stored.get('distribution')}: {stored['source_sha256'][:12]} -> {now['distribution']}:"
                f" {(now['source_sha256'] or 'none')[:12]})")
    return None
