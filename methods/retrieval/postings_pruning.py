"""Term-centric static postings pruning for BM25 (Carmel et al. 2001, the top-k epsilon rule), on PISA."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.registry import register_method
from methods.retrieval._common import build_dir_atomically, cache_path
from methods.retrieval._index_pruning import (
    InvertedFiles,
    PruningBM25Params,
    index_size,
    make_compared,
    open_retriever,
    read_inverted,
    removal_count,
    stop_term_ids,
    unpruned_baseline,
    write_inverted,
)
from methods.retrieval.bm25 import _pisa

# what a PISA index directory needs besides the inverted files (the forward index is left out)
LEXICON_FILES = ("fwd.documents", "fwd.doclex", "fwd.terms", "fwd.termlex", "pt_meta.json")


@dataclass(frozen=True)
class PostingsPruningParams(PruningBM25Params):
    k: int = 10  # Carmel's k: each term's k best postings are never removed

    def check(self) -> None:
        super().check()
        if self.k < 1:
            raise ParamError(f"parameter k={self.k} must be >= 1")


@dataclass
class PostingsPlan:
    """Which postings go: per term id a boolean keep mask over its list; the rule's figures."""

    keep: list[np.ndarray]
    queryable: int  # postings of terms a query can reach (not on the stop list)
    removed: int
    epsilon: float | None  # smallest surviving ratio A(t,d) / z_t among the prunable postings
    max_removable: int


def plan_pruning(inv: InvertedFiles, fraction: float, k: int, k1: float, b: float,
                 stop_ids: set[int]) -> PostingsPlan:
    """Carmel et al.'s top-k epsilon rule, epsilon chosen so that exactly ``fraction`` of the
    queryable postings go. For a term with more than ``k`` postings, z_t is its k-th highest score
    contribution A(t,d) and a posting's ratio is A(t,d) / z_t (the term's IDF cancels); its ``k``
    best postings are never removed (Carmel's guarantee for epsilon <= 1). The postings with the
    lowest ratios are removed, ties by (term id, docid); the count is ``removal_count``."""
    sizes = inv.sizes.astype(np.float64)
    avgdl = float(sizes.mean()) if len(sizes) and sizes.mean() > 0 else 1.0
    norm = k1 * (1.0 - b + b * sizes / avgdl)
    keep = [np.ones(len(d), dtype=bool) for d in inv.docids]
    ratios, tids, pos = [], [], []
    queryable = 0
    for t, (d, f) in enumerate(zip(inv.docids, inv.freqs)):
        if t in stop_ids:
            continue
        queryable += len(d)
        if len(d) <= k:
            continue
        tf = f.astype(np.float64)
        a = tf * (k1 + 1.0) / (tf + norm[d])
        order = np.lexsort((d, -a))  # best first, ties by docid
        z = a[order[k - 1]]
        rest = order[k:]
        ratios.append(a[rest] / z)
        tids.append(np.full(len(rest), t, dtype=np.int64))
        pos.append(rest)
    r = np.concatenate(ratios) if ratios else np.zeros(0)
    tt = np.concatenate(tids) if tids else np.zeros(0, dtype=np.int64)
    pp = np.concatenate(pos) if pos else np.zeros(0, dtype=np.int64)
    n_remove = removal_count(fraction, queryable)
    if n_remove > len(r):
        share = len(r) / max(1, queryable)
        raise HarnessError(f"postings-pruning: fraction={fraction} would remove {n_remove} postings, but the "
                           f"top-{k} rule can remove at most {len(r)} of {queryable} ({share:.3f}); "
                           "lower the fraction or k")
    docid_of = np.array([inv.docids[t][p] for t, p in zip(tt, pp)], dtype=np.int64) if len(tt) else tt
    order = np.lexsort((docid_of, tt, r))
    for i in order[:n_remove]:
        keep[tt[i]][pp[i]] = False
    eps = float(r[order[n_remove]]) if n_remove < len(r) else None
    return PostingsPlan(keep, queryable, n_remove, eps, len(r))


