"""Shared plumbing of the reranking adapters: the PyTerrier transformer and params base.

Every reranker is a :class:`RerankTransformer` (a real ``pyterrier.Transformer``) around a function
that re-scores the top ``depth`` candidates of one query. The output has the input's rows and
columns, with ``score`` replaced and ``rank`` recomputed:

* the first stage's order is read from ``rank`` when present, else from ``score`` (descending,
  ties by docno ascending);
* the top ``depth`` rows get the reranker's scores; the rows below keep their first-stage order
  beneath them, with scores ``min(new top scores) - 1, - 2, ...`` so that any evaluator that sorts
  by score (ir-measures / trec_eval do) sees the same ranking as ``rank``;
* ``rank`` is recomputed from the new scores by ``pyterrier.model.add_ranks`` on the rows sorted
  by (score descending, docno ascending), so ties go to the smaller docno; ranks start at
  ``pyterrier.model.FIRST_RANK`` (0); rows come out sorted by (qid in input order, rank) and
  columns in the input's order.

The loop over queries is written out rather than ``pt.apply.by_query``: by_query groups with
``groupby("qid")`` (queries come out sorted by qid, not in input order) and wraps every error of
the scorer in a bare ``Exception("Problem applying ...")``, which would hide the ``HarnessError``
the user is meant to see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import pyterrier as pt

from harness.errors import HarnessError, ParamError
from harness.params import MethodParams
from methods.retrieval._common import add_ranks

REQUIRED_COLUMNS = ("qid", "query", "docno", "text")

# (query, [passage texts in first-stage order]) -> one score per passage (higher = more relevant)
QueryScorer = Callable[[str, list[str]], list[float]]


@dataclasses.dataclass(frozen=True)
class RerankParams(MethodParams):
    """Parameters shared by every reranker."""

    model: str = ""
    depth: int = 100  # rerank the top `depth` of the first stage; the rest keep their order below
    batch_size: int = 16
    NON_SEMANTIC: ClassVar[tuple[str, ...]] = ("batch_size",)

    def check(self) -> None:
        if self.depth < 1:
            raise ParamError(f"parameter depth={self.depth} must be >= 1")
        if self.batch_size < 1:
            raise ParamError(f"parameter batch_size={self.batch_size} must be >= 1")
        if not self.model:
            raise ParamError("parameter model must name a model")


def order_first_stage(group: Any) -> Any:
    """One query's rows in first-stage order (by rank, else by score desc then docno)."""
    if "rank" in group.columns:
        return group.sort_values(["rank", "docno"], kind="stable")
    if "score" in group.columns:
        return group.sort_values(["score", "docno"], ascending=[False, True], kind="stable")
    return group


def apply_scores(group: Any, top_scores: list[float]) -> Any:
    """Give the first len(top_scores) rows these scores, the rest descending scores below them."""
    import numpy as np

    group = group.copy()
    n_top = len(top_scores)
    top = np.asarray(top_scores, dtype=np.float64)
    if not np.all(np.isfinite(top)):
        raise HarnessError("a reranker produced a non-finite score")
    tail = top.min() - np.arange(1, len(group) - n_top + 1, dtype=np.float64) if n_top else -np.arange(
        1, len(group) + 1, dtype=np.float64
    )
    group["score"] = np.concatenate([top, tail])
    columns = list(group.columns) + ([] if "rank" in group.columns else ["rank"])
    group = group.sort_values(["score", "docno"], ascending=[False, True], kind="stable")
    # on rows in (score desc, docno asc) order, add_ranks' "first" tie rule gives ties to the smaller docno
    return add_ranks(group, single_query=True)[columns]


class RerankTransformer(pt.Transformer):
    """first stage with text -> the same rows re-scored and re-ranked (see module doc)."""

    def __init__(self, scorer: QueryScorer, depth: int, name: str, progress: bool = True):
        self.scorer = scorer
        self.depth = depth
        self.name = name
        self.progress = progress

    def __repr__(self) -> str:
        return f"RerankTransformer({self.name}, depth={self.depth})"

    def transform(self, inp: Any) -> Any:
        import pandas as pd
        from tqdm.auto import tqdm

        missing = [c for c in REQUIRED_COLUMNS if c not in inp.columns]
        if missing:
            raise HarnessError(
                f"reranker {self.name}: input lacks column(s) {missing}; a reranker needs a first stage "
                f"with passage text ({', '.join(REQUIRED_COLUMNS)}); found {list(inp.columns)}"
            )
        if len(inp) == 0:
            out = inp.copy()
            out["score"] = pd.Series(dtype="float64")
            out["rank"] = pd.Series(dtype="int64")
            return out
        groups = []
        qids = list(dict.fromkeys(inp["qid"]))
        for qid in tqdm(qids, desc=self.name, disable=not self.progress, leave=False):
            group = order_first_stage(inp[inp["qid"] == qid])
            queries = group["query"].unique()
            if len(queries) != 1:
                raise HarnessError(f"reranker {self.name}: query {qid} has {len(queries)} different query texts")
            top = group.iloc[: self.depth]
            scores = self.scorer(str(queries[0]), [str(t) for t in top["text"]])
            if len(scores) != len(top):
                raise HarnessError(f"reranker {self.name}: {len(scores)} scores for {len(top)} passages")
            groups.append(apply_scores(group, list(scores)))
        return pd.concat(groups, ignore_index=True)
