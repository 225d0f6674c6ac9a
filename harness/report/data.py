"""The report as data: stored results grouped into boards, ranked, labelled and summarised.

Pure: takes the results a store has read (``StoredResult``s, their per-item rows loaded) and the
problems it found; returns a :class:`Site`. No file access, no HTML. The views (``pages``) and the
writer turn a ``Site`` into files.

Leaderboards group results by (task id, task version, model id, protocol); different protocols are
never ranked together. Results made with random-weight models are kept out of quality leaderboards
and shown on speed-only boards (see :func:`speed_only`) and the random-weights page only.
Nothing here names a method or a model: board notes come from the results themselves.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.compare import DERIVED, shown_params
from harness.fmt import fmt_num, params_label, protocol_text, protocol_value
from harness.noise import NoiseBand, Spread, band_for, indistinguishable
from harness.results import Result, StoredResult, canonical_json

ALPHA = 0.05
RANK_RESAMPLES = stats.DEFAULT_RESAMPLES
RANK_SEED = stats.DEFAULT_SEED
RANDOM_LABEL = "random weights (latency only)"
OTHER_TRACK = ("other", "Other tasks", ())

# The fallback when the task-kind registry does not declare tracks (the one place they are listed).
_TRACKS_FALLBACK: list[tuple[str, str, tuple[str, ...]]] = [
    ("llm", "LLM pruning", ("perplexity", "zeroshot")),
    ("retrieval", "Retrieval", ("retrieval",)),
    ("reranking", "Reranking", ("reranking",)),
    ("latency", "Latency", ("latency",)),
]
# Kinds that measure speed only: the one place random-weight models may appear on a board.
SPEED_KINDS = ("latency",)


def tracks() -> list[tuple[str, str, tuple[str, ...]]]:
    """The site's sections in order: (id, title, task kinds), from the task-kind registry when it
    declares them."""
    try:
        from harness.kinds import tracks as registered  # type: ignore[attr-defined]
    except ImportError:
        return list(_TRACKS_FALLBACK)
    return list(registered())


def speed_only(kind: str) -> bool:
    return kind in SPEED_KINDS


@dataclass
class Entry:
    stored: StoredResult
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
    reproduction: dict[str, Any] | None = None  # last `harness reproduce` grade: {grade, date, metrics}
    tie_size: int = 1  # how many entries share this entry's rank
    band: Spread | None = None  # the noise band of the board's primary metric (harness noise-band)
    band_id: str | None = None

    @property
    def result(self) -> Result:
        return self.stored.result


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
    plots: list[dict[str, str]] = field(default_factory=list)  # filled by the views
    random_weights: bool = False
    notes: list[str] = field(default_factory=list)
    references: list[dict[str, Any]] = field(default_factory=list)  # published scores: labelled, never ranked
    n_items: int | None = None  # the items the ranked entries share
    min_p_adj: float | None = None  # the smallest corrected p the rank test can reach on this board
    separable: bool = True  # False: no corrected p can fall below alpha, the ranks carry no information
    has_bands: bool = False  # some entry has a stored noise band for the primary metric

    @property
    def files(self) -> dict[str, str]:
        return {ext: f"boards/{self.slug}.{ext}" for ext in ("html", "csv", "json", "tex")}

    @property
    def hib(self) -> bool:
        return dict(self.metrics).get(self.primary, True) if self.primary else True


@dataclass
class Site:
    results: list[StoredResult]  # every valid result, in store order
    problems: list[tuple[str, str]]  # (path relative to the results dir, message)
    boards: list[Board]
    failed: list[StoredResult]
    latency_only: list[Entry]  # random-weight results outside speed-only boards
    run_board: dict[str, Board]
    by_method: dict[str, list[StoredResult]]
    method_pages: dict[str, str]  # method name -> page path
    tracks: list[tuple[str, str, tuple[str, ...]]]
    grades: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> last re-run grade
    reference_grades: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> last reference grade

    @property
    def random_weight_failed(self) -> list[StoredResult]:
        return [r for r in self.failed if r.result.random_weights and not speed_only(r.result.task.kind)]


# ---------------------------------------------------------------------------------------------
# Small helpers


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slugify(text: str, max_len: int = 60) -> str:
    s = _SAFE.sub("-", text).strip("-.")[:max_len]
    return s or "x"


def short_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:8]


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def latency_p50(lat: Any) -> tuple[float | None, str | None]:
    """p50 latency and its label from ``efficiency.latency`` (flat or one level nested)."""
    if not isinstance(lat, dict):
        return None, None
    unit = lat.get("unit", "ms") if isinstance(lat.get("unit"), str) else "ms"
    per = f"/{lat['per']}" if isinstance(lat.get("per"), str) else ""
    for k in ("p50", "p50_ms"):
        if _num(lat.get(k)) is not None:
            return float(lat[k]), f"p50 {unit}{per}"
    for name in sorted(lat):
        sub = lat[name]
        if isinstance(sub, dict):
            for k in ("p50", "p50_ms"):
                if _num(sub.get(k)) is not None:
                    return float(sub[k]), f"{name} p50 {sub.get('unit', unit)}"
    return None, None


def track_of(kind: str, table: list[tuple[str, str, tuple[str, ...]]] | None = None) -> str:
    for tid, _title, kinds in table if table is not None else tracks():
        if kind in kinds:
            return tid
    return OTHER_TRACK[0]


def rel_path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def scrub(message: str, root: Path) -> str:
    """Problem messages without this machine's absolute paths (the site must not depend on them)."""
    return message.replace(str(root.resolve()) + "/", "").replace(str(root) + "/", "")


