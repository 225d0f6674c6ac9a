"""Pseudo-relevance feedback shared by ``rm3``, ``bo1`` and ``dense-prf``.

* :class:`TermStats`: the term statistics of a PISA index, read from the files pyterrier-pisa keeps
  beside the compressed index (``fwd``: each document's term ids in order, ``fwd.terms``: the
  lexicon, sorted, so a term id is its line number; ``fwd.documents``: the docnos).
* :func:`rm3_weights` (Terrier's ``RM3``/``RM1``, Lavrenko & Croft) and :func:`bo1_weights`
  (Terrier's ``QueryExpansion`` with ``Bo1`` over ``DFRBagExpansionTerms``, Amati): pure functions
  from statistics and a feedback set to a weighted query (term id -> weight).
* :func:`quantise`: how a weighted query reaches PISA. pyterrier-pisa takes pre-tokenised queries as
  a ``query_toks`` dict (term -> float); its C++ side repeats each term ``floor(weight)`` times and,
  with ``query_weighted=True``, scores each term ``count x BM25``. So a weight ``w`` becomes the
  integer ``floor(w x weight_scale)``; terms below ``1 / weight_scale`` are dropped.
* :class:`PisaExpansion`: the retrieval adapter both lexical methods share: BM25 on PISA (the
  ``bm25`` method with its defaults) for the feedback documents, the expansion, the expanded query
  re-issued to PISA through a stemmer-less handle on the same index (the terms are already stemmed;
  PISA's term processor would stem them a second time otherwise).
* :func:`rocchio`: the dense query update.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from methods.retrieval._common import silenced


# --------------------------------------------------------------------------------- parameters


def check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ParamError(f"parameter {name}={value} must be in [0, 1]")


def check_fb(fb_docs: int, fb_terms: int | None = None) -> None:
    if fb_docs < 1:
        raise ParamError(f"parameter fb_docs={fb_docs} must be >= 1")
    if fb_terms is not None and fb_terms < 1:
        raise ParamError(f"parameter fb_terms={fb_terms} must be >= 1")


def check_depth(method: str, fb_docs: int, depth: int, extra: int = 0) -> None:
    """Feedback documents come from the first stage's run, ``depth`` deep (the task's cutoff)."""
    if fb_docs + extra > depth:
        what = f"fb_docs={fb_docs}" + (f" + fb_neg_docs={extra}" if extra else "")
        raise ParamError(f"{method}: {what} exceeds the first stage's depth {depth} (the task's cutoff); "
                         f"feedback documents must come from the run")


@dataclass(frozen=True)
class LexicalPrfParams(MethodParams):
    """What RM3 and Bo1 share: the feedback set and the quantisation of the weighted query."""

    fb_docs: int = 3
    fb_terms: int = 10
    # weights reach PISA as integer repeat counts floor(w * weight_scale) (see module docstring)
    weight_scale: float = 1000.0

    def check(self) -> None:
        check_fb(self.fb_docs, self.fb_terms)
        if not self.weight_scale >= 1:
            raise ParamError(f"parameter weight_scale={self.weight_scale} must be >= 1")


# --------------------------------------------------------------------------------- term statistics


def _read_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


@dataclass
class TermStats:
    """Collection statistics and document term vectors of one PISA index."""

    terms: list[str]  # term id -> term (sorted: PISA's lexicon order)
    docnos: list[str]  # PISA document id -> docno
    doc_terms: Any  # scipy.sparse.csr_matrix (documents x terms) of term counts
    stop: np.ndarray  # bool per term id: a stopword (PISA's query-time rule: stem(word) is in the lexicon)
    stop_stems: frozenset[str]  # the stemmed stopwords, in the lexicon or not
    stemmer: str

    def __post_init__(self) -> None:
        self.term_id = {t: i for i, t in enumerate(self.terms)}
        self.doc_id = {d: i for i, d in enumerate(self.docnos)}
        self.df = np.diff(self.doc_terms.tocsc().indptr).astype(np.int64)  # documents containing the term
        self.cf = np.asarray(self.doc_terms.sum(axis=0)).ravel().astype(np.float64)  # occurrences
        keep = ~self.stop
        # document length without stopwords: what a stopword-removed (Terrier) index counts
        self.doc_len = np.asarray(self.doc_terms[:, np.flatnonzero(keep)].sum(axis=1)).ravel().astype(np.float64)

    @property
    def num_docs(self) -> int:
        return len(self.docnos)

    @classmethod
    def from_token_ids(cls, terms: list[str], docnos: list[str], docs: list[np.ndarray],
                       stopwords: list[str], stemmer: str) -> TermStats:
        from scipy.sparse import csr_matrix

        lens = np.array([len(d) for d in docs], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lens)])
        indices = np.concatenate(docs).astype(np.int64) if docs else np.zeros(0, np.int64)
        m = csr_matrix((np.ones(indices.size, dtype=np.float64), indices, indptr), shape=(len(docs), len(terms)))
        m.sum_duplicates()
        stems = frozenset(stem(w, stemmer) for w in stopwords)
        term_id = {t: i for i, t in enumerate(terms)}
        stop = np.zeros(len(terms), dtype=bool)
        for s in stems:
            if s in term_id:
                stop[term_id[s]] = True
        return cls(terms, docnos, m, stop, stems, stemmer)

    @classmethod
    def from_pisa(cls, path: Path, stemmer: str, stopwords: list[str]) -> TermStats:
        """Read ``fwd`` (a PISA binary collection: ``[1, N]``, then per document ``[length, ids...]``)."""
        path = Path(path)
        try:
            arr = np.fromfile(path / "fwd", dtype=np.uint32)
            terms = _read_lines(path / "fwd.terms")
            docnos = _read_lines(path / "fwd.documents")
            sizes = np.fromfile(path / "inv.sizes", dtype=np.uint32)
        except OSError as exc:
            raise HarnessError(f"PISA index {path} lacks its forward index files (fwd, fwd.terms, fwd.documents, "
                               f"inv.sizes) that pseudo-relevance feedback reads: {exc}") from None
        n = int(arr[1]) if arr.size >= 2 else 0
        docs, pos = [], 2
        for _ in range(n):
            length = int(arr[pos])
            docs.append(arr[pos + 1: pos + 1 + length])
            pos += length + 1
        if n != len(docnos) or pos != arr.size or sizes[1:].tolist() != [d.size for d in docs]:
            raise HarnessError(f"PISA index {path}: the forward index disagrees with fwd.documents / inv.sizes")
        return cls.from_token_ids(terms, docnos, docs, stopwords, stemmer)

    def query_terms(self, text: str) -> tuple[dict[int, float], float]:
        """The query as PISA's BM25 reads it: stemmed tokens, stopwords and unknown terms dropped,
        a repeated term counted per occurrence; and the query length as Terrier counts it (every
        non-stopword token, known to the index or not)."""
        tf: Counter[int] = Counter()
        length = 0.0
        for tok in tokenize(text, self.stemmer):
            if tok in self.stop_stems:
                continue
            length += 1
            tid = self.term_id.get(tok)
            if tid is not None:
                tf[tid] += 1
        return {t: float(c) for t, c in tf.items()}, length

    def doc_vector(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, counts) of a document, stopwords left out."""
        s, e = self.doc_terms.indptr[doc], self.doc_terms.indptr[doc + 1]
        ids, counts = self.doc_terms.indices[s:e], self.doc_terms.data[s:e]
        keep = ~self.stop[ids]
        return ids[keep].astype(np.int64), counts[keep]


