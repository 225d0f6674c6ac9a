"""`harness compare`: paired significance tests between stored runs, as a table for a paper.

Runs are comparable when they answer the same items of the same task under the same protocol:
equal ``task.id``, ``task.version`` and ``task.protocol``, and identical per-item key sets. The
models may differ (dense vs pruned, or two retrievers). For every metric the runs share (the
primary first) each run is compared with the baseline (the first run unless named): the
difference of the stored aggregates, a 95% paired-bootstrap percentile interval of that difference,
and a p-value from the chosen paired test on the per-item scores, corrected over all
(runs x metrics) comparisons made.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.fmt import arrow, fmt_diff, fmt_num, fmt_p, latex_escape, params_label, protocol_text, short_labels  # noqa: F401
from harness.results import Result, ResultStore, StoredResult, TaskInfo, canonical_json
from harness.table import DISPLAY, EXPORT, Column, Table

FORMATS = ("markdown", "latex", "csv", "json")
LAYOUTS = ("paper", "long")  # paper: a row per run, a column per metric; long: a row per (metric, run)
SIGNIFICANT = 0.05  # the corrected p below which a paper table marks a difference
CI_RESAMPLES = stats.DEFAULT_RESAMPLES
CI_SEED = stats.DEFAULT_SEED

# Metrics whose aggregate is a monotone transform of the mean of another per-item field: tested on
# that field; the interval is computed on the transformed means. (Perplexity windows all hold the
# same number of predicted tokens, so exp(mean of per-window NLL) is the corpus perplexity.)
DERIVED: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], str]] = {
    "ppl": ("nll", np.exp, "exp(mean per-item nll)"),
}


def item_field(metric: str, fields: set[str]) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None, str] | None:
    """(per-item field, transform, note) to test ``metric`` with, or None when items lack it."""
    if metric in DERIVED and DERIVED[metric][0] in fields:
        fld, fn, note = DERIVED[metric]
        return fld, fn, note
    if metric in fields:
        return metric, None, ""
    return None


def shown_params(res: Result) -> str:
    """A result's params as tables show them: without the non-semantic ones (downloads keep all)."""
    return params_label(res.method.semantic_params)


def run_label(res: Result, with_model: bool = False) -> str:
    label = res.method.name
    p = shown_params(res)
    if p:
        label += f" ({p})"
    if with_model:
        label += f" on {res.model.id}"
    return label


# ---------------------------------------------------------------------------------------------
# Finding runs


def find_runs(run_ids: list[str], results_dir: Path) -> list[StoredResult]:
    """Each id as the 16-hex run id, a unique prefix of one, or a path to a result file."""
    if not run_ids:
        raise HarnessError("compare needs at least two run ids")
    store = ResultStore(results_dir)
    good, _bad = store.scan()
    by_id: dict[str, list[StoredResult]] = {}
    for r in good:
        by_id.setdefault(r.run_id, []).append(r)
    found: list[StoredResult] = []
    for rid in run_ids:
        p = Path(rid)
        if rid.endswith(".json") and p.is_file():
            found.append(StoredResult(p, store.load(p)))
            continue
        matches = sorted({k for k in by_id if k.startswith(rid.lower())})
        if not matches:
            raise HarnessError(f"no stored result with run id {rid!r} in {results_dir} (scanned {len(good)} results)")
        if len(matches) > 1:
            raise HarnessError(f"run id prefix {rid!r} is ambiguous in {results_dir}: matches {', '.join(matches)}")
        rs = by_id[matches[0]]
        if len(rs) > 1:
            raise HarnessError(f"run id {matches[0]} is stored twice: {', '.join(str(r.path) for r in rs)}")
        found.append(rs[0])
    ids = [r.run_id for r in found]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise HarnessError(f"run {dup[0]} was given more than once")
    return found


def _protocol_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if canonical_json(va) != canonical_json(vb):
            out.append(f"task.protocol.{k}: {canonical_json(va)} vs {canonical_json(vb)}")
    return out


