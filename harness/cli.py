"""Command line: `harness list|run|validate|report|table|compare|sweep|noise-band|export-run|reproduce|show|
export|new-method|check-submission|subset`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from harness import __version__, config
from harness.errors import HarnessError


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message is emitted (it may be replaced)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Messages of the ``harness`` logger go to stderr as ``[harness] message`` (once)."""
    logger = logging.getLogger("harness")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[harness] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _list_tasks() -> None:
    from harness.tasks import load_tasks

    tasks = load_tasks()
    for t in sorted(tasks.values(), key=lambda t: (t.kind, t.id)):
        primary = t.primary_metric.name if t.metrics else "-"
        print(f"{t.kind:12s} {t.id:24s} v{t.version}  primary={primary:10s} {t.title}")
    for path, exc in sorted(tasks.errors.items()):
        print(f"{'(broken)':12s} {path}: {exc}")


def _cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from harness.registry import list_methods, unavailable_methods

        for m in list_methods():
            print(f"{m.family:10s} {m.name:16s} {m.summary}")
            for name, tp, default in m.params_cls.describe():
                print(f"{'':28s}{name}: {tp} = {default!r}")
        for module, why in sorted(unavailable_methods().items()):
            print(f"{'(not loaded)':10s} {module}: {why}")
    elif args.what == "tasks":
        _list_tasks()
    elif args.what == "suites":
        from harness.suites import load_suites

        for suite in load_suites().values():
            agg = suite.aggregate_label if suite.aggregate else "none"
            print(f"{suite.id:14s} members={','.join(m.id for m in suite.members)}  aggregate={agg}  {suite.title}")
    elif args.what == "kinds":
        from harness.kinds import TASK_KINDS

        for name, kind in TASK_KINDS.items():
            track = kind.track.title if kind.track else "-"
            print(f"{name:12s} families={'/'.join(kind.families) or '-':10s} track={track:12s} {kind.description}")
        for name, why in sorted(TASK_KINDS.unavailable.items()):
            print(f"{'(not loaded)':12s} {name}: {why}")
    else:
        from harness.llm.models import CONFIGS, EMBEDDED

        for name, spec in EMBEDDED.items():
            print(f"{name:24s} {spec['description']}")
        for name in CONFIGS:
            print(f"config:{name:17s} architecture only, random weights (latency runs only)")
        print(f"{'<dir> | <org/name[@rev]>':24s} a local Hugging Face checkpoint or a hub id")
    return 0


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.params import parse_param_string
    from harness.runner import RunRequest, execute

    limit, task_limits = parse_limits(args.limit or [])
    req = RunRequest(
        method=args.method,
        params=parse_param_string(args.params),
        model=args.model,
        tasks=args.task or [],
        limit=limit,
        task_limits=task_limits,
        device=args.device,
        dtype=args.dtype,
        results_dir=Path(args.results),
        save_model=Path(args.save_model) if args.save_model else None,
        force=args.force,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        setup_cache=not args.no_setup_cache,
    )
    outcomes = execute(req)
    print_outcomes(outcomes)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def parse_limits(values: list[str]) -> tuple[int | None, dict[str, int]]:
    limit: int | None = None
    per_task: dict[str, int] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            n = int(number)
        except ValueError:
            raise HarnessError(f"--limit {value!r}: expected N or TASK=N") from None
        if sep:
            per_task[name] = n
        else:
            limit = n
    return limit, per_task


def print_outcomes(outcomes) -> None:
    rows = []
    for o in outcomes:
        doc = o.doc or {}
        metrics = doc.get("metrics") or {}
        shown = ", ".join(f"{k}={_fmt(v['value'])}" for k, v in metrics.items()) or doc.get("error", {}).get("message", "")[:80]
        sparsity = (doc.get("pruning") or {}).get("measured_sparsity")
        rows.append((o.task, o.status, doc.get("method", {}).get("name", ""),
                     "-" if sparsity is None else f"{sparsity:.4f}", shown, str(o.path)))
    if not rows:
        return
    headers = ("task", "status", "method", "sparsity", "metrics", "stored at")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def _validate_paths(args: argparse.Namespace) -> list[Path]:
    paths: list[Path] = []
    for p in args.paths or [args.results]:
        p = Path(p)
        if p.is_dir():
            paths += sorted(x for x in p.rglob("*.json")
                            if not any(part.startswith(".") for part in x.relative_to(p).parts))
        else:
            paths.append(p)
    return paths


