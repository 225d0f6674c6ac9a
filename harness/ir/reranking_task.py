"""Task kind ``reranking``: a method re-scores a pinned first-stage run; scored by ir-measures
(the logic is in :mod:`harness.ir.evaluate`)."""

from __future__ import annotations

from pydantic import Field

from harness.ir.retrieval_task import JUDGED, IRLatency, ir_metric_error
from harness.kinds import EvalOutput, Protocol, RunContext, TaskKind, Track, item_mean
from harness.tasks import Task


class RerankingProtocol(Protocol):
    first_stage: str | None = None  # what the pinned first stage is (shown on the site)
    depth: int | None = Field(None, ge=1)  # candidates per query in the first stage
    queries: int | None = Field(None, ge=1)  # judged queries the first stage must cover
    cutoff: int = Field(1000, ge=1)
    rel_threshold: int = Field(1, ge=1)
    latency: IRLatency | None = None  # warmup: queries excluded from the latency figures (default 1)


def evaluate_reranking(task: Task, ctx: RunContext) -> EvalOutput:
    from harness.ir.evaluate import evaluate_ir  # pandas and numpy: imported when a task runs

    return evaluate_ir(task, ctx)


KIND = TaskKind(
    name="reranking",
    evaluator=evaluate_reranking,
    families=("reranking",),
    track=Track("reranking", "Reranking", order=30),
    protocol=RerankingProtocol,
    metric_error=ir_metric_error,
    description="re-scoring a pinned first-stage run, scored by ir-measures",
    aggregate=item_mean,
    extra_metrics=((JUDGED, True),),
)
