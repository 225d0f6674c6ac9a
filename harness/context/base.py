"""The ``context-pruning`` family: interface, sentence splitting and top-k selection.

A method implements :meth:`ContextPruningMethod.select`: given the question and the passage's
sentences (as :func:`split_sentences` cut them), the indices of the sentences to keep. The final
:meth:`ContextPruningMethod.prune` checks them (in range, no repeats), returns them in passage
order and counts calls and seconds in ``self.stats``; the evaluator joins the kept sentences with
single spaces, so the context keeps the passage's order.

Budgets: top-k methods (:class:`TopKMethod`) keep ``k`` sentences per passage (all of them when the
passage has fewer); a ``k`` larger than the longest passage of the evaluated items would keep every
passage whole and is refused by :meth:`ContextPruningMethod.check_budget`, called from
``check_task`` before the run starts (nothing is stored) and again before the reader loads.
"""

from __future__ import annotations

import dataclasses
import re
import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from harness.errors import HarnessError, ParamError
from harness.kinds import CheapTask, MethodBase, SetupContext, SetupOutput
from harness.params import MethodParams

# ---------------------------------------------------------------------------------------------
# Sentence splitting

# Words whose trailing period does not end a sentence (compared lower-case, without the period).
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al approx fig figs eq eqs dr mr mrs ms prof st jr sr "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# A candidate boundary: end punctuation, optional closing quotes/brackets, whitespace, then what
# may start a sentence (an upper-case letter, a digit, an opening quote or bracket).
_BOUNDARY = re.compile(r"""([.!?]+["')\]]*)\s+(?=["'(\[]?[A-Z0-9])""")
_WORD_BEFORE = re.compile(r"(\S+)$")


def _is_abbreviation(text_before: str) -> bool:
    """Does the period closing ``text_before`` belong to a listed abbreviation?"""
    m = _WORD_BEFORE.search(text_before)
    return bool(m) and m.group(1).rstrip(".").lstrip("\"'([").lower() in ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Deterministic rule-based sentence splitting (no model, no data files).

    Whitespace runs (newlines included) become single spaces and the text is stripped. A sentence
    ends at ``.``, ``!`` or ``?`` (runs of them, with any closing quotes or brackets) followed by
    whitespace and then an upper-case letter, a digit, or an opening quote/bracket before one.
    Not a boundary: a single period after a listed abbreviation (:data:`ABBREVIATIONS`, e.g.
    "e.g.", "Dr.", "Fig.", "etc."), and anything not followed by whitespace (decimals "3.14",
    "U.S.A", formulas, URLs). A lower-case word after a period does not start a sentence
    ("E. coli", "... classes. midlandstech. edu ..." stay whole). Initials before a capitalised
    word ("J. Smith") and "U.S. Army" are split: the rule has no name list. Empty text gives no
    sentences.
    """
    text = " ".join(text.split())
    if not text:
        return []
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        end = m.end(1)
        if m.group(1).startswith(".") and len(m.group(1)) == 1 and _is_abbreviation(text[start:m.start(1)]):
            continue
        out.append(text[start:end])
        start = m.end()
    out.append(text[start:])
    return [s for s in out if s]


def top_k_indices(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores (all when fewer), ties to the earlier sentence, in
    ascending (passage) order."""
    if k < 0:
        raise ValueError(f"k={k} must be >= 0")
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:k])


# ---------------------------------------------------------------------------------------------
# The family


class ContextPruningMethod(MethodBase):
    """Base of the context-pruning methods: keep some sentences of a passage for a question."""

    family: ClassVar[str] = "context-pruning"
    takes_model: ClassVar[bool] = False  # the reader is the task's; a scorer model is a parameter
    scaffold: ClassVar[str | None] = "harness.context.scaffold_template:CONTEXT_PRUNING"
    cheap_task: ClassVar[CheapTask | None] = CheapTask("sciq-context", 2, small_params={"k": "1"})
    final_methods: ClassVar[tuple[str, ...]] = ("prune",)  # it checks and counts every selection

    def __init__(self, params: MethodParams):
        super().__init__(params)
        self.device = "cpu"
        self.stats = {"passages": 0, "sentences_seen": 0, "sentences_kept": 0, "prune_seconds": 0.0}

    def setup(self, ctx: SetupContext) -> SetupOutput:
        self.device = ctx.device  # scorer models load lazily, on first use
        return self.setup_output

    @classmethod
    def check_task(cls, params: MethodParams, task: Any, limit: int | None = None) -> None:
        """Before the run: :meth:`check_budget` against the passages the run will evaluate (the
        task's first ``limit`` items, read and split here: well under a second), so a budget no
        passage can hold is refused and nothing is stored."""
        from harness.context.context_pruning_task import load_items

        items, _counts, _files = load_items(task, limit)
        if items:
            cls(params).check_budget(max(len(it.sentences) for it in items))

    def check_budget(self, max_sentences: int) -> None:
        """Refuse a budget the evaluated passages cannot hold (``max_sentences``: the most
        sentences of any evaluated passage). Called before the run and again before the reader
        loads; default: accept."""

    @abstractmethod
    def select(self, question: str, sentences: list[str], item: str) -> Sequence[int]:
        """Indices (into ``sentences``) of the sentences to keep; ``item`` identifies the question
        (seeded methods derive their randomness from it, so a result does not depend on order)."""

    def prune(self, question: str, sentences: list[str], item: str) -> list[int]:
        """The kept indices in passage order (checked: in range, no repeats). Do not override."""
        t0 = time.perf_counter()
        kept = [int(i) for i in self.select(question, list(sentences), item)]
        self.stats["prune_seconds"] += time.perf_counter() - t0
        if len(set(kept)) != len(kept) or any(not 0 <= i < len(sentences) for i in kept):
            raise HarnessError(f"{self.method_name}: selected {kept} from {len(sentences)} sentences of {item}")
        self.stats["passages"] += 1
        self.stats["sentences_seen"] += len(sentences)
        self.stats["sentences_kept"] += len(kept)
        return sorted(kept)


@dataclasses.dataclass(frozen=True)
class TopKParams(MethodParams):
    k: int = 2  # sentences kept per passage (all when a passage has fewer)

    def check(self) -> None:
        if self.k < 1:
            raise ParamError(f"parameter k={self.k} must be >= 1 (keep-none keeps no sentence)")


class TopKMethod(ContextPruningMethod):
    """Keep the ``k`` sentences that :meth:`score` rates highest (ties: the earlier sentence)."""

    params: TopKParams

    def check_budget(self, max_sentences: int) -> None:
        if self.params.k > max_sentences:
            raise ParamError(
                f"parameter k={self.params.k} exceeds the longest evaluated passage ({max_sentences} sentences): "
                "every passage would be kept whole (that is keep-all)"
            )

    @abstractmethod
    def score(self, question: str, sentences: list[str]) -> Sequence[float]:
        """One relevance score per sentence (higher: more useful for the question)."""

    def select(self, question: str, sentences: list[str], item: str) -> list[int]:
        if len(sentences) <= self.params.k:
            return list(range(len(sentences)))  # nothing to rank: no scorer call
        scores = list(self.score(question, sentences))
        if len(scores) != len(sentences):
            raise HarnessError(f"{self.method_name}: {len(scores)} scores for {len(sentences)} sentences")
        return top_k_indices(scores, self.params.k)