def check_comparable(runs: list[StoredResult]) -> dict[str, list[dict[str, Any]]]:
    """Raise HarnessError naming the differing field or items; return run id -> items."""
    base = runs[0].result
    bid = base.run_id
    for r in runs:
        if not r.result.ok:
            msg = r.result.error.message if r.result.error else ""
            raise HarnessError(f"run {r.run_id} ({r.path}) has status {r.result.status!r} ({msg}): nothing to compare")
    for r in runs[1:]:
        for fld in ("id", "version"):
            if getattr(r.result.task, fld) != getattr(base.task, fld):
                raise HarnessError(
                    f"runs {bid} and {r.run_id} are not comparable: task.{fld} differs "
                    f"({getattr(base.task, fld)!r} vs {getattr(r.result.task, fld)!r})"
                )
        diffs = _protocol_diff(base.task.protocol, r.result.task.protocol)
        if diffs:
            raise HarnessError(f"runs {bid} and {r.run_id} are not comparable: protocols differ: {'; '.join(diffs)}")
    items = {r.run_id: _keyed_items(r) for r in runs}
    for r in runs[1:]:
        rid = r.run_id
        if r.result.items.key != base.items.key:  # type: ignore[union-attr]
            raise HarnessError(
                f"runs {bid} and {rid} are not comparable: items are keyed by {base.items.key!r} vs "  # type: ignore[union-attr]
                f"{r.result.items.key!r}"  # type: ignore[union-attr]
            )
        a, b = set(items[bid][1]), set(items[rid][1])
        if a != b:
            only_a, only_b = sorted(a - b), sorted(b - a)
            raise HarnessError(
                f"runs {bid} and {rid} are not comparable: item sets differ "
                f"({len(only_a)} only in {bid}: {_few(only_a)}; {len(only_b)} only in {rid}: {_few(only_b)})"
            )
    return {rid: rows for rid, (rows, _keys) in items.items()}


def _keyed_items(r: StoredResult) -> tuple[list[dict[str, Any]], list[str]]:
    if not r.result.items:
        raise HarnessError(f"run {r.run_id} ({r.path}) stores no per-item scores; paired tests need them")
    rows = r.items()
    key = r.result.items.key
    try:
        keys = [str(row[key]) for row in rows]
    except KeyError:
        raise HarnessError(f"{r.path}: an item lacks its key field {key!r}") from None
    if len(set(keys)) != len(keys):
        raise HarnessError(f"{r.path}: duplicate item keys in the per-item sidecar")
    return rows, keys


def _few(xs: list[str], k: int = 5) -> str:
    return ", ".join(xs[:k]) + (", ..." if len(xs) > k else "") if xs else "none"


# ---------------------------------------------------------------------------------------------
# The comparison


@dataclass
class Row:
    metric: str
    higher_is_better: bool
    primary: bool
    run_id: str
    label: str
    value: float
    n: int
    is_baseline: bool
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_raw: float | None = None
    p_adj: float | None = None
    note: str = ""


@dataclass
class Comparison:
    rows: list[Row]
    baseline: str
    task: TaskInfo
    test: str
    correction: str
    n_tests: int
    test_detail: str
    notes: list[str]
    results: list[Result] = field(default_factory=list)  # the runs, baseline first

    def description(self) -> str:
        corr = stats.CORRECTIONS.get(self.correction).label
        return (
            f"Task {self.task.id} v{self.task.version}, protocol {canonical_json(self.task.protocol)}. "
            f"Baseline: run {self.baseline}. Δ = run − baseline of the stored aggregate; 95% CI: paired bootstrap "
            f"percentile interval ({CI_RESAMPLES} resamples, seed {CI_SEED}); p: two-sided {self.test_detail}, "
            f"{corr} over {self.n_tests} comparisons (runs × metrics)."
        )


def _metric_order(results: list[Result]) -> list[str]:
    shared = set(results[0].metrics)
    for res in results[1:]:
        shared &= set(res.metrics)
    base = results[0].metrics
    return sorted(shared, key=lambda m: (not base[m].primary, m))


def _test_detail(test: str) -> str:
    return {
        "paired-bootstrap": f"paired bootstrap test ({stats.DEFAULT_RESAMPLES} resamples, seed {stats.DEFAULT_SEED})",
        "randomization": (
            f"paired randomization (sign-flip) test (exact for n <= {stats.EXACT_MAX_N}, else "
            f"{stats.DEFAULT_RESAMPLES} Monte Carlo resamples, seed {stats.DEFAULT_SEED})"
        ),
        "t": "paired t-test",
        "wilcoxon": f"Wilcoxon signed-rank test (zero_method={stats.WILCOXON_ZERO_METHOD})",
        "mcnemar": "exact McNemar test (binary per-item scores)",
    }[test]


