"""A toy retrieval method and an in-memory collection for the Judged@10 and latency cut-off tests:
fixed rankings, each call logged with the depth it was asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.ir.base import IRCollection, RetrievalMethod
from harness.params import MethodParams
from harness.registry import METHODS, register_method

METHOD_NAME = "ir-toy-retriever"
TASK_ID = "vaswani"  # a real retrieval task definition (its data is replaced by the toy collection)

# q1: 12 retrieved, judged a (1), b (0) in the top 10 and c (2) at rank 11 -> Judged@10 = 2/10
# q2: 4 retrieved, x (1) judged -> Judged@10 = 1/4 (ir-measures divides by the documents retrieved)
# q3: judged (z), nothing retrieved -> 0
RANKINGS: dict[str, list[str]] = {
    "1": ["a", "u1", "b", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "c", "u9"],
    "2": ["y1", "x", "y2", "y3"],
    "3": [],
}
QRELS = [("1", "a", 1), ("1", "b", 0), ("1", "c", 2), ("2", "x", 1), ("3", "z", 1)]
EXPECTED_JUDGED = {"1": 2 / 10, "2": 1 / 4, "3": 0.0}


def collection() -> IRCollection:
    from harness.ir.base import Corpus, Document

    docs = sorted({d for r in RANKINGS.values() for d in r} | {d for _q, d, _r in QRELS})
    corpus = Corpus("toy", "0" * 64, [Document(d, f"text {d}") for d in docs])
    topics = pd.DataFrame({"qid": list(RANKINGS), "query": [f"query {q}" for q in RANKINGS]})
    qrels = pd.DataFrame(QRELS, columns=["query_id", "doc_id", "relevance"])
    return IRCollection("toy", topics, qrels, corpus, None, [{"name": "toy", "sha256": "0" * 64}])


CALLS: list[tuple[int, int]] = []  # (depth asked for, queries) of every transformer call


@dataclass(frozen=True)
class ToyParams(MethodParams):
    fixed_depth: bool = False  # True: ignores the depth it is asked for (cannot change k)


class ToyRetriever(RetrievalMethod):
    """A toy retriever with fixed rankings (tests)."""

    def index(self, corpus: Any) -> None:
        pass

    def transformer(self) -> Any:
        depth = None if self.params.fixed_depth else self.num_results

        def run(topics: pd.DataFrame) -> pd.DataFrame:
            CALLS.append((self.num_results, len(topics)))
            rows = [(q, d, float(100 - i)) for q in topics["qid"].astype(str)
                    for i, d in enumerate(RANKINGS[q][:depth])]
            return pd.DataFrame(rows, columns=["qid", "docno", "score"])

        return run

    def timing_transformer(self, k: int) -> Any:
        if self.params.fixed_depth:
            return self.transformer()  # cannot be asked for a top k: timed at its depth
        return super().timing_transformer(k)


def install(monkeypatch: Any) -> None:
    METHODS.load()
    if METHOD_NAME not in METHODS:
        register_method(METHOD_NAME, "retrieval", ToyParams)(ToyRetriever)
    monkeypatch.setattr("harness.ir.evaluate.load_ir_collection", lambda task: collection())
    monkeypatch.setattr("harness.ir.collections.load_ir_collection", lambda task: collection())
    CALLS.clear()


def uninstall() -> None:
    if METHOD_NAME in METHODS:
        METHODS.unregister(METHOD_NAME)
