"""`make demo`: the main job on the embedded defaults, then the site.

Prunes the embedded SmolLM2-135M with dense / magnitude / Wanda / SparseGPT at 50% using a small,
declared calibration (16 windows of 512 tokens) and evaluates each pruned model on perplexity
(WikiText-2 when the data directory is set, else the offline Wikipedia task) and two zero-shot tasks
with declared limits. Every result is a normal stored result; the limits are part of its protocol,
so these numbers are never ranked with full-protocol ones.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harness import config
from harness.cli import configure_logging, print_outcomes
from harness.errors import HarnessError
from harness.runner import RunRequest, execute

log = logging.getLogger("harness")

CALIBRATION = {"nsamples": "16", "seqlen": "512"}
ZEROSHOT = ["arc_easy", "piqa"]
METHODS = [
    ("dense", {}),
    ("magnitude", {"sparsity": "0.5"}),
    ("wanda", {"sparsity": "0.5", **CALIBRATION}),
    ("sparsegpt", {"sparsity": "0.5", **CALIBRATION}),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.demo")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--results", default="demo/results")
    ap.add_argument("--site", default="demo/site")
    ap.add_argument("--ppl-windows", type=int, default=4, help="windows of 2048 tokens")
    ap.add_argument("--zeroshot-limit", type=int, default=50)
    args = ap.parse_args(argv)
    configure_logging()

    ppl_task = "wikitext2" if config.data_dir() else "wikipedia-gensim-ppl"
    if ppl_task != "wikitext2":
        log.info("HARNESS_DATA_DIR is not set: using the offline perplexity task wikipedia-gensim-ppl")
    outcomes = []
    try:
        for method, params in METHODS:
            # one run per method: the model is pruned once and every task reuses it
            outcomes += execute(RunRequest(
                method=method, params=params, model=args.model, tasks=[ppl_task, *ZEROSHOT],
                task_limits={ppl_task: args.ppl_windows} | {t: args.zeroshot_limit for t in ZEROSHOT},
                results_dir=Path(args.results),
            ))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print_outcomes(outcomes)
    try:
        from harness.report import build_site
    except ImportError:
        log.info("the report module is not available; skipping the site")
        return 0
    summary = build_site(Path(args.results), Path(args.site))
    print(f"\nsite: {args.site}/index.html ({len(summary.pages)} pages)")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
