"""Query likelihood with a causal LM (UPR, Sachan et al. 2022; Zhuang et al. 2023).

score(q, d) = mean over the query's tokens of log P(query token | prompt(d), previous query tokens),
with the UPR prompt ``"Passage: {passage}\\nPlease write a question based on this passage.\\nQuestion:"``
followed by ``" {query}"``. The mean (not the sum) is what UPR uses; within one query the two give
the same ranking, since the number of query tokens is the same for every passage.
Passages are cut to ``max_passage_tokens`` tokens before the prompt is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.errors import ParamError
from harness.ir.base import RerankingMethod
from methods.reranking._llm_scoring import continuation_logprobs, truncate_text
from harness.registry import register_method
from methods.reranking._common import RerankParams, RerankTransformer

PROMPT = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"


@dataclasses.dataclass(frozen=True)
class QLMParams(RerankParams):
    model: str = "smollm2-135m"  # any id harness.llm.models.load_model resolves
    max_passage_tokens: int = 256
    dtype: str = "float32"

    def check(self) -> None:
        super().check()
        if self.max_passage_tokens < 1:
            raise ParamError(f"parameter max_passage_tokens={self.max_passage_tokens} must be >= 1")


@register_method("qlm", "reranking", QLMParams)
class QueryLikelihood(RerankingMethod):
    """Query likelihood: mean log P(query | passage prompt) under a causal LM (UPR prompt)."""

    def __init__(self, params: QLMParams, loaded: Any | None = None, device: str = "cpu"):
        super().__init__(params)
        self._loaded = loaded  # a harness.llm.models.LoadedModel; loaded lazily from params.model
        self.device = device
        self.stats = {"model_calls": 0, "forward_passes": 0, "pairs": 0, "queries": 0}

    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from harness.llm.models import load_model

            self._loaded = load_model(self.params.model, device=self.device, dtype=self.params.dtype)
            if self._loaded.tokenizer is None:
                raise ParamError(f"model {self.params.model!r} has no tokenizer; qlm needs one")
        return self._loaded

    def prompts(self, query: str, passages: list[str]) -> tuple[list[str], list[str]]:
        tok = self.loaded.tokenizer
        prefixes = [PROMPT.format(passage=truncate_text(tok, p, self.params.max_passage_tokens)) for p in passages]
        return prefixes, [" " + query.strip()] * len(passages)

    def score(self, query: str, passages: list[str]) -> list[float]:
        prefixes, conts = self.prompts(query, passages)
        res = continuation_logprobs(
            self.loaded.model, self.loaded.tokenizer, prefixes, conts, batch_size=self.params.batch_size
        )
        self.stats["model_calls"] += res.model_calls
        self.stats["forward_passes"] += res.forward_passes
        self.stats["pairs"] += len(passages)
        self.stats["queries"] += 1
        return [total / n for total, n in res.values]

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, "qlm")
