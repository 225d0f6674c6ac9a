"""Shared code of the static index-pruning methods (``static-pruning``, ``postings-pruning``).

* :class:`PruningBM25Params`: the BM25 settings both methods share with ``bm25`` (PISA), plus the
  ``fraction`` to remove, refused outside (0, 1) before any work;
* reading a PISA index's uncompressed inverted files (``inv.docs``, ``inv.freqs``, ``inv.sizes``)
  and writing them back (the exact route of postings pruning);
* :func:`index_size`: bytes on disk (the compressed index + its block-max/WAND data, which is what
  a query reads, and the whole directory) and the number of postings;
* :class:`ComparedTransformer`: on the first (evaluation) call it times every query alone, on the
  pruned index and on the unpruned index of the same engine (``bm25``'s cached PISA index), the two
  interleaved query by query, and stores both latency summaries in the method's stats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.errors import ParamError
from harness.ir.latency import latency_stats, single_thread
from harness.params import MethodParams
from methods.retrieval.bm25 import PisaBM25, PisaBM25Params, QueryAlgorithm, _pisa, silent_transformer
from methods.retrieval._common import silenced

LATENCY_WARMUP = 3
LATENCY_ROUNDS = 5


@dataclass(frozen=True)
class PruningBM25Params(MethodParams):
    fraction: float = 0.3  # what is removed: documents (static-pruning) or postings (postings-pruning)
    k1: float = 0.9
    b: float = 0.4
    stemmer: Literal["porter2", "krovetz", "none"] = "porter2"
    stops: Literal["terrier", "lucene", "none"] = "terrier"
    query_algorithm: QueryAlgorithm = "block_max_wand"
    query_weighted: bool = True
    threads: int = 1
    verbose: bool = False

    NON_SEMANTIC = ("threads", "verbose")

    def check(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ParamError(f"parameter fraction={self.fraction} must be in (0, 1): the share of the "
                             "index to remove (0 is the unpruned bm25 run, 1 an empty index)")
        self.bm25_params().check()

    def bm25_params(self) -> PisaBM25Params:
        return PisaBM25Params(k1=self.k1, b=self.b, stemmer=self.stemmer, stops=self.stops,
                              query_algorithm=self.query_algorithm, query_weighted=self.query_weighted,
                              threads=self.threads, verbose=self.verbose)


def removal_count(fraction: float, n: int) -> int:
    """How many of ``n`` items a ``fraction`` removes: round half up, and at least one item stays."""
    return max(0, min(n - 1, int(fraction * n + 0.5)))


# --------------------------------------------------------------------------------- PISA files


@dataclass
class InvertedFiles:
    """A PISA index's uncompressed inverted index: per term (ids in ``fwd.terms`` order) its docids
    and term frequencies; per document its length (tokens, stopwords included)."""

    terms: list[str]
    docids: list[np.ndarray]
    freqs: list[np.ndarray]
    sizes: np.ndarray

    @property
    def num_postings(self) -> int:
        return int(sum(len(d) for d in self.docids))


def _sequences(arr: np.ndarray, start: int) -> list[np.ndarray]:
    out, i = [], start
    while i < arr.shape[0]:
        n = int(arr[i])
        out.append(arr[i + 1 : i + 1 + n])
        i += n + 1
    return out


def read_inverted(path: Path) -> InvertedFiles:
    docs = np.fromfile(path / "inv.docs", dtype=np.uint32)
    freqs = np.fromfile(path / "inv.freqs", dtype=np.uint32)
    sizes = np.fromfile(path / "inv.sizes", dtype=np.uint32)
    terms = (path / "fwd.terms").read_text().split("\n")
    terms = [t for t in terms if t]
    d_lists, f_lists = _sequences(docs, 2), _sequences(freqs, 0)  # inv.docs opens with [1, num_docs]
    if not len(d_lists) == len(f_lists) == len(terms):
        raise ValueError(f"{path}: {len(d_lists)} docid lists, {len(f_lists)} frequency lists, {len(terms)} terms")
    return InvertedFiles(terms, d_lists, f_lists, sizes[1:].copy())


def write_inverted(path: Path, inv: InvertedFiles) -> None:
    with open(path / "inv.docs", "wb") as fd, open(path / "inv.freqs", "wb") as ff:
        fd.write(np.array([1, len(inv.sizes)], dtype=np.uint32).tobytes())
        for d, f in zip(inv.docids, inv.freqs):
            fd.write(np.concatenate([[len(d)], d]).astype(np.uint32).tobytes())
            ff.write(np.concatenate([[len(f)], f]).astype(np.uint32).tobytes())
    with open(path / "inv.sizes", "wb") as fs:
        fs.write(np.concatenate([[len(inv.sizes)], inv.sizes]).astype(np.uint32).tobytes())


FORWARD_FILES = ("fwd", "fwd.urls")  # PISA's forward index: built by indexing, never read by a query


def index_size(path: Path | str, stops: str = "none", stemmer: str = "porter2") -> dict[str, Any]:
    """Bytes on disk and postings of a PISA index (call after a retriever was created on it, which
    compresses the index and builds its WAND data). ``bytes_query_structures``: the compressed
    index and its WAND data (what a query reads); ``bytes_index``: every file but the forward
    index; ``postings_queryable``: postings of terms not on the query-time stop list."""
    path = Path(path)
    files = [p for p in path.iterdir() if p.is_file() and p.name not in FORWARD_FILES]
    query_time = [p for p in files if p.name.startswith("bm25.")]
    docs = np.fromfile(path / "inv.docs", dtype=np.uint32)
    lists = _sequences(docs, 2)
    terms = [t for t in (path / "fwd.terms").read_text().split("\n") if t]
    stop = stop_term_ids(terms, stops, stemmer)
    return {"bytes_query_structures": int(sum(p.stat().st_size for p in query_time)),
            "bytes_index": int(sum(p.stat().st_size for p in files)),
            "postings": int(sum(len(s) for s in lists)),
            "postings_queryable": int(sum(len(s) for i, s in enumerate(lists) if i not in stop)),
            "documents": int(docs[1]) if len(docs) > 1 else 0}


def stop_term_ids(terms: list[str], stops: str, stemmer: str) -> set[int]:
    """Ids of the index terms a query never reaches (the query-time stop list, stemmed)."""
    if stops == "none":
        return set()
    from pyterrier_pisa.stopwords import _STOPWORDS

    pisa = _pisa()
    stemmed = {t for w in _STOPWORDS[stops] for t in pisa.tokenize(w, pisa.PisaStemmer(stemmer))}
    return {i for i, t in enumerate(terms) if t in stemmed}


def open_retriever(path: Path, p: PruningBM25Params, num_results: int) -> Any:
    pisa = _pisa()
    index = pisa.PisaIndex(str(path), stemmer=p.stemmer, stops=p.stops, threads=p.threads)
    with silenced(not p.verbose):
        inner = index.bm25(k1=p.k1, b=p.b, num_results=num_results, threads=p.threads,
                           query_algorithm=p.query_algorithm, query_weighted=p.query_weighted, verbose=p.verbose)
    return silent_transformer(inner, p.verbose)


def unpruned_baseline(corpus: Any, p: PruningBM25Params) -> PisaBM25:
    """The unpruned index of the same engine and settings (``bm25``'s, from its cache)."""
    base = PisaBM25(p.bm25_params())
    base.index(corpus)
    return base


# --------------------------------------------------------------------------------- latency


def compare_latency(pruned: Any, unpruned: Any, topics: pd.DataFrame, warmup: int = LATENCY_WARMUP,
                    rounds: int = LATENCY_ROUNDS) -> dict[str, Any]:
    """Every query timed alone on both indexes, interleaved (odd queries run the unpruned index
    first), single-threaded, after ``warmup`` untimed queries on each, in ``rounds`` rounds; a
    query's latency on an index is its fastest round (the shared machine's load only ever adds
    time). Summaries in ms over the queries."""
    rows = [topics.iloc[i : i + 1].reset_index(drop=True) for i in range(len(topics))]
    if not rows:
        return {}
    t_pruned = np.full((rounds, len(rows)), np.inf)
    t_unpruned = np.full((rounds, len(rows)), np.inf)
    with single_thread():
        for r in rows[:warmup]:
            pruned(r)
            unpruned(r)
        for k in range(rounds):
            for i, r in enumerate(rows):
                order = ((pruned, t_pruned), (unpruned, t_unpruned))
                for fn, out in (order if (i + k) % 2 == 0 else order[::-1]):
                    t0 = time.perf_counter()
                    fn(r)
                    out[k, i] = time.perf_counter() - t0
    lp, lu = latency_stats(t_pruned.min(axis=0)), latency_stats(t_unpruned.min(axis=0))
    return {"pruned": lp, "unpruned": lu, "p50_ratio": lp["p50"] / lu["p50"] if lu["p50"] else None,
            "mean_ratio": lp["mean"] / lu["mean"] if lu["mean"] else None,
            "warmup_queries": min(warmup, len(rows)), "rounds": rounds,
            "what": "wall time of one query alone on the pruned and on the unpruned PISA index (same engine, "
                    "settings and queries), interleaved query by query, fastest of the rounds per query, "
                    "in this run's retrieval pass"}


def make_compared(pruned: Any, unpruned: Any, stats: dict[str, Any]) -> Any:
    """A transformer answering from ``pruned`` only; its first call also compares the latencies."""
    import pyterrier as pt

    class ComparedTransformer(pt.Transformer):
        def __init__(self) -> None:
            self.compared = False

        def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
            out = pruned(inp)
            if not self.compared:
                self.compared = True
                stats["latency_vs_unpruned"] = compare_latency(pruned, unpruned, inp[["qid", "query"]])
            return out

        def __repr__(self) -> str:
            return f"Pruned({pruned!r})"

    return ComparedTransformer()


