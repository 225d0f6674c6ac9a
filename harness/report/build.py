"""Build the static leaderboard site from a results directory.

A pure function of ``results/``: every page, plot and download is derived from the stored results
(and the registered adapters' docstrings) only — no clock, no absolute paths, sorted iteration,
deterministic SVG — so the same results give byte-identical output. Results that fail validation
are listed on the problems page and never stop the rest from rendering.

Leaderboards group results by (task id, task version, model id, protocol); different protocols are
never ranked together. Results made with random-weight models are kept out of quality leaderboards
and shown on latency pages only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from harness import stats
from harness.compare import DERIVED, fmt_num, fmt_p, params_label, shown_params
from harness.errors import HarnessError, ResultValidationError
from harness.report import latex, plots
from harness.results import ResultStore, StoredResult, canonical_json, load_items, semantic_params

ALPHA = 0.05
RANK_RESAMPLES = stats.DEFAULT_RESAMPLES
RANK_SEED = stats.DEFAULT_SEED
MARKER = ".harness-site"  # marks an output directory this module may wipe and rebuild

TRACKS: list[tuple[str, str, tuple[str, ...]]] = [
    ("llm", "LLM pruning", ("perplexity", "zeroshot")),
    ("retrieval", "Retrieval", ("retrieval",)),
    ("reranking", "Reranking", ("reranking",)),
    ("latency", "Latency", ("latency",)),
]
RANDOM_LABEL = "random weights (latency only)"


@dataclass(frozen=True)
class ReportSummary:
    out_dir: Path
    pages: list[str]  # HTML pages written, relative to out_dir, sorted
    files: list[str]  # every file written, relative to out_dir, sorted
    problems: list[tuple[str, str]]  # (result path relative to the results dir, message)
    results: int  # valid results read
    boards: int


@dataclass
class Entry:
    res: StoredResult
    doc: dict[str, Any]
    run_id: str
    method: str
    params: dict[str, Any]
    params_text: str
    items: list[dict[str, Any]]
    sparsity: float | None
    latency: float | None
    latency_label: str | None
    rank: int | None = None
    rank_note: str = ""
    p_adj: float | None = None
    leader: str | None = None


@dataclass
class Board:
    key: tuple[str, int, str, str]
    slug: str
    task_id: str
    version: int
    kind: str
    title: str
    model: str | None
    protocol: dict[str, Any]
    track: str
    entries: list[Entry] = field(default_factory=list)
    failed: list[StoredResult] = field(default_factory=list)
    protocol_label: str = ""
    metrics: list[tuple[str, bool]] = field(default_factory=list)  # (name, higher_is_better), primary first
    primary: str | None = None
    test_field: str | None = None
    rank_text: str = ""
    extra_cols: list[tuple[str, str]] = field(default_factory=list)
    plots: list[dict[str, str]] = field(default_factory=list)
    random_weights: bool = False
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Small helpers


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slugify(text: str, max_len: int = 60) -> str:
    s = _SAFE.sub("-", text).strip("-.")[:max_len]
    return s or "x"


def short_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:8]


def protocol_text(protocol: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_pval(k, v)}" for k, v in sorted(protocol.items()))


def _pval(key: str, v: Any) -> str:
    if key == "limit" and v is None:
        return "all"
    return v if isinstance(v, str) else canonical_json(v)


def latency_p50(lat: Any) -> tuple[float | None, str | None]:
    """p50 latency and its label from ``efficiency.latency`` (flat or one level nested)."""
    if not isinstance(lat, dict):
        return None, None
    unit = lat.get("unit", "ms") if isinstance(lat.get("unit"), str) else "ms"
    per = f"/{lat['per']}" if isinstance(lat.get("per"), str) else ""
    for k in ("p50", "p50_ms"):
        if isinstance(lat.get(k), (int, float)) and not isinstance(lat.get(k), bool):
            return float(lat[k]), f"p50 {unit}{per}"
    for name in sorted(lat):
        sub = lat[name]
        if isinstance(sub, dict):
            for k in ("p50", "p50_ms"):
                if isinstance(sub.get(k), (int, float)) and not isinstance(sub.get(k), bool):
                    return float(sub[k]), f"{name} p50 {sub.get('unit', unit)}"
    return None, None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def track_of(kind: str) -> str:
    for tid, _title, kinds in TRACKS:
        if kind in kinds:
            return tid
    return "other"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _scrub(message: str, root: Path) -> str:
    """Problem messages without this machine's absolute paths (the site must not depend on them)."""
    return message.replace(str(root.resolve()) + "/", "").replace(str(root) + "/", "")


