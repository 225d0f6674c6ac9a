"""Provenance of a run: versions, commit, device, the exact command."""

from __future__ import annotations

import importlib.metadata
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
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "harness", "methods", "tasks"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


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
