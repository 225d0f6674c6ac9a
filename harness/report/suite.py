"""Suite tables as data: one row per method + params on one model, one column per member task and the
aggregate, with per-cell marks (the paper table of the pruning and IR papers).

Pure: takes a :class:`~harness.suites.Suite` and the stored results; returns a :class:`SuiteView`
and renders it as one :class:`harness.table.Table` (site, ``harness table``, downloads).

* A row missing a member shows the gap and gets no aggregate (never a mean over fewer tasks).
* Results of one member under different protocols are refused with the keys that differ.
* Per column, the best entry and those statistically tied with it are marked "top": the board's
  rank test (:func:`harness.stats.ranks_with_ties`: paired randomisation against the leader of the
  group above, Holm) on the per-item scores; rank 1 = top.
* With a baseline, each cell carries "up"/"down" when a paired randomisation test of that row
  against the baseline row on the member's items has a corrected p < alpha (correction over the
  rows of the column, from :data:`harness.stats.CORRECTIONS`).
* The aggregate is tested on per-item scores weighted so that their mean is the aggregate
  (item i of member m weighs N / (M n_m)): the same sign-flip test, on the mean of the means.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import stats
from harness.compare import DERIVED, item_field
from harness.errors import HarnessError
from harness.fmt import short_labels as fmt_short_labels
from harness.results import StoredResult, canonical_json
from harness.suites import Member, Suite
from harness.table import EXPORT, Column, Table

ALPHA = 0.05
AGG = "aggregate"
TEST = "randomization"


@dataclass
class Cell:
    stored: StoredResult
    value: float
    keys: tuple[str, ...] | None  # sorted item keys (None: no per-item scores for the metric)
    vector: dict[str, float] | None  # item key -> tested per-item score
    p_base: float | None = None
    marks: list[str] = field(default_factory=list)


@dataclass
class SuiteRow:
    method: str
    params: dict[str, Any]  # semantic params
    model: str | None
    cells: dict[str, Cell] = field(default_factory=dict)  # member id -> cell
    label: str = ""
    aggregate: float | None = None
    agg_marks: list[str] = field(default_factory=list)
    agg_p_base: float | None = None
    sparsity: float | None = None

    @property
    def run_ids(self) -> list[str]:
        return [c.stored.run_id for c in self.cells.values()]


@dataclass
class SuiteView:
    suite: Suite
    model: str | None
    rows: list[SuiteRow]
    baseline: SuiteRow | None
    correction: str
    notes: list[str]
    protocols: dict[str, dict[str, Any]]  # member id -> the one stored protocol its cells share
    power_notes: list[str] = field(default_factory=list)  # columns whose items cannot separate any entries


def row_key(stored: StoredResult) -> tuple[str, str, str]:
    res = stored.result
    return res.method.name, canonical_json(res.method.semantic_params), canonical_json(res.model.id)


def _cell(stored: StoredResult, m: Member) -> Cell | None:
    res = stored.result
    v = res.value(m.metric)
    if v is None:
        return None
    rows = stored.items() if res.items else []
    how = item_field(m.metric, {f for r in rows for f in r}) if rows else None
    if how is None:
        return Cell(stored, float(v), None, None)
    key = res.items.key  # type: ignore[union-attr]
    vec = {str(r[key]): float(r[how[0]]) for r in rows}
    return Cell(stored, float(v), tuple(sorted(vec)), vec)


def _differing(protocols: list[dict[str, Any]]) -> str:
    keys = sorted({k for p in protocols for k in p})
    diff = [k for k in keys if len({canonical_json(p.get(k, "<absent>")) for p in protocols}) > 1]
    return ", ".join(f"{k} ({' vs '.join(sorted({canonical_json(p.get(k, '<absent>')) for p in protocols}))})"
                     for k in diff)


def models_of(suite: Suite, results: list[StoredResult]) -> list[str | None]:
    """The models with at least one ok result on a member of the suite under its protocol."""
    found = {r.result.model.id for r in results for m in suite.members
             if r.result.ok and not r.result.random_weights and _belongs(r, m)}
    return sorted(found, key=lambda x: (x is not None, str(x)))


def _belongs(r: StoredResult, m: Member) -> bool:
    t = r.result.task
    return t.id == m.id and t.version == m.task.version and m.matches(t.protocol)


def collect_rows(suite: Suite, results: list[StoredResult], model: str | None
                 ) -> tuple[list[SuiteRow], dict[str, dict[str, Any]]]:
    """Rows (one per method + params on ``model``) and each member's shared protocol; raises
    HarnessError when a member's results were made under more than one protocol."""
    rows: dict[tuple[str, str, str], SuiteRow] = {}
    protocols: dict[str, dict[str, Any]] = {}
    for m in suite.members:
        mine = [r for r in results if r.result.ok and not r.result.random_weights and r.result.model.id == model
                and _belongs(r, m)]
        seen = {canonical_json(r.result.task.protocol): r.result.task.protocol for r in mine}
        if len(seen) > 1:
            raise HarnessError(
                f"suite {suite.id}, member {m.id}: results under {len(seen)} protocols differing in "
                f"{_differing(list(seen.values()))}; pin the key in {suite.path} (members[].protocol) to choose one")
        if seen:
            protocols[m.id] = next(iter(seen.values()))
        for r in mine:
            k = row_key(r)
            row = rows.setdefault(k, SuiteRow(r.result.method.name, r.result.method.semantic_params, model))
            if m.id in row.cells:
                raise HarnessError(f"suite {suite.id}, member {m.id}: two stored results for one row "
                                   f"({row.cells[m.id].stored.run_id}, {r.run_id})")
            cell = _cell(r, m)
            if cell is not None:
                row.cells[m.id] = cell
                if row.sparsity is None:
                    row.sparsity = r.result.measured_sparsity
    return list(rows.values()), protocols


