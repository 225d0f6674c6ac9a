"""Render time of `harness report` for 10,000 synthetic results (target: under 30 s on 2 cores).

    python benchmarks/bench_render.py [--n 10000] [--items 100] [--results DIR]

Writes the synthetic results (tests/fixtures_results.py, schema-valid, through ResultStore.write)
into a temporary directory unless --results names one that already holds them, then times
build_site once and prints the figures: the scan/validation of the store alone and the whole build.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures_results import many_results  # noqa: E402

from harness.report import build_site  # noqa: E402
from harness.results import ResultStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=100, help="per-item scores per result")
    ap.add_argument("--results", type=Path, default=None, help="reuse (or fill) this results directory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        results = args.results or Path(tmp) / "results"
        if not any(results.rglob("*.json")) if results.exists() else True:
            t0 = time.perf_counter()
            n = many_results(results, n=args.n, n_items=args.items)
            print(f"wrote {n} synthetic results in {time.perf_counter() - t0:.1f} s (not part of the figure)")
        # Adapter docstrings import the method modules (torch, pyterrier): load them first, once, so
        # the figure is the render itself; the one-off import cost is printed separately.
        t0 = time.perf_counter()
        try:
            from harness.registry import load_methods

            load_methods()
        except Exception as exc:  # the report tolerates a broken registry (method pages say so)
            print(f"method registry failed to load: {exc}")
        print(f"method registry import: {time.perf_counter() - t0:.1f} s (one-off, not part of the figure)")
        t0 = time.perf_counter()
        good, bad = ResultStore(results).scan()
        t_scan = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = build_site(results, Path(tmp) / "site")
        t_build = time.perf_counter() - t0
        print(f"results: {len(good)} valid, {len(bad)} problems; boards: {summary.boards}; "
              f"pages: {len(summary.pages)}; files: {len(summary.files)}")
        print(f"scan + validation alone: {t_scan:.1f} s")
        print(f"build_site (scan, ranks, plots, pages, downloads): {t_build:.1f} s "
              f"({'within' if t_build < 30 else 'OVER'} the 30 s target)")


if __name__ == "__main__":
    main()
