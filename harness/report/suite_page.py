"""The suite pages: one page per suite (a section per model), from :mod:`harness.report.suite`.

Each section is the suite's :class:`~harness.table.Table` (downloads as CSV, JSON and LaTeX), the
protocol in words, and the aggregate vs measured sparsity plot (one line per method).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import jinja2

from harness.errors import HarnessError
from harness.report import plots
from harness.report.data import Site, series_label, slugify, varying_params
from harness.report.suite import AGG, SuiteView, caption, models_of, protocol_words, suite_view, to_table
from harness.suites import Suite, load_suites
from harness.table import Table


def load_site_suites() -> tuple[list[Suite], str | None]:
    """The suites, or none and the reason when a suite file is broken (the site still renders)."""
    try:
        return list(load_suites().values()), None
    except HarnessError as exc:
        return [], str(exc)


def aggregate_series(v: SuiteView) -> dict[str, list[tuple[float, float]]]:
    """Aggregate vs measured sparsity: one line per method (split as the boards' plots are)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in v.rows:
        if r.aggregate is None or r.sparsity is None:
            continue
        varying = varying_params([x.params for x in v.rows if x.method == r.method])
        series[series_label(r.method, r.params, varying, None)].append((r.sparsity, r.aggregate))
    return series


def html_cells(t: Table, i: int) -> list[dict[str, Any]]:
    """One row's shown cells: text, classes and the mark suffixes (the template escapes the text)."""
    out = []
    for c in t.view("markdown"):
        marks = t.cell_marks(i, c.name)
        out.append({"text": c.display(t.rows[i].get(c.name)), "num": c.align == "r",
                    "top": "top" in marks, "agg": c.name == AGG,
                    "sup": "".join({"up": "▲", "down": "▼"}.get(m, "") for m in marks)})
    return out


def _section(suite: Suite, site: Site, model: str | None, stem: str, write: Any) -> dict[str, Any]:
    sec: dict[str, Any] = {"model": model, "files": {}, "plot": None, "refused": None}
    try:
        v = suite_view(suite, site.results, model)
    except HarnessError as exc:
        sec["refused"] = str(exc)
        return sec
    t = to_table(v)
    for ext, text in (("csv", t.to_csv()), ("json", t.to_json()), ("tex", t.to_latex())):
        write(f"suites/{stem}.{ext}", text)
        sec["files"][ext] = f"{stem}.{ext}"
    series = aggregate_series(v)
    if suite.aggregate and len({x for pts in series.values() for x, _ in pts}) >= 2:
        name = f"{stem}-aggregate.svg"
        write(f"suites/{name}", plots.quality_vs_sparsity(
            sorted(series.items()), f"{suite.aggregate_label} ↑" if suite.member(suite.aggregate[0]).higher_is_better
            else f"{suite.aggregate_label} ↓", f"{suite.id} · {model or 'no model'}"))
        sec["plot"] = {"file": name, "caption": f"{suite.aggregate_label} vs measured sparsity, one line per method "
                                                "(rows with every aggregated member only)."}
    runs = {c.stored.run_id for r in v.rows for c in r.cells.values()}
    sec |= {"table": t, "rows": [html_cells(t, i) for i in range(len(t.rows))], "heads": t.view("markdown"),
            "protocol": protocol_words(v), "caption": caption(v, with_protocol=False), "notes": t.notes, "n_runs": len(runs),
            "labels": [r.label for r in v.rows], "run_ids": [sorted(r.run_ids) for r in v.rows]}
    return sec


def suite_pages(site: Site, env: jinja2.Environment, write: Any) -> list[dict[str, Any]]:
    """Write every suite page; return the index's summary of each."""
    suites, error = load_site_suites()
    out = []
    for s in suites:
        sections = []
        for model in models_of(s, site.results):
            stem = slugify(f"{s.id}--{model or 'no-model'}")
            sections.append(_section(s, site, model, stem, write))
        page = f"suites/{slugify(s.id)}.html"
        write(page, env.get_template("suite.html.j2").render(root="../", s=s, sections=sections,
                                                              page_title=f"suite {s.id}"))
        complete = sum(1 for sec in sections for r in sec.get("table", Table([])).rows if r.get(AGG) is not None)
        out.append({"id": s.id, "title": s.title, "page": page, "members": [m.label for m in s.members],
                    "models": [sec["model"] for sec in sections], "complete": complete,
                    "aggregate": s.aggregate_label if s.aggregate else None})
    if error:
        out.append({"error": error})
    return out