def structure_of(res: Result) -> str | None:
    """The pruning structure a result's own details declare ('block removal', 'width' ...)."""
    details = (res.pruning.details if res.pruning is not None else None) or {}
    s = details.get("structure")
    return s.split(" (")[0] if isinstance(s, str) and s else None


# ---------------------------------------------------------------------------------------------
# Assembling boards


def _entry(stored: StoredResult) -> Entry:
    res = stored.result
    lat, lat_label = latency_p50(res.efficiency.latency)
    return Entry(stored=stored, run_id=res.run_id, method=res.method.name, params=res.method.params,
                 params_text=shown_params(res), items=stored.items(), sparsity=res.measured_sparsity,
                 latency=lat, latency_label=lat_label)


def _primary(entries: list[Entry]) -> str | None:
    votes = Counter(m for e in entries for m, v in e.result.metrics.items() if v.primary)
    if votes:
        return sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    declared = [e.result.task.primary_metric for e in entries if e.result.task.primary_metric]
    if declared:
        return sorted(declared)[0]
    names = sorted({m for e in entries for m in e.result.metrics})
    return names[0] if names else None


def _hib(entries: list[Entry], metric: str) -> bool:
    votes = Counter(e.result.metrics[metric].higher_is_better for e in entries if metric in e.result.metrics)
    return votes.most_common(1)[0][0] if votes else True


def _sort_entries(entries: list[Entry], primary: str | None, hib: bool) -> list[Entry]:
    def key(e: Entry) -> tuple[Any, ...]:
        v = e.result.value(primary)
        missing = v is None
        score = 0.0 if missing else (-float(v) if hib else float(v))  # type: ignore[arg-type]
        return (missing, score, e.method, e.params_text, e.run_id)

    return sorted(entries, key=key)


def _board_key(res: Result) -> tuple[str, int, str, str]:
    rw = res.random_weights
    return (res.task.id, res.task.version, canonical_json(res.model.id) + ("|rw" if rw else ""),
            canonical_json(res.task.protocol))


def _new_board(res: Result, key: tuple[str, int, str, str], table: list[tuple[str, str, tuple[str, ...]]]) -> Board:
    t, model = res.task, res.model.id
    slug = slugify(f"{t.id}-v{t.version}--{model or 'no-model'}") + "--" + short_hash(list(key))
    return Board(key=key, slug=slug, task_id=t.id, version=t.version, kind=t.kind, title=t.title or t.id,
                 model=model, protocol=t.protocol, track=track_of(t.kind, table), random_weights=res.random_weights)


