"""Cross-encoder reranker (Nogueira & Cho 2019, "Passage Re-ranking with BERT").

Any Hugging Face sequence-classification checkpoint scoring ``[CLS] query [SEP] passage [SEP]``
(e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``): the score is the relevance logit when the head has
one output, and log P(relevant) = log_softmax(logits)[1] when it has two (the original BERT
reranker's head). Pairs are cut to ``max_length`` tokens, truncating the passage only.
No ms-marco cross-encoder weights exist offline; the tests run this code path on a tiny
random-weight BERT built from a config with the all-MiniLM-L6-v2 (BERT uncased) tokenizer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.errors import HarnessError, ParamError
from harness.ir.base import RerankingMethod
from harness.registry import register_method
from methods.reranking._common import RerankParams, RerankTransformer


@dataclasses.dataclass(frozen=True)
class CrossEncoderParams(RerankParams):
    model: str = "cross-encoder/ms-marco-MiniLM-L-6-v2"  # hub id or local directory
    max_length: int = 512
    dtype: str = "float32"

    def check(self) -> None:
        super().check()
        if self.max_length < 8:
            raise ParamError(f"parameter max_length={self.max_length} must be >= 8")


@register_method("cross-encoder", "reranking", CrossEncoderParams)
class CrossEncoder(RerankingMethod):
    """Cross-encoder: the relevance logit of a sequence-classification model over (query, passage)."""

    def __init__(self, params: CrossEncoderParams, device: str = "cpu"):
        super().__init__(params)
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self.stats = {"model_calls": 0, "forward_passes": 0}

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModelForSequenceClassification

            from methods.reranking._hf import load_hf

            self._model, self._tokenizer, self.stats["model_info"] = load_hf(
                self.params.model, AutoModelForSequenceClassification, device=self.device, dtype=self.params.dtype
            )
            if self._model.config.num_labels not in (1, 2):
                raise HarnessError(
                    f"cross-encoder {self.params.model!r} has {self._model.config.num_labels} labels; expected 1 or 2"
                )

    def score(self, query: str, passages: list[str]) -> list[float]:
        import torch

        self._load()
        out: list[float] = []
        bs = self.params.batch_size
        with torch.inference_mode():
            for start in range(0, len(passages), bs):
                chunk = passages[start : start + bs]
                enc = self._tokenizer(
                    [query] * len(chunk), chunk, padding=True, truncation="only_second",
                    max_length=self.params.max_length, return_tensors="pt",
                ).to(self.device)
                logits = self._model(**enc).logits.float()
                if logits.shape[-1] == 1:
                    scores = logits[:, 0]
                else:
                    scores = torch.log_softmax(logits, dim=-1)[:, 1]
                out.extend(float(s) for s in scores)
                self.stats["model_calls"] += len(chunk)
                self.stats["forward_passes"] += 1
        return out

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, "cross-encoder")
