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
import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.results import ResultStore, StoredResult, canonical_json, load_items, semantic_params

FORMATS = ("markdown", "latex", "csv")
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


def params_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in sorted(params.items()))


def _short(v: Any) -> str:
    if isinstance(v, str):
        return v
    return canonical_json(v)


def shown_params(doc: dict[str, Any]) -> str:
    """A result's params as tables show them: without the non-semantic ones (downloads keep all)."""
    return params_label(semantic_params(doc["method"]))


def run_label(doc: dict[str, Any], with_model: bool = False) -> str:
    label = doc["method"]["name"]
    p = shown_params(doc)
    if p:
        label += f" ({p})"
    if with_model:
        label += f" on {doc['model']['id']}"
    return label


def fmt_num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    return f"{v:.4f}"


def fmt_diff(v: float | None) -> str:
    if v is None:
        return "—"
    s = fmt_num(v)
    return s if s.startswith("-") else "+" + s


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}"


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
        by_id.setdefault(r.doc["run_id"], []).append(r)
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
    ids = [r.doc["run_id"] for r in found]
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
    base = runs[0].doc
    bid = base["run_id"]
    for r in runs:
        d = r.doc
        if d["status"] != "ok":
            msg = (d.get("error") or {}).get("message", "")
            raise HarnessError(f"run {d['run_id']} ({r.path}) has status {d['status']!r} ({msg}): nothing to compare")
    for r in runs[1:]:
        d, rid = r.doc, r.doc["run_id"]
        for fld in ("id", "version"):
            if d["task"][fld] != base["task"][fld]:
                raise HarnessError(
                    f"runs {bid} and {rid} are not comparable: task.{fld} differs "
                    f"({base['task'][fld]!r} vs {d['task'][fld]!r})"
                )
        diffs = _protocol_diff(base["task"]["protocol"], d["task"]["protocol"])
        if diffs:
            raise HarnessError(f"runs {bid} and {rid} are not comparable: protocols differ: {'; '.join(diffs)}")
    items: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, list[str]] = {}
    for r in runs:
        d = r.doc
        if not d.get("items"):
            raise HarnessError(f"run {d['run_id']} ({r.path}) stores no per-item scores; paired tests need them")
        rows = load_items(r.path, d)
        key = d["items"]["key"]
        try:
            ks = [str(row[key]) for row in rows]
        except KeyError:
            raise HarnessError(f"{r.path}: an item lacks its key field {key!r}") from None
        if len(set(ks)) != len(ks):
            raise HarnessError(f"{r.path}: duplicate item keys in the per-item sidecar")
        items[d["run_id"]] = rows
        keys[d["run_id"]] = ks
    for r in runs[1:]:
        rid = r.doc["run_id"]
        if r.doc["items"]["key"] != base["items"]["key"]:
            raise HarnessError(
                f"runs {bid} and {rid} are not comparable: items are keyed by {base['items']['key']!r} vs "
                f"{r.doc['items']['key']!r}"
            )
        a, b = set(keys[bid]), set(keys[rid])
        if a != b:
            only_a, only_b = sorted(a - b), sorted(b - a)
            raise HarnessError(
                f"runs {bid} and {rid} are not comparable: item sets differ "
                f"({len(only_a)} only in {bid}: {_few(only_a)}; {len(only_b)} only in {rid}: {_few(only_b)})"
            )
    return items


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
    task: dict[str, Any]
    test: str
    correction: str
    n_tests: int
    test_detail: str
    notes: list[str]

    def description(self) -> str:
        corr = {"holm": "Holm-corrected", "bonferroni": "Bonferroni-corrected", "none": "uncorrected"}[self.correction]
        return (
            f"Task {self.task['id']} v{self.task['version']}, protocol {canonical_json(self.task['protocol'])}. "
            f"Baseline: run {self.baseline}. Δ = run − baseline of the stored aggregate; 95% CI: paired bootstrap "
            f"percentile interval ({CI_RESAMPLES} resamples, seed {CI_SEED}); p: two-sided {self.test_detail}, "
            f"{corr} over {self.n_tests} comparisons (runs × metrics)."
        )