def group_boards(good: list[StoredResult], table: list[tuple[str, str, tuple[str, ...]]]
                 ) -> tuple[list[Board], list[Entry], list[StoredResult]]:
    """(boards sorted for display, random-weight entries kept off quality boards, failed results)."""
    boards: dict[tuple[str, int, str, str], Board] = {}
    latency_only: list[Entry] = []
    failed: list[StoredResult] = []

    def board_for(res: Result) -> Board:
        key = _board_key(res)
        if key not in boards:
            boards[key] = _new_board(res, key, table)
        return boards[key]

    for stored in good:
        res = stored.result
        off_board = res.random_weights and not speed_only(res.task.kind)
        if not res.ok:
            failed.append(stored)
            if not off_board:  # else listed on the random-weights page
                board_for(res).failed.append(stored)
        elif off_board:
            latency_only.append(_entry(stored))
        else:
            board_for(res).entries.append(_entry(stored))
    ordered = sorted(boards.values(), key=lambda b: (b.track, b.task_id, b.version, str(b.model), b.key[3]))
    return ordered, latency_only, failed


def protocol_labels(boards: list[Board]) -> None:
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
                f"{k}={protocol_value(k, b.protocol[k]) if k in b.protocol else '(absent)'}" for k in differing
            )


# ---------------------------------------------------------------------------------------------
# Ranking


def _test_field(primary: str, fields: set[str]) -> tuple[str, Any] | None:
    if primary in DERIVED and DERIVED[primary][0] in fields:
        return DERIVED[primary][0], DERIVED[primary][1]
    if primary in fields:
        return primary, None
    return None


def _item_keysets(board: Board, primary: str) -> tuple[list[tuple[str, ...] | None], list[Any]]:
    how = [_test_field(primary, {f for row in e.items for f in row} if e.items else set()) for e in board.entries]
    keysets: list[tuple[str, ...] | None] = []
    for e, h in zip(board.entries, how):
        if h is None or not e.items or primary not in e.result.metrics:
            keysets.append(None)
            continue
        key = e.result.items.key  # type: ignore[union-attr]
        keysets.append(tuple(sorted(str(r.get(key)) for r in e.items)))
    return keysets, how


def rank_board(board: Board) -> None:
    """Ranks that respect statistics (see stats.ranks_with_ties); entries that cannot be tested on
    the board's common items stay unranked, with the reason."""
    primary = board.primary
    if primary is None or not board.entries:
        board.rank_text = "No metric to rank by."
        return
    keysets, how = _item_keysets(board, primary)
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
    for e, k in zip(board.entries, keysets):
        if k is None:
            e.rank_note = "not ranked: no per-item scores for the primary metric"
        elif k != ref:
            e.rank_note = "not ranked: its items differ from the board's common item set"
    field_name = how[ranked[0]][0]
    board.test_field = field_name
    mat = np.empty((len(ranked), len(ref)), dtype=np.float64)
    for row, i in enumerate(ranked):
        e = board.entries[i]
        by = {str(r.get(e.result.items.key)): r for r in e.items}  # type: ignore[union-attr]
        mat[row] = [float(by[k][field_name]) for k in ref]
    outcome = stats.ranks_with_ties(mat, alpha=ALPHA, correction="holm", n_resamples=RANK_RESAMPLES, seed=RANK_SEED)
    for row, i in enumerate(ranked):
        e = board.entries[i]
        e.rank = outcome.ranks[row]
        e.p_adj = outcome.p_adj[row]
        lead = outcome.leaders[row] if outcome.leaders[row] != row else (outcome.leaders[row - 1] if row else None)
        e.leader = board.entries[ranked[lead]].run_id if lead is not None else None
    board.rank_text = _rank_text(primary, board.hib, field_name, len(ref), outcome)
    _power(board, len(ref), len(ranked), outcome)


