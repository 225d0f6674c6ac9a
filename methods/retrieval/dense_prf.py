"""Rocchio pseudo-relevance feedback in embedding space over the dense bi-encoder retriever."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import HarnessError, ParamError
from harness.registry import register_method
from methods.retrieval._common import ranked_frame, top_k
from methods.retrieval._prf import check_depth, check_fb, check_unit, rocchio
from methods.retrieval.dense import Dense, DenseParams


@dataclass(frozen=True)
class DensePrfParams(DenseParams):
    # Pyserini's dense Rocchio setting for Li et al. (2022): 5 feedback documents, alpha 0.4, beta 0.6
    fb_docs: int = 5
    alpha: float = 0.4  # weight of the query embedding
    beta: float = 0.6  # weight of the mean of the top fb_docs document embeddings
    gamma: float = 0.0  # weight of the mean of the fb_neg_docs lowest-ranked documents of the run (subtracted)
    fb_neg_docs: int = 0

    def check(self) -> None:
        super().check()
        check_fb(self.fb_docs)
        for name in ("alpha", "beta", "gamma"):
            check_unit(name, getattr(self, name))
        if self.fb_neg_docs < 0:
            raise ParamError(f"parameter fb_neg_docs={self.fb_neg_docs} must be >= 0")
        if self.gamma > 0 and self.fb_neg_docs == 0:
            raise ParamError(f"parameter gamma={self.gamma} needs fb_neg_docs >= 1 (the documents it subtracts)")
        if self.fb_neg_docs > 0 and self.gamma == 0:
            raise ParamError(f"parameter fb_neg_docs={self.fb_neg_docs} has no effect with gamma=0")


@register_method("dense-prf", "retrieval", DensePrfParams)
class DensePrf(Dense):
    """Rocchio pseudo-relevance feedback on the dense retriever's query embedding (Li et al., 2022).

    ``q' = alpha q + beta mean(top fb_docs) - gamma mean(bottom)``, searched again exactly over the
    same cached document embeddings as ``dense-retrieval``. The first stage is ``dense-retrieval`` with the same model settings (exact inner product, ties by
    docno); its top ``fb_docs`` embeddings (and, with ``gamma > 0``, the ``fb_neg_docs`` lowest of
    its run at the task's depth) update the query vector, which is not re-normalised (the ranking of
    an inner product does not depend on the query's norm). One query encoding per query.
    """

    def __init__(self, params: DensePrfParams):
        super().__init__(params)
        self.params: DensePrfParams = params

    @classmethod
    def check_depth(cls, params: Any, depth: int) -> None:
        check_depth(cls.method_name, params.fb_docs, depth, params.fb_neg_docs)

    def set_depth(self, depth: int) -> None:
        self.check_depth(self.params, int(depth))
        super().set_depth(depth)

    def expand_vectors(self, q: np.ndarray) -> np.ndarray:
        """Rocchio-updated query vectors (rows of ``q``) from the first-stage ranking of each."""
        if self._emb is None or self._tie is None:
            raise HarnessError("dense-prf: call index(corpus) before searching")
        p = self.params
        out = np.empty_like(q, dtype=np.float32)
        for i, row in enumerate((q @ self._emb.T).astype(np.float64)):
            depth = max(self.num_results, p.fb_docs + p.fb_neg_docs)
            ranked = top_k(row, depth, self._tie)
            pos = self._emb[ranked[: p.fb_docs]]
            neg = self._emb[ranked[len(ranked) - p.fb_neg_docs:]] if p.fb_neg_docs else None
            out[i] = rocchio(q[i], pos, neg, p.alpha, p.beta, p.gamma)
        return out

    def search(self, queries: pd.DataFrame) -> pd.DataFrame:
        if self._emb is None or self._tie is None:
            raise HarnessError("dense-prf: call index(corpus) before searching")
        texts = [str(q) for q in queries["query"]]
        per_query = []
        for start in range(0, len(texts), self.params.batch_size):
            q = self.expand_vectors(self.encoder.encode(texts[start: start + self.params.batch_size]))
            for row in (q @ self._emb.T).astype(np.float64):
                idx = top_k(row, self.num_results, self._tie)
                per_query.append(([self._docnos[i] for i in idx], row[idx].tolist()))
        self.stats["queries_encoded"] += len(texts)
        self.stats["model_calls"] = self.encoder.calls
        return ranked_frame(queries.reset_index(drop=True), per_query)
