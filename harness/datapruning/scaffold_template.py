"""The data-pruning family's scaffold: what `harness new-method NAME --family data-pruning` writes.

A real, minimal score (the cosine distance of an item to its class's mean embedding) and its test
on a hand-made pool of five items, to be replaced by the submitter's own.
"""

from harness.kinds import Scaffold

_CODE = '''"""{title}: {summary}"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.datapruning.base import Keep, Learner, Pool, ScoreMethod
from harness.params import MethodParams
from harness.registry import register_method


@dataclass(frozen=True)
class {cls}Params(MethodParams):
    """Parameters of {name}: which end of the score ordering is kept."""

    keep: Keep = "hard"  # hard: the farthest from their class mean kept; easy: the nearest; middle


@register_method("{name}", "data-pruning", {cls}Params)
class {cls}(ScoreMethod):
    """{title}: {summary}

    Replace this with your selection rule and cite its paper here. ``scores`` returns one number per
    pool item (``pool`` holds the frozen embeddings, labels and texts; ``learner`` trains the task's
    fixed head if your score needs a model); the base class keeps the top of the ``keep`` ordering,
    exactly as many items as each fraction asks, and the task trains and scores the learner on them.
    A rule that is not a score implements ``select_count(pool, m, learner)`` on DataPruningMethod.
    """

    def scores(self, pool: Pool, learner: Learner) -> np.ndarray:
        x = np.asarray(pool.embeddings, dtype=np.float64)
        out = np.zeros(len(pool))
        for label in np.unique(pool.labels):
            members = pool.labels == label
            mean = x[members].mean(0)
            norms = np.linalg.norm(x[members], axis=1) * np.linalg.norm(mean)
            out[members] = 1.0 - (x[members] @ mean) / np.maximum(norms, 1e-12)
        return out
'''

_TEST = '''"""Tests of the {name} data-pruning adapter on a hand-made pool of five items."""

import numpy as np
import pytest

from harness.datapruning.base import Learner, LearnerSpec, Pool
from harness.errors import ParamError
from harness.params import build_params
from harness.registry import METHODS
from {module} import {cls}, {cls}Params


def pool() -> Pool:
    # class 0: items 0 and 1 on one direction, item 2 off it; class 1: items 3 and 4, identical
    emb = np.array([[1, 0], [1, 0], [0.6, 0.8], [0, 1], [0, 1]], dtype=np.float32)
    return Pool(ids=[f"i{{i}}" for i in range(5)], texts=list("abcde"), labels=np.array([0, 0, 0, 1, 1]),
                embeddings=emb / np.linalg.norm(emb, axis=1, keepdims=True), num_classes=2)


def select(params: dict, fractions: list[float]) -> dict:
    p = pool()
    method = {cls}(build_params({cls}Params, params, method="{name}"))
    return method.select(p, fractions, Learner(LearnerSpec(), dim=2, num_classes=p.num_classes))


def test_registered_as_a_data_pruning_method():
    info = METHODS.get("{name}")
    assert info.cls is {cls} and info.family == "data-pruning"


def test_keeps_the_items_farthest_from_their_class_mean():
    kept = select({{}}, [0.2, 0.6, 1.0])
    assert list(kept[0.2]) == [2]  # the off-direction member of class 0
    assert list(kept[0.6]) == [0, 1, 2]  # then its two class-mates; class 1 sits on its mean
    assert list(kept[1.0]) == [0, 1, 2, 3, 4]


def test_easy_keeps_the_nearest():
    assert list(select({{"keep": "easy"}}, [0.6])[0.6]) == [0, 3, 4]


def test_refuses_an_unknown_keep_rule():
    with pytest.raises(ParamError):
        build_params({cls}Params, {{"keep": "random"}}, method="{name}")
'''

DATA_PRUNING = Scaffold(_CODE, _TEST, "keep the pool items farthest from their class's mean embedding (cosine distance).",
                        folder="data")