def stopword_list(stops: str) -> list[str]:
    """The list pyterrier-pisa hands PISA for ``stops`` (terrier | lucene | none)."""
    if stops == "none":
        return []
    from pyterrier_pisa.stopwords import _STOPWORDS

    return list(_STOPWORDS[stops])


def tokenize(text: str, stemmer: str) -> list[str]:
    import pyterrier_pisa

    return list(pyterrier_pisa.tokenize(text, stemmer))


def stem(word: str, stemmer: str) -> str:
    toks = tokenize(word, stemmer)
    return toks[0] if len(toks) == 1 else word.lower()


# --------------------------------------------------------------------------------- expansion models


def _top(weights: dict[int, float], n: int) -> dict[int, float]:
    """The ``n`` largest weights, ties to the smaller term id (Terrier's RM1.clipTerms rule)."""
    return dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def rm3_weights(stats: TermStats, query_tf: dict[int, float], query_len: float, feedback: list[tuple[int, float]],
                fb_terms: int, fb_lambda: float, min_df: int = 2, max_doc_fraction: float = 0.1) -> dict[int, float]:
    """RM3 as Terrier's ``org.terrier.querying.RM3`` (checked against Anserini by its authors).

    ``feedback``: (document id, first-stage score) of the feedback documents, best first.

    1. document weight ``p(d) = exp(s_d) / sum_d' exp(s_d')`` (a softmax of the BM25 scores; Terrier
       normalises over the whole result set and divides by the number of feedback documents: both
       are constants that step 3 cancels);
    2. candidates: the feedback documents' terms with ``min_df <= df < int(max_doc_fraction x N)``
       and no stopwords; ``RM1(t) = sum_d p(d) x tf(t, d) / |d|`` (``|d|`` without stopwords);
    3. the ``fb_terms`` largest, normalised to sum 1;
    4. ``w(t) = fb_lambda x qtf(t) / |q| + (1 - fb_lambda) x RM1(t)``.
    """
    orig = {t: c / query_len for t, c in query_tf.items()} if query_len > 0 else {}
    rm1: dict[int, float] = {}
    if feedback:
        scores = np.array([s for _, s in feedback], dtype=np.float64)
        p = np.exp(scores - (scores.max() + np.log(np.exp(scores - scores.max()).sum())))
        max_df = int(max_doc_fraction * stats.num_docs)
        acc: dict[int, float] = {}
        for (doc, _), pd_ in zip(feedback, p, strict=True):
            ids, counts = stats.doc_vector(doc)
            dl = stats.doc_len[doc]
            if dl <= 0:
                continue
            for t, c in zip(ids.tolist(), counts.tolist(), strict=True):
                if min_df <= stats.df[t] < max_df:
                    acc[t] = acc.get(t, 0.0) + float(pd_) * c / dl
        top = _top(acc, fb_terms)
        norm = sum(top.values())
        rm1 = {t: w / norm for t, w in top.items()} if norm > 0 else {}
    out = {t: (1 - fb_lambda) * w for t, w in rm1.items()}
    for t, w in orig.items():
        out[t] = out.get(t, 0.0) + fb_lambda * w
    return out


