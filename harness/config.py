"""Where things live: data directory, cache directory, tasks directory, results directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path | None:
    """The mirrored benchmark data (HARNESS_DATA_DIR), or None when unset."""
    value = os.environ.get("HARNESS_DATA_DIR")
    return Path(value).expanduser().resolve() if value else None


def cache_dir() -> Path:
    """Converted models, tokenised text, indexes. HARNESS_CACHE_DIR or ~/.cache/harness."""
    value = os.environ.get("HARNESS_CACHE_DIR")
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "harness"
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup_cache_dir() -> Path:
    """Where a method's setup may keep what it makes for later runs (pruned models): under
    :func:`cache_dir`, shared by every run and sweep worker of this machine."""
    return cache_dir() / "setup"


def tasks_dir() -> Path:
    value = os.environ.get("HARNESS_TASKS_DIR")
    return Path(value).expanduser().resolve() if value else REPO_ROOT / "tasks"


def default_results_dir() -> Path:
    value = os.environ.get("HARNESS_RESULTS_DIR")
    return Path(value).expanduser() if value else Path("results")


def hub_allowed() -> bool:
    """The hub is tried only when the user has not declared themselves offline."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True") and os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) not in ("1", "true", "True")