def _validate_orphans(args: argparse.Namespace) -> int:
    """Report (or, with --repair, remove) leftovers of interrupted writes; returns how many remain."""
    from harness.results import ResultStore

    left = 0
    for root in {Path(p) for p in (args.paths or [args.results]) if Path(p).is_dir()}:
        for path, why in ResultStore(root).orphans():
            if args.repair:
                path.unlink()
                print(f"REMOVED {path}: {why}")
            else:
                left += 1
                print(f"ORPHAN  {path}: {why} (harness validate --repair removes it)")
    return left


def _cmd_validate(args: argparse.Namespace) -> int:
    from harness.provenance import adapter_change
    from harness.results import ResultStore, StaleResultError

    paths = _validate_paths(args)
    store = ResultStore(args.results)
    bad = stale = warned = 0
    for path in paths:
        try:
            stored = store.check(path)
        except StaleResultError as exc:
            stale += 1
            print(f"STALE   {exc}")
            continue
        except HarnessError as exc:
            bad += 1
            print(f"INVALID {exc}")
            continue
        change = adapter_change(stored.result.method.name, stored.result.provenance.get("method"))
        if change:
            warned += 1
            print(f"WARNING {path}: {change}")
        elif args.verbose:
            print(f"ok      {path}")
    orphans = _validate_orphans(args)
    valid = len(paths) - bad - stale
    print(f"{valid} valid, {bad} invalid" + (f", {stale} stale" if stale else "")
          + (f", {orphans} orphan files" if orphans else "") + (f" ({warned} with a warning)" if warned else ""))
    return 1 if bad or stale or orphans else 0


def _cmd_export_run(args: argparse.Namespace) -> int:
    from harness.compare import find_runs
    from harness.ir.runfile import export_trec

    (stored,) = find_runs([args.run_id], Path(args.results))
    data = export_trec(stored.path, stored.result)
    if args.out in (None, "-"):
        sys.stdout.buffer.write(data)
    else:
        Path(args.out).write_bytes(data)
        n_lines = data.count(b"\n")
        print(f"wrote {args.out} ({n_lines} lines)", file=sys.stderr)
    return 0


def _cmd_rescore(args: argparse.Namespace) -> int:
    from harness.ir.rescore import main_args

    return main_args(args.results, args.metric, args.paths, args.dry_run)


def _cmd_show(args: argparse.Namespace) -> int:
    from harness.show import show

    sys.stdout.write(show(args.run_id, Path(args.results), args.format))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import json

    from harness.compare import find_runs
    from harness.exports import ir_metadata_yaml, lm_eval_results, write_ir_pair

    runs = find_runs(args.run_id, Path(args.results))
    if args.format == "lm-eval":
        text = json.dumps(lm_eval_results(runs), indent=2, ensure_ascii=False, default=str) + "\n"
    else:
        if len(runs) != 1:
            raise HarnessError("--format ir-metadata describes one run at a time")
        if args.out and Path(args.out).is_dir():  # the run file and its description side by side
            for path in write_ir_pair(runs[0], Path(args.out)):
                print(f"wrote {path}", file=sys.stderr)
            return 0
        text = ir_metadata_yaml(runs[0])
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_new_method(args: argparse.Namespace) -> int:
    from harness.scaffold import scaffold

    for path in scaffold(args.name, args.family, Path(args.package) if args.package else None):
        print(f"wrote {path}")
    return 0


def _cmd_check_submission(args: argparse.Namespace) -> int:
    from harness.submission import check_submission

    report = check_submission(args.target, real_task=not args.no_task, timeout_s=args.timeout,
                              tests=[Path(p) for p in args.tests or []])
    print(report.text())
    return 0 if report.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report import run_from_args

    summary = run_from_args(args)
    for path, message in summary.problems:
        print(f"problem: {path}: {message}")
    print(f"wrote {len(summary.pages)} pages to {args.out}" + (f" ({len(summary.problems)} problems)" if summary.problems else ""))
    return 1 if args.strict and summary.problems else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import run_from_args

    print(run_from_args(args))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from harness.reproduce import run_from_args

    return run_from_args(args)


