"""BM25 top-k sentences: the k sentences of a passage that BM25 scores highest for the question."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.context.base import TopKMethod, TopKParams
from harness.errors import HarnessError, ParamError
from harness.registry import register_method


@dataclass(frozen=True)
class BM25TopKParams(TopKParams):
    k1: float = 1.2
    b: float = 0.75
    stemmer: Literal["porter2", "none"] = "porter2"

    def check(self) -> None:
        super().check()
        if not self.k1 > 0:
            raise ParamError(f"parameter k1={self.k1} must be > 0")
        if not 0.0 <= self.b <= 1.0:
            raise ParamError(f"parameter b={self.b} must be in [0, 1]")


@register_method("bm25-topk", "context-pruning", BM25TopKParams)
class BM25TopK(TopKMethod):
    """Keep the k sentences with the highest BM25 score for the question (bm25s, per passage).

    Each passage is its own collection: its sentences are the documents (so document frequency
    and average length are the passage's), scored with bm25s's ``lucene`` BM25 (idf
    ``log(1 + (N - df + 0.5) / (df + 0.5))``, never negative), bm25s's tokeniser (lower-case,
    ``\\b\\w\\w+\\b``, English stopwords) and Snowball English stemming (PyStemmer). Ties, including
    sentences sharing no term with the question (score 0), go to the earlier sentence: the
    lexical baseline of extractive context pruning.
    """

    params: BM25TopKParams

    def __init__(self, params: BM25TopKParams):
        super().__init__(params)
        self._stemmer: Any = None

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        if self.params.stemmer == "porter2" and self._stemmer is None:
            try:
                import Stemmer
            except ImportError:
                raise HarnessError("bm25-topk with stemmer=porter2 needs PyStemmer: pip install PyStemmer") from None
            self._stemmer = Stemmer.Stemmer("english")
        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)

    def score(self, question: str, sentences: list[str]) -> list[float]:
        try:
            import bm25s
        except ImportError:
            raise HarnessError("bm25-topk needs the bm25s package: pip install 'bm25s>=0.3,<0.4'") from None
        docs = self._tokenize(sentences)
        query = self._tokenize([question])[0]
        if not query or not any(docs):
            return [0.0] * len(sentences)
        model = bm25s.BM25(method="lucene", k1=self.params.k1, b=self.params.b)
        model.index([d if d else [""] for d in docs], show_progress=False)
        return [float(s) for s in model.get_scores(query)]
