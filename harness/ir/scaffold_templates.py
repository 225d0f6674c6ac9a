"""The IR families' scaffolds: what `harness new-method NAME --family retrieval|reranking` writes.

Real, minimal algorithms (retrieval: distinct query terms a document contains; reranking: the
fraction of query terms a passage contains) and their tests, to be replaced by the submitter's own.
"""

from harness.kinds import Scaffold

_RETRIEVAL = '''"""{title}: {summary}"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from harness.registry import register_method

TOKEN = re.compile(r"\\w+")


@dataclass(frozen=True)
class {cls}Params(MethodParams):
    """Parameters of {name}: how text is split into terms."""

    lowercase: bool = True
    min_term_length: int = 2

    def check(self) -> None:
        if self.min_term_length < 1:
            raise ParamError(f"parameter min_term_length={{self.min_term_length}} must be >= 1")


@register_method("{name}", "retrieval", {cls}Params)
class {cls}(RetrievalMethod):
    """{title}: {summary}

    Replace this with your retriever and cite its paper here. ``index`` builds an index over the
    corpus once; ``transformer`` returns a PyTerrier transformer from topics (qid, query) to a
    ranked run (qid, docno, score, rank) of at most ``self.num_results`` documents per query.
    Ties are broken by docno ascending.
    """

    def __init__(self, params: {cls}Params):
        super().__init__(params)
        self.params: {cls}Params = params
        self._docnos: list[str] = []
        self._postings: dict[str, list[int]] | None = None

    def terms(self, text: str) -> set[str]:
        text = text.lower() if self.params.lowercase else text
        return {{t for t in TOKEN.findall(text) if len(t) >= self.params.min_term_length}}

    def index(self, corpus: Corpus) -> None:
        postings: dict[str, list[int]] = defaultdict(list)
        self._docnos = [d.docno for d in corpus]
        for i, doc in enumerate(corpus):
            for term in self.terms(f"{{doc.title}} {{doc.text}}"):
                postings[term].append(i)
        self._postings = dict(postings)
        self.stats.update({{"documents": len(corpus), "terms": len(postings), "model_calls": 0}})

    def search(self, query: str) -> tuple[list[str], list[float]]:
        """(docnos, scores) of one query: documents by distinct query terms matched, then docno."""
        if self._postings is None:
            raise HarnessError("{name}: call index(corpus) before searching")
        counts: Counter[int] = Counter()
        for term in self.terms(query):
            counts.update(self._postings.get(term, ()))
        best = sorted(counts.items(), key=lambda kv: (-kv[1], self._docnos[kv[0]]))[: self.num_results]
        return [self._docnos[i] for i, _ in best], [float(c) for _, c in best]

    def transformer(self) -> Any:
        import pandas as pd
        import pyterrier as pt

        def run(topics: pd.DataFrame) -> pd.DataFrame:
            rows = []
            for qid, query in zip(topics["qid"], topics["query"]):
                docnos, scores = self.search(str(query))
                rows += [{{"qid": qid, "query": query, "docno": d, "score": s, "rank": r}}
                         for r, (d, s) in enumerate(zip(docnos, scores))]
            return pd.DataFrame(rows, columns=["qid", "query", "docno", "score", "rank"])

        return pt.apply.generic(run)
'''

_RETRIEVAL_TEST = '''"""Tests of the {name} retrieval adapter on a three-document corpus."""

import pandas as pd
import pytest

from harness.errors import ParamError
from harness.ir.base import Corpus, Document
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params

DOCS = [Document("d1", "pruning large language models"), Document("d2", "language models"),
        Document("d3", "retrieval of passages")]


def indexed() -> {cls}:
    method = {cls}(build_params({cls}Params, {{}}, method="{name}"))
    method.index(Corpus("toy", "0" * 64, DOCS))
    return method


def test_registered_as_a_retrieval_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "retrieval"


def test_ranks_documents_by_query_terms_matched():
    run = indexed().transformer()(pd.DataFrame({{"qid": ["q1"], "query": ["pruning language models"]}}))
    assert list(run["docno"]) == ["d1", "d2"]  # d1 matches 3 terms, d2 two, d3 none (not returned)
    assert list(run["rank"]) == [0, 1] and run["score"].is_monotonic_decreasing


def test_depth_is_respected():
    method = indexed()
    method.set_depth(1)
    assert method.search("language models")[0] == ["d1"]  # d1 and d2 tie: the smaller docno


def test_refuses_out_of_range_params():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"min_term_length": "0"}}, method="{name}")
'''

_RERANKING = '''"""{title}: {summary}"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParamError
from harness.ir.base import RerankingMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.reranking._common import RerankTransformer

TOKEN = re.compile(r"\\w+")


@dataclass(frozen=True)
class {cls}Params(MethodParams):
    """Parameters of {name}: how deep into the first stage it reranks."""

    depth: int = 100  # rerank the top `depth`; the rest keep their first-stage order below

    def check(self) -> None:
        if self.depth < 1:
            raise ParamError(f"parameter depth={{self.depth}} must be >= 1")


def terms(text: str) -> set[str]:
    return set(TOKEN.findall(text.lower()))


@register_method("{name}", "reranking", {cls}Params)
class {cls}(RerankingMethod):
    """{title}: {summary}

    Replace this with your reranker and cite its paper here. ``score(query, passages)`` returns one
    score per passage (higher = more relevant); ``RerankTransformer`` applies it to the top
    ``depth`` candidates of each query and recomputes the ranks (ties by docno ascending).
    """

    def score(self, query: str, passages: list[str]) -> list[float]:
        q = terms(query)
        return [len(q & terms(p)) / max(len(q), 1) for p in passages]

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, "{name}")
'''

_RERANKING_TEST = '''"""Tests of the {name} reranking adapter on a hand-made first stage."""

import pandas as pd
import pytest

from harness.errors import ParamError
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params


def test_registered_as_a_reranking_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "reranking"


def test_scores_are_the_fraction_of_query_terms():
    method = {cls}(build_params({cls}Params, {{}}, method="{name}"))
    assert method.score("sparse models", ["sparse models", "models only", "nothing"]) == [1.0, 0.5, 0.0]


def test_reranks_the_first_stage():
    first = pd.DataFrame({{"qid": ["q1"] * 3, "query": ["sparse models"] * 3, "docno": ["a", "b", "c"],
                          "text": ["nothing here", "models only", "sparse models"],
                          "score": [3.0, 2.0, 1.0], "rank": [0, 1, 2]}})
    method = {cls}(build_params({cls}Params, {{}}, method="{name}"))
    out = method.transformer()(first)
    assert list(out["docno"]) == ["c", "b", "a"] and list(out["rank"]) == [0, 1, 2]


def test_refuses_out_of_range_params():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"depth": "0"}}, method="{name}")
'''

RETRIEVAL = Scaffold(_RETRIEVAL, _RETRIEVAL_TEST, 'rank documents by the number of distinct query terms they contain.')
RERANKING = Scaffold(_RERANKING, _RERANKING_TEST, 'rerank passages by the fraction of query terms they contain.')