def add_submitter_commands(sub: argparse._SubParsersAction) -> None:
    """`show`, `export`, `new-method` and `check-submission`: one run read back, exported, and the
    submitter's path (see CONTRIBUTING.md)."""
    p = sub.add_parser("show", help="show one stored run: method, task, metrics with intervals, provenance")
    p.add_argument("run_id", help="run id, a unique prefix of one, or a result file")
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("export", help="export stored runs for other tools (lm-eval results JSON, ir_metadata)")
    p.add_argument("run_id", nargs="+", help="run ids (lm-eval: runs of one method+params+model merge into one file)")
    p.add_argument("--format", choices=["lm-eval", "ir-metadata"], required=True)
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--out", help="output file (default: standard output); ir-metadata into an existing "
                                 "directory writes <run id>.trec and <run id>.ir_metadata.yaml there")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("new-method", help="scaffold a method adapter and its test")
    p.add_argument("name", help="the method's registered name (lower case, digits, '-')")
    p.add_argument("--family", required=True,
                   help="pruning, retrieval, reranking, data-pruning, context-pruning, or a family a package "
                        "registers (entry point harness.families) with a scaffold")
    p.add_argument("--package", metavar="DIR",
                   help="write a separate installable package here (entry point harness.methods) "
                        "instead of methods/<family>/ in this repository")
    p.set_defaults(func=_cmd_new_method)

    p = sub.add_parser("check-submission", help="check a method module or package before a pull request")
    p.add_argument("target", help="a module name (methods.pruning.mine), a .py file, or a package directory")
    p.add_argument("--no-task", action="store_true", help="skip the cheap real task run")
    p.add_argument("--tests", action="append", metavar="FILE",
                   help="the submission's test file (repeatable; default: tests/test_method_<module>.py)")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed for the test file, and again for the task")
    p.set_defaults(func=_cmd_check_submission)


def _cmd_table(args: argparse.Namespace) -> int:
    from harness.report.suite import suite_table_text

    print(suite_table_text(args.suite, args.results, args.model, args.baseline, args.fmt, args.correction), end="")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from harness import sweep as sweepmod

    s = sweepmod.plan_sweep(args.grid, Path(args.results))
    counts = {state: sum(1 for c in s.cells if c.state == state) for state in ("stored", "failed", "to run")}
    head = (f"sweep {s.grid.id}: {len(s.cells)} cells in {len(s.units)} units; {counts['stored']} stored, "
            f"{counts['failed']} stored as failed, {counts['to run']} not stored")
    if args.dry_run or args.status:
        states = sweepmod.status_states(s) if args.status else {
            k: "would run" if c.state != "stored" else "stored" for k, c in enumerate(s.cells)}
        print(sweepmod.cells_table(s, states).to_markdown())
        running = sum(1 for v in states.values() if v == "running")
        print(head + (f"; {running} running now" if args.status else f"; {counts['failed'] + counts['to run']} would run"))
        return 0
    if args.max_parallel is not None and args.max_parallel < 1:
        raise HarnessError("--max-parallel must be >= 1")
    run = sweepmod.run_sweep(s, args.executor, max_parallel=args.max_parallel, address=args.address,
                             retries=args.retries, progress=not args.no_progress)
    print(sweepmod.summary_table(run).to_markdown())
    return 1 if run.failed else 0