def build_comparison(runs: list[StoredResult], baseline: str | None, test: str, correction: str) -> Comparison:
    if test not in stats.TESTS:
        raise HarnessError(f"unknown test {test!r}; choose one of {', '.join(stats.TESTS)}")
    if correction not in stats.CORRECTIONS:
        raise HarnessError(f"unknown correction {correction!r}; choose one of {', '.join(stats.CORRECTIONS)}")
    if len(runs) < 2:
        raise HarnessError("compare needs at least two runs")
    if baseline is not None:
        idx = [i for i, r in enumerate(runs) if r.run_id.startswith(baseline.lower())]
        if len(idx) != 1:
            raise HarnessError(f"baseline {baseline!r} must match exactly one of the given runs, matched {len(idx)}")
        runs = [runs[idx[0]]] + [r for i, r in enumerate(runs) if i != idx[0]]
    items = check_comparable(runs)
    results = [r.result for r in runs]
    metrics = _metric_order(results)
    if not metrics:
        raise HarnessError("the runs share no metric")
    key = results[0].items.key  # type: ignore[union-attr]
    order = [str(row[key]) for row in items[results[0].run_id]]
    aligned = {rid: {str(row[key]): row for row in rows} for rid, rows in items.items()}
    fields = set.intersection(*({f for row in rows for f in row} for rows in items.values()))
    with_model = len({res.model.id for res in results}) > 1
    rows: list[Row] = []
    notes: list[str] = []
    for m in metrics:
        how = item_field(m, fields)
        if how is not None and how[2]:
            notes.append(f"{m} is tested on per-item {how[0]} ({m} = {how[2]}).")
        vectors = None if how is None else {
            rid: np.array([float(by[k][how[0]]) for k in order]) for rid, by in aligned.items()}
        rows += _metric_rows(m, results, vectors, how, test, len(order), with_model)
    tested = [r for r in rows if r.p_raw is not None]
    adj = stats.adjust([r.p_raw for r in tested], correction) if tested else []  # type: ignore[misc]
    for r, p in zip(tested, adj):
        r.p_adj = p
    for r in rows:
        if r.note and r.note not in notes:
            notes.append(f"{r.metric}, {r.label}: {r.note}.")
    base = results[0]
    return Comparison(rows, base.run_id, base.task, test, correction, len(tested), _test_detail(test), notes, results)


def _metric_rows(m: str, results: list[Result], vectors: dict[str, np.ndarray] | None, how: Any, test: str,
                 n: int, with_model: bool) -> list[Row]:
    """The baseline's row and one row per other run for metric ``m`` (p-values not yet corrected)."""
    base = results[0]
    mb = base.metrics[m]
    rows = [Row(m, mb.higher_is_better, mb.primary, base.run_id, run_label(base, with_model), float(mb.value), n, True)]
    for res in results[1:]:
        md = res.metrics[m]
        row = Row(m, md.higher_is_better, mb.primary, res.run_id, run_label(res, with_model),
                  float(md.value), n, False, diff=float(md.value) - float(mb.value))
        if vectors is None:
            row.note = "no per-item scores for this metric: not tested"
        else:
            vec, base_vec = vectors[res.run_id], vectors[base.run_id]
            boot = stats.paired_bootstrap(vec, base_vec, n_resamples=CI_RESAMPLES, seed=CI_SEED, transform=how[1])
            row.ci_low, row.ci_high = boot.ci_low, boot.ci_high
            if test == "paired-bootstrap":
                row.p_raw = boot.p_value
            elif test == "mcnemar" and not (stats.is_binary(vec) and stats.is_binary(base_vec)):
                row.note = "McNemar needs binary per-item scores: not tested"
            else:
                row.p_raw = stats.run_test(test, vec, base_vec).p_value
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Output: one Table, four views