def attach_bands(board: Board, bands: dict[str, NoiseBand]) -> None:
    """Give each entry the stored noise band of its configuration (for the primary metric)."""
    if not bands or board.primary is None:
        return
    for e in board.entries:
        band = band_for(e.result, bands)
        if band is not None and board.primary in band.metrics:
            e.band, e.band_id = band.metrics[board.primary], band.band_id
    board.has_bands = any(e.band is not None for e in board.entries)


def apply_noise_bands(board: Board) -> None:
    """The noise-band rule (docs/PARITY.md): an entry whose difference from an entry ranked above it
    lies inside both of their noise bands shares that entry's rank, whatever the per-item test said:
    repeating the run with another calibration draw alone moves a metric that much."""
    if not board.has_bands or board.primary is None:
        return
    primary, merged = board.primary, 0
    ranked = [e for e in board.entries if e.rank is not None]
    for i, e in enumerate(ranked):
        if e.band is None:
            continue
        for above in ranked[:i]:
            if above.rank is None or above.rank >= e.rank or above.band is None:
                continue
            va, vb = above.result.value(primary), e.result.value(primary)
            if va is not None and vb is not None and indistinguishable(va, above.band, vb, e.band):
                e.rank_note = (f"shares rank {above.rank} with {above.method} ({above.run_id[:8]}): their "
                               f"{primary} differ by {fmt_num(abs(va - vb))}, inside both noise bands")
                e.rank, e.leader, merged = above.rank, above.run_id, merged + 1
                break
    if merged:
        sizes = Counter(x.rank for x in ranked)
        for x in ranked:
            x.tie_size = sizes[x.rank]
    widths = sorted({f"{fmt_num(e.band.width)}" for e in board.entries if e.band is not None})
    board.notes.append(
        f"Noise band ({primary}): min–max of the same configuration re-run with other calibration draws "
        f"(seeds or window orders; `harness noise-band`, see docs/PARITY.md). Two entries whose difference lies "
        f"inside both of their bands are shown with one rank, whatever the per-item test says: that much "
        f"difference is produced by repeating the run alone. Widths here: {', '.join(widths)}"
        + (f"; {merged} entr{'ies' if merged != 1 else 'y'} share a rank by this rule." if merged else "."))


def min_achievable_p(n_items: int, comparisons: int) -> float:
    """The smallest Holm-corrected p the rank test can give: two-sided sign-flip p >= 2 / 2^n (exact
    for n <= EXACT_MAX_N) or 1 / (B + 1) (Monte Carlo), times the Holm factor of the smallest p."""
    raw = 2.0 / 2 ** n_items if n_items <= stats.EXACT_MAX_N else 1.0 / (RANK_RESAMPLES + 1)
    return min(1.0, raw * max(1, comparisons))


def _power(board: Board, n_items: int, k: int, outcome: Any) -> None:
    """Tie-group sizes, and whether the item count lets the test separate any two entries at all."""
    sizes = Counter(outcome.ranks)
    ranked = [e for e in board.entries if e.rank is not None]
    for e in ranked:
        e.tie_size = sizes[e.rank]
    board.n_items = n_items
    if k < 2:
        return
    board.min_p_adj = min_achievable_p(n_items, outcome.comparisons)
    board.separable = board.min_p_adj < ALPHA
    if not board.separable:
        raw = "2/2^" + str(n_items) if n_items <= stats.EXACT_MAX_N else f"1/{RANK_RESAMPLES + 1}"
        board.notes.insert(0, (
            f"These ranks cannot separate anything: with {n_items} items the smallest p the exact paired test can "
            f"give is {raw} = {2.0 / 2 ** n_items:.4f}, and Holm over {outcome.comparisons} comparisons makes the "
            f"smallest corrected p {board.min_p_adj:.4f} ≥ α = {ALPHA}. Every entry shares rank 1 whatever the "
            f"scores; more items (a larger limit) are needed to rank this board."))


