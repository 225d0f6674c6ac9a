"""Interfaces of the retrieval and reranking families.

Both families are PyTerrier transformers, so pipelines compose with ``>>``, ``%`` and ``+``:

* a retrieval adapter builds an index over a corpus once (cached under
  ``cache_dir()/indexes/<method>/<corpus digest>-<params digest>``) and returns a transformer that
  maps topics (``qid``, ``query``) to a ranked run (``qid``, ``docno``, ``score``, ``rank``);
* a reranking adapter returns a transformer that maps a first-stage run with passage text
  (``qid``, ``query``, ``docno``, ``text``, ``score``, ``rank``) to re-scored rows.

Adapters count their model calls in ``self.stats`` (e.g. ``{"model_calls": 1234}``) so the cost of
LLM rerankers is stored with the result.

Lifecycle: the runner calls ``method.setup(ctx)`` once per run (rerankers take the run's device
from it), then the evaluator of each task; a retrieval evaluator sets the depth of the run with
``method.set_depth(cutoff)``, and the latency pass asks for a top k with ``timing_transformer(k)``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.kinds import CheapTask, MethodBase, SetupContext, SetupOutput


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


class _IRMethod(MethodBase):
    """What both IR families share: the model is a parameter (--params model=...), not --model."""

    takes_model: ClassVar[bool] = False

    def setup(self, ctx: SetupContext) -> SetupOutput:
        """Called once per run: the method takes the run's device (models load lazily, on first use)."""
        self.device = ctx.device
        return self.setup_output


class RetrievalMethod(_IRMethod):
    family: ClassVar[str] = "retrieval"
    scaffold: ClassVar[str | None] = "harness.ir.scaffold_templates:RETRIEVAL"
    cheap_task: ClassVar[CheapTask | None] = CheapTask("sciq-derived", 5)
    num_results: int = 1000  # depth of the run the transformer returns

    def set_depth(self, depth: int) -> None:
        """Retrieve exactly ``depth`` documents per topic (the task's cut-off), after
        :meth:`check_depth` accepts it for this method's parameters."""
        self.check_depth(self.params, int(depth))
        self.num_results = int(depth)

    def timing_transformer(self, k: int) -> Any:
        """A transformer that returns the top ``k`` (the latency pass times each query at k = 10 as
        well as at the run's depth: dynamic pruning skips most at small k). Default: ``set_depth(k)``
        then ``transformer()``, which every adapter that reads ``num_results`` honours. A method that
        cannot change its depth may return its usual transformer: the pass records the depth it
        served and says so. The evaluator restores the run's depth afterwards."""
        self.set_depth(k)
        return self.transformer()

    @classmethod
    def check_task(cls, params: Any, task: Any, limit: int | None = None) -> None:
        """Before any work: ``check_depth`` with the depth the task will set (its protocol's cutoff)."""
        cls.check_depth(params, int(task.protocol.get("cutoff", 1000)))

    @classmethod
    def check_depth(cls, params: Any, depth: int) -> None:
        """Raise ``ParamError`` when ``params`` cannot retrieve ``depth`` documents (default: accept)."""

    def setup(self, ctx: SetupContext) -> SetupOutput:
        # retrievers read their device from their own parameters (an index is device-independent)
        return self.setup_output

    @abstractmethod
    def index(self, corpus: Corpus) -> None:
        """Build (or load from cache) the index of ``corpus``."""

    @abstractmethod
    def transformer(self) -> Any:
        """A PyTerrier transformer: topics -> ranked run."""


class RerankingMethod(_IRMethod):
    family: ClassVar[str] = "reranking"
    scaffold: ClassVar[str | None] = "harness.ir.scaffold_templates:RERANKING"
    cheap_task: ClassVar[CheapTask | None] = CheapTask("trec-dl-2019", 2, small_params={"depth": "10"},
                                                       needs_data_dir=True)

    @abstractmethod
    def transformer(self) -> Any:
        """A PyTerrier transformer: first-stage run with text -> re-scored run."""
