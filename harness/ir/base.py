"""Interfaces of the retrieval and reranking families.

Both families are PyTerrier transformers, so pipelines compose with ``>>``, ``%`` and ``+``:

* a retrieval adapter builds an index over a corpus once (cached under
  ``cache_dir()/indexes/<method>/<corpus digest>-<params digest>``) and returns a transformer that
  maps topics (``qid``, ``query``) to a ranked run (``qid``, ``docno``, ``score``, ``rank``);
* a reranking adapter returns a transformer that maps a first-stage run with passage text
  (``qid``, ``query``, ``docno``, ``text``, ``score``, ``rank``) to re-scored rows.

Adapters count their model calls in ``self.stats`` (e.g. ``{"model_calls": 1234}``) so the cost of
LLM rerankers is stored with the result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.params import MethodParams


@dataclass(frozen=True)
class Document:
    docno: str
    text: str
    title: str = ""


@dataclass
class Corpus:
    """A document collection with a content digest (indexes are cached by it)."""

    id: str
    digest: str  # sha256 over (docno, title, text) in corpus order
    documents: list[Document]

    def __len__(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    def iter_dicts(self) -> Iterable[dict[str, str]]:
        for d in self.documents:
            yield {"docno": d.docno, "text": f"{d.title}\n{d.text}" if d.title else d.text}


@dataclass
class IRCollection:
    """What an IR task evaluates on: corpus (retrieval) or a first stage (reranking), topics, qrels."""

    id: str
    topics: Any  # pandas.DataFrame[qid, query]
    qrels: Any  # pandas.DataFrame[query_id, doc_id, relevance] (ir-measures layout)
    corpus: Corpus | None = None
    first_stage: Any | None = None  # pandas.DataFrame[qid, query, docno, text, score, rank]
    data: list[dict[str, Any]] = field(default_factory=list)  # ResolvedData.provenance() entries


class RetrievalMethod(ABC):
    method_name: ClassVar[str]
    family: ClassVar[str] = "retrieval"
    Params: ClassVar[type[MethodParams]]

    def __init__(self, params: MethodParams):
        self.params = params
        self.stats: dict[str, Any] = {}

    @abstractmethod
    def index(self, corpus: Corpus) -> None:
        """Build (or load from cache) the index of ``corpus``."""

    @abstractmethod
    def transformer(self) -> Any:
        """A PyTerrier transformer: topics -> ranked run."""


class RerankingMethod(ABC):
    method_name: ClassVar[str]
    family: ClassVar[str] = "reranking"
    Params: ClassVar[type[MethodParams]]

    def __init__(self, params: MethodParams):
        self.params = params
        self.stats: dict[str, Any] = {}

    @abstractmethod
    def transformer(self) -> Any:
        """A PyTerrier transformer: first-stage run with text -> re-scored run."""
