"""monoT5 reranker (Nogueira et al. 2020, "Document Ranking with a Pretrained Sequence-to-Sequence Model").

Input ``"Query: {q} Document: {d} Relevant:"``; the score is log P("true") after a softmax over the
two logits of "true" and "false" at the first decoding step (the decoder starts from the
model's ``decoder_start_token_id``), exactly as pygaggle and pyterrier-t5 compute it. Inputs are
cut to ``max_length`` tokens (512 in the paper); the passage is cut first so the trailing
"Relevant:" is kept. For the castorini checkpoints "true"/"false" are the T5 tokens 1176/6136.
No monoT5 weights exist offline; the tests run this code path on a tiny random-weight T5 built
from a config with the all-MiniLM-L6-v2 (BERT uncased) tokenizer, where both words are single tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.errors import ParamError
from harness.ir.base import RerankingMethod
from methods.reranking._llm_scoring import single_token_id, truncate_text
from harness.registry import register_method
from methods.reranking._common import RerankParams, RerankTransformer

PROMPT = "Query: {query} Document: {passage} Relevant:"


@dataclasses.dataclass(frozen=True)
class MonoT5Params(RerankParams):
    model: str = "castorini/monot5-base-msmarco-10k"  # hub id or local directory
    max_length: int = 512
    true_token: str = "true"
    false_token: str = "false"
    dtype: str = "float32"

    def check(self) -> None:
        super().check()
        if self.max_length < 16:
            raise ParamError(f"parameter max_length={self.max_length} must be >= 16")


@register_method("monot5", "reranking", MonoT5Params)
class MonoT5(RerankingMethod):
    """monoT5: log P(true) vs false at the first decoding step of a T5 given query and passage."""

    def __init__(self, params: MonoT5Params, device: str = "cpu"):
        super().__init__(params)
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self._ids: list[int] = []
        self.stats = {"model_calls": 0, "forward_passes": 0}

    def _load(self) -> None:
        if self._model is None:
            from transformers import T5ForConditionalGeneration

            from methods.reranking._hf import load_hf

            self._model, self._tokenizer, self.stats["model_info"] = load_hf(
                self.params.model, T5ForConditionalGeneration, device=self.device, dtype=self.params.dtype
            )
            tok = self._tokenizer
            self._ids = [single_token_id(tok, self.params.true_token), single_token_id(tok, self.params.false_token)]

    def _prompt(self, query: str, passage: str) -> str:
        tok = self._tokenizer
        overhead = len(tok(PROMPT.format(query=query, passage=""))["input_ids"])
        budget = max(self.params.max_length - overhead, 1)
        return PROMPT.format(query=query, passage=truncate_text(tok, passage, budget))

    def score(self, query: str, passages: list[str]) -> list[float]:
        import torch

        self._load()
        start_id = self._model.config.decoder_start_token_id
        if start_id is None:
            start_id = self._tokenizer.pad_token_id or 0
        out: list[float] = []
        bs = self.params.batch_size
        with torch.inference_mode():
            for s in range(0, len(passages), bs):
                chunk = [self._prompt(query, p) for p in passages[s : s + bs]]
                enc = self._tokenizer(chunk, padding=True, truncation=True, max_length=self.params.max_length,
                                      return_tensors="pt").to(self.device)
                dec = torch.full((len(chunk), 1), int(start_id), dtype=torch.long, device=self.device)
                logits = self._model(**enc, decoder_input_ids=dec).logits[:, 0, :].float()
                two = torch.log_softmax(logits[:, self._ids], dim=-1)
                out.extend(float(v) for v in two[:, 0])
                self.stats["model_calls"] += len(chunk)
                self.stats["forward_passes"] += 1
        return out

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, "monot5")