@register_method("postings-pruning", "retrieval", PostingsPruningParams)
class PostingsPruning(RetrievalMethod):
    """Term-centric postings pruning (Carmel et al. 2001, top-k epsilon rule) of a PISA BM25 index.

    Carmel, Cohen, Fagin, Farchi, Herscovici, Maarek, Soffer, "Static Index Pruning for Information
    Retrieval Systems", SIGIR 2001: per term t, z_t is the k-th highest score contribution of its
    postings and a posting (t, d) is removed when A(t,d) < epsilon * z_t. Here A is BM25's
    tf-saturation x length-normalisation factor with the index's k1, b (the IDF cancels in the
    ratio) and, instead of a fixed epsilon, the target is a ``fraction`` of the postings: the
    postings with the lowest A(t,d)/z_t go, so exactly that fraction (rounded half up) of the
    postings of queryable terms (stop-listed terms never answer a query and are left alone) is
    removed; the effective epsilon is stored. A term's k best postings always stay (the rule with
    epsilon <= 1); a fraction that needs more is refused with the maximum. The pruned index is
    exact: ``bm25``'s PISA index is read back (``inv.docs``/``inv.freqs``), the removed postings
    dropped, and PISA compresses the rest; document lengths stay the original ones (``inv.sizes``),
    while PISA's IDF is computed from the pruned lists' lengths (Carmel's scores keep the original
    IDF: a deviation). Stored: index size (bytes, postings) of both indexes, the fraction of
    postings removed and per-query latency on both indexes, interleaved in the same run.
    """

    def __init__(self, params: PostingsPruningParams):
        super().__init__(params)
        self.params: PostingsPruningParams = params
        self.num_results = 1000
        self._pruned_path: Path | None = None
        self._base: Any = None
        self.stats.update({"model_calls": 0})

    def index(self, corpus: Corpus) -> None:
        p, pisa = self.params, _pisa()
        self._base = unpruned_baseline(corpus, p)
        src = Path(self._base.stats["index_path"])
        final = cache_path("indexes", "postings-pruning", corpus.digest,
                           {"stemmer": p.stemmer, "stops": p.stops, "k1": p.k1, "b": p.b, "k": p.k,
                            "fraction": p.fraction, "pyterrier_pisa": pisa.__version__})
        figures: dict[str, Any] = {}

        def build(tmp: Path) -> None:
            inv = read_inverted(src)
            plan = plan_pruning(inv, p.fraction, p.k, p.k1, p.b, stop_term_ids(inv.terms, p.stops, p.stemmer))
            tmp.mkdir(parents=True)
            for name in LEXICON_FILES:
                shutil.copy2(src / name, tmp / name)
            write_inverted(tmp, InvertedFiles(inv.terms, [d[m] for d, m in zip(inv.docids, plan.keep)],
                                              [f[m] for f, m in zip(inv.freqs, plan.keep)], inv.sizes))
            figures.update({"postings_queryable": plan.queryable, "postings_removed": plan.removed,
                            "epsilon_effective": plan.epsilon, "postings_removable_max": plan.max_removable})

        build_dir_atomically(final, build, {"corpus": corpus.id, "corpus_digest": corpus.digest, "figures": figures})
        meta = json.loads((final / "harness_meta.json").read_text())
        figures = meta.get("figures") or figures
        self._pruned_path = final
        self.stats.update({"index_path": str(final), "documents": len(corpus),
                           "rule": f"top-{p.k} epsilon (Carmel 2001)", **figures,
                           "fraction_removed": figures["postings_removed"] / max(1, figures["postings_queryable"])})

    def transformer(self) -> Any:
        if self._pruned_path is None or self._base is None:
            raise HarnessError("postings-pruning: call index(corpus) before transformer()")
        pruned = open_retriever(self._pruned_path, self.params, self.num_results)
        self._base.set_depth(self.num_results)
        unpruned = self._base.transformer()
        p = self.params
        self.stats["index_size"] = index_size(self._pruned_path, p.stops, p.stemmer)
        self.stats["unpruned_index_size"] = index_size(self._base.stats["index_path"], p.stops, p.stemmer)
        return make_compared(pruned, unpruned, self.stats)
