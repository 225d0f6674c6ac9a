"""A cache of pruned models, shared by the runs and sweep workers of one machine.

Pruning is the expensive step of an LLM pruning cell, and a grid prunes the same model the same way
again and again: when a task is added, when the limit of a task changes (the 8-window and the
148-window WikiText-2 cells of one method), when a sweep is re-run after a crash. A cache entry holds
the weights a mask-pruning method produced, keyed by everything that decides them:

* the model's digest (``models.model_digest``: the pinned checkpoint sha256),
* the method, its version and its semantic parameters (sparsity, pattern, calibration set, window
  count and length, seed, order, ...),
* the calibration windows' provenance (the data file's sha256 and how the windows were drawn),
* the device and dtype, and the torch version (pruning arithmetic can differ between them);
* the source code that computes them: the sha256 of the method's module and of the shared pruning
  and calibration code, so an edited algorithm never loads weights its previous code made, even
  when its version was not bumped.

A hit loads the base model, then the stored weights (``safetensors``), and the result records that
its weights came from the cache (``pruning.details.pruned_model_cache``: the key, when and by which
command the entry was made, the original pruning time, which stays the result's ``prune_seconds``:
it is the method's cost, not the cache's). Only methods that keep the model's shape (masks, weight
updates: ``removes_weights = False``) are cached; methods that remove blocks or channels change the
architecture and are pruned afresh (they are also the cheap ones).

Location: ``<cache dir>/setup/pruned-models`` (``HARNESS_CACHE_DIR``, default ``~/.cache/harness``),
or ``HARNESS_PRUNED_CACHE_DIR``. Size cap: ``HARNESS_PRUNED_CACHE_GB`` (default 20); beyond it the
least recently used entries are deleted. ``harness run --no-setup-cache`` (or
``HARNESS_PRUNED_CACHE_DIR=off``) turns the cache off.

Concurrency and faults: an entry is written to a temporary directory and renamed into place, so a
killed writer never leaves a partial entry; workers that want the same key take its lock
(:func:`harness.locks.run_lock`), so the model is pruned once and the others load it. An entry that
cannot be read is deleted and the model pruned afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.locks import run_lock
from harness.results import canonical_json

log = logging.getLogger("harness")

ENTRY_FILE = "entry.json"
WEIGHTS_FILE = "model.safetensors"
DEFAULT_MAX_GB = 20.0
FORM_VERSION = 1


def cache_root(base: Path | None) -> Path | None:
    """The cache directory under the run's setup cache ``base`` (None: caching is off)."""
    env = os.environ.get("HARNESS_PRUNED_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none", "false") else Path(env).expanduser()
    return None if base is None else Path(base) / "pruned-models"


def max_bytes() -> int:
    value = os.environ.get("HARNESS_PRUNED_CACHE_GB")
    try:
        gb = float(value) if value else DEFAULT_MAX_GB
    except ValueError:
        raise ValueError(f"HARNESS_PRUNED_CACHE_GB={value!r} must be a number of GiB") from None
    return int(gb * 1024**3)


def cache_key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


@dataclass
class PrunedModelCache:
    """The entries under ``root``; see the module docstring."""

    root: Path
    limit_bytes: int

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def lock(self, key: str):
        return run_lock(self.root, key)

    def load(self, key: str, model: Any) -> dict[str, Any] | None:
        """Load entry ``key``'s weights into ``model``; its record, or None on a miss. A broken
        entry is deleted (and reported as a miss)."""
        where = self.entry_dir(key)
        entry_path, weights = where / ENTRY_FILE, where / WEIGHTS_FILE
        if not entry_path.is_file() or not weights.is_file():
            return None
        try:
            from safetensors.torch import load_model

            entry = json.loads(entry_path.read_text())
            if entry.get("key") != key:
                raise ValueError(f"entry names key {entry.get('key')!r}")
            missing, unexpected = load_model(model, str(weights), strict=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is dropped, then re-made
            log.warning("pruned-model cache entry %s unreadable (%s: %s); pruning afresh", key[:12],
                        type(exc).__name__, exc)
            shutil.rmtree(where, ignore_errors=True)
            return None
        os.utime(entry_path)  # least recently used: by this file's mtime
        return entry

    def store(self, key: str, model: Any, record: dict[str, Any]) -> bool:
        """Write ``model``'s weights as entry ``key`` (atomically); False when it does not fit."""
        from safetensors.torch import save_model

        unique = {t.data_ptr(): t for t in model.state_dict().values()}  # tied weights are stored once
        size = sum(t.numel() * t.element_size() for t in unique.values())
        if size > self.limit_bytes:
            log.info("pruned model (%.1f GiB) is larger than the cache cap; not cached", size / 1024**3)
            return False
        final = self.entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            save_model(model, str(tmp / WEIGHTS_FILE))
            entry = {"form_version": FORM_VERSION, "key": key,
                     "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")} | record
            (tmp / ENTRY_FILE).write_text(json.dumps(entry, indent=2, sort_keys=True, default=str) + "\n")
            if final.exists():  # made meanwhile by a process that did not hold the lock: keep it
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.evict(keep=key)
        return True

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, directory) of every complete entry, least recently used first."""
        out = []
        if not self.root.is_dir():
            return out
        for entry_path in self.root.glob(f"??/*/{ENTRY_FILE}"):
            d = entry_path.parent
            try:
                size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
                out.append((entry_path.stat().st_mtime, size, d))
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
        return sorted(out)

    def evict(self, keep: str | None = None) -> list[Path]:
        """Delete least recently used entries until the cache fits its cap; never ``keep``."""
        entries = self.entries()
        total = sum(size for _t, size, _d in entries)
        removed = []
        for _t, size, d in entries:
            if total <= self.limit_bytes:
                break
            if d.name == keep:
                continue
            shutil.rmtree(d, ignore_errors=True)
            total -= size
            removed.append(d)
            log.info("pruned-model cache: evicted %s (%.2f GiB)", d.name[:12], size / 1024**3)
        return removed


def open_cache(base: Path | None) -> PrunedModelCache | None:
    root = cache_root(base)
    return None if root is None else PrunedModelCache(root, max_bytes())


def source_digest(*modules: Any) -> str:
    """sha256 over the source files of ``modules`` (the code that computes the pruned weights)."""
    h = hashlib.sha256()
    for mod in modules:
        path = Path(mod.__file__)
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\n")
    return h.hexdigest()


def key_fields(*, model_id: str, model_digest: str | None, method: str, version: int, params: dict[str, Any],
               calibration: dict[str, Any] | None, device: str, dtype: str, code: str) -> dict[str, Any]:
    """What decides a pruned model's weights (see the module docstring)."""
    import torch

    return {"form_version": FORM_VERSION, "model": model_id, "model_digest": model_digest, "method": method,
            "method_version": version, "params": params, "calibration": calibration, "device": device.split(":")[0],
            "dtype": dtype, "torch": torch.__version__.split("+")[0], "code_sha256": code}


def timed_load(cache: PrunedModelCache, key: str, model: Any) -> tuple[dict[str, Any] | None, float]:
    t0 = time.perf_counter()
    entry = cache.load(key, model)
    return entry, time.perf_counter() - t0