def _metric_order(docs: list[dict[str, Any]]) -> list[str]:
    shared = set(docs[0]["metrics"])
    for d in docs[1:]:
        shared &= set(d["metrics"])
    base = docs[0]["metrics"]
    return sorted(shared, key=lambda m: (not base[m].get("primary", False), m))


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
        idx = [i for i, r in enumerate(runs) if r.doc["run_id"].startswith(baseline.lower())]
        if len(idx) != 1:
            raise HarnessError(f"baseline {baseline!r} must match exactly one of the given runs, matched {len(idx)}")
        runs = [runs[idx[0]]] + [r for i, r in enumerate(runs) if i != idx[0]]
    items = check_comparable(runs)
    docs = [r.doc for r in runs]
    base = docs[0]
    bid = base["run_id"]
    with_model = len({d["model"]["id"] for d in docs}) > 1
    metrics = _metric_order(docs)
    if not metrics:
        raise HarnessError("the runs share no metric")
    key = base["items"]["key"]
    order = [str(row[key]) for row in items[bid]]
    aligned: dict[str, dict[str, dict[str, Any]]] = {
        rid: {str(row[key]): row for row in rows} for rid, rows in items.items()
    }
    fields = set.intersection(*({f for row in rows for f in row} for rows in items.values()))
    rows: list[Row] = []
    notes: list[str] = []
    for m in metrics:
        mb = base["metrics"][m]
        how = item_field(m, fields)
        if how is not None and how[2]:
            notes.append(f"{m} is tested on per-item {how[0]} ({m} = {how[2]}).")
        base_vec = None
        if how is not None:
            base_vec = np.array([float(aligned[bid][k][how[0]]) for k in order])
        rows.append(
            Row(m, mb["higher_is_better"], bool(mb.get("primary")), bid, run_label(base, with_model),
                float(mb["value"]), len(order), True)
        )
        for d in docs[1:]:
            md = d["metrics"][m]
            row = Row(m, md["higher_is_better"], bool(mb.get("primary")), d["run_id"], run_label(d, with_model),
                      float(md["value"]), len(order), False, diff=float(md["value"]) - float(mb["value"]))
            if how is None or base_vec is None:
                row.note = "no per-item scores for this metric: not tested"
            else:
                vec = np.array([float(aligned[d["run_id"]][k][how[0]]) for k in order])
                boot = stats.paired_bootstrap(vec, base_vec, n_resamples=CI_RESAMPLES, seed=CI_SEED, transform=how[1])
                row.ci_low, row.ci_high = boot.ci_low, boot.ci_high
                if test == "paired-bootstrap":
                    row.p_raw = boot.p_value
                elif test == "mcnemar" and not (stats.is_binary(vec) and stats.is_binary(base_vec)):
                    row.note = "McNemar needs binary per-item scores: not tested"
                else:
                    row.p_raw = stats.run_test(test, vec, base_vec).p_value
            rows.append(row)
    tested = [r for r in rows if r.p_raw is not None]
    adj = stats.adjust([r.p_raw for r in tested], correction) if tested else []  # type: ignore[misc]
    for r, p in zip(tested, adj):
        r.p_adj = p
    for r in rows:
        if r.note and r.note not in notes:
            notes.append(f"{r.metric}, {r.label}: {r.note}.")
    return Comparison(rows, bid, base["task"], test, correction, len(tested), _test_detail(test), notes)


# ---------------------------------------------------------------------------------------------
# Output


def _arrow(hib: bool) -> str:
    return "↑" if hib else "↓"