def primary_ci(e: Entry, primary: str, field_name: str | None) -> tuple[float, float, str] | None:
    """95% interval of the primary metric: value ± 1.96 stored stderr, else a bootstrap over the items."""
    m = e.result.metrics.get(primary)
    if m is None:
        return None
    v = float(m.value)
    if m.stderr is not None:
        return v - 1.96 * float(m.stderr), v + 1.96 * float(m.stderr), "normal, stored stderr"
    if not e.items or field_name is None or field_name not in e.items[0]:
        return None
    x = np.array([float(r[field_name]) for r in e.items])
    rng = np.random.default_rng(RANK_SEED)
    means = x[rng.integers(0, len(x), size=(2000, len(x)))].mean(axis=1)
    if primary in DERIVED and field_name == DERIVED[primary][0]:
        means = DERIVED[primary][1](means)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi), "bootstrap over items, 2000 resamples"


def _rank_text(primary: str, hib: bool, field_name: str, n_items: int, outcome: Any) -> str:
    derived = f" ({primary} = {DERIVED[primary][2]})" if field_name != primary and primary in DERIVED else ""
    corr = "Holm" if outcome.correction == "holm" else "Bonferroni (the Holm fixpoint did not settle)"
    return (
        f"Sorted by {primary} ({'higher' if hib else 'lower'} is better). Ranks respect statistics: going down the "
        f"list, each entry is compared with the leader of the rank group above it by a two-sided {outcome.detail} "
        f"on the per-item {field_name} scores{derived} of the {n_items} items all ranked entries share; the "
        f"{outcome.comparisons} p-values are {corr}-corrected together, and an entry whose corrected p ≥ α = {ALPHA} "
        f"shares the leader's rank (competition ranking: 1, 1, 3, …). Equal ranks mean the data do not separate "
        f"the entries."
    )


# ---------------------------------------------------------------------------------------------
# Columns, notes, rows


def extra_cols(board: Board) -> list[tuple[str, str]]:
    cols: list[tuple[str, str]] = []
    if any(e.sparsity is not None for e in board.entries):
        cols.append(("sparsity", "measured sparsity"))
    labels = sorted({e.latency_label for e in board.entries if e.latency_label})
    if labels:
        cols.append(("latency", "latency " + " / ".join(labels)))
    cols += latency_k_cols(board)
    eff_keys = {k for e in board.entries for k in e.result.efficiency.numbers()}
    for k in sorted(eff_keys, key=lambda k: (k not in ("prune_seconds", "eval_seconds"), k)):
        cols.append((f"eff:{k}", k.replace("_", " ")))
    return cols


def sparsity_note(structures: list[str]) -> str:
    """What the measured-sparsity column means; the structures named are those the board's own
    results declare."""
    here = f"; on this board: {', '.join(structures)}" if structures else ""
    removed = f"removed (structured pruning{here}: the model really shrinks)"
    return (
        "Measured sparsity: the share of the transformer blocks' linear weights that are exactly zero (masks) or "
        f"{removed}. An unpruned model can show a small value: zeros its checkpoint already had."
    )


def board_notes(board: Board) -> list[str]:
    """Notes from the results themselves: the measured-sparsity explanation when the column is shown,
    and the model's own notes (``model.info["notes"]``) when its results carry them."""
    notes: list[str] = []
    if any(k == "sparsity" for k, _ in board.extra_cols):
        notes.append(sparsity_note(sorted({s for e in board.entries if (s := structure_of(e.result))})))
    results = [e.result for e in board.entries] + [r.result for r in board.failed]
    for text in sorted({n for r in results if (n := r.model.notes)}):
        notes.append(f"Model {board.model}: {text}")
    notes += judged_notes(board)
    return notes


