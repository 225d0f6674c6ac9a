"""`harness report`: the static leaderboard site, a pure function of the results directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.report.build import ReportSummary, build_site

__all__ = ["ReportSummary", "add_arguments", "build_site", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"), help="results directory (default: results)")
    parser.add_argument("--out", type=Path, default=Path("site"),
                        help="output directory, wiped and rebuilt (default: site)")


def run_from_args(args: argparse.Namespace) -> ReportSummary:
    return build_site(args.results, args.out)
