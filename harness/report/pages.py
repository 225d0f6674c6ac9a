"""The views: one function per page kind, each turning part of a :class:`~harness.report.data.Site`
into files through a writer (``write(relative path, text or bytes)``).

Every table a reader can download is a :class:`harness.table.Table` (CSV, LaTeX); numbers are
formatted by :mod:`harness.fmt` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from harness.compare import shown_params
from harness.errors import HarnessError
from harness.fmt import arrow, fmt_num, fmt_p, params_label, protocol_text
from harness.kinds import get_kind
from harness.report import plots
from harness.report.data import (
    ALPHA,
    OTHER_TRACK,
    RANDOM_LABEL,
    RANK_RESAMPLES,
    RANK_SEED,
    SPEED_KINDS,
    Board,
    Entry,
    Site,
    board_row,
    board_summary,
    param_chips,
    rel_path,
    sparsity_series,
    speed_only,
    structure_of,
)
from harness.results import StoredResult, canonical_json
from harness.table import EXPORT, Column, Table, table_of

Write = Callable[[str, "bytes | str"], None]


def _to_plain(v: Any) -> Any:
    return v.to_dict() if hasattr(v, "to_dict") else v


def environment(site: Site) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every string from a result is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = fmt_num
    env.filters["pval"] = fmt_p
    env.filters["pjson"] = lambda v: json.dumps(_to_plain(v), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    env.filters["cjson"] = lambda v: canonical_json(_to_plain(v))
    env.globals["nav"] = [(tid, title) for tid, title, _kinds in site.tracks]
    env.globals["random_label"] = RANDOM_LABEL
    return env


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


# ---------------------------------------------------------------------------------------------
# Boards


def board_table(b: Board, rows: list[dict[str, Any]]) -> Table:
    """The board as a Table: CSV has every figure, LaTeX the ranked view."""
    both = ("csv", "json", "latex")
    columns = [Column("rank", "Rank", kind="int", show=both), Column("method", "Method", show=both),
               Column("params", "Params", show=both), Column("model", show=EXPORT), Column("run_id", show=EXPORT)]
    columns += [Column(m, kind="num", higher_is_better=h, show=both) for m, h in b.metrics]
    columns += [Column(f"{m}_stderr", kind="num", show=EXPORT) for m, _h in b.metrics]
    if b.has_bands:
        columns += [Column("band", "noise band", show=both)]
        columns += [Column(f"band_{k}", kind="num", show=EXPORT) for k in ("min", "max", "std")]
        columns += [Column("band_k", kind="int", show=EXPORT)]
    columns += [Column(k, h, kind="num", show=both) for k, h in b.extra_cols]
    columns += [Column("p_vs_leader", kind="p", show=EXPORT), Column("rank_note", show=EXPORT),
                Column("reproduce", show=EXPORT)]
    flat = []
    for r in rows:
        fr = dict(r)
        for m, _h in b.metrics:
            fr[m] = r["metrics"][m]
            fr[f"{m}_stderr"] = r["stderr"][m]
        band = r.get("band")
        fr["band"] = f"{fmt_num(band['min'])}–{fmt_num(band['max'])}" if band else None
        for k in ("min", "max", "std", "k"):
            fr[f"band_{k}"] = band[k] if band else None
        flat.append(fr)
    caption = f"{b.task_id} v{b.version}, model {b.model or '(none)'}; {b.protocol_label}. {b.rank_text}"
    return Table(columns, flat, caption=caption, label=f"tab:{b.slug}", source="harness report")


def board_plots(b: Board, write: Write) -> None:
    """Quality vs measured sparsity and quality vs latency, when the board has the points."""
    if not b.primary or not b.entries:
        return
    primary, hib = b.primary, b.hib
    ylabel, title = f"{primary} {arrow(hib)}", f"{b.task_id} · {b.model or 'no model'}"
    series = sparsity_series(b)
    if sum(len(v) for v in series.values()) >= 2 and len({x for pts in series.values() for x, _ in pts}) >= 2:
        name = f"{b.slug}-sparsity.svg"
        write(f"boards/{name}", plots.quality_vs_sparsity(sorted(series.items()), ylabel, title))
        marks = sorted({s for e in b.entries if (s := structure_of(e.result))})
        removed = " or ".join(f"[{s}]" for s in marks)
        how = f"zero (masks) or removed (methods marked {removed})" if marks else "zero (masks)"
        b.plots.append({"file": name, "alt": f"{primary} versus measured sparsity, one line per method",
                        "caption": f"{primary} vs measured sparsity (x: share of the transformer blocks' "
                                   f"weights that are {how}."})
    labels = sorted({e.latency_label for e in b.entries if e.latency_label})
    pts = [plots.Point(e.latency, float(v), entry_label(b, e))
           for e in b.entries if e.latency is not None and (v := e.result.value(primary)) is not None]
    if len(pts) >= 2 and len(labels) == 1:
        name = f"{b.slug}-latency.svg"
        write(f"boards/{name}", plots.quality_vs_latency(pts, f"latency, {labels[0]}", ylabel, hib, title))
        b.plots.append({"file": name, "alt": f"{primary} versus latency with the Pareto front",
                        "caption": f"{primary} vs {labels[0]} latency; red: the Pareto front (no entry is both faster "
                                   f"and better)."})
    kind_plots(b, write)


def entry_label(b: Board, e: Entry) -> str:
    """An entry's label in a figure: its method and the params that tell it apart on the board."""
    varying = [c for c, vary in param_chips(b, e) if vary]
    return e.method + (f" ({', '.join(varying)})" if varying else "")


