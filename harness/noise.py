"""The noise band of a result: how far its metrics move when only the calibration draw moves.

A pruning run repeated with another calibration ``seed`` (other windows of the same set) or another
``calibration_order`` (the same windows, permuted: only the rounding of the statistics summed over
windows changes) is an ordinary run that differs from the first only in these *repeat parameters*.
Given stored results, :func:`noise_bands` groups those that agree on everything else (method and its
version, the other parameters, model, task and its version, protocol) and returns, per metric, the
spread of the repeats: k, min, max, mean and the sample standard deviation (ddof=1; 0 for k=1).

Two values whose difference lies inside both of their bands are not told apart:
:func:`indistinguishable` (the rule a board applies before any per-item test) and
:func:`bands_overlap` (whether the two [min, max] intervals meet).

Stored form (``harness noise-band`` writes one file per band, ``results/noise-bands/<task>/
<method>-<band_id>.band``; JSON, suffixed ``.band`` so that the result store, which reads every
``*.json`` under ``results/`` as a result, leaves it alone)::

    {"noise_band_version": 1, "band_id": "<16 hex>",
     "method": {"name": "wanda", "version": 1, "params": {...without seed / calibration_order}},
     "model": "smollm2-135m",
     "task": {"id": "wikitext2", "version": 1, "protocol": {...}},
     "repeat_params": ["seed", "calibration_order"],
     "runs": [{"run_id": "...", "seed": 0, "calibration_order": "sampled"}, ...],
     "metrics": {"perplexity": {"k": 3, "min": .., "max": .., "mean": .., "std": ..,
                                "values": [...], "higher_is_better": false}},
     "command": "harness noise-band ...", "created_at": "..."}

This module is pure: it reads results and writes nothing (:func:`write_band` is the only writer).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import Result, StoredResult, atomic_write_bytes, canonical_json

REPEAT_PARAMS = ("seed", "calibration_order")
DEFAULT_ORDER = "sampled"  # a result without calibration_order was fed its windows as sampled
BANDS_DIR = "noise-bands"
BAND_SUFFIX = ".band"
FORM_VERSION = 1


@dataclass(frozen=True)
class Spread:
    """The spread of one metric over k repeats."""

    k: int
    min: float
    max: float
    mean: float
    std: float  # sample standard deviation (ddof=1), 0.0 when k == 1
    values: tuple[float, ...] = ()
    higher_is_better: bool | None = None

    @property
    def width(self) -> float:
        return self.max - self.min

    @classmethod
    def of(cls, values: Iterable[float], higher_is_better: bool | None = None) -> Spread:
        vals = tuple(float(v) for v in values)
        if not vals:
            raise ValueError("a spread needs at least one value")
        k = len(vals)
        mean = math.fsum(vals) / k
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (k - 1)) if k > 1 else 0.0
        return cls(k, min(vals), max(vals), mean, std, vals, higher_is_better)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "min": self.min, "max": self.max, "mean": self.mean, "std": self.std,
                "values": list(self.values), "higher_is_better": self.higher_is_better}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Spread:
        return cls(int(d["k"]), float(d["min"]), float(d["max"]), float(d["mean"]), float(d["std"]),
                   tuple(float(v) for v in d.get("values", ())), d.get("higher_is_better"))


@dataclass
class NoiseBand:
    """Repeats of one configuration and the spread of each of their metrics."""

    method: str
    method_version: int
    params: dict[str, Any]  # without the repeat parameters
    model: str | None
    task: str
    task_version: int
    protocol: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Spread] = field(default_factory=dict)

    @property
    def band_id(self) -> str:
        return hashlib.sha256(canonical_json(self.key()).encode()).hexdigest()[:16]

    def key(self) -> dict[str, Any]:
        return {"method": self.method, "method_version": self.method_version, "params": self.params,
                "model": self.model, "task": self.task, "task_version": self.task_version,
                "protocol": self.protocol}

    @property
    def k(self) -> int:
        return len(self.runs)

    def to_dict(self, command: str | None = None, created_at: str | None = None) -> dict[str, Any]:
        return {
            "noise_band_version": FORM_VERSION, "band_id": self.band_id,
            "method": {"name": self.method, "version": self.method_version, "params": self.params},
            "model": self.model,
            "task": {"id": self.task, "version": self.task_version, "protocol": self.protocol},
            "repeat_params": list(REPEAT_PARAMS), "runs": self.runs,
            "metrics": {name: s.to_dict() for name, s in self.metrics.items()},
            "command": command, "created_at": created_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseBand:
        return cls(d["method"]["name"], int(d["method"]["version"]), d["method"]["params"], d["model"],
                   d["task"]["id"], int(d["task"]["version"]), d["task"]["protocol"], list(d["runs"]),
                   {name: Spread.from_dict(s) for name, s in d["metrics"].items()})


def _result(r: Result | StoredResult) -> Result:
    return r.result if isinstance(r, StoredResult) else r


def method_version(result: Result) -> int:
    """The version of the method that made ``result``: the record's ``method.version``, else the
    ``method_version`` its pruning details name, else 1 (records from before versions)."""
    v = result.method.get("version")
    if v is None and result.pruning is not None:
        v = (result.pruning.get("details") or {}).get("method_version")
    return int(v) if v is not None else 1


def band_key(result: Result) -> dict[str, Any]:
    """What repeats of one configuration share: everything but the repeat parameters."""
    params = {k: v for k, v in result.method.semantic_params.items() if k not in REPEAT_PARAMS}
    return {"method": result.method.name, "method_version": method_version(result), "params": params,
            "model": result.model.id, "task": result.task.id, "task_version": result.task.version,
            "protocol": result.task.protocol}


def repeat_of(result: Result) -> dict[str, Any]:
    """The repeat parameters of ``result`` and its run id."""
    params = result.method.params
    return {"run_id": result.run_id, "seed": params.get("seed"),
            "calibration_order": params.get("calibration_order", DEFAULT_ORDER)}


def _band(key: dict[str, Any], results: list[Result]) -> NoiseBand:
    band = NoiseBand(key["method"], key["method_version"], key["params"], key["model"], key["task"],
                     key["task_version"], key["protocol"])
    results = sorted(results, key=lambda r: (str(repeat_of(r)["seed"]), repeat_of(r)["calibration_order"]))
    band.runs = [repeat_of(r) for r in results]
    names = [n for n in results[0].metrics if all(n in r.metrics for r in results)]
    for name in names:
        hib = results[0].metrics[name].higher_is_better
        band.metrics[name] = Spread.of([r.metrics[name].value for r in results], hib)
    return band


def noise_bands(results: Iterable[Result | StoredResult], min_k: int = 2) -> list[NoiseBand]:
    """The bands of every configuration with at least ``min_k`` distinct ok repeats among ``results``.
    A run stored twice (one run id) counts once."""
    groups: dict[str, tuple[dict[str, Any], dict[str, Result]]] = {}
    for item in results:
        r = _result(item)
        if r.status != "ok":
            continue
        key = band_key(r)
        slot = groups.setdefault(canonical_json(key), (key, {}))
        slot[1].setdefault(r.run_id, r)
    bands = [_band(key, list(by_id.values())) for key, by_id in groups.values() if len(by_id) >= min_k]
    return sorted(bands, key=lambda b: (b.task, b.method, canonical_json(b.params)))


def band_of(results: Iterable[Result | StoredResult]) -> NoiseBand:
    """The one band of ``results``, which must be repeats of one configuration."""
    rs = [_result(r) for r in results]
    if not rs:
        raise HarnessError("a noise band needs at least one result")
    bands = noise_bands(rs, min_k=1)
    if len(bands) != 1:
        raise HarnessError(f"these {len(rs)} results are {len(bands)} configurations, not repeats of one "
                           f"(they may differ only in {', '.join(REPEAT_PARAMS)})")
    return bands[0]


# ---------------------------------------------------------------------------------------------
# Telling two values apart


def bands_overlap(a: Spread, b: Spread) -> bool:
    """Whether the [min, max] intervals of two bands meet."""
    return a.min <= b.max and b.min <= a.max


def indistinguishable(value_a: float, band_a: Spread | None, value_b: float, band_b: Spread | None) -> bool:
    """True when |a - b| lies inside both bands (not above either band's width, max - min): such a
    difference is what repeating the run alone produces, so a board never shows it as a
    difference, whatever a per-item test says. False when either band is unknown."""
    if band_a is None or band_b is None:
        return False
    diff = abs(value_a - value_b)
    return diff <= band_a.width and diff <= band_b.width


# ---------------------------------------------------------------------------------------------
# Storage


def band_path(results_dir: Path, band: NoiseBand) -> Path:
    return Path(results_dir) / BANDS_DIR / band.task / f"{band.method}-{band.band_id}{BAND_SUFFIX}"


def write_band(results_dir: Path, band: NoiseBand, command: str | None = None,
               created_at: str | None = None) -> Path:
    path = band_path(results_dir, band)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(band.to_dict(command, created_at), indent=2) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


def read_bands(results_dir: Path) -> dict[str, NoiseBand]:
    """Every stored band under ``results_dir``, by band id (for a board: look up a result's band
    with ``bands.get(NoiseBand-of-its-key.band_id)``, see :func:`band_id_of`)."""
    root = Path(results_dir) / BANDS_DIR
    out: dict[str, NoiseBand] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.rglob(f"*{BAND_SUFFIX}")):
        try:
            band = NoiseBand.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"{path}: not a noise band ({exc})") from None
        out[band.band_id] = band
    return out


def band_id_of(result: Result | StoredResult) -> str:
    """The id of the band ``result`` belongs to (a repeat or not)."""
    return hashlib.sha256(canonical_json(band_key(_result(result))).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The hook a board calls (harness.report.data: attach_bands, apply_noise_bands)


def band_for(result: Result | StoredResult, bands: dict[str, NoiseBand]) -> NoiseBand | None:
    """The stored band of ``result``'s configuration (``bands``: :func:`read_bands`), or None.

    A board cell shows ``value`` with ``band.metrics[metric]`` beside it (min-max, std, k), and
    before marking two entries as different checks :func:`indistinguishable` on their values and
    bands: when it is True the pair is never shown as different, whatever a per-item test says."""
    return bands.get(band_id_of(result))