def board_row(board: Board, e: Entry) -> dict[str, Any]:
    """One entry as the board's table and downloads show it."""
    res = e.result
    eff = res.efficiency.to_dict()
    row: dict[str, Any] = {
        "rank": e.rank,
        "rank_note": e.rank_note,
        "p_vs_leader": e.p_adj,
        "leader": e.leader,
        "run_id": e.run_id,
        "method": e.method,
        "params": e.params_text,
        "params_json": e.params,
        "model": res.model.id,
        "random_weights": res.random_weights,
        "metrics": {m: res.value(m) for m, _h in board.metrics},
        "stderr": {m: (res.metrics[m].stderr if m in res.metrics else None) for m, _h in board.metrics},
        "n": {m: (res.metrics[m].n if m in res.metrics else None) for m, _h in board.metrics},
        "sparsity": e.sparsity,
        "latency": e.latency,
        "latency_label": e.latency_label,
        "reproduce": res.provenance.reproduce,
        "reproduction": ({"grade": e.reproduction["grade"], "date": e.reproduction["date"]}
                         if e.reproduction else None),
        "tie_size": e.tie_size,
        "ci": primary_ci(e, board.primary, board.test_field or board.primary) if board.primary else None,
        "chips": param_chips(board, e),
        "band": ({"min": e.band.min, "max": e.band.max, "std": e.band.std, "k": e.band.k, "band_id": e.band_id}
                 if e.band is not None else None),
    }
    for k, _h in board.extra_cols:
        if k.startswith("eff:"):
            row[k] = _num(eff.get(k[4:]))
        elif k.startswith((LATENCY_K_PREFIX, CPU_K_PREFIX)):
            cpu = k.startswith(CPU_K_PREFIX)
            row[k] = latency_by_k(res.efficiency.latency, cpu).get(int(k.split("=", 1)[1]))
    row["judged_flag"] = e.run_id in judged_flags(board)[1]
    return row


def param_chips(board: Board, e: Entry) -> list[tuple[str, bool]]:
    """The shown params as (k=v, varies) chips: those that differ between this method's entries on the
    board (they tell its rows apart; for a method's only entry: those not shared by the whole board)
    first, then the rest (collapsed by the page)."""
    same = [x.result.method.semantic_params for x in board.entries if x.method == e.method]
    alone = len(same) == 1
    if alone:  # a method's only entry: what sets it apart from the board's other entries
        same = [x.result.method.semantic_params for x in board.entries]
    mine = e.result.method.semantic_params
    vary = {k for k in mine if len({canonical_json(p[k]) for p in same if k in p}) > 1
            or (alone and len(same) > 1 and sum(k in p for p in same) == 1)}
    chips = [(params_label({k: v}), k in vary) for k, v in sorted(mine.items())]
    return sorted(chips, key=lambda c: not c[1])


def board_summary(b: Board) -> dict[str, Any]:
    lead = b.entries[0] if b.entries else None
    top = [e for e in b.entries if e.rank == 1]
    return {
        "track": b.track,
        "task": b.task_id,
        "version": b.version,
        "model": b.model if not b.random_weights else f"{b.model} ({RANDOM_LABEL})",
        "protocol": b.protocol_label,
        "entries": len(b.entries),
        "failed": len(b.failed),
        "leader": f"{lead.method} ({lead.params_text})" if lead and lead.params_text else (lead.method if lead else None),
        "leader_value": lead.result.value(b.primary) if lead and b.primary else None,
        "primary": b.primary,
        "hib": b.hib,
        "page": b.files["html"],
        "title": b.title,
        "tied_top": len(top) if len(top) > 1 else None,
        "separable": b.separable,
        "n_items": b.n_items,
    }


AMOUNT_PARAMS = ("sparsity", "blocks", "fraction", "ratio")  # params that set how much is pruned: the x axis


def series_label(method: str, params: dict[str, Any], varying: set[str], structure: str | None) -> str:
    """A line's label: the method, its pattern and structure, and its other params that vary."""
    pattern = params.get("pattern")
    label = method + (f" [{pattern}]" if pattern and pattern != "unstructured" else "")
    label += f" [{structure}]" if structure else ""
    rest = {k: v for k, v in params.items() if k in varying and k not in AMOUNT_PARAMS and k != "pattern"}
    return label + (f" ({params_label(rest)})" if rest else "")


def varying_params(params: list[dict[str, Any]]) -> set[str]:
    keys = {k for p in params for k in p}
    return {k for k in keys if len({canonical_json(p.get(k, "<absent>")) for p in params}) > 1}