def kind_plots(b: Board, write: Write) -> None:
    """The figures the board's task kind declares (``TaskKind.plots``), from its entries' results."""
    try:
        specs = get_kind(b.kind).plots
    except HarnessError:
        return  # a kind that is not installed: its boards still render, without its figures
    title = f"{b.task_id} · {b.model or 'no model'}"
    for spec in specs:
        ylabel = spec.ylabel or f"{b.primary} {arrow(b.hib)}"
        series = [(entry_label(b, e), pts) for e in b.entries if (pts := [(float(x), float(y)) for x, y in
                                                                           spec.points(e.result)])]
        if sum(len(pts) for _label, pts in series) < 2:
            continue
        name = f"{b.slug}-{spec.name}.svg"
        if spec.pareto:
            svg = plots.quality_vs_latency([plots.Point(x, y, label) for label, pts in series for x, y in pts],
                                           spec.xlabel, ylabel, b.hib, title)
        else:
            svg = plots.quality_vs_sparsity(series, ylabel, title, logy=False, xlabel=spec.xlabel,
                                            reference_lines=False)
        write(f"boards/{name}", svg)
        b.plots.append({"file": name, "alt": f"{ylabel} versus {spec.xlabel}", "caption": spec.caption})


def board_page(site: Site, b: Board, env: jinja2.Environment, write: Write) -> None:
    rows = [board_row(b, e) for e in b.entries]
    for r in rows:
        r["method_page"] = site.method_pages[r["method"]]
    board_plots(b, write)
    files = b.files
    table = board_table(b, rows)
    write(files["tex"], table.to_latex())
    write(files["csv"], table.to_csv())
    write(files["json"], dump({
        "task": {"id": b.task_id, "version": b.version, "kind": b.kind, "protocol": b.protocol},
        "model": b.model,
        "random_weights": b.random_weights,
        "primary_metric": b.primary,
        "metrics": [{"name": m, "higher_is_better": h} for m, h in b.metrics],
        "ranking": {"method": b.rank_text, "alpha": ALPHA, "correction": "holm",
                    "resamples": RANK_RESAMPLES, "seed": RANK_SEED, "test_field": b.test_field},
        "rows": [{k: v for k, v in r.items() if k not in ("params", "params_json", "method_page", "chips")}
                 | {"params": r["params_json"]} for r in rows],
        "failed": [{"run_id": f.run_id, "method": f.result.method.name, "params": f.result.method.params,
                    "error": f.result.error.to_dict() if f.result.error else None} for f in b.failed],
        "references": b.references,  # published scores: labelled rows, never ranked
    }))
    write(files["html"], env.get_template("board.html.j2").render(
        root="../", b=b, rows=rows, files={k: Path(v).name for k, v in files.items()},
        alpha=ALPHA, page_title=f"{b.task_id} · {b.model or 'no model'}",
    ))


# ---------------------------------------------------------------------------------------------
# Methods and runs