def to_table(c: Comparison) -> Table:
    """The comparison as a :class:`Table`: raw fields for CSV/JSON, labels for Markdown/LaTeX."""
    md, tex = ("markdown",), ("latex",)
    columns = [
        Column("metric", show=EXPORT), Column("metric_label", "metric", show=md),
        Column("metric_head", "Metric", show=tex),
        Column("higher_is_better", kind="bool", show=EXPORT), Column("primary", kind="bool", show=EXPORT),
        Column("run_id", show=EXPORT), Column("run", show=EXPORT), Column("run_label", "run", show=DISPLAY, latex_label="Run"),
        Column("run_id_shown", "run id", show=md), Column("baseline", kind="bool", show=EXPORT),
        Column("value", kind="num", latex_label="Value"), Column("diff_shown", "Δ vs baseline", kind="diff", show=md),
        Column("diff_tex", "Δ", kind="diff", show=tex), Column("diff", kind="num", show=EXPORT),
        Column("ci_low", kind="num", show=EXPORT), Column("ci_high", kind="num", show=EXPORT),
        Column("ci", "95% CI", kind="ci", show=DISPLAY),
        Column("p_value", kind="p", show=EXPORT),
        Column("p_adjusted", f"p ({c.correction})", kind="p", latex_label=f"$p$ ({latex_escape(c.correction)})"),
        Column("n", kind="int", show=("csv", "json", "markdown")),
        Column("test", show=EXPORT), Column("correction", show=EXPORT), Column("note", show=EXPORT),
    ]
    rows = []
    for r in c.rows:
        suffix = " (baseline)" if r.is_baseline else ""
        rows.append({
            "metric": r.metric, "metric_label": f"{r.metric} {arrow(r.higher_is_better)}" + (" (primary)" if r.primary else ""),
            "metric_head": f"{r.metric} {arrow(r.higher_is_better)}", "higher_is_better": r.higher_is_better,
            "primary": r.primary, "run_id": r.run_id, "run": r.label, "run_label": r.label + suffix,
            "run_id_shown": r.run_id, "baseline": r.is_baseline, "value": r.value, "diff_shown": r.diff,
            "diff_tex": r.diff, "diff": r.diff, "ci_low": r.ci_low, "ci_high": r.ci_high,
            "ci": (r.ci_low, r.ci_high), "p_value": r.p_raw, "p_adjusted": r.p_adj, "n": r.n,
            "test": c.test, "correction": c.correction, "note": r.note,
        })
    return Table(columns, rows, caption=c.description(), label=f"tab:compare-{c.baseline}", notes=list(c.notes),
                 group="metric_head", source="harness compare")


def _delta_text(r: Row) -> str | None:
    """Δ and its p-value in one compact cell: ``+0.0123 (p 0.004)``."""
    if r.diff is None:
        return None
    return fmt_diff(r.diff) + (f" (p {fmt_p(r.p_adj)})" if r.p_adj is not None else "")


