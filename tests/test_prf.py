"""Pseudo-relevance feedback (rm3, bo1, dense-prf): expansion weights by hand on a toy PISA index,
Rocchio on toy vectors, the weighted query reaching PISA, and the refusals of bad parameters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import ParamError
from harness.ir.base import Corpus, Document
from harness.ir.collections import corpus_digest
from harness.registry import instantiate
from harness.runner import RunRequest, check_request

pytest.importorskip("pyterrier_pisa")

from methods.retrieval._prf import (  # noqa: E402
    TermStats,
    bo1_weights,
    quantise,
    rm3_weights,
    rocchio,
    stopword_list,
)

# Words Porter2 leaves as they are, so the hand computation reads the documents directly.
# Non-stopword lengths: d1 4 ("the" is a Terrier stopword), d2 3, d3 3, d4 4. N = 4.
TOY = {
    "d1": "cat dog cat the sun",
    "d2": "cat fish dog",
    "d3": "moon red blue",
    "d4": "sun moon bird cat",
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def stats(tmp_path: Path) -> TermStats:
    import pyterrier_pisa as pisa

    from methods.retrieval._common import silenced

    idx = pisa.PisaIndex(str(tmp_path / "toy"), text_field="text", stemmer="porter2", threads=1)
    with silenced():
        idx.index([{"docno": d, "text": t} for d, t in TOY.items()])
    return TermStats.from_pisa(tmp_path / "toy", "porter2", stopword_list("terrier"))


def _named(st: TermStats, weights: dict[int, float]) -> dict[str, float]:
    return {st.terms[t]: w for t, w in weights.items()}


def test_term_stats_read_from_the_pisa_index(stats: TermStats) -> None:
    st = stats
    assert st.num_docs == 4 and st.docnos == ["d1", "d2", "d3", "d4"]
    assert st.df[st.term_id["cat"]] == 3 and st.cf[st.term_id["cat"]] == 4
    assert st.df[st.term_id["the"]] == 1 and st.stop[st.term_id["the"]]
    assert st.doc_len.tolist() == [4, 3, 3, 4]  # "the" left out of d1
    ids, counts = st.doc_vector(st.doc_id["d1"])
    assert dict(zip([st.terms[i] for i in ids], counts.tolist(), strict=True)) == {"cat": 2, "dog": 1, "sun": 1}
    # the query as BM25 reads it: stemmed ("cats" -> cat), stopwords out; |q| also counts the unknown "zebra"
    qtf, qlen = st.query_terms("The cats and the moon zebra")
    assert _named(st, qtf) == {"cat": 1.0, "moon": 1.0} and qlen == 3


def test_rm3_weights_by_hand(stats: TermStats) -> None:
    st = stats
    qtf, qlen = st.query_terms("cat moon")
    fb = [(st.doc_id["d1"], 2.0), (st.doc_id["d2"], 1.0)]
    got = _named(st, rm3_weights(st, qtf, qlen, fb, fb_terms=2, fb_lambda=0.6, min_df=2, max_doc_fraction=1.0))
    p1, p2 = math.exp(2) / (math.exp(2) + math.exp(1)), math.exp(1) / (math.exp(2) + math.exp(1))
    # candidates: 2 <= df < int(1.0 x 4): cat (3), dog (2), sun (2), moon (2, not in d1/d2); fish (1) out
    cat = p1 * 2 / 4 + p2 * 1 / 3
    dog = p1 * 1 / 4 + p2 * 1 / 3
    sun = p1 * 1 / 4
    assert dog > sun  # so the top 2 are cat and dog
    expected = {
        "cat": 0.6 * 0.5 + 0.4 * cat / (cat + dog),
        "dog": 0.4 * dog / (cat + dog),
        "moon": 0.6 * 0.5,  # original query term, not a feedback term
    }
    assert got.keys() == expected.keys()
    for t, w in expected.items():
        assert got[t] == pytest.approx(w, rel=1e-12)
    assert sum(got.values()) == pytest.approx(1.0)
    # Terrier's default filter (df < int(0.1 x N) = 0 here) leaves no feedback term: the original query
    only = _named(st, rm3_weights(st, qtf, qlen, fb, fb_terms=2, fb_lambda=0.6))
    assert only == pytest.approx({"cat": 0.3, "moon": 0.3})


def test_bo1_weights_by_hand(stats: TermStats) -> None:
    st = stats
    qtf, _ = st.query_terms("cat moon")
    fb = [st.doc_id["d1"], st.doc_id["d2"]]
    # the bag d1 + d2: cat 3 (in 2 docs), dog 2 (2), sun 1 (1), fish 1 (1); sun and fish are in
    # fewer than min_docs=2 feedback documents and are not query terms: weight 0
    bo1_cat = 3 * math.log2((1 + 4 / 4) / (4 / 4)) + math.log2(1 + 4 / 4)  # F(cat) = 4, N = 4
    bo1_dog = 2 * math.log2((1 + 2 / 4) / (2 / 4)) + math.log2(1 + 2 / 4)  # F(dog) = 2
    f = 3 / 4  # parameter-free normaliser: the best term's tfx (3) in place of F
    norm = 3 * math.log2((1 + f) / f) + math.log2(1 + f)
    got = _named(st, bo1_weights(st, qtf, fb, fb_terms=10))
    assert got == pytest.approx({"cat": 1 + bo1_cat / norm, "dog": bo1_dog / norm, "moon": 1.0}, rel=1e-12)
    # Rocchio's beta instead: beta x Bo1 / max Bo1
    got = _named(st, bo1_weights(st, qtf, fb, fb_terms=10, beta=0.5))
    assert got == pytest.approx({"cat": 1.5, "dog": 0.5 * bo1_dog / bo1_cat, "moon": 1.0}, rel=1e-12)
    # max(fb_terms, |q|) terms are added: one for the one-term query "moon" (cat, the heaviest)
    qtf1, _ = st.query_terms("moon")
    assert _named(st, bo1_weights(st, qtf1, fb, fb_terms=1)) == pytest.approx({"moon": 1.0, "cat": bo1_cat / norm})


def test_quantise_matches_pisa_repeat_counts() -> None:
    terms = ["a", "b", "c"]
    assert quantise({0: 0.3, 1: 0.0004, 2: 1.25}, terms, 1000) == {"a": 300.0, "c": 1250.0}


def test_rocchio_on_toy_vectors() -> None:
    q = np.array([1.0, 0.0])
    pos = np.array([[0.0, 1.0], [1.0, 1.0]])
    neg = np.array([[1.0, 0.0]])
    assert rocchio(q, pos, None, 0.4, 0.6, 0.0) == pytest.approx([0.4 + 0.6 * 0.5, 0.6 * 1.0])
    assert rocchio(q, pos, neg, 0.4, 0.6, 0.5) == pytest.approx([0.7 - 0.5, 0.6])


def test_dense_prf_feedback_from_the_first_stage_ranking() -> None:
    m = instantiate("dense-prf", {"fb_docs": "2", "alpha": "0.4", "beta": "0.6", "gamma": "0.5", "fb_neg_docs": "1"})
    m._emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    m._docnos = ["a", "b", "c", "d"]
    m._tie = np.arange(4)
    m.set_depth(4)
    # first-stage scores for q = (1, 0): a 1, b 0.8, c 0, d -1 -> positives a, b; the negative: d (last of 4)
    got = m.expand_vectors(np.array([[1.0, 0.0]], dtype=np.float32))[0]
    assert got == pytest.approx([0.4 + 0.6 * 0.9 + 0.5 * 1.0, 0.6 * 0.3], rel=1e-6)
    m.set_depth(3)  # the run is 3 deep: the negative is c
    got = m.expand_vectors(np.array([[1.0, 0.0]], dtype=np.float32))[0]
    assert got == pytest.approx([0.4 + 0.6 * 0.9, 0.6 * 0.3 - 0.5 * 1.0], rel=1e-6)


# ---------------------------------------------------------------- the expanded query reaches PISA

PISA_TOY = {"d1": "cat dog", "d2": "cat dog fish", "d3": "dog moon", "d4": "bird sun"}


def _corpus() -> Corpus:
    docs = [Document(d, t) for d, t in PISA_TOY.items()]
    return Corpus("prf-toy", corpus_digest(docs), docs)


def _run(method: str, params: dict, query: str) -> pd.DataFrame:
    m = instantiate(method, params)
    m.set_depth(10)
    m.index(_corpus())
    return m, m.transformer()(pd.DataFrame({"qid": ["1"], "query": [query]}))


def test_expanded_query_reaches_pisa_with_its_weights() -> None:
    _, base = _run("bm25", {}, "cat")
    assert set(base["docno"]) == {"d1", "d2"}
    m, res = _run("rm3", {"max_doc_fraction": "1.0", "fb_docs": "2"}, "cat")
    # "dog" comes only from the feedback documents d1, d2 and retrieves d3, which has no "cat"
    fb = list(zip(base["docno"], base["score"], strict=True))
    q = m.expanded_query("cat", fb)
    assert set(q) == {"cat", "dog"} and q["dog"] > 0
    assert set(res["docno"]) == {"d1", "d2", "d3"}
    # and with its weight: d3's score is the integer weight of "dog" times BM25("dog", d3)
    _, dog = _run("bm25", {}, "dog")
    d3 = float(dog.loc[dog["docno"] == "d3", "score"].iloc[0])
    assert float(res.loc[res["docno"] == "d3", "score"].iloc[0]) == pytest.approx(q["dog"] * d3, rel=1e-5)


def test_rm3_with_the_original_query_only_ranks_as_bm25() -> None:
    _, base = _run("bm25", {}, "cat dog moon")
    _, res = _run("rm3", {"fb_lambda": "1.0"}, "cat dog moon")
    assert res["docno"].tolist() == base["docno"].tolist()


# ---------------------------------------------------------------- refusals, before any work


@pytest.mark.parametrize(("method", "params", "reason"), [
    ("rm3", {"fb_terms": "0"}, "fb_terms=0 must be >= 1"),
    ("rm3", {"fb_docs": "0"}, "fb_docs=0 must be >= 1"),
    ("rm3", {"fb_lambda": "1.5"}, "fb_lambda=1.5 must be in [0, 1]"),
    ("rm3", {"max_doc_fraction": "-0.1"}, "max_doc_fraction=-0.1 must be in [0, 1]"),
    ("bo1", {"beta": "1.2"}, "beta=1.2 must be in [0, 1]"),
    ("bo1", {"fb_terms": "-3"}, "fb_terms=-3 must be >= 1"),
    ("dense-prf", {"alpha": "2"}, "alpha=2.0 must be in [0, 1]"),
    ("dense-prf", {"beta": "-0.5"}, "beta=-0.5 must be in [0, 1]"),
    ("dense-prf", {"gamma": "0.2"}, "needs fb_neg_docs >= 1"),
])
def test_bad_parameters_are_refused(method: str, params: dict, reason: str) -> None:
    with pytest.raises(ParamError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        instantiate(method, params)


@pytest.mark.parametrize("method", ["rm3", "bo1", "dense-prf"])
def test_more_feedback_documents_than_the_depth_is_refused_at_check(method: str) -> None:
    # vaswani's cutoff is 1000: refused by check_request, before any index or model is loaded
    with pytest.raises(ParamError, match="fb_docs=1001 exceeds the first stage's depth 1000"):
        check_request(RunRequest(method=method, params={"fb_docs": "1001"}, tasks=["vaswani"]))
    check_request(RunRequest(method=method, params={"fb_docs": "1000"}, tasks=["vaswani"]))  # at the depth: accepted
    with pytest.raises(ParamError, match="exceeds the first stage's depth 10"):
        instantiate(method, {"fb_docs": "11"}).set_depth(10)
