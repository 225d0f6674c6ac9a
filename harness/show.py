"""`harness show RUN_ID`: one stored run, readable in a terminal (or as JSON).

Data first, then a view: :func:`show_data` turns a typed :class:`~harness.results.Result` into
sections of (label, value) rows and a metrics table; :func:`render_text` aligns them. Numbers go
through :mod:`harness.fmt`, so they read as on the site. Intervals are 95% normal intervals from the
stored standard error (value +- 1.96 stderr) and are shown only where a stderr is stored.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from harness.fmt import MISSING, arrow, fmt_ci, fmt_num, params_label, protocol_text
from harness.results import Result, StoredResult

Z95 = 1.959963984540054  # two-sided 95% normal quantile
Rows = list[tuple[str, str]]
WRAP_AT = 120  # characters of a line; longer values continue on the next lines


def interval(value: float, stderr: float | None) -> tuple[float, float] | None:
    """The 95% normal interval value +- 1.96 stderr, None without a stderr."""
    if stderr is None:
        return None
    return value - Z95 * stderr, value + Z95 * stderr


def _metrics(r: Result) -> list[dict[str, Any]]:
    out = []
    for name, m in r.metrics.items():
        ci = interval(float(m.value), None if m.stderr is None else float(m.stderr))
        out.append({"metric": name, "value": m.value, "stderr": m.stderr, "ci95": list(ci) if ci else None,
                    "n": m.n, "higher_is_better": m.higher_is_better, "primary": m.primary})
    return sorted(out, key=lambda row: (not row["primary"], row["metric"]))


def _method(r: Result) -> Rows:
    m = r.method
    non_semantic = {k: v for k, v in m.params.items() if k not in m.semantic_params}
    rows = [("name", f"{m.name} ({m.family})"), ("params", params_label(m.semantic_params) or "(none)")]
    if non_semantic:
        rows.append(("non-semantic", params_label(non_semantic) + "  (not in the run id)"))
    if m.module:
        rows.append(("module", m.module))
    return rows


def _model(r: Result) -> Rows:
    info = r.model.info or {}
    rows = [("id", r.model.id or "(none: the method's own model parameter)")]
    if r.random_weights:
        rows.append(("weights", "RANDOM (architecture only: not a quality result)"))
    for key in ("description", "architecture", "parameters", "num_layers", "dtype", "sha256"):
        if info.get(key) is not None:
            rows.append((key, f"{info[key]:,}" if isinstance(info[key], int) else str(info[key])))
    if r.model.notes:
        rows.append(("notes", r.model.notes))
    return rows


def _task(r: Result) -> Rows:
    t = r.task
    rows = [("id", f"{t.id} v{t.version} ({t.kind})")]
    if t.title:
        rows.append(("title", t.title))
    flat = {k: v for k, v in t.protocol.items() if not isinstance(v, (dict, list))}
    rows.append(("protocol", protocol_text(flat)))
    for key, value in sorted(t.protocol.items()):
        if key not in flat:  # a nested setting (a latency grid): one row each, wrappable JSON
            rows.append((f"protocol.{key}", json.dumps(value, sort_keys=True)))
    details = {k: v for k, v in (t.protocol_details or {}).items() if not isinstance(v, (dict, list))}
    if details:
        rows.append(("details", protocol_text(details)))
    if t.primary_metric:
        rows.append(("primary", t.primary_metric))
    return rows


def _efficiency(r: Result) -> Rows:
    rows = [(k, fmt_num(v) + (" s" if k.endswith("_seconds") else "")) for k, v in r.efficiency.numbers().items()]
    lat = r.efficiency.latency or {}
    shown = {k: lat[k] for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms") if isinstance(lat.get(k), (int, float))}
    if shown:
        where = ", ".join(f"{k}={lat[k]}" for k in ("device", "threads", "batch_size") if k in lat)
        rows.append(("latency", ", ".join(f"{k}={fmt_num(v)}" for k, v in shown.items())
                     + (f" ({where})" if where else "")))
    if r.measured_sparsity is not None:
        rows.append(("sparsity", f"{fmt_num(r.measured_sparsity)} measured"))
    pr = r.pruning.to_dict() if r.pruning is not None else {}
    if pr.get("params_before") is not None:
        rows.append(("parameters", f"{pr['params_before']:,} -> {pr.get('params_after', 0):,}"))
    return rows


def _data_entry(d: dict[str, Any]) -> str:
    where = d.get("location") or d.get("repo") or d.get("package") or ""
    return f"{d.get('source', '?')}: {where}  sha256 {d.get('sha256') or MISSING}"


def _provenance(r: Result) -> Rows:
    p = r.provenance
    commit = (p.git_commit or "unknown") + (" (dirty)" if p.git_dirty else "")
    rows = [("harness", f"{p.harness_version}, commit {commit}")]
    if p.python:
        rows.append(("python", p.python + (f" on {p.platform}" if p.platform else "")))
    rows.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(p.packages.items())) or MISSING))
    rows.append(("device", ", ".join(f"{k}={v}" for k, v in sorted(p.device.items()))))
    if p.seeds:
        rows.append(("seeds", ", ".join(f"{k}={v}" for k, v in sorted(p.seeds.items()))))
    for d in p.data:
        rows.append((f"data {d.get('name', '?')}", _data_entry(d)))
    cal = p.calibration
    if cal:
        what = ", ".join(f"{k}={cal[k]}" for k in ("set", "nsamples", "seqlen", "seed") if k in cal)
        rows.append(("calibration", what))
        if isinstance(cal.get("data"), dict):
            rows.append(("calibration data", _data_entry(cal["data"])))
    if p.started_at:
        rows.append(("ran", f"{p.started_at} .. {p.finished_at or '?'}"))
    rows.append(("command", p.command))
    return rows


def _artifacts(stored: StoredResult) -> Rows:
    rows = []
    for name, art in sorted((stored.result.artifacts or {}).items()):
        size = f", {art.bytes:,} bytes" if art.bytes is not None else ""
        rows.append((name, f"{art.format or '?'}{size}, sha256 {art.sha256}"))
    items = stored.result.items
    if items is not None:
        rows.append(("per-item scores", f"{items.file} ({items.count} items by {items.key!r})"))
    return rows


def show_data(stored: StoredResult) -> dict[str, Any]:
    """Everything `harness show` prints, as plain data (the JSON view is this dict)."""
    r = stored.result
    sections: dict[str, Rows] = {"method": _method(r), "model": _model(r), "task": _task(r)}
    if r.error is not None:
        sections["error"] = [("type", r.error.type), ("message", r.error.message)]
    sections |= {"efficiency": _efficiency(r), "provenance": _provenance(r), "artifacts": _artifacts(stored)}
    return {
        "run_id": r.run_id, "status": r.status, "created_at": r.created_at, "path": str(stored.path),
        "sections": {k: [list(row) for row in v] for k, v in sections.items() if v},
        "metrics": _metrics(r),
        "reproduce": r.provenance.reproduce,
    }


def _metric_lines(metrics: list[dict[str, Any]]) -> list[str]:
    head = ("metric", "value", "± stderr", "95% CI", "n")
    rows = [head]
    for m in metrics:
        name = f"{m['metric']} {arrow(m['higher_is_better'])}" + (" *" if m["primary"] else "")
        ci = fmt_ci(*m["ci95"]) if m["ci95"] else MISSING
        stderr = fmt_num(m["stderr"]) if m["stderr"] is not None else MISSING
        rows.append((name, fmt_num(m["value"]), stderr, ci, str(m["n"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    just = [str.ljust, str.rjust, str.rjust, str.ljust, str.rjust]
    lines = ["  " + "  ".join(j(c, w) for c, w, j in zip(r, widths, just)).rstrip() for r in rows]
    if any(m["primary"] for m in metrics):
        lines.append("  (* primary metric; CI = value ± 1.96 stderr)")
    return lines


def _wrapped(label: str, value: str, width: int) -> list[str]:
    """One row; a value longer than the page wraps at spaces, continued in the value column."""
    pad = " " * (width + 4)
    lines = textwrap.wrap(value, WRAP_AT - len(pad), break_long_words=False, break_on_hyphens=False) or [""]
    return [f"  {label.ljust(width)}  {lines[0]}"] + [pad + line for line in lines[1:]]


def render_text(data: dict[str, Any]) -> str:
    """Aligned sections: labels padded to one width across the whole page."""
    sections = data["sections"]
    width = max(len(label) for rows in sections.values() for label, _ in rows)
    out = [f"run {data['run_id']}  status {data['status']}  created {data['created_at']}", f"  {data['path']}", ""]
    for title, rows in sections.items():
        out.append(title.upper())
        for label, value in rows:
            out += _wrapped(label, value, width)
        out.append("")
        if title == "task":
            if data["metrics"]:
                out.append("METRICS")
                out += _metric_lines(data["metrics"])
                out.append("")
    out += ["REPRODUCE", f"  {data['reproduce']}"]
    return "\n".join(out) + "\n"


def show(run_id: str, results_dir: Path, fmt: str = "text") -> str:
    """The text or JSON view of one stored run (an id, a unique prefix, or a result file)."""
    from harness.compare import find_runs

    (stored,) = find_runs([run_id], results_dir)
    data = show_data(stored)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n" if fmt == "json" else render_text(data)
