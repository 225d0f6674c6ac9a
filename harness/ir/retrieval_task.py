"""Task kind ``retrieval``: a method indexes a pinned corpus and answers its topics; scored by
ir-measures (the logic is in :mod:`harness.ir.evaluate`, imported when a task runs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from harness.kinds import EvalOutput, Protocol, RunContext, TaskKind, Track, item_mean
from harness.tasks import Task


class IRLatency(Protocol):
    warmup: int | None = Field(None, ge=0)  # queries left out of the timing (retrieval 3, reranking 1)
    # top-k depths the retrieval latency pass times (default: 10 and the run's cut-off)
    cutoffs: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=1)


class RetrievalProtocol(Protocol):
    cutoff: int = Field(1000, ge=1)  # depth of the evaluated run (and of the method's retrieval)
    rel_threshold: int = Field(1, ge=1)  # binary measures count labels >= this as relevant
    latency: IRLatency | None = None


JUDGED = "Judged@10"  # every IR result carries it (harness.ir.evaluate.JUDGED); not a task-file metric


def ir_metric_error(name: str) -> str | None:
    """The metric check of the IR kinds: ``None`` when ir-measures parses ``name``, else why not."""
    import ir_measures

    try:
        ir_measures.parse_measure(name)
    except Exception as exc:  # noqa: BLE001 - ir-measures raises several types
        return f"not an ir-measures measure ({type(exc).__name__}: {exc})"
    return None


def evaluate_retrieval(task: Task, ctx: RunContext) -> EvalOutput:
    from harness.ir.evaluate import evaluate_ir  # pandas and numpy: imported when a task runs

    return evaluate_ir(task, ctx)


KIND = TaskKind(
    name="retrieval",
    evaluator=evaluate_retrieval,
    families=("retrieval",),
    track=Track("retrieval", "Retrieval", order=20),
    protocol=RetrievalProtocol,
    metric_error=ir_metric_error,
    description="first-stage retrieval over a pinned corpus, scored by ir-measures",
    aggregate=item_mean,
    extra_metrics=((JUDGED, True),),
)