# ---------------------------------------------------------------------------------------------
# Assembling boards


def _entry(res: StoredResult, items: list[dict[str, Any]]) -> Entry:
    doc = res.doc
    sp = _num((doc.get("pruning") or {}).get("measured_sparsity"))
    lat, lat_label = latency_p50((doc.get("efficiency") or {}).get("latency"))
    return Entry(
        res=res,
        doc=doc,
        run_id=doc["run_id"],
        method=doc["method"]["name"],
        params=doc["method"]["params"],
        params_text=shown_params(doc),
        items=items,
        sparsity=sp,
        latency=lat,
        latency_label=lat_label,
    )


def _primary(entries: list[Entry]) -> str | None:
    votes = Counter(m for e in entries for m, v in e.doc["metrics"].items() if v.get("primary"))
    if votes:
        return sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    declared = [e.doc["task"].get("primary_metric") for e in entries if e.doc["task"].get("primary_metric")]
    if declared:
        return sorted(declared)[0]
    names = sorted({m for e in entries for m in e.doc["metrics"]})
    return names[0] if names else None


def _hib(entries: list[Entry], metric: str) -> bool:
    votes = Counter(bool(e.doc["metrics"][metric]["higher_is_better"]) for e in entries if metric in e.doc["metrics"])
    return votes.most_common(1)[0][0] if votes else True


def _sort_entries(entries: list[Entry], primary: str | None, hib: bool) -> list[Entry]:
    def key(e: Entry) -> tuple[Any, ...]:
        v = e.doc["metrics"].get(primary, {}).get("value") if primary else None
        missing = v is None
        score = 0.0 if missing else (-float(v) if hib else float(v))
        return (missing, score, e.method, e.params_text, e.run_id)

    return sorted(entries, key=key)