def _log2(x: float) -> float:
    return math.log(x) / math.log(2.0)


def bo1_score(tfx: float, cf: float, n_docs: int) -> float:
    """Terrier's Bo1: ``tfx log2((1 + f) / f) + log2(1 + f)``, ``f = F / N`` (Bose-Einstein with a
    Poisson mean; ``tfx``: the term's occurrences in the feedback set, ``F``: in the collection)."""
    f = cf / n_docs
    return tfx * _log2((1 + f) / f) + _log2(1 + f)


def bo1_weights(stats: TermStats, query_tf: dict[int, float], feedback: list[int], fb_terms: int,
                min_docs: int = 2, beta: float | None = None) -> dict[int, float]:
    """Bo1 expansion as Terrier's ``QueryExpansion`` with ``DFRBagExpansionTerms``.

    The feedback documents are one bag: ``tfx(t)`` = occurrences in the bag (stopwords left out).
    A term in fewer than ``min_docs`` feedback documents weighs 0 unless it is a query term (only
    when there are at least ``min_docs`` feedback documents). ``w(t) = Bo1(t) / normaliser``, where
    the normaliser is Terrier's parameter-free one (``beta=None``: Bo1 of the best term with its
    ``tfx`` in place of ``F``, i.e. ``f = tfx_max / N``), or the best term's weight times ``1 / beta``
    (Rocchio's beta). The ``max(fb_terms, |q|)`` heaviest terms are added to the query:
    ``w'(t) = qtf(t) + w(t)``; query terms not selected keep ``qtf(t)``.
    """
    n = stats.num_docs
    tfx: dict[int, float] = {}
    dfx: dict[int, int] = {}
    for doc in feedback:
        ids, counts = stats.doc_vector(doc)
        for t, c in zip(ids.tolist(), counts.tolist(), strict=True):
            tfx[t] = tfx.get(t, 0.0) + c
            dfx[t] = dfx.get(t, 0) + 1
    out = dict(query_tf)
    if not tfx:
        return out
    min_df = min_docs if len(feedback) >= min_docs else 0
    w = {t: (0.0 if min_df > 0 and dfx[t] < min_df and t not in query_tf else bo1_score(x, stats.cf[t], n))
         for t, x in tfx.items()}
    best = max(w, key=lambda t: (w[t], -t))
    if beta is None:
        normaliser = bo1_score(tfx[best], tfx[best], n)
        scale = 1.0
    else:
        normaliser, scale = w[best], beta
    if normaliser <= 0:
        return out
    top = _top({t: v for t, v in w.items() if v > 0}, max(fb_terms, len(query_tf)))
    for t, v in top.items():
        out[t] = out.get(t, 0.0) + scale * v / normaliser
    return out


def quantise(weights: dict[int, float], terms: list[str], scale: float) -> dict[str, float]:
    """term -> integer weight ``floor(w x scale)`` (what PISA's repeat loop makes of ``w x scale``);
    zero weights left out. The small epsilon keeps 0.3 x 1000 at 300, not 299."""
    out = {}
    for t, w in weights.items():
        q = math.floor(w * scale + 1e-9)
        if q >= 1:
            out[terms[t]] = float(q)
    return out


def rocchio(q: np.ndarray, pos: np.ndarray, neg: np.ndarray | None, alpha: float, beta: float,
            gamma: float) -> np.ndarray:
    """``alpha q + beta mean(pos) - gamma mean(neg)`` (rows of ``pos``/``neg`` are document vectors)."""
    out = alpha * q
    if pos.shape[0]:
        out = out + beta * pos.mean(axis=0)
    if neg is not None and neg.shape[0] and gamma:
        out = out - gamma * neg.mean(axis=0)
    return out


