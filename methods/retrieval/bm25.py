"""BM25 on PISA (pyterrier-pisa): the classic lexical baseline, with PISA's dynamic pruning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.retrieval._common import build_dir_atomically, cache_path, silenced

# Disjunctive, rank-safe algorithms only: they all return the exhaustive (ranked_or) top-k, up to ties.
# PISA's conjunctive ranked_and / block_max_ranked_and answer a different question and are left out.
QueryAlgorithm = Literal["ranked_or", "maxscore", "wand", "block_max_wand", "block_max_maxscore"]
QUERY_ALGORITHMS: tuple[str, ...] = ("ranked_or", "maxscore", "wand", "block_max_wand", "block_max_maxscore")


@dataclass(frozen=True)
class PisaBM25Params(MethodParams):
    k1: float = 0.9
    b: float = 0.4
    stemmer: Literal["porter2", "krovetz", "none"] = "porter2"
    stops: Literal["terrier", "lucene", "none"] = "terrier"
    # ranked_or is exhaustive scoring of every posting; the others skip documents that cannot enter
    # the top k. Kept semantic (it changes the latency, which is part of the result).
    query_algorithm: QueryAlgorithm = "block_max_wand"
    # True: a term repeated in the query counts once per occurrence (Lucene/Anserini and bm25s do
    # this); False: each distinct query term counts once (pyterrier-pisa's default).
    query_weighted: bool = True
    threads: int = 1
    verbose: bool = False

    NON_SEMANTIC = ("threads", "verbose")

    def check(self) -> None:
        if not self.k1 > 0:
            raise ParamError(f"parameter k1={self.k1} must be > 0")
        if not 0.0 <= self.b <= 1.0:
            raise ParamError(f"parameter b={self.b} must be in [0, 1]")
        if self.threads < 1:
            raise ParamError(f"parameter threads={self.threads} must be >= 1")


def _pisa() -> Any:
    try:
        import pyterrier_pisa
    except ImportError:
        raise HarnessError("method bm25 needs pyterrier-pisa: pip install 'pyterrier-pisa>=0.4,<0.5'") from None
    return pyterrier_pisa


def silent_transformer(inner: Any, verbose: bool) -> Any:
    import pyterrier as pt

    class SilentPisa(pt.Transformer):
        def __init__(self, inner: Any):
            self.inner = inner

        def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
            with silenced(not verbose):
                return self.inner.transform(inp)

        def __repr__(self) -> str:
            return repr(self.inner)

    return SilentPisa(inner)


@register_method("bm25", "retrieval", PisaBM25Params)
class PisaBM25(RetrievalMethod):
    """BM25 (Robertson et al.) over a PISA inverted index; k1=0.9, b=0.4 as in Anserini/PISA.

    The index (tokenised, stemmed text) is cached by corpus digest and stemmer; stopwords apply at
    query time. Documents are indexed as ``title + "\\n" + text``.
    """

    def __init__(self, params: PisaBM25Params):
        super().__init__(params)
        self.params: PisaBM25Params = params
        self.num_results = 1000
        self._index: Any = None

    def index_path(self, corpus: Corpus) -> Any:
        pisa = _pisa()
        return cache_path("indexes", "bm25-pisa", corpus.digest,
                          {"stemmer": self.params.stemmer, "pyterrier_pisa": pisa.__version__})

    def index(self, corpus: Corpus) -> None:
        pisa = _pisa()
        final = self.index_path(corpus)
        cached = (final / "harness_meta.json").exists()

        def build(tmp: Any) -> None:
            idx = pisa.PisaIndex(str(tmp), text_field="text", stemmer=self.params.stemmer, threads=self.params.threads)
            with silenced(not self.params.verbose):
                idx.index(corpus.iter_dicts())

        build_dir_atomically(final, build, {"corpus": corpus.id, "corpus_digest": corpus.digest,
                                            "documents": len(corpus), "stemmer": self.params.stemmer})
        self._index = pisa.PisaIndex(str(final), stemmer=self.params.stemmer, stops=self.params.stops,
                                     threads=self.params.threads)
        self.stats.update({"index_cached": cached, "index_path": str(final), "documents": len(corpus),
                           "model_calls": 0})

    def transformer(self) -> Any:
        if self._index is None:
            raise HarnessError("bm25: call index(corpus) before transformer()")
        p = self.params
        with silenced(not p.verbose):
            inner = self._index.bm25(k1=p.k1, b=p.b, num_results=self.num_results, threads=p.threads,
                                     query_algorithm=p.query_algorithm, query_weighted=p.query_weighted,
                                     verbose=p.verbose)
        return silent_transformer(inner, p.verbose)
