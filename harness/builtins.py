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
    "data-pruning": "harness.datapruning.base:DataPruningMethod",
    "context-pruning": "harness.context.base:ContextPruningMethod",
}

# Task kinds: each record lives in the file of its evaluator.
TASK_KINDS = {
    "perplexity": "harness.llm.perplexity:KIND",
    "zeroshot": "harness.llm.zeroshot:KIND",
    "latency": "harness.llm.latency_task:KIND",
    "calibration": "harness.llm.calibration:KIND",
    "retrieval": "harness.ir.retrieval_task:KIND",
    "reranking": "harness.ir.reranking_task:KIND",
    "data-pruning": "harness.datapruning.data_pruning_task:KIND",
    "context-pruning": "harness.context.context_pruning_task:KIND",
}


def register_all(reg: Any, table: dict[str, str]) -> None:
    for name, target in table.items():
        reg.register_lazy(name, target, origin="harness (built-in)")


# Data formats (harness.formats.DataFormat subclasses), one module each.
DATA_FORMATS = {
    # IR corpora, topics, qrels (harness/ir/formats/)
    "trec-docs": "harness.ir.formats.trec_docs:TrecDocs",
    "smart-docs": "harness.ir.formats.smart_docs:SmartDocs",
    "scifact-zip": "harness.ir.formats.scifact_zip:ScifactZip",
    "sciq-arrow": "harness.ir.formats.sciq_arrow:SciqArrow",
    "trec-topics": "harness.ir.formats.trec_topics:TrecTopics",
    "smart-queries": "harness.ir.formats.smart_queries:SmartQueries",
    "beir-topics": "harness.ir.formats.beir_topics:BeirTopics",
    "tsv-topics": "harness.ir.formats.tsv_topics:TsvTopics",
    "trec-qrels": "harness.ir.formats.qrels:TrecQrels",
    "pair-qrels": "harness.ir.formats.qrels:PairQrels",
    "graded-qrels": "harness.ir.formats.qrels:GradedQrels",
    "trec-run": "harness.ir.formats.trec_run:TrecRun",
    "rankgpt-candidates-json": "harness.ir.formats.rankgpt_candidates:RankGPTCandidates",
    # running text and calibration documents (harness/llm/formats/)
    "wikitext-rows": "harness.llm.formats.wikitext_rows:WikitextRows",
    "jsonl-text": "harness.llm.formats.jsonl_text:JsonlText",
    "gensim-wiki": "harness.llm.formats.gensim_wiki:GensimWiki",
    # zero-shot examples (harness/llm/formats/)
    "hf-arrow-stream": "harness.llm.formats.hf_arrow_stream:HFArrowStream",
    "oe-eval-requests": "harness.llm.formats.oe_eval_requests:OEEvalRequests",
}