_REGISTRY_ERROR: list[str] = []


def method_doc(name: str) -> tuple[str | None, str | None]:
    """(docstring, family) of a registered adapter, or (None, None) when it is not installed or the
    registry cannot be loaded (the page then says so; the rest of the site is unaffected)."""
    if _REGISTRY_ERROR:
        return None, None
    try:
        from harness.registry import load_methods

        methods = load_methods()
    except Exception as exc:  # a broken adapter module must not break the report
        _REGISTRY_ERROR.append(f"{type(exc).__name__}: {exc}")
        return None, None
    info = methods.get(name)
    return (info.doc, info.family) if info is not None else (None, None)


METHOD_COLUMNS = ["run_id", "task", "version", "model", "random_weights", "params", "protocol", "status",
                  "primary", "value", "sparsity", "error"]


def _method_row(site: Site, stored: StoredResult) -> dict[str, Any]:
    res = stored.result
    b = site.run_board.get(res.run_id)
    prim = b.primary if b else None
    show = not (res.random_weights and not speed_only(res.task.kind))
    return {
        "run_id": res.run_id, "task": res.task.id, "version": res.task.version,
        "model": res.model.id, "random_weights": res.random_weights, "params": shown_params(res),
        "protocol": protocol_text(res.task.protocol), "status": res.status,
        "primary": prim if show else None,
        "value": res.value(prim) if (prim and show) else None,
        "board": f"../{b.files['html']}" if b else None,
        "sparsity": res.measured_sparsity,
        "error": res.error.message if (not res.ok and res.error) else None,
    }


def method_page(site: Site, name: str, env: jinja2.Environment, write: Write) -> None:
    doc_text, family = method_doc(name)
    results = sorted(site.by_method[name], key=lambda r: (r.result.task.id, str(r.result.model.id),
                                                          shown_params(r.result), r.run_id))
    rows = [_method_row(site, r) for r in results]
    stem = site.method_pages[name][: -len(".html")]
    write(f"{stem}.csv", table_of(rows, METHOD_COLUMNS).to_csv())
    write(f"{stem}.json", dump({"method": name, "family": family, "results": [
        {c: r[c] for c in METHOD_COLUMNS} | {"params": res.result.method.params} for r, res in zip(rows, results)]}))
    families = sorted({r.result.method.family for r in results})
    write(site.method_pages[name], env.get_template("method.html.j2").render(
        root="../", name=name, doc=doc_text, family=family or ", ".join(families), rows=rows,
        registry_error=_REGISTRY_ERROR[0] if _REGISTRY_ERROR else None,
        csv_name=Path(stem).name + ".csv", json_name=Path(stem).name + ".json", page_title=f"method {name}",
    ))


def pruning_summary(res: Any) -> dict[str, Any] | None:
    pr = res.pruning.to_dict() if res.pruning is not None else None
    if not isinstance(pr, dict):
        return None
    out = {k: v for k, v in pr.items() if k not in ("layers", "layer_count", "layers_artifact")}
    if isinstance(pr.get("layers"), list):
        out["layers"] = f"{len(pr['layers'])} pruned layers (per-layer figures in the result file)"
    elif pr.get("layer_count"):
        out["layers"] = (f"{pr['layer_count']} pruned layers (per-layer figures in the result's artifact "
                         f"{pr.get('layers_artifact')!r})")
    return out


def run_page(site: Site, stored: StoredResult, env: jinja2.Environment, write: Write) -> None:
    res = stored.result
    b = site.run_board.get(res.run_id)
    write(f"runs/{res.run_id}.html", env.get_template("run.html.j2").render(
        root="../", d=res, board=(f"../{b.files['html']}" if b else None),
        method_page="../" + site.method_pages[res.method.name],
        hide_quality=res.random_weights and not speed_only(res.task.kind),
        params_text=params_label(res.method.params), protocol=protocol_text(res.task.protocol),
        page_title=f"run {res.run_id}", pruning_summary=pruning_summary(res),
        metrics=sorted(res.metrics.items(), key=lambda kv: (not kv[1].primary, kv[0])),
        reproduction=site.grades.get(res.run_id), reference_grade=site.reference_grades.get(res.run_id),
    ))


# ---------------------------------------------------------------------------------------------
# Site-wide pages