def short_labels(rows: list[SuiteRow]) -> None:
    """The method name plus only the params that differ between that method's rows in this table."""
    for r, label in zip(rows, fmt_short_labels([(r.method, r.params) for r in rows])):
        r.label = label


def _order(suite: Suite, rows: list[SuiteRow]) -> list[SuiteRow]:
    """Complete rows by aggregate (best first), then the others; ties by label."""
    hib = suite.member(suite.aggregate[0]).higher_is_better if suite.aggregate else True

    def key(r: SuiteRow) -> tuple[Any, ...]:
        a = r.aggregate
        return (a is None, 0.0 if a is None else (-a if hib else a), -len(r.cells), r.label)

    return sorted(rows, key=key)


def _aggregate(suite: Suite, rows: list[SuiteRow]) -> None:
    if not suite.aggregate:
        return
    for r in rows:
        if all(m in r.cells for m in suite.aggregate):
            r.aggregate = float(np.mean([r.cells[m].value for m in suite.aggregate]))


def _agg_vector(suite: Suite, r: SuiteRow, keysets: dict[str, tuple[str, ...]]) -> np.ndarray | None:
    """Per-item scores weighted so that their mean is the aggregate (None: not testable)."""
    if r.aggregate is None or not suite.aggregate:
        return None
    parts, big_n, k = [], sum(len(keysets[m]) for m in suite.aggregate), len(suite.aggregate)
    for m in suite.aggregate:
        c = r.cells[m]
        if c.vector is None or c.keys != keysets[m] or suite.member(m).metric in DERIVED:  # not a mean of items
            return None
        parts.append(np.array([c.vector[i] for i in keysets[m]]) * big_n / (k * len(keysets[m])))
    return np.concatenate(parts)


def _common_keys(cells: list[Cell]) -> tuple[str, ...] | None:
    counts = Counter(c.keys for c in cells if c.keys is not None)
    return max(counts, key=lambda k: (counts[k], k)) if counts else None


def _top_marks(entries: list[tuple[float, np.ndarray | None, list[str]]], hib: bool) -> None:
    """Mark "top" the best entry and those the rank test cannot separate from it."""
    tested = sorted([e for e in entries if e[1] is not None], key=lambda e: -e[0] if hib else e[0])
    if not tested:
        return
    if len(tested) == 1:
        tested[0][2].append("top")
        return
    out = stats.ranks_with_ties(np.vstack([e[1] for e in tested]), alpha=ALPHA, correction="holm")
    for e, rank in zip(tested, out.ranks):
        if rank == 1:
            e[2].append("top")


def _base_marks(entries: list[tuple[float, np.ndarray | None, list[str], Any]], base: tuple[float, np.ndarray | None],
                hib: bool, correction: str) -> list[float | None]:
    """"up"/"down" marks against the baseline; returns the corrected p per entry (None: untested)."""
    idx = [i for i, e in enumerate(entries) if e[1] is not None and base[1] is not None]
    raw = [stats.run_test(TEST, entries[i][1], base[1]).p_value for i in idx]  # type: ignore[arg-type]
    adj = stats.adjust(raw, correction) if raw else []
    out: list[float | None] = [None] * len(entries)
    for i, p in zip(idx, adj):
        out[i] = p
        if p < ALPHA:
            better = (entries[i][0] > base[0]) == hib
            entries[i][2].append("up" if better else "down")
    return out