def _rank_board(board: Board) -> None:
    """Ranks that respect statistics (see stats.ranks_with_ties); entries that cannot be tested on
    the board's common items stay unranked, with the reason."""
    primary = board.primary
    if primary is None or not board.entries:
        board.rank_text = "No metric to rank by."
        return
    hib = dict(board.metrics)[primary]
    fields_all = [({f for row in e.items for f in row} if e.items else set()) for e in board.entries]
    how = [_test_field(primary, f) for f in fields_all]
    keysets: list[tuple[str, ...] | None] = []
    for e, h in zip(board.entries, how):
        if h is None or not e.items or primary not in e.doc["metrics"]:
            keysets.append(None)
            continue
        key = e.doc["items"]["key"]
        keysets.append(tuple(sorted(str(r.get(key)) for r in e.items)))
    counts = Counter(k for k in keysets if k is not None)
    if not counts:
        for e in board.entries:
            e.rank_note = "not ranked: no per-item scores for the primary metric"
        board.rank_text = (
            f"Entries are sorted by {primary}; none stores per-item {primary} scores, so no paired test is possible "
            "and no ranks are given."
        )
        return
    # The reference item set: the most common one (ties: the one of the better-sorted entry).
    best_n = max(counts.values())
    ref = next(k for k in keysets if k is not None and counts[k] == best_n)
    ranked = [i for i, k in enumerate(keysets) if k == ref]
    for i, k in enumerate(keysets):
        e = board.entries[i]
        if k is None:
            e.rank_note = "not ranked: no per-item scores for the primary metric"
        elif k != ref:
            e.rank_note = "not ranked: its items differ from the board's common item set"
    field_name = how[ranked[0]][0]  # type: ignore[index]
    board.test_field = field_name
    mat = np.empty((len(ranked), len(ref)), dtype=np.float64)
    for row, i in enumerate(ranked):
        e = board.entries[i]
        key = e.doc["items"]["key"]
        by = {str(r.get(key)): r for r in e.items}
        mat[row] = [float(by[k][field_name]) for k in ref]
    outcome = stats.ranks_with_ties(mat, alpha=ALPHA, correction="holm", n_resamples=RANK_RESAMPLES, seed=RANK_SEED)
    for row, i in enumerate(ranked):
        e = board.entries[i]
        e.rank = outcome.ranks[row]
        e.p_adj = outcome.p_adj[row]
        lead = outcome.leaders[row] if outcome.leaders[row] != row else (outcome.leaders[row - 1] if row else None)
        e.leader = board.entries[ranked[lead]].run_id if lead is not None else None
    derived = f" ({primary} = {DERIVED[primary][2]})" if field_name != primary and primary in DERIVED else ""
    corr = "Holm" if outcome.correction == "holm" else "Bonferroni (the Holm fixpoint did not settle)"
    board.rank_text = (
        f"Sorted by {primary} ({'higher' if hib else 'lower'} is better). Ranks respect statistics: going down the "
        f"list, each entry is compared with the leader of the rank group above it by a two-sided {outcome.detail} "
        f"on the per-item {field_name} scores{derived} of the {len(ref)} items all ranked entries share; the "
        f"{outcome.comparisons} p-values are {corr}-corrected together, and an entry whose corrected p ≥ α = {ALPHA} "
        f"shares the leader's rank (competition ranking: 1, 1, 3, …). Equal ranks mean the data do not separate "
        f"the entries."
    )


def _test_field(primary: str, fields: set[str]) -> tuple[str, Any] | None:
    if primary in DERIVED and DERIVED[primary][0] in fields:
        return DERIVED[primary][0], DERIVED[primary][1]
    if primary in fields:
        return primary, None
    return None


def _protocol_labels(boards: list[Board]) -> None:
    """Label each board by what distinguishes its protocol from its siblings' (same task and model)."""
    groups: dict[tuple[str, int, str | None, bool], list[Board]] = defaultdict(list)
    for b in boards:
        groups[(b.task_id, b.version, b.model, b.random_weights)].append(b)
    for sibs in groups.values():
        if len(sibs) == 1:
            sibs[0].protocol_label = protocol_text(sibs[0].protocol)
            continue
        keys = sorted({k for b in sibs for k in b.protocol})
        differing = [k for k in keys if len({canonical_json(b.protocol.get(k, "<absent>")) for b in sibs}) > 1]
        for b in sibs:
            b.protocol_label = "protocol differs: " + ", ".join(
                f"{k}={_pval(k, b.protocol[k]) if k in b.protocol else '(absent)'}" for k in differing
            )


SPARSITY_NOTE = (
    "Measured sparsity: the share of the transformer blocks' linear weights that are exactly zero "
    "(masks: magnitude, Wanda, SparseGPT) or removed (ShortGPT, SLEB, angular, FLAP: the model really "
    "shrinks). An unpruned model can show a small value: zeros its checkpoint already had (the embedded "
    "SmolLM2 is dequantised from Q4_1, which leaves about 0.03% exact zeros)."
)


def _extra_cols(board: Board) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []
    if any(e.sparsity is not None for e in board.entries):
        cols.append(("sparsity", "measured sparsity"))
    labels = sorted({e.latency_label for e in board.entries if e.latency_label})
    if labels:
        cols.append(("latency", "latency " + " / ".join(labels)))
    eff_keys: set[str] = set()
    for e in board.entries:
        for k, v in e.doc.efficiency.to_dict().items():
            if k != "latency" and _num(v) is not None:
                eff_keys.add(k)
    for k in sorted(eff_keys, key=lambda k: (k not in ("prune_seconds", "eval_seconds"), k)):
        cols.append((f"eff:{k}", k.replace("_", " ")))
    return cols