def _md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(c: Comparison) -> str:
    head = f"| metric | run | run id | value | Δ vs baseline | 95% CI | p ({c.correction}) | n |"
    lines = [c.description(), "", head, "|---|---|---|---:|---:|---|---:|---:|"]
    for r in c.rows:
        metric = f"{_md_escape(r.metric)} {_arrow(r.higher_is_better)}" + (" (primary)" if r.primary else "")
        label = _md_escape(r.label) + (" (baseline)" if r.is_baseline else "")
        ci = "—" if r.ci_low is None else f"[{fmt_num(r.ci_low)}, {fmt_num(r.ci_high)}]"
        lines.append(
            f"| {metric} | {label} | {r.run_id} | {fmt_num(r.value)} | "
            f"{'—' if r.is_baseline else fmt_diff(r.diff)} | {ci} | {fmt_p(r.p_adj)} | {r.n} |"
        )
    if c.notes:
        lines += [""] + [f"- {n}" for n in c.notes]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "Δ": r"$\Delta$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "—": "--",
    "−": "-",
    "×": r"$\times$",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(s))


def to_latex(c: Comparison) -> str:
    lines = [
        "% Generated by `harness compare`; needs \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        "\\begin{tabular}{llrrlr}",
        "\\toprule",
        f"Metric & Run & Value & $\\Delta$ & 95\\% CI & $p$ ({latex_escape(c.correction)}) \\\\",
        "\\midrule",
    ]
    prev = None
    for r in c.rows:
        metric = ""
        if r.metric != prev:
            if prev is not None:
                lines.append("\\midrule")
            metric = latex_escape(f"{r.metric} {_arrow(r.higher_is_better)}")
            prev = r.metric
        label = latex_escape(r.label) + (" (baseline)" if r.is_baseline else "")
        ci = "--" if r.ci_low is None else f"[{fmt_num(r.ci_low)}, {fmt_num(r.ci_high)}]"
        diff = "--" if r.is_baseline else latex_escape(fmt_diff(r.diff))
        lines.append(
            f"{metric} & {label} & {fmt_num(r.value)} & {diff} & {ci} & {latex_escape(fmt_p(r.p_adj))} \\\\"
        )
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        f"\\caption{{{latex_escape(c.description())}}}",
        f"\\label{{tab:compare-{c.baseline}}}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(c: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "higher_is_better", "primary", "run_id", "run", "baseline", "value", "diff",
                "ci_low", "ci_high", "p_value", "p_adjusted", "n", "test", "correction", "note"])
    for r in c.rows:
        w.writerow([r.metric, r.higher_is_better, r.primary, r.run_id, r.label, r.is_baseline, repr(r.value),
                    "" if r.diff is None else repr(r.diff), "" if r.ci_low is None else repr(r.ci_low),
                    "" if r.ci_high is None else repr(r.ci_high), "" if r.p_raw is None else repr(r.p_raw),
                    "" if r.p_adj is None else repr(r.p_adj), r.n, c.test, c.correction, r.note])
    return buf.getvalue()


def compare_runs(
    run_ids: list[str],
    results_dir: Path,
    baseline: str | None = None,
    test: str = "randomization",
    correction: str = "holm",
    fmt: str = "markdown",
) -> str:
    """The comparison table of ``run_ids`` (ids, unique prefixes or result paths) as text."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if len(run_ids) < 2:
        raise HarnessError("compare needs at least two run ids")
    runs = find_runs(run_ids, Path(results_dir))
    comp = build_comparison(runs, baseline, test, correction)
    return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](comp)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run ids (16 hex digits or a unique prefix) or result paths")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results directory (default: results)")
    parser.add_argument("--baseline", default=None, help="run id (prefix) of the baseline (default: the first run)")
    parser.add_argument("--test", choices=stats.TESTS, default="randomization", help="paired test (default: randomization)")
    parser.add_argument("--correction", choices=stats.CORRECTIONS, default="holm",
                        help="multiple-comparison correction over runs x metrics (default: holm)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="markdown", help="output format")


def run_from_args(args: argparse.Namespace) -> str:
    return compare_runs(args.runs, args.results, args.baseline, args.test, args.correction, args.fmt)
