"""A toy task kind and method for the trust tests: cheap, and each evaluation is logged to the
file named by ``TRUST_TOY_LOG`` (so a test can count how often a cell was really computed)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from harness.ir.base import RetrievalMethod
from harness.kinds import TASK_KINDS, EvalOutput, Metric, Protocol, TaskKind, Track, fixed_metrics, item_mean
from harness.params import MethodParams
from harness.registry import METHODS, register_method

KIND_NAME = "trust-toy"
METHOD_NAME = "trust-toy-method"


class ToyProtocol(Protocol):
    n: int = Field(3, ge=1)


def evaluate_toy(task, ctx):
    log = os.environ.get("TRUST_TOY_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {task.id}\n")
    time.sleep(float(os.environ.get("TRUST_TOY_SLEEP", "0")))
    values = [ctx.method.params.step * i / 10 for i in range(task.settings.n)]
    items = [{"item": f"i{i}", "score": v} for i, v in enumerate(values)]
    return EvalOutput(metrics={"score": Metric(sum(values) / len(values), len(values))}, items=items,
                      artifacts={"run": ("text", repr(values).encode())})


KIND = TaskKind(name=KIND_NAME, evaluator=evaluate_toy, families=("retrieval",),
                track=Track("toy", "Toy", order=90), protocol=ToyProtocol, metric_error=fixed_metrics("score"),
                aggregate=item_mean)


@dataclass(frozen=True)
class ToyParams(MethodParams):
    step: int = 2


class ToyMethod(RetrievalMethod):
    """A toy method (trust tests)."""

    def index(self, corpus):
        pass

    def transformer(self):
        raise NotImplementedError


TASK = """\
id: {id}
version: 1
kind: trust-toy
title: Toy {id}
description: {description}
protocol: {{n: {n}}}
metrics:
  - {{name: score, higher_is_better: true, primary: true}}
"""


def install() -> None:
    TASK_KINDS.load()
    METHODS.load()
    if KIND_NAME not in TASK_KINDS:
        TASK_KINDS.register(KIND_NAME, KIND)
    if METHOD_NAME not in METHODS:
        register_method(METHOD_NAME, "retrieval", ToyParams)(ToyMethod)


def uninstall() -> None:
    for reg, name in ((TASK_KINDS, KIND_NAME), (METHODS, METHOD_NAME)):
        if name in reg:
            reg.unregister(name)


def write_task(tasks_dir: Path, task_id: str = "toy", n: int = 3, description: str = "a toy") -> Path:
    tasks_dir.mkdir(parents=True, exist_ok=True)
    path = tasks_dir / f"{task_id}.yaml"
    path.write_text(TASK.format(id=task_id, n=n, description=description))
    from harness import tasks as tasksmod

    tasksmod._cache.pop(tasks_dir.resolve(), None)
    return path