def mark_cells(suite: Suite, rows: list[SuiteRow], baseline: SuiteRow | None, correction: str) -> list[str]:
    """Top and baseline marks on every cell; returns notes on columns whose items cannot separate entries."""
    from harness.report.data import min_achievable_p

    keysets: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []
    for m in suite.members:
        cells = [r.cells[m.id] for r in rows if m.id in r.cells]
        common = _common_keys(cells)
        if common is None:
            continue
        keysets[m.id] = common
        k = sum(1 for c in cells if c.keys == common)
        if k > 1 and (p_min := min_achievable_p(len(common), k - 1)) >= ALPHA:
            notes.append(f"{m.label}: with {len(common)} items and {k - 1} comparisons the smallest corrected p the "
                         f"rank test can reach is {p_min:.4f} ≥ {ALPHA}, so no entry can be separated from the best "
                         "(the whole column is bold).")

        def vec(c: Cell, common: tuple[str, ...] = common) -> np.ndarray | None:
            return np.array([c.vector[k] for k in common]) if c.keys == common and c.vector else None

        _top_marks([(c.value, vec(c), c.marks) for c in cells], m.higher_is_better)
        if baseline is not None and m.id in baseline.cells:
            others = [r for r in rows if r is not baseline and m.id in r.cells]
            b = baseline.cells[m.id]
            ps = _base_marks([(r.cells[m.id].value, vec(r.cells[m.id]), r.cells[m.id].marks, r) for r in others],
                             (b.value, vec(b)), m.higher_is_better, correction)
            for r, p in zip(others, ps):
                r.cells[m.id].p_base = p
    if suite.aggregate and all(m in keysets for m in suite.aggregate):
        hib = suite.member(suite.aggregate[0]).higher_is_better
        with_agg = [r for r in rows if r.aggregate is not None]
        vecs = {id(r): _agg_vector(suite, r, keysets) for r in with_agg}
        _top_marks([(r.aggregate, vecs[id(r)], r.agg_marks) for r in with_agg], hib)  # type: ignore[misc]
        if baseline is not None and baseline.aggregate is not None:
            others = [r for r in with_agg if r is not baseline]
            ps = _base_marks([(r.aggregate, vecs[id(r)], r.agg_marks, r) for r in others],  # type: ignore[misc]
                             (baseline.aggregate, _agg_vector(suite, baseline, keysets)), hib, correction)
            for r, p in zip(others, ps):
                r.agg_p_base = p
    return notes


def find_baseline(rows: list[SuiteRow], spec: str) -> SuiteRow:
    """A row by one of its run ids (or a prefix), its short label, or its method name when unique."""
    s = spec.lower()
    by_id = [r for r in rows if any(rid.startswith(s) for rid in r.run_ids)]
    by_label = [r for r in rows if r.label == spec]
    by_method = [r for r in rows if r.method == spec]
    for found in (by_id, by_label, by_method):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise HarnessError(f"baseline {spec!r} matches {len(found)} rows ({'; '.join(r.label for r in found)}); "
                               "give a run id or the full label")
    raise HarnessError(f"baseline {spec!r} matches no row of this table (rows: {'; '.join(r.label for r in rows)})")


def suite_view(suite: Suite, results: list[StoredResult], model: str | None, baseline: str | None = None,
               correction: str = "holm") -> SuiteView:
    """The suite's table data on one model (pure; raises HarnessError on mixed protocols)."""
    stats.CORRECTIONS.lookup(correction)
    rows, protocols = collect_rows(suite, results, model)
    short_labels(rows)
    _aggregate(suite, rows)
    rows = _order(suite, rows)
    base = find_baseline(rows, baseline) if baseline else None
    power = mark_cells(suite, rows, base, correction)
    notes = []
    if any(len(r.cells) < len(suite.members) for r in rows):
        notes.append("— : no stored result for this member under the suite's protocol; such a row gets no aggregate.")
    return SuiteView(suite, model, rows, base, correction, notes, protocols, power)


# ---------------------------------------------------------------------------------------------
# The view as one Table


def protocol_words(v: SuiteView) -> str:
    """The protocol in words, for captions and the page."""
    model = f"model {v.model}" if v.model is not None else "no model (retrieval/reranking runs)"
    members = "; ".join(m.protocol_words() + f" ({m.metric})" for m in v.suite.members)
    return f"{v.suite.title}, {model}. Per member (metric): {members}."


def caption(v: SuiteView, with_protocol: bool = True) -> str:
    s = v.suite
    parts = [protocol_words(v)] if with_protocol else []
    if s.aggregate:
        parts.append(f"{s.aggregate_label}: the mean of {', '.join(s.member(m).label for m in s.aggregate)}; "
                     "a row missing one of them has none.")
    else:
        parts.append("No aggregate: the members' metrics cannot be averaged.")
    parts.append(f"Bold: the best entry of a column and those a two-sided paired randomisation test on the per-item "
                 f"scores cannot separate from it (rank 1 of the board's rank test, Holm, alpha = {ALPHA}).")
    if v.baseline is not None:
        corr = stats.CORRECTIONS.get(v.correction).label
        parts.append(f"▲/▼: significantly better/worse than the baseline {v.baseline.label} (two-sided paired "
                     f"randomisation test per member on the per-item scores, {corr} over the rows of each column, "
                     f"p < {ALPHA}).")
    if any(m.metric in DERIVED for m in s.members):
        parts.append("Perplexity is tested on the per-window nll (ppl = exp(mean nll)).")
    return " ".join(parts + v.power_notes)