def _row(board: Board, e: Entry) -> dict[str, Any]:
    eff = e.doc.efficiency.to_dict()
    row: dict[str, Any] = {
        "rank": e.rank,
        "rank_note": e.rank_note,
        "p_vs_leader": e.p_adj,
        "leader": e.leader,
        "run_id": e.run_id,
        "method": e.method,
        "params": e.params_text,
        "params_json": e.params,
        "model": e.doc["model"]["id"],
        "random_weights": bool(e.doc["model"].get("random_weights")),
        "metrics": {m: e.doc["metrics"].get(m, {}).get("value") for m, _h in board.metrics},
        "stderr": {m: e.doc["metrics"].get(m, {}).get("stderr") for m, _h in board.metrics},
        "n": {m: e.doc["metrics"].get(m, {}).get("n") for m, _h in board.metrics},
        "sparsity": e.sparsity,
        "latency": e.latency,
        "latency_label": e.latency_label,
        "reproduce": e.doc["provenance"]["reproduce"],
    }
    for k, _h in board.extra_cols:
        if k.startswith("eff:"):
            row[k] = _num(eff.get(k[4:]))
    return row


# ---------------------------------------------------------------------------------------------
# Rendering


def _env() -> jinja2.Environment:
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
    env.filters["pjson"] = lambda v: json.dumps(v.to_dict() if hasattr(v, "to_dict") else v, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    env.filters["cjson"] = lambda v: canonical_json(v)
    return env


class _Writer:
    def __init__(self, out: Path):
        self.out = out
        self.files: list[str] = []

    def write(self, rel: str, data: bytes | str) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        self.files.append(rel)


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise HarnessError(f"site output {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise HarnessError(
                f"site output {out_dir} is not empty and was not made by `harness report` (no {MARKER} file);"
                " refusing to delete its contents"
            )
        for child in sorted(out_dir.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else (repr(r[c]) if isinstance(r[c], float) else r[c]) for c in columns])
    return buf.getvalue()


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


_REGISTRY_ERROR: list[str] = []


def _method_doc(name: str) -> tuple[str | None, str | None]:
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


def _scan(root: Path) -> tuple[list[StoredResult], list[list[dict[str, Any]]], list[tuple[Path, str]]]:
    """What ``ResultStore.scan`` does (validate every result and its per-item sidecar), keeping the
    per-item rows it reads instead of reading every sidecar a second time."""
    store = ResultStore(root)
    good: list[StoredResult] = []
    items: list[list[dict[str, Any]]] = []
    bad: list[tuple[Path, str]] = []
    for path in store.iter_paths():
        try:
            doc = store.load(path)
            rows = load_items(path, doc) if doc.get("items") else []
        except ResultValidationError as exc:
            bad.append((path, str(exc)))
            continue
        good.append(StoredResult(path, doc))
        items.append(rows)
    return good, items, bad


def _board_files(board: Board) -> dict[str, str]:
    return {ext: f"boards/{board.slug}.{ext}" for ext in ("html", "csv", "json", "tex")}