RANDOM_COLUMNS = ["run_id", "task", "model", "method", "params", "protocol", "latency", "latency_label",
                  "eval_seconds", "prune_seconds"]


def random_weight_rows(site: Site) -> list[dict[str, Any]]:
    rows = []
    for e in sorted(site.latency_only, key=lambda e: (e.result.task.id, str(e.result.model.id), e.method,
                                                      e.params_text, e.run_id)):
        eff = e.result.efficiency
        rows.append({"run_id": e.run_id, "task": e.result.task.id, "model": e.result.model.id,
                     "method": e.method, "params": e.params_text, "latency": e.latency,
                     "latency_label": e.latency_label,
                     "eval_seconds": None if eff.eval_seconds is None else float(eff.eval_seconds),
                     "prune_seconds": None if eff.prune_seconds is None else float(eff.prune_seconds),
                     "protocol": protocol_text(e.result.task.protocol)})
    return rows


def random_weights_page(site: Site, env: jinja2.Environment, write: Write) -> None:
    rows = random_weight_rows(site)
    write("downloads/random-weights.csv", table_of(rows, RANDOM_COLUMNS).to_csv())
    write("downloads/random-weights.json", dump(rows))
    write("random-weights.html", env.get_template("random_weights.html.j2").render(
        root="", rows=rows, failed=site.random_weight_failed, page_title=RANDOM_LABEL,
        method_pages=site.method_pages,
    ))


def problems_page(site: Site, env: jinja2.Environment, write: Write) -> None:
    write("problems.html", env.get_template("problems.html.j2").render(
        root="", problems=site.problems, page_title="problems"))
    write("downloads/problems.json", dump([{"path": p, "message": m} for p, m in site.problems]))


def index_tracks(site: Site) -> list[dict[str, Any]]:
    n_random = len(site.latency_only) + len(site.random_weight_failed)
    out = []
    for tid, title, kinds in site.tracks + [OTHER_TRACK]:
        boards = [b for b in site.boards if b.track == tid]
        if tid == OTHER_TRACK[0] and not boards:
            continue
        speed = any(k in SPEED_KINDS for k in kinds)
        out.append({"id": tid, "title": title, "kinds": kinds, "boards": [board_summary(b) for b in boards],
                    "speed": speed, "random_weights": n_random if speed else 0})
    return out


RESULT_COLUMNS = ["run_id", "status", "method", "family", "params", "model", "random_weights", "task",
                  "task_version", "protocol", "board", "path"]
BOARD_COLUMNS = ["track", "task", "version", "model", "protocol", "entries", "failed", "leader", "leader_value",
                 "primary", "page"]


def downloads(site: Site, results_dir: Path, tracks: list[dict[str, Any]], write: Write) -> None:
    """All results and all boards, as CSV and JSON."""
    rows = []
    for stored in site.results:
        res = stored.result
        b = site.run_board.get(res.run_id)
        rows.append({"run_id": res.run_id, "status": res.status, "method": res.method.name,
                     "family": res.method.family, "params": canonical_json(res.method.params),
                     "model": res.model.id, "random_weights": res.random_weights,
                     "task": res.task.id, "task_version": res.task.version,
                     "protocol": canonical_json(res.task.protocol),
                     "board": b.files["html"] if b else None, "path": rel_path(stored.path, results_dir)})
    write("downloads/results.csv", table_of(rows, RESULT_COLUMNS).to_csv())
    write("downloads/results.json", dump(rows))
    index_rows = [r for t in tracks for r in t["boards"]]
    write("downloads/boards.csv", table_of(index_rows, BOARD_COLUMNS).to_csv())
    write("downloads/boards.json", dump(index_rows))


def index_page(site: Site, tracks: list[dict[str, Any]], env: jinja2.Environment, write: Write,
               suites: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
    write("index.html", env.get_template("index.html.j2").render(
        suites=[s for s in suites if "error" not in s], suite_errors=[s["error"] for s in suites if "error" in s],
        root="", tracks=tracks, n_results=len(site.results), n_boards=len(site.boards), problems=site.problems,
        n_failed=len(site.failed),
        methods=[(n, site.method_pages[n], len(site.by_method[n])) for n in sorted(site.by_method)],
        page_title="leaderboards",
    ))