def to_table(v: SuiteView) -> Table:
    s = v.suite
    show = ("csv", "json", "markdown", "latex")
    cols = [Column("label_shown", "Method", show=("markdown", "latex")), Column("label", show=EXPORT),
            Column("method", show=EXPORT),
            Column("params", show=EXPORT), Column("model", show=EXPORT)]
    for m in s.members:
        cols.append(Column(m.id, m.label, kind="num", higher_is_better=m.higher_is_better, show=show))
    if s.aggregate:
        hib = s.member(s.aggregate[0]).higher_is_better
        cols.append(Column(AGG, s.aggregate_label, kind="num", higher_is_better=hib, show=show))
    for m in s.members:
        cols += [Column(f"{m.id}_top", kind="bool", show=EXPORT), Column(f"{m.id}_run", show=EXPORT)]
        if v.baseline is not None:
            cols.append(Column(f"{m.id}_p_vs_baseline", kind="p", show=EXPORT))
    if v.baseline is not None:
        cols.append(Column("baseline", kind="bool", show=EXPORT))
    table_rows, marks = [], {}
    for i, r in enumerate(v.rows):
        row: dict[str, Any] = {"label_shown": r.label + (" (baseline)" if r is v.baseline else ""), "label": r.label,
                               "method": r.method,
                               "params": canonical_json(r.params), "model": r.model, AGG: r.aggregate,
                               "baseline": r is v.baseline}
        for m in s.members:
            c = r.cells.get(m.id)
            row[m.id] = c.value if c else None
            row[f"{m.id}_top"] = ("top" in c.marks) if c else None
            row[f"{m.id}_run"] = c.stored.run_id if c else None
            row[f"{m.id}_p_vs_baseline"] = c.p_base if c else None
            if c and c.marks:
                marks[(i, m.id)] = tuple(c.marks)
        if r.agg_marks:
            marks[(i, AGG)] = tuple(r.agg_marks)
        table_rows.append(row)
    notes = list(v.notes) + ["Params not shown in a label are the same for every row of that method (the CSV "
                             "and JSON have them all)."]
    return Table(cols, table_rows, caption=caption(v), label=f"tab:suite-{s.id}", notes=notes,
                 source=f"harness table {s.id}", marks=marks, fit=None)


# ---------------------------------------------------------------------------------------------
# `harness table SUITE`

FORMATS = ("markdown", "latex", "csv", "json")


def pick_model(suite: Suite, results: list[StoredResult], model: str | None) -> str | None:
    found = models_of(suite, results)
    if model is not None:
        if model not in found:
            raise HarnessError(f"suite {suite.id}: no stored result on model {model!r} under the suite's protocol; "
                               f"models with results: {', '.join(str(m) for m in found) or '(none)'}")
        return model
    if len(found) > 1:
        raise HarnessError(f"suite {suite.id} has results on {len(found)} models ({', '.join(str(m) for m in found)}); "
                           "choose one with --model")
    if not found:
        raise HarnessError(f"suite {suite.id}: no stored result matches any member under the suite's protocol")
    return found[0]


def suite_table_text(suite_id: str, results_dir: Any, model: str | None = None, baseline: str | None = None,
                     fmt: str = "markdown", correction: str = "holm") -> str:
    from pathlib import Path

    from harness.results import ResultStore
    from harness.suites import get_suite

    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    suite = get_suite(suite_id)
    if not Path(results_dir).is_dir():
        raise HarnessError(f"results directory {results_dir} does not exist")
    good, _bad = ResultStore(Path(results_dir)).scan()
    view = suite_view(suite, good, pick_model(suite, good, model), baseline, correction)
    t = to_table(view)
    return {"markdown": t.to_markdown, "latex": t.to_latex, "csv": t.to_csv, "json": t.to_json}[fmt]()


def add_arguments(parser: Any) -> None:
    from pathlib import Path

    parser.add_argument("suite", help="suite id (harness list suites)")
    parser.add_argument("--model", default=None, help="the model whose rows to show (needed when several have results)")
    parser.add_argument("--baseline", default=None, help="run id (prefix), row label or method name of the baseline row")
    parser.add_argument("--correction", choices=stats.CORRECTIONS, default="holm",
                        help="correction of the baseline tests over the rows of a column (default: holm)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="markdown", help="output format")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results directory (default: results)")