def sparsity_series(b: Board) -> dict[str, list[tuple[float, float]]]:
    """Quality vs measured sparsity: one line per method (the pruning papers' figure), split only by
    the pattern, the structure the results declare, and params other than the pruned amount."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in b.entries:
        by_method[e.method].append(e.result.method.semantic_params)
    for e in b.entries:
        v = e.result.value(b.primary)
        if e.sparsity is None or v is None or e.result.method.family != "pruning":
            continue
        label = series_label(e.method, e.result.method.semantic_params, varying_params(by_method[e.method]),
                             structure_of(e.result))
        series[label].append((e.sparsity, float(v)))
    return series


# ---------------------------------------------------------------------------------------------
# IR: latency at each timed top-k, and Judged@10 (partial judgements)

LATENCY_K_PREFIX = "latency@k="
JUDGED = "Judged@10"  # the IR kinds' diagnostic (harness.ir.retrieval_task.JUDGED)
JUDGED_GAP = 0.05  # flagged when Judged@10 is more than this (absolute) below the board's reference


CPU_K_PREFIX = "cpu@k="


def latency_by_k(lat: Any, cpu: bool = False) -> dict[int, float]:
    """p50 per timed top-k depth from ``efficiency.latency.by_k`` (wall time; ``cpu``: the same
    calls' process CPU time); {} for results without it."""
    by_k = lat.get("by_k") if isinstance(lat, dict) else None
    if not isinstance(by_k, dict):
        return {}
    out = {}
    for k, v in by_k.items():
        v = v.get("cpu") if cpu and isinstance(v, dict) else v
        if str(k).isdigit() and isinstance(v, dict) and _num(v.get("p50")) is not None:
            out[int(k)] = float(v["p50"])
    return out


def latency_k_cols(board: Board) -> list[tuple[str, str]]:
    cols = []
    for prefix, cpu, label in ((LATENCY_K_PREFIX, False, "latency p50 ms"), (CPU_K_PREFIX, True, "CPU p50 ms")):
        ks = sorted({k for e in board.entries for k in latency_by_k(e.result.efficiency.latency, cpu)})
        cols += [(f"{prefix}{k}", f"{label}, top {k}") for k in ks]
    return cols


def judged_flags(board: Board) -> tuple[tuple[float, str] | None, set[str]]:
    """((reference Judged@10, what it is), run ids of entries far below it). The reference: the
    first stage a reranking board reranks (stored by its results), else the board's best-judged
    entry. No reference when no entry has Judged@10, or when the qrels hold no judged-non-relevant
    label (Judged@10 is then P@10, a quality figure, not a coverage one)."""
    judged = [(e, float(v)) for e in board.entries if (v := e.result.value(JUDGED)) is not None]
    if not judged:
        return None, set()
    details = [e.result.task.get("protocol_details") or {} for e, _v in judged]
    if all(d.get("qrels_nonrelevant_labels") == 0 for d in details):
        return None, set()
    refs = [float(r[JUDGED]) for d in details if isinstance(r := d.get("judged_reference"), dict) and JUDGED in r]
    if refs:
        ref = (max(refs), "the first stage this board reranks")
    else:
        best, v = max(judged, key=lambda ev: (ev[1], ev[0].run_id))
        ref = (v, f"the board's best-judged entry, {best.method}" + (f" ({best.params_text})" if best.params_text else ""))
    return ref, {e.run_id for e, v in judged if v < ref[0] - JUDGED_GAP}


def judged_notes(board: Board) -> list[str]:
    """What Judged@10 says on this board, and which entries' nDCG@10 is a lower bound."""
    if not any(e.result.value(JUDGED) is not None for e in board.entries):
        return []
    ref, flagged = judged_flags(board)
    what = (f"{JUDGED}: the share of each query's top 10 that has a judgement in the qrels (any label). Unjudged "
            "documents count as non-relevant, so where it is low the other metrics are lower bounds.")
    if ref is None:
        return [what + f" The qrels here list relevant documents only: {JUDGED} equals P@10, and no entry is flagged."]
    text = f" Reference: {ref[1]}, {JUDGED} = {ref[0]:.3f}; entries more than {JUDGED_GAP:.2f} below it are flagged."
    if flagged:
        names = [f"{e.method}" + (f" ({e.params_text})" if e.params_text else "") + f" {float(e.result.value(JUDGED)):.3f}"
                 for e in board.entries if e.run_id in flagged]
        text += " Flagged (their nDCG@10 is a lower bound): " + "; ".join(names) + "."
    else:
        text += " None is."
    return [what + text]


# ---------------------------------------------------------------------------------------------
# The whole site


def _method_pages(by_method: dict[str, list[StoredResult]]) -> dict[str, str]:
    pages: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(by_method):
        slug = slugify(name)
        if slug != name or slug.lower() in used:
            slug = f"{slug}-{short_hash(name)}"
        used.add(slug.lower())
        pages[name] = f"methods/{slug}.html"
    return pages


def prepare_board(b: Board, bands: dict[str, NoiseBand] | None = None) -> None:
    """Primary metric, metric columns, order, ranks (and the noise-band rule), extra columns and
    notes of one board."""
    b.primary = _primary(b.entries)
    names = sorted({m for e in b.entries for m in e.result.metrics}, key=lambda m: (m != b.primary, m != JUDGED, m))
    b.metrics = [(m, _hib(b.entries, m)) for m in names]
    b.entries = _sort_entries(b.entries, b.primary, _hib(b.entries, b.primary) if b.primary else True)
    b.failed.sort(key=lambda r: (r.result.method.name, shown_params(r.result), r.run_id))
    rank_board(b)
    attach_bands(b, bands or {})
    b.extra_cols = extra_cols(b)
    b.notes += board_notes(b)  # after the rank test's own note, if any
    apply_noise_bands(b)


# ---------------------------------------------------------------------------------------------
# Reproduction grades and published references (from `harness reproduce` and the task files)


def reference_rows(board: Board, references: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The published references of a board's task whose condition could sit on this board (same
    model, full protocol), as labelled rows that are never ranked."""
    if board.random_weights or board.protocol.get("limit") is not None:
        return []
    rows = []
    for ref in references.get(board.task_id, []):
        if ref.condition.model != board.model:
            continue
        cond = ref.condition.method + (f" ({params_label(ref.condition.params)})" if ref.condition.params else "")
        rows.append({"label": "published reference", "rank": None, "source": ref.source, "condition": cond,
                     "metric": ref.metric, "value": ref.value, "tolerance": ref.tolerance,
                     "note": " ".join(ref.note.split())})
    return rows


def attach_reproduction(boards: list[Board], grades: dict[str, dict[str, Any]],
                        references: dict[str, list[Any]]) -> None:
    for b in boards:
        for e in b.entries:
            e.reproduction = grades.get(e.run_id)
        b.references = reference_rows(b, references)


def build(good: list[StoredResult], problems: list[tuple[str, str]],
          grades: dict[str, dict[str, Any]] | None = None, references: dict[str, list[Any]] | None = None,
          reference_grades: dict[str, dict[str, Any]] | None = None,
          bands: dict[str, NoiseBand] | None = None) -> Site:
    """The site's data from the valid results (their items already read) and the problems found;
    ``grades`` (run id -> last reproduction grade), ``references`` (task id -> published
    references) and ``bands`` (band id -> stored noise band) are optional."""
    table = tracks()
    boards, latency_only, failed = group_boards(good, table)
    protocol_labels(boards)
    for b in boards:
        prepare_board(b, bands)
    attach_reproduction(boards, grades or {}, references or {})
    run_board = {e.run_id: b for b in boards for e in b.entries} | {r.run_id: b for b in boards for r in b.failed}
    by_method: dict[str, list[StoredResult]] = defaultdict(list)
    for stored in good:
        by_method[stored.result.method.name].append(stored)
    return Site(results=good, problems=problems, boards=boards, failed=failed, latency_only=latency_only,
                run_board=run_board, by_method=dict(by_method), method_pages=_method_pages(by_method), tracks=table,
                grades=dict(grades or {}), reference_grades=dict(reference_grades or {}))