def paper_table(c: Comparison) -> Table:
    """The comparison as a paper table: one row per run, per metric its value (▲/▼: significantly
    better/worse than the baseline after the correction) and Δ with the corrected p; short labels."""
    metrics = list(dict.fromkeys(r.metric for r in c.rows))
    runs = list(dict.fromkeys(r.run_id for r in c.rows))
    by = {(r.run_id, r.metric): r for r in c.rows}
    first = {rid: by[(rid, metrics[0])] for rid in runs}
    labels = _short_run_labels(c, runs)
    cols = [Column("run", "Run", show=DISPLAY), Column("run_id", show=EXPORT), Column("label", show=EXPORT),
            Column("baseline", kind="bool", show=EXPORT)]
    for m in metrics:
        r0 = by[(runs[0], m)]
        cols += [Column(m, m, kind="num", higher_is_better=r0.higher_is_better),
                 Column(f"{m}_delta", f"Δ {m}", show=DISPLAY), Column(f"{m}_diff", kind="num", show=EXPORT),
                 Column(f"{m}_ci_low", kind="num", show=EXPORT), Column(f"{m}_ci_high", kind="num", show=EXPORT),
                 Column(f"{m}_p", kind="p", show=EXPORT), Column(f"{m}_p_adjusted", kind="p", show=EXPORT)]
    rows, marks = [], {}
    for i, rid in enumerate(runs):
        base = first[rid].is_baseline
        row: dict[str, Any] = {"run": labels[rid] + (" (baseline)" if base else ""), "run_id": rid,
                               "label": labels[rid], "baseline": base}
        for m in metrics:
            r = by[(rid, m)]
            row |= {m: r.value, f"{m}_delta": _delta_text(r), f"{m}_diff": r.diff, f"{m}_ci_low": r.ci_low,
                    f"{m}_ci_high": r.ci_high, f"{m}_p": r.p_raw, f"{m}_p_adjusted": r.p_adj}
            if r.p_adj is not None and r.p_adj < SIGNIFICANT and r.diff:
                marks[(i, m)] = ("up" if (r.diff > 0) == r.higher_is_better else "down",)
        rows.append(row)
    corr = stats.CORRECTIONS.get(c.correction).label
    caption = (f"{c.task.id} v{c.task.version} ({protocol_text(c.task.protocol)}). Baseline: {labels[runs[0]]}. "
               f"Δ = run − baseline; p: two-sided {c.test_detail}, {corr} over {c.n_tests} comparisons "
               f"(runs × metrics). ▲/▼: significantly better/worse than the baseline (corrected p < {SIGNIFICANT}). "
               f"95% paired-bootstrap intervals of Δ are in the CSV/JSON.")
    return Table(cols, rows, caption=caption, label=f"tab:compare-{c.baseline}", notes=list(c.notes),
                 source="harness compare", marks=marks, fit=None)


def _short_run_labels(c: Comparison, runs: list[str]) -> dict[str, str]:
    """The method plus only the params that differ between that method's runs; the model when models differ."""
    res = {r.run_id: r for r in c.results}
    entries = [(res[rid].method.name, res[rid].method.semantic_params) for rid in runs]
    labels = short_labels(entries)
    if len({res[rid].model.id for rid in runs}) > 1:
        labels = [f"{lab} on {res[rid].model.id}" for lab, rid in zip(labels, runs)]
    if len(set(labels)) < len(labels):  # same method and params (e.g. repeated seeds): the run id tells them apart
        labels = [f"{lab} [{rid[:8]}]" for lab, rid in zip(labels, runs)]
    return dict(zip(runs, labels))


def to_markdown(c: Comparison) -> str:
    return to_table(c).to_markdown()


def to_latex(c: Comparison) -> str:
    table = to_table(c)
    table.notes = []  # the notes are in the Markdown only, as before
    return table.to_latex()


def to_csv(c: Comparison) -> str:
    return to_table(c).to_csv()


def to_json(c: Comparison) -> str:
    return to_table(c).to_json()


def compare_runs(
    run_ids: list[str],
    results_dir: Path,
    baseline: str | None = None,
    test: str = "randomization",
    correction: str = "holm",
    fmt: str = "markdown",
    layout: str = "paper",
) -> str:
    """The comparison table of ``run_ids`` (ids, unique prefixes or result paths) as text."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise HarnessError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if len(run_ids) < 2:
        raise HarnessError("compare needs at least two run ids")
    runs = find_runs(run_ids, Path(results_dir))
    comp = build_comparison(runs, baseline, test, correction)
    if layout == "paper":
        t = paper_table(comp)
        return {"markdown": t.to_markdown, "latex": t.to_latex, "csv": t.to_csv, "json": t.to_json}[fmt]()
    return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}[fmt](comp)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run ids (16 hex digits or a unique prefix) or result paths")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results directory (default: results)")
    parser.add_argument("--baseline", default=None, help="run id (prefix) of the baseline (default: the first run)")
    parser.add_argument("--test", choices=stats.TESTS, default="randomization", help="paired test (default: randomization)")
    parser.add_argument("--correction", choices=stats.CORRECTIONS, default="holm",
                        help="multiple-comparison correction over runs x metrics (default: holm)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="markdown", help="output format")
    parser.add_argument("--layout", choices=LAYOUTS, default="paper",
                        help="paper: a row per run, a column per metric (default); long: a row per (metric, run) "
                             "with the bootstrap interval of each difference")


def run_from_args(args: argparse.Namespace) -> str:
    return compare_runs(args.runs, args.results, args.baseline, args.test, args.correction, args.fmt,
                        getattr(args, "layout", "paper"))
