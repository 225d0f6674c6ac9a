"""BM25 with the bm25s package (eager sparse scoring in numpy/scipy): a second BM25 implementation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.retrieval._common import build_dir_atomically, cache_path, docno_order, ranked_frame, top_k


@dataclass(frozen=True)
class BM25SParams(MethodParams):
    k1: float = 0.9
    b: float = 0.4
    # bm25s's variants: robertson (original idf, can be negative), lucene (idf log(1 + (N-df+.5)/(df+.5)),
    # as PISA and Lucene), atire, bm25l and bm25+ (delta applies to the last two).
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    delta: float = 0.5
    # porter2 = Snowball English through PyStemmer (what bm25s recommends; PISA's porter2 is the same
    # algorithm); none = no stemming.
    stemmer: Literal["porter2", "none"] = "porter2"
    stopwords: Literal["english", "none"] = "english"

    def check(self) -> None:
        if not self.k1 > 0:
            raise ParamError(f"parameter k1={self.k1} must be > 0")
        if not 0.0 <= self.b <= 1.0:
            raise ParamError(f"parameter b={self.b} must be in [0, 1]")
        if self.delta < 0:
            raise ParamError(f"parameter delta={self.delta} must be >= 0")


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError:
        raise HarnessError("method bm25s needs the bm25s package: pip install 'bm25s>=0.3,<0.4'") from None
    return bm25s


@register_method("bm25s", "retrieval", BM25SParams)
class BM25S(RetrievalMethod):
    """BM25 with bm25s (Lù, 2024): scores precomputed per (term, document) at indexing time.

    Tokenisation is bm25s's (lower-case, ``\\b\\w\\w+\\b``, optional English stopwords, optional
    Snowball stemming). A term repeated in the query counts once per occurrence. Retrieval scores
    every document exactly; documents with score 0 (no query
    term) are not returned, and the top k is ordered by score descending then docno ascending.
    """

    def __init__(self, params: BM25SParams):
        super().__init__(params)
        self.params: BM25SParams = params
        self.num_results = 1000
        self._model: Any = None
        self._docnos: list[str] = []
        self._tie: np.ndarray | None = None
        self._stemmer: Any = None

    def _stem(self) -> Any:
        if self.params.stemmer == "none":
            return None
        if self._stemmer is None:
            try:
                import Stemmer
            except ImportError:
                raise HarnessError(
                    "bm25s with stemmer=porter2 needs PyStemmer (pip install PyStemmer), or pass stemmer=none"
                ) from None
            self._stemmer = Stemmer.Stemmer("english")
        return self._stemmer

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        bm25s = _bm25s()
        stop = "english" if self.params.stopwords == "english" else None
        return bm25s.tokenize(texts, stopwords=stop, stemmer=self._stem(), return_ids=False, show_progress=False)

    def index(self, corpus: Corpus) -> None:
        bm25s = _bm25s()
        p = self.params
        semantic = {**p.semantic_dict(), "bm25s": getattr(bm25s, "__version__", "?")}
        final = cache_path("indexes", "bm25s", corpus.digest, semantic)
        cached = (final / "harness_meta.json").exists()
        docnos = [d["docno"] for d in corpus.iter_dicts()]

        def build(tmp: Path) -> None:
            texts = [d["text"] for d in corpus.iter_dicts()]
            model = bm25s.BM25(k1=p.k1, b=p.b, delta=p.delta, method=p.method)
            model.index(self._tokenize(texts), show_progress=False)
            tmp.mkdir(parents=True)
            model.save(str(tmp), show_progress=False)
            (tmp / "docnos.json").write_text(json.dumps(docnos))

        build_dir_atomically(final, build, {"corpus": corpus.id, "corpus_digest": corpus.digest, **semantic})
        stored = json.loads((final / "docnos.json").read_text())
        if stored != docnos:
            raise HarnessError(f"bm25s cache {final} does not match the corpus; delete it and rerun")
        self._model = bm25s.BM25.load(str(final), show_progress=False)
        self._docnos = docnos
        self._tie = docno_order(docnos)
        self.stats.update({"index_cached": cached, "index_path": str(final), "documents": len(docnos),
                           "model_calls": 0})

    def search(self, queries: pd.DataFrame) -> pd.DataFrame:
        if self._model is None or self._tie is None:
            raise HarnessError("bm25s: call index(corpus) before searching")
        per_query = []
        for toks in self._tokenize([str(q) for q in queries["query"]]):
            toks = [t for t in toks if t]
            if not toks:
                per_query.append(([], []))
                continue
            ids = self._model.get_tokens_ids(toks)
            if not ids:
                per_query.append(([], []))
                continue
            scores = np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float64)
            idx = top_k(scores, self.num_results, self._tie)
            idx = idx[scores[idx] > 0]
            per_query.append(([self._docnos[i] for i in idx], scores[idx].tolist()))
        return ranked_frame(queries, per_query)

    def transformer(self) -> Any:
        import pyterrier as pt

        return pt.apply.generic(self.search)