def _add_sweep_parser(sub) -> None:  # noqa: ANN001
    p = sub.add_parser("sweep", help="run a declared grid (sweeps/*.yaml) locally or on a Ray cluster")
    p.add_argument("grid", help="grid file, e.g. sweeps/leaderboard.yaml")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster: auto (the running one) or HOST:PORT (default: a private local one)")
    p.add_argument("--max-parallel", type=int, help="units at once (local: worker processes, default 1; "
                                                     "ray: default as many as the cluster's resources allow)")
    p.add_argument("--retries", type=int, help="re-runs of a unit whose worker died (default: the grid's, 2)")
    p.add_argument("--results", default=str(config.default_results_dir()))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list the cells: stored or would run; run nothing")
    mode.add_argument("--status", action="store_true", help="where the sweep stands (stored, failed, running); run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)


def repeat_params(params: dict[str, str], vary: str, repeats: int) -> list[dict[str, str]]:
    """The params of each repeat: calibration seeds 0, 1, ..., K-1 (``vary=seed``) or the orders
    sampled, reversed, shuffle:1, shuffle:2, ... of the same windows (``vary=order``)."""
    if repeats < 1:
        raise HarnessError(f"--repeats {repeats}: must be >= 1")
    name = "seed" if vary == "seed" else "calibration_order"
    if name in params:
        raise HarnessError(f"--params sets {name}, which --vary {vary} varies; leave it out")
    if vary == "seed":
        values = [str(i) for i in range(repeats)]
    else:
        values = (["sampled", "reversed"] + [f"shuffle:{i}" for i in range(1, repeats)])[:repeats]
    return [dict(params, **{name: v}) for v in values]


def _cmd_noise_band(args: argparse.Namespace) -> int:
    """Run K repeats (ordinary runs, each stored as usual), then store and print their band."""
    from harness import noise, provenance
    from harness.params import parse_param_string
    from harness.results import ResultStore
    from harness.runner import RunRequest, execute

    limit, task_limits = parse_limits(args.limit or [])
    base = parse_param_string(args.params)
    status = 0
    stored = []
    for params in repeat_params(base, args.vary, args.repeats):
        req = RunRequest(
            method=args.method, params=params, model=args.model, tasks=[args.task], limit=limit,
            task_limits=task_limits, device=args.device, dtype=args.dtype, results_dir=Path(args.results),
            progress=not args.no_progress,
        )
        if args.stored_only:  # the band of the repeats already stored; run nothing
            stored += _stored_repeat(req)
            continue
        outcomes = execute(req)
        print_outcomes(outcomes)
        status |= any(o.status == "failed" for o in outcomes)
        stored += [o.path for o in outcomes if o.status in ("ok", "skipped")]
    if not stored:
        raise HarnessError("no repeat of this configuration is stored: nothing to make a band of")
    store = ResultStore(args.results)
    band = noise.band_of(store.load(p) for p in stored)
    path = noise.write_band(Path(args.results), band, command=_noise_band_command(args),
                            created_at=provenance.utc_now())
    print(f"noise band of {band.method} on {band.task} over k={band.k} repeats ({args.vary}):")
    for name, s in band.metrics.items():
        print(f"  {name}: min={_fmt(s.min)} max={_fmt(s.max)} mean={_fmt(s.mean)} std={_fmt(s.std)}")
    print(f"stored at {path}")
    return 1 if status else 0


def _noise_band_command(args: argparse.Namespace) -> str:
    import shlex

    parts = ["harness", "noise-band", "--method", args.method, *(["--params", args.params] if args.params else []),
             "--model", args.model, "--task", args.task]
    for lim in args.limit or []:
        parts += ["--limit", lim]
    parts += ["--repeats", str(args.repeats), "--vary", args.vary]
    if args.stored_only:
        parts.append("--stored-only")
    return shlex.join(parts)


def _stored_repeat(req) -> list[Path]:
    """The stored result of ``req`` (one task), or nothing (said on stderr): found by what it
    records (method, params, model, protocol), not by re-deriving its run id."""
    from harness.results import ResultStore, ResultValidationError
    from harness.runner import check_request, protocol_for

    info, params, tasks = check_request(req)
    (task,) = tasks
    want = (info.name, params.semantic_dict(), req.model, task.version, protocol_for(task, req))
    store = ResultStore(req.results_dir)
    for path in sorted((Path(req.results_dir) / task.id).glob("*.json")):
        try:
            r = store.load(path)
        except ResultValidationError:
            continue
        got = (r.method.name, r.method.semantic_params, r.model.id, r.task.version, r.task.protocol)
        if r.status == "ok" and got == want:
            return [path]
    print(f"not stored: {req.method} {req.params}", file=sys.stderr)
    return []


def _add_noise_band_parser(sub) -> None:
    p = sub.add_parser("noise-band", help="repeat a pruning run over calibration seeds or orders; store the spread")
    p.add_argument("--method", required=True)
    p.add_argument("--params", default="", help="k=v,k=v: the configuration, without the varied parameter")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--repeats", type=int, default=3, metavar="K", help="number of repeats (default 3)")
    p.add_argument("--vary", choices=["seed", "order"], default="seed",
                   help="seed: calibration seeds 0..K-1; order: sampled, reversed, shuffle:1.. of the same windows")
    p.add_argument("--limit", action="append", metavar="N|TASK=N", help="as for run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--stored-only", action="store_true",
                   help="run nothing: the band of those of the K repeats that are already stored")
    p.set_defaults(func=_cmd_noise_band)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Benchmark harness for pruning, retrieval and reranking.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list methods, tasks, task kinds or models")
    p.add_argument("what", choices=["methods", "tasks", "suites", "kinds", "models"])
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", help="run a method on a model and tasks, store the results")
    p.add_argument("--method", required=True)
    p.add_argument("--params", default="", help="k=v,k=v (e.g. sparsity=0.5,pattern=2:4)")
    p.add_argument("--model", help="smollm2-135m, a local checkpoint directory, a hub id, or config:<name>")
    p.add_argument("--task", action="append", help="task id (repeatable)")
    p.add_argument("--limit", action="append", metavar="N|TASK=N",
                   help="evaluate only the first N windows/examples/queries (stored in the protocol); "
                        "TASK=N sets it for one task (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--save-model", help="write the pruned model here as a Hugging Face checkpoint")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (does not change results)")
    p.add_argument("--force", action="store_true", help="re-run even if an identical result is stored")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-setup-cache", action="store_true",
                   help="prune afresh even when this machine's pruned-model cache holds the same model pruned the "
                        "same way (see harness/llm/pruned_cache.py; sweeps: HARNESS_PRUNED_CACHE_DIR=off)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("validate", help="check stored results: schema, digests, sidecars, artifacts, "
                                        "re-derived metrics, stale task definitions, orphan files")
    p.add_argument("paths", nargs="*")
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--repair", action="store_true",
                   help="remove orphan temporary files and sidecars (never a result file)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("export-run", help="write the TREC run file of a stored IR result")
    p.add_argument("run_id", help="run id, a unique prefix of one, or a result file")
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--out", help="output file (default: standard output)")
    p.set_defaults(func=_cmd_export_run)

    p = sub.add_parser("rescore", help="add Judged@10 to stored IR results from their stored runs and qrels")
    p.add_argument("paths", nargs="*", help="result files (default: every IR result under --results)")
    p.add_argument("--results", default=str(config.default_results_dir()))
    p.add_argument("--metric", default="Judged@10", help="the metric to add (Judged@10)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    p.set_defaults(func=_cmd_rescore)

    add_submitter_commands(sub)

    from harness import compare as comparemod
    from harness import report as reportmod

    p = sub.add_parser("report", help="render the static leaderboard site from stored results")
    reportmod.add_arguments(p)
    p.add_argument("--strict", action="store_true", help="exit non-zero when any result has a problem")
    p.set_defaults(func=_cmd_report)

    from harness.report import suite as suitemod

    p = sub.add_parser("table", help="a suite's paper table from stored runs (members x methods, aggregate, marks)")
    suitemod.add_arguments(p)
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("compare", help="paired comparison of stored runs (for papers)")
    comparemod.add_arguments(p)
    p.set_defaults(func=_cmd_compare)

    from harness import reproduce as reproducemod

    p = sub.add_parser("reproduce", help="re-run stored cells and grade each metric OK / OKish / FAIL")
    reproducemod.add_arguments(p)
    p.set_defaults(func=_cmd_reproduce)

    _add_sweep_parser(sub)
    _add_noise_band_parser(sub)

    from harness import subset as subsetmod

    p = sub.add_parser("subset", help="a reduced item set that keeps a board's ranking (with its measured "
                                      "fidelity), or an adaptive stop for a new entry (--adaptive)")
    subsetmod.add_arguments(p)
    p.set_defaults(func=_cmd_subset)
    return parser


def _cmd_subset(args: argparse.Namespace) -> int:
    from harness.subset import main as subset_main

    return subset_main(args)


def main(argv: list[str] | None = None) -> int:
    # Offline by default here would surprise users with internet; but a hub lookup that cannot
    # succeed costs ~45 s, so respect HARNESS_OFFLINE as a shortcut for both HF variables.
    if os.environ.get("HARNESS_OFFLINE") == "1":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
