"""What ships with the harness, as lazy ``"module:attr"`` strings: the built-in method families,
task kinds, data formats, statistical tests and corrections.

Registering them here (instead of through this project's own entry points) keeps a plain checkout
on ``PYTHONPATH`` working without an install, as on the GPU machines. Nothing is imported until an
entry is used. Third-party packages add theirs through the entry-point groups of
:mod:`harness.registry` (``harness.methods``, ``harness.task_kinds``, ``harness.data_formats``, ...).
"""

from __future__ import annotations

from typing import Any

FAMILIES = {
    "pruning": "harness.llm.pruning:PruningMethod",
    "retrieval": "harness.ir.base:RetrievalMethod",
    "reranking": "harness.ir.base:RerankingMethod",
}

# Task kinds: each record lives in the file of its evaluator.
TASK_KINDS = {
    "perplexity": "harness.llm.perplexity:KIND",
    "zeroshot": "harness.llm.zeroshot:KIND",
    "latency": "harness.llm.latency_task:KIND",
    "calibration": "harness.llm.calibration:KIND",
    "retrieval": "harness.ir.retrieval_task:KIND",
    "reranking": "harness.ir.reranking_task:KIND",
}


def register_all(reg: Any, table: dict[str, str]) -> None:
    for name, target in table.items():
        reg.register_lazy(name, target, origin="harness (built-in)")
