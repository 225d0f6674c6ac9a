"""Leaderboard plots as deterministic SVG files (same data in, same bytes out).

matplotlib is driven through :class:`matplotlib.figure.Figure` (no pyplot global state). Output is
made reproducible by a fixed ``svg.hashsalt`` (the ids of clip paths and glyphs), text kept as text
(``svg.fonttype = none``: no font-dependent glyph paths) and no Date/Creator metadata.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure

RC = {
    "svg.hashsalt": "harness-report",
    "svg.fonttype": "none",
    "svg.image_inline": True,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
SVG_METADATA = {"Date": None, "Creator": None}
MAX_LEGEND = 16  # lines beyond this are drawn but not listed (the table has them all)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str


def _svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata=SVG_METADATA)
    return buf.getvalue()


REFERENCE_MAX_SPARSITY = 0.01  # a method whose every point is below this is drawn as a reference line


def quality_vs_sparsity(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], ylabel: str, title: str,
                        logy: bool | None = None, xlabel: str = "measured sparsity",
                        reference_lines: bool = True) -> bytes:
    """One line per method; x = measured sparsity, y = the metric. A method with no sparsity (the
    unpruned model) is a dashed horizontal reference line, as in the pruning papers' figures. ``logy``:
    a log y axis (default: when the values span more than a factor of 20, e.g. perplexity).
    ``xlabel``/``reference_lines=False``: the same figure for another x (a kind's line plots)."""
    ys = [y for _l, pts in series for _x, y in pts]
    if logy is None:
        logy = bool(ys) and min(ys) > 0 and max(ys) / min(ys) > 20
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7.6, 4.2))
        ax = fig.subplots()
        fig.subplots_adjust(left=0.09, right=0.64, bottom=0.12, top=0.92)  # room for the legend
        i = 0
        for label, pts in series:
            pts = sorted(pts)
            if reference_lines and all(p[0] < REFERENCE_MAX_SPARSITY for p in pts) and len(pts) == 1:
                ax.axhline(pts[0][1], color="#555555", linestyle="--", linewidth=1.0, label=f"{label} (reference)")
                continue
            # the default cycle has 10 colours: vary the dash pattern beyond that
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3.5, linewidth=1.2,
                    linestyle=("-", "--", ":")[(i // 10) % 3], color=f"C{i % 10}",
                    label=label if i < MAX_LEGEND else None)
            i += 1
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel + (" (log scale)" if logy else ""))
        ax.set_title(title, fontsize=9)
        if len(series) > 0:
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False,
                      title=None if len(series) <= MAX_LEGEND else f"first {MAX_LEGEND} of {len(series)}")
        return _svg(fig)


def pareto_front(points: Sequence[Point], higher_is_better: bool) -> list[Point]:
    """Points not dominated by another (lower or equal x and at least as good y, one strictly)."""
    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher_is_better else a <= b

    front = []
    for p in points:
        dominated = any(
            q is not p and q.x <= p.x and better_or_equal(q.y, p.y) and (q.x < p.x or q.y != p.y)
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p.x, p.y))


def quality_vs_latency(points: Sequence[Point], xlabel: str, ylabel: str, higher_is_better: bool, title: str) -> bytes:
    """Every entry as a dot; the Pareto front (fast and good) as a step line with labels."""
    front = pareto_front(points, higher_is_better)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(7.0, 4.2))
        ax = fig.subplots()
        fig.subplots_adjust(left=0.09, right=0.97, bottom=0.12, top=0.92)
        ax.scatter([p.x for p in points], [p.y for p in points], s=14, color="#8a94a6", label="entries", zorder=2)
        ax.step([p.x for p in front], [p.y for p in front], where="post", color="#c0392b", linewidth=1.4,
                label="Pareto front", zorder=3)
        ax.scatter([p.x for p in front], [p.y for p in front], s=26, color="#c0392b", zorder=4)
        for p in front[:12]:
            ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        return _svg(fig)
