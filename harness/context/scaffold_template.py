"""The context-pruning family's scaffold: what `harness new-method NAME --family context-pruning` writes.

A real, minimal scorer (the fraction of the question's words a sentence contains) and its test on a
hand-made passage, to be replaced by the submitter's own.
"""

from harness.kinds import Scaffold

_CODE = '''"""{title}: {summary}"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.context.base import TopKMethod, TopKParams
from harness.registry import register_method

TOKEN = re.compile(r"\\w+")


def terms(text: str) -> set[str]:
    return set(TOKEN.findall(text.lower()))


@dataclass(frozen=True)
class {cls}Params(TopKParams):
    """Parameters of {name}: ``k``, the sentences kept per passage (range checked by TopKParams)."""


@register_method("{name}", "context-pruning", {cls}Params)
class {cls}(TopKMethod):
    """{title}: {summary}

    Replace this with your scorer and cite its paper here. ``score(question, sentences)`` returns
    one number per sentence (higher: more useful to the reader); the base class keeps the top ``k``
    in passage order (ties: the earlier sentence) and refuses a ``k`` longer than every evaluated
    passage. A method with another budget implements ``select(question, sentences, item)`` on
    ContextPruningMethod instead.
    """

    def score(self, question: str, sentences: list[str]) -> list[float]:
        q = terms(question)
        return [len(q & terms(s)) / max(len(q), 1) for s in sentences]
'''

_TEST = '''"""Tests of the {name} context-pruning adapter on a hand-made passage."""

import pytest

from harness.context.base import split_sentences
from harness.errors import ParamError
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params

PASSAGE = "Plants make sugar by photosynthesis. The sky is blue. Photosynthesis needs light and water."
QUESTION = "Which light and water does photosynthesis need?"


def method(k: str) -> {cls}:
    return {cls}(build_params({cls}Params, {{"k": k}}, method="{name}"))


def test_registered_as_a_context_pruning_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "context-pruning"


def test_keeps_the_sentences_sharing_most_question_words_in_passage_order():
    sentences = split_sentences(PASSAGE)
    assert len(sentences) == 3
    assert method("2").score(QUESTION, sentences) == [1 / 7, 0.0, 4 / 7]
    assert method("1").prune(QUESTION, sentences, "q1") == [2]
    assert method("2").prune(QUESTION, sentences, "q1") == [0, 2]


def test_a_short_passage_is_kept_whole_and_the_budget_is_checked():
    assert method("2").prune(QUESTION, ["One sentence."], "q2") == [0]
    with pytest.raises(ParamError):
        method("2").check_budget(1)  # k=2 above every evaluated passage would be keep-all
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"k": "0"}}, method="{name}")
'''

CONTEXT_PRUNING = Scaffold(_CODE, _TEST, "keep the k sentences that contain the most of the question's words.",
                           folder="context")