def build_site(results_dir: Path, out_dir: Path) -> ReportSummary:
    """Render the whole site from ``results_dir`` into ``out_dir`` (wiped and rebuilt)."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir)
    if not results_dir.is_dir():
        raise HarnessError(f"results directory {results_dir} does not exist")
    good, loaded_items, bad = _scan(results_dir)
    problems = sorted((_rel(p, results_dir), _scrub(msg, results_dir)) for p, msg in bad)
    entries: list[Entry] = []
    failed: list[StoredResult] = []
    for res, items in zip(good, loaded_items):
        if res.doc["status"] != "ok":
            failed.append(res)
        else:
            entries.append(_entry(res, items))

    # Boards: random-weight results only on latency boards.
    boards: dict[tuple[str, int, str, str], Board] = {}
    latency_only: list[Entry] = []

    def board_for(doc: dict[str, Any]) -> Board:
        t = doc["task"]
        rw = bool(doc["model"].get("random_weights"))
        key = (t["id"], int(t["version"]), canonical_json(doc["model"]["id"]) + ("|rw" if rw else ""),
               canonical_json(t["protocol"]))
        if key not in boards:
            model = doc["model"]["id"]
            slug = slugify(f"{t['id']}-v{t['version']}--{model or 'no-model'}") + "--" + short_hash(list(key))
            boards[key] = Board(key=key, slug=slug, task_id=t["id"], version=int(t["version"]), kind=t["kind"],
                                title=t.get("title") or t["id"], model=model, protocol=t["protocol"],
                                track=track_of(t["kind"]), random_weights=rw)
        return boards[key]

    for e in entries:
        if e.doc["model"].get("random_weights") and e.doc["task"]["kind"] != "latency":
            latency_only.append(e)
            continue
        board_for(e.doc).entries.append(e)
    for res in failed:
        if res.doc["model"].get("random_weights") and res.doc["task"]["kind"] != "latency":
            continue  # listed on the random-weights page
        board_for(res.doc).failed.append(res)

    board_list = sorted(boards.values(), key=lambda b: (b.track, b.task_id, b.version, str(b.model), b.key[3]))
    _protocol_labels(board_list)
    for b in board_list:
        b.primary = _primary(b.entries)
        names = sorted({m for e in b.entries for m in e.doc["metrics"]}, key=lambda m: (m != b.primary, m))
        b.metrics = [(m, _hib(b.entries, m)) for m in names]
        b.entries = _sort_entries(b.entries, b.primary, _hib(b.entries, b.primary) if b.primary else True)
        b.failed.sort(key=lambda r: (r.doc["method"]["name"], shown_params(r.doc), r.doc["run_id"]))
        _rank_board(b)
        b.extra_cols = _extra_cols(b)
        if any(k == "sparsity" for k, _ in b.extra_cols):
            b.notes.append(SPARSITY_NOTE)

    _prepare_out(out_dir)
    w = _Writer(out_dir)
    w.write(MARKER, "Made by `harness report`; this directory is rebuilt (wiped) on every run.\n")
    env = _env()
    static = Path(__file__).parent / "static" / "site.css"
    w.write("site.css", static.read_bytes())

    run_board: dict[str, Board] = {}
    for b in board_list:
        for e in b.entries:
            run_board[e.run_id] = b
        for r in b.failed:
            run_board[r.doc["run_id"]] = b

    # Methods
    by_method: dict[str, list[StoredResult]] = defaultdict(list)
    for res in good:
        by_method[res.doc["method"]["name"]].append(res)
    method_pages: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(by_method):
        slug = slugify(name)
        if slug != name or slug.lower() in used:
            slug = f"{slug}-{short_hash(name)}"
        used.add(slug.lower())
        method_pages[name] = f"methods/{slug}.html"
    # Leaderboards
    for b in board_list:
        rows = [_row(b, e) for e in b.entries]
        for r in rows:
            r["method_page"] = method_pages[r["method"]]
        _board_plots(b, w)
        files = _board_files(b)
        caption = f"{b.task_id} v{b.version}, model {b.model or '(none)'}; {b.protocol_label}. {b.rank_text}"
        w.write(files["tex"], latex.board_table(caption, f"tab:{b.slug}", b.metrics, rows, b.extra_cols))
        columns = ["rank", "method", "params", "model", "run_id"]
        columns += [m for m, _h in b.metrics] + [f"{m}_stderr" for m, _h in b.metrics]
        columns += [k for k, _h in b.extra_cols] + ["p_vs_leader", "rank_note", "reproduce"]
        flat = []
        for r in rows:
            fr = dict(r)
            for m, _h in b.metrics:
                fr[m] = r["metrics"][m]
                fr[f"{m}_stderr"] = r["stderr"][m]
            flat.append(fr)
        w.write(files["csv"], _csv(flat, columns))
        w.write(files["json"], _dump({
            "task": {"id": b.task_id, "version": b.version, "kind": b.kind, "protocol": b.protocol},
            "model": b.model,
            "random_weights": b.random_weights,
            "primary_metric": b.primary,
            "metrics": [{"name": m, "higher_is_better": h} for m, h in b.metrics],
            "ranking": {"method": b.rank_text, "alpha": ALPHA, "correction": "holm",
                        "resamples": RANK_RESAMPLES, "seed": RANK_SEED, "test_field": b.test_field},
            "rows": [{k: v for k, v in r.items() if k not in ("params", "params_json", "method_page")}
                     | {"params": r["params_json"]} for r in rows],
            "failed": [{"run_id": f.doc["run_id"], "method": f.doc["method"]["name"],
                        "params": f.doc["method"]["params"], "error": f.doc.get("error")} for f in b.failed],
        }))
        html = env.get_template("board.html.j2").render(
            root="../", b=b, rows=rows, files={k: Path(v).name for k, v in files.items()},
            alpha=ALPHA, random_label=RANDOM_LABEL, page_title=f"{b.task_id} · {b.model or 'no model'}",
        )
        w.write(files["html"], html)

    # Methods
    for name in sorted(by_method):
        doc_text, family = _method_doc(name)
        results = sorted(by_method[name], key=lambda r: (r.doc["task"]["id"], str(r.doc["model"]["id"]),
                                                         shown_params(r.doc), r.doc["run_id"]))
        mrows = []
        for r in results:
            d = r.doc
            b = run_board.get(d["run_id"])
            prim = b.primary if b else None
            rw = bool(d["model"].get("random_weights"))
            show = not (rw and d["task"]["kind"] != "latency")
            mrows.append({
                "run_id": d["run_id"], "task": d["task"]["id"], "version": d["task"]["version"],
                "model": d["model"]["id"], "random_weights": rw, "params": shown_params(d),
                "protocol": protocol_text(d["task"]["protocol"]), "status": d["status"],
                "primary": prim if show else None,
                "value": d["metrics"].get(prim, {}).get("value") if (prim and show) else None,
                "board": f"../{_board_files(b)['html']}" if b else None,
                "sparsity": _num((d.get("pruning") or {}).get("measured_sparsity")),
                "error": (d.get("error") or {}).get("message") if d["status"] != "ok" else None,
            })
        stem = method_pages[name][: -len(".html")]
        cols = ["run_id", "task", "version", "model", "random_weights", "params", "protocol", "status",
                "primary", "value", "sparsity", "error"]
        w.write(f"{stem}.csv", _csv(mrows, cols))
        w.write(f"{stem}.json", _dump({"method": name, "family": family, "results": [
            {c: r[c] for c in cols} | {"params": res.doc["method"]["params"]} for r, res in zip(mrows, results)]}))
        families = sorted({r.doc["method"]["family"] for r in results})
        w.write(method_pages[name], env.get_template("method.html.j2").render(
            root="../", name=name, doc=doc_text, family=family or ", ".join(families), rows=mrows,
            registry_error=_REGISTRY_ERROR[0] if _REGISTRY_ERROR else None,
            csv_name=Path(stem).name + ".csv", json_name=Path(stem).name + ".json", page_title=f"method {name}",
        ))

    # Runs
    for res in good:
        d = res.doc
        b = run_board.get(d["run_id"])
        rw = bool(d["model"].get("random_weights"))
        hide_quality = rw and d["task"]["kind"] != "latency"
        w.write(f"runs/{d['run_id']}.html", env.get_template("run.html.j2").render(
            root="../", d=d, board=(f"../{_board_files(b)['html']}" if b else None),
            method_page="../" + method_pages[d["method"]["name"]], hide_quality=hide_quality,
            random_label=RANDOM_LABEL, params_text=params_label(d["method"]["params"]),
            protocol=protocol_text(d["task"]["protocol"]), page_title=f"run {d['run_id']}",
            pruning_summary=_pruning_summary(d.get("pruning")),
            metrics=sorted(d["metrics"].items(), key=lambda kv: (not kv[1].get("primary"), kv[0])),
        ))

    # Random-weight (latency only) results and the latency track
    lat_rows = []
    for e in sorted(latency_only, key=lambda e: (e.doc["task"]["id"], str(e.doc["model"]["id"]), e.method,
                                                  e.params_text, e.run_id)):
        eff = e.doc.efficiency.to_dict()
        lat_rows.append({"run_id": e.run_id, "task": e.doc["task"]["id"], "model": e.doc["model"]["id"],
                         "method": e.method, "params": e.params_text, "latency": e.latency,
                         "latency_label": e.latency_label, "eval_seconds": _num(eff.get("eval_seconds")),
                         "prune_seconds": _num(eff.get("prune_seconds")),
                         "protocol": protocol_text(e.doc["task"]["protocol"])})
    rw_failed = [r for r in failed if r.doc["model"].get("random_weights") and r.doc["task"]["kind"] != "latency"]
    cols = ["run_id", "task", "model", "method", "params", "protocol", "latency", "latency_label",
            "eval_seconds", "prune_seconds"]
    w.write("downloads/random-weights.csv", _csv(lat_rows, cols))
    w.write("downloads/random-weights.json", _dump(lat_rows))
    w.write("random-weights.html", env.get_template("random_weights.html.j2").render(
        root="", rows=lat_rows, failed=rw_failed, random_label=RANDOM_LABEL, page_title=RANDOM_LABEL,
        method_pages=method_pages,
    ))

    # Problems
    w.write("problems.html", env.get_template("problems.html.j2").render(
        root="", problems=problems, page_title="problems"))
    w.write("downloads/problems.json", _dump([{"path": p, "message": m} for p, m in problems]))

    # Index and all-results downloads
    tracks = []
    for tid, title, kinds in TRACKS + [("other", "Other tasks", ())]:
        tb = [b for b in board_list if b.track == tid]
        if tid == "other" and not tb:
            continue
        tracks.append({"id": tid, "title": title, "kinds": kinds, "boards": [_board_summary(b) for b in tb],
                       "random_weights": len(lat_rows) + len(rw_failed) if tid == "latency" else 0})
    all_rows = []
    for res in good:
        d = res.doc
        b = run_board.get(d["run_id"])
        all_rows.append({"run_id": d["run_id"], "status": d["status"], "method": d["method"]["name"],
                         "family": d["method"]["family"], "params": canonical_json(d["method"]["params"]),
                         "model": d["model"]["id"], "random_weights": bool(d["model"].get("random_weights")),
                         "task": d["task"]["id"], "task_version": d["task"]["version"],
                         "protocol": canonical_json(d["task"]["protocol"]),
                         "board": _board_files(b)["html"] if b else None,
                         "path": _rel(res.path, results_dir)})
    cols = ["run_id", "status", "method", "family", "params", "model", "random_weights", "task", "task_version",
            "protocol", "board", "path"]
    w.write("downloads/results.csv", _csv(all_rows, cols))
    w.write("downloads/results.json", _dump(all_rows))
    index_rows = [r for t in tracks for r in t["boards"]]
    w.write("downloads/boards.csv", _csv(index_rows, ["track", "task", "version", "model", "protocol", "entries",
                                                       "failed", "leader", "leader_value", "primary", "page"]))
    w.write("downloads/boards.json", _dump(index_rows))
    w.write("index.html", env.get_template("index.html.j2").render(
        root="", tracks=tracks, n_results=len(good), n_boards=len(board_list), problems=problems,
        n_failed=len(failed), methods=[(n, method_pages[n], len(by_method[n])) for n in sorted(by_method)],
        page_title="leaderboards",
    ))

    files = sorted(w.files)
    return ReportSummary(
        out_dir=out_dir,
        pages=[f for f in files if f.endswith(".html")],
        files=files,
        problems=problems,
        results=len(good),
        boards=len(board_list),
    )


def _pruning_summary(pr: Any) -> dict[str, Any] | None:
    pr = pr.to_dict() if hasattr(pr, "to_dict") else pr
    if not isinstance(pr, dict):
        return None
    out = {k: v for k, v in pr.items() if k != "layers"}
    if isinstance(pr.get("layers"), list):
        out["layers"] = f"{len(pr['layers'])} pruned layers (per-layer figures in the result file)"
    return out


def _board_summary(b: Board) -> dict[str, Any]:
    lead = b.entries[0] if b.entries else None
    return {
        "track": b.track,
        "task": b.task_id,
        "version": b.version,
        "model": b.model if not b.random_weights else f"{b.model} ({RANDOM_LABEL})",
        "protocol": b.protocol_label,
        "entries": len(b.entries),
        "failed": len(b.failed),
        "leader": f"{lead.method} ({lead.params_text})" if lead and lead.params_text else (lead.method if lead else None),
        "leader_value": lead.doc["metrics"].get(b.primary, {}).get("value") if lead and b.primary else None,
        "primary": b.primary,
        "hib": dict(b.metrics).get(b.primary, True) if b.primary else True,
        "page": _board_files(b)["html"],
        "title": b.title,
    }


def _board_plots(b: Board, w: _Writer) -> None:
    if not b.primary or not b.entries:
        return
    primary = b.primary
    hib = dict(b.metrics)[primary]
    arrow = "↑" if hib else "↓"
    # Quality vs measured sparsity: one line per method + params other than the sparsity target.
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in b.entries:
        v = e.doc["metrics"].get(primary, {}).get("value")
        if e.sparsity is None or v is None or e.doc["method"]["family"] != "pruning":
            continue
        rest = {k: p for k, p in semantic_params(e.doc["method"]).items() if k not in ("sparsity", "pattern")}
        pattern = e.params.get("pattern")
        structure = ((e.doc.get("pruning") or {}).get("details") or {}).get("structure")
        label = e.method + (f" [{pattern}]" if pattern and pattern != "unstructured" else "")
        label += f" [{structure.split(' (')[0]}]" if structure else ""  # 'block removal', 'width'
        label += f" ({params_label(rest)})" if rest else ""
        series[label].append((e.sparsity, float(v)))
    if sum(len(v) for v in series.values()) >= 2 and len({x for pts in series.values() for x, _ in pts}) >= 2:
        name = f"{b.slug}-sparsity.svg"
        w.write(f"boards/{name}", plots.quality_vs_sparsity(sorted(series.items()), f"{primary} {arrow}",
                                                           f"{b.task_id} · {b.model or 'no model'}"))
        b.plots.append({"file": name, "alt": f"{primary} versus measured sparsity, one line per method",
                        "caption": f"{primary} vs measured sparsity (x: share of the transformer blocks' "
                                   f"weights that are zero (masks) or removed (methods marked [block removal] or [width])."})
    pts = []
    labels = sorted({e.latency_label for e in b.entries if e.latency_label})
    for e in b.entries:
        v = e.doc["metrics"].get(primary, {}).get("value")
        if e.latency is None or v is None:
            continue
        pts.append(plots.Point(e.latency, float(v), f"{e.method}" + (f" ({e.params_text})" if e.params_text else "")))
    if len(pts) >= 2 and len(labels) == 1:
        name = f"{b.slug}-latency.svg"
        w.write(f"boards/{name}", plots.quality_vs_latency(pts, f"latency, {labels[0]}", f"{primary} {arrow}", hib,
                                                          f"{b.task_id} · {b.model or 'no model'}"))
        b.plots.append({"file": name, "alt": f"{primary} versus latency with the Pareto front",
                        "caption": f"{primary} vs {labels[0]} latency; red: the Pareto front (no entry is both faster "
                                   f"and better)."})
