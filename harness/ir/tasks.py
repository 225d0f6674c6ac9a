"""Evaluator of task kinds ``retrieval`` and ``reranking``; the logic is in harness.ir.evaluate."""

from __future__ import annotations

from harness.kinds import EvalOutput, RunContext, register_evaluator
from harness.ir.evaluate import evaluate_ir
from harness.tasks import Task


@register_evaluator("retrieval")
def evaluate_retrieval(task: Task, ctx: RunContext) -> EvalOutput:
    return evaluate_ir(task, ctx)


@register_evaluator("reranking")
def evaluate_reranking(task: Task, ctx: RunContext) -> EvalOutput:
    return evaluate_ir(task, ctx)
