"""Bo1 (Bose-Einstein, divergence from randomness) query expansion over BM25 on PISA, as in Terrier."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ParamError
from harness.registry import register_method
from methods.retrieval._prf import LexicalPrfParams, PisaExpansion, bo1_weights, check_unit


@dataclass(frozen=True)
class Bo1Params(LexicalPrfParams):
    # Terrier's defaults: expansion.documents=3, expansion.terms=10, expansion.mindocuments=2,
    # parameter-free normalisation (parameter.free.expansion=true)
    min_docs: int = 2
    # None: Terrier's parameter-free normaliser; a number: Rocchio's beta (w = beta x Bo1 / max Bo1)
    beta: float | None = None

    def check(self) -> None:
        super().check()
        if self.min_docs < 1:
            raise ParamError(f"parameter min_docs={self.min_docs} must be >= 1")
        if self.beta is not None:
            check_unit("beta", self.beta)


@register_method("bo1", "retrieval", Bo1Params)
class Bo1(PisaExpansion):
    """Bo1 query expansion (Amati 2003, divergence from randomness) over BM25 on PISA, as in Terrier.

    As Terrier's ``QueryExpansion`` with ``DFRBagExpansionTerms``: the top ``fb_docs`` BM25
    documents (the ``bm25`` method with its defaults) form one bag; each of its terms scores ``tfx log2((1+f)/f) + log2(1+f)``, ``f = F/N`` (``tfx``: occurrences in the bag,
    ``F``: in the collection); terms in fewer than ``min_docs`` feedback documents are dropped unless
    they are query terms. Weights are divided by Terrier's parameter-free normaliser (or scaled by
    ``beta / max``); the ``max(fb_terms, |q|)`` best are added to the query (``qtf + w``), and the
    weighted query is re-issued to PISA's BM25 as ``floor(w x weight_scale)`` repeats of each term.

    Differs from Terrier: PISA's BM25 scores query weights linearly (Terrier's saturates them with
    k3 = 8); statistics are PISA's (Porter2 stems; stopwords, removed at query time, never expand).
    """

    def __init__(self, params: Bo1Params):
        super().__init__(params)
        self.params: Bo1Params = params

    def expand(self, query: str, feedback: list[tuple[int, float]]) -> dict[int, float]:
        st = self._need_stats()
        qtf, _ = st.query_terms(query)
        p = self.params
        return bo1_weights(st, qtf, [d for d, _ in feedback], p.fb_terms, p.min_docs, p.beta)
