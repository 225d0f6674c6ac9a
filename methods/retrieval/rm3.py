"""RM3 pseudo-relevance feedback over BM25 on PISA (Lavrenko & Croft's relevance model, interpolated
with the original query as in Terrier/PyTerrier and Anserini)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ParamError
from harness.registry import register_method
from methods.retrieval._prf import LexicalPrfParams, PisaExpansion, check_unit, rm3_weights


@dataclass(frozen=True)
class RM3Params(LexicalPrfParams):
    # PyTerrier's RM3 defaults (fb_terms=10, fb_docs=3, fb_lambda=0.6)
    fb_lambda: float = 0.6  # weight of the original query; 1 - fb_lambda goes to the relevance model
    # Terrier's candidate filter (properties prf.mindf, prf.maxdp): min_df <= df < int(max_doc_fraction x N)
    min_df: int = 2
    max_doc_fraction: float = 0.1

    def check(self) -> None:
        super().check()
        check_unit("fb_lambda", self.fb_lambda)
        check_unit("max_doc_fraction", self.max_doc_fraction)
        if self.min_df < 1:
            raise ParamError(f"parameter min_df={self.min_df} must be >= 1")


@register_method("rm3", "retrieval", RM3Params)
class RM3(PisaExpansion):
    """RM3 query expansion (Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004) over BM25 on PISA.

    The first stage is the ``bm25`` method with its defaults; its top ``fb_docs`` documents, weighted
    by the softmax of their BM25 scores, give the relevance model ``sum_d p(d) tf(t,d)/|d|`` over
    their terms (Terrier's filter: ``min_df <= df < int(max_doc_fraction N)``, no stopwords); the
    ``fb_terms`` best are normalised to sum 1 and interpolated with the original query's
    ``qtf/|q|``: ``fb_lambda x original + (1 - fb_lambda) x feedback``, as Terrier's ``RM3`` class
    (which its authors compared with Anserini's). The weighted query is re-issued to PISA's BM25
    (same index, same settings), each weight as ``floor(w x weight_scale)`` repeats of the term.

    Differs from Terrier: BM25 scores query-term weights linearly (PISA; Terrier's BM25 saturates
    them with k3 = 8), and terms and statistics come from PISA's index (Porter2 stems, stopwords
    removed at query time; ``|d|`` counts non-stopword tokens, as Terrier's stopped index would).
    """

    def __init__(self, params: RM3Params):
        super().__init__(params)
        self.params: RM3Params = params

    def expand(self, query: str, feedback: list[tuple[int, float]]) -> dict[int, float]:
        st = self._need_stats()
        qtf, qlen = st.query_terms(query)
        p = self.params
        return rm3_weights(st, qtf, qlen, feedback, p.fb_terms, p.fb_lambda, p.min_df, p.max_doc_fraction)
