"""Build the static leaderboard site from a results directory.

A pure function of ``results/``: every page, plot and download is derived from the stored results
(and the registered adapters' docstrings) only — no clock, no absolute paths, sorted iteration,
deterministic SVG — so the same results give byte-identical output. Results that fail validation
are listed on the problems page and never stop the rest from rendering.

Three layers: the store reads and validates (:mod:`harness.results`), :mod:`harness.report.data`
groups, ranks and summarises (pure), :mod:`harness.report.pages` renders one page kind per
function, and :mod:`harness.report.writer` puts the files in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.noise import BANDS_DIR, read_bands
from harness.report import data, pages, subset_page, suite_page
from harness.report.data import ALPHA, RANDOM_LABEL, Board, Entry, Site  # noqa: F401 (re-exported)
from harness.report.writer import MARKER, prepare_out  # noqa: F401 (re-exported)
from harness.results import ResultStore


@dataclass(frozen=True)
class ReportSummary:
    out_dir: Path
    pages: list[str]  # HTML pages written, relative to out_dir, sorted
    files: list[str]  # every file written, relative to out_dir, sorted
    problems: list[tuple[str, str]]  # (result path relative to the results dir, message)
    results: int  # valid results read
    boards: int


def read_site(results_dir: Path) -> Site:
    """Scan and validate ``results_dir`` (results and their per-item sidecars) into the site's data."""
    good, bad = ResultStore(results_dir).scan()
    problems = sorted((data.rel_path(p, results_dir), data.scrub(msg, results_dir)) for p, msg in bad)
    grades, references, ref_grades, log_problems = reproduction_inputs(results_dir)
    try:
        bands = read_bands(results_dir)
    except HarnessError as exc:  # a broken band file is a problem to list, not a reason to stop
        bands, log_problems = {}, log_problems + [(BANDS_DIR + "/", data.scrub(str(exc), results_dir))]
    return data.build(good, sorted(problems + log_problems), grades=grades, references=references,
                      reference_grades=ref_grades, bands=bands)


def reproduction_inputs(results_dir: Path) -> tuple[dict, dict, dict, list[tuple[str, str]]]:
    """Last reproduction grades (``<results>/reproductions.jsonl``) and the published references
    of the task files; neither can stop the site from rendering."""
    from harness.reproduce import last_grades, read_log
    from harness.tasks import load_tasks

    lines, problems = read_log(results_dir)
    try:
        references = {tid: list(t.references) for tid, t in load_tasks().items() if t.references}
    except Exception as exc:  # a broken tasks directory must not break the report
        references, problems = {}, problems + [("tasks/", f"references not read: {exc}")]
    return last_grades(lines, "rerun"), references, last_grades(lines, "reference"), problems


def build_site(results_dir: Path, out_dir: Path) -> ReportSummary:
    """Render the whole site from ``results_dir`` into ``out_dir`` (wiped and rebuilt)."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir)
    if not results_dir.is_dir():
        raise HarnessError(f"results directory {results_dir} does not exist")
    site = read_site(results_dir)
    w = prepare_out(out_dir)
    w.write("site.css", (Path(__file__).parent / "static" / "site.css").read_bytes())
    env = pages.environment(site)
    for b in site.boards:
        pages.board_page(site, b, env, w.write)
    for name in sorted(site.by_method):
        pages.method_page(site, name, env, w.write)
    for stored in site.results:
        pages.run_page(site, stored, env, w.write)
    pages.random_weights_page(site, env, w.write)
    pages.problems_page(site, env, w.write)
    suites = suite_page.suite_pages(site, env, w.write)
    subset_page.subset_pages(site, results_dir, env, w.write)
    tracks = pages.index_tracks(site)
    pages.downloads(site, results_dir, tracks, w.write)
    pages.index_page(site, tracks, env, w.write, suites)
    files = sorted(w.files)
    return ReportSummary(out_dir=out_dir, pages=[f for f in files if f.endswith(".html")], files=files,
                         problems=site.problems, results=len(site.results), boards=len(site.boards))