# --------------------------------------------------------------------------------- lexical adapter


class PisaExpansion(RetrievalMethod):
    """BM25 on PISA -> feedback documents -> :meth:`expand` -> the weighted query on PISA."""

    params: LexicalPrfParams
    prf_name: ClassVar[str] = "prf"

    def __init__(self, params: LexicalPrfParams):
        super().__init__(params)
        from methods.retrieval.bm25 import PisaBM25, PisaBM25Params

        self.params = params
        self.num_results = 1000
        self.first = PisaBM25(PisaBM25Params())  # the `bm25` method with its default settings
        self._stats: TermStats | None = None
        self._raw: Any = None  # stemmer-less handle on the same index, for pre-stemmed terms
        self._first: Any = None
        self._second: Any = None
        self._second_depth = -1

    @classmethod
    def check_depth(cls, params: Any, depth: int) -> None:
        check_depth(cls.method_name, params.fb_docs, depth)

    def index(self, corpus: Corpus) -> None:
        import pyterrier_pisa as pisa

        self.first.index(corpus)
        fp = self.first.params
        path = self.first.index_path(corpus)
        self._stats = TermStats.from_pisa(path, fp.stemmer, stopword_list(fp.stops))
        with silenced():
            import warnings

            with warnings.catch_warnings():  # "requested stemmer=none, but index was constructed with porter2"
                warnings.simplefilter("ignore")
                self._raw = pisa.PisaIndex(str(path), stemmer="none", stops="none", threads=1)
        self._first = self._second = None
        self.stats.update(self.first.stats)
        self.stats.update({"vocabulary": len(self._stats.terms), "expanded_queries": 0, "expanded_terms": 0})

    def expand(self, query: str, feedback: list[tuple[int, float]]) -> dict[int, float]:
        raise NotImplementedError

    def expanded_query(self, query: str, feedback: list[tuple[str, float]]) -> dict[str, float]:
        """The quantised query PISA receives for ``query`` and feedback (docno, score), best first."""
        st = self._need_stats()
        fb = [(st.doc_id[d], float(s)) for d, s in feedback]
        return quantise(self.expand(query, fb), st.terms, self.params.weight_scale)

    def _need_stats(self) -> TermStats:
        if self._stats is None:
            raise HarnessError(f"{self.method_name}: call index(corpus) before searching")
        return self._stats

    def _first_stage(self) -> Any:
        """The ``bm25`` transformer for the top ``fb_docs`` (built once: PISA loads its index then)."""
        if self._first is None:
            self.first.num_results = self.params.fb_docs
            self._first = self.first.transformer()
        return self._first

    def _second_stage(self) -> Any:
        if self._second is None or self._second_depth != self.num_results:
            fp = self.first.params
            with silenced():
                self._second = self._raw.bm25(k1=fp.k1, b=fp.b, num_results=self.num_results, threads=1,
                                              query_algorithm=fp.query_algorithm, query_weighted=True,
                                              toks_scale=1.0)
            self._second_depth = self.num_results
        return self._second

    def search(self, queries: pd.DataFrame) -> pd.DataFrame:
        """PISA's own run of the expanded queries (sorted by score, then PISA's document id; the
        evaluator re-sorts ties by docno), as the ``bm25`` method returns it."""
        self._need_stats()
        qids = queries["qid"].astype(str).tolist()
        texts = [str(t) for t in queries["query"].tolist()]
        fs = self._first_stage()(pd.DataFrame({"qid": qids, "query": texts}))
        by_q: dict[str, list[tuple[str, float]]] = {}
        for q, d, s in zip(fs["qid"].astype(str).tolist(), fs["docno"].astype(str).tolist(),
                           fs["score"].to_numpy(np.float64).tolist(), strict=True):
            by_q.setdefault(q, []).append((d, s))
        toks = [self.expanded_query(t, by_q.get(q, [])) for q, t in zip(qids, texts, strict=True)]
        self.stats["expanded_queries"] += len(toks)
        self.stats["expanded_terms"] += sum(len(t) for t in toks)
        keep = [i for i, t in enumerate(toks) if t]  # a query with no known term retrieves nothing
        inp = pd.DataFrame({"qid": [qids[i] for i in keep], "query": [texts[i] for i in keep],
                            "query_toks": [toks[i] for i in keep]})
        if not keep:
            return pd.DataFrame({"qid": [], "query": [], "docno": [], "score": [], "rank": []})
        with silenced():
            res = self._second_stage().transform(inp)
        del res["query_toks"]  # in place: a copy of the run costs more than the expansion
        return res

    def transformer(self) -> Any:
        import pyterrier as pt

        self._need_stats()
        return pt.apply.generic(self.search)
