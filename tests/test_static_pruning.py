"""Static index pruning (static-pruning, postings-pruning): the stated fraction is removed, the
pruned index answers only from what was kept, the length score orders documents, bad input is
refused before any work."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import ParamError
from harness.ir.base import Corpus, Document
from harness.registry import instantiate

pyterrier_pisa = pytest.importorskip("pyterrier_pisa")

from methods.retrieval._index_pruning import read_inverted, removal_count  # noqa: E402
from methods.retrieval.postings_pruning import plan_pruning  # noqa: E402
from methods.retrieval.static_pruning import docs_to_remove, length_scores  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


WORDS = "apple river stone cloud maple tiger piano rocket forest candle violet ocean".split()


def _corpus(n: int = 20) -> Corpus:
    rng = np.random.default_rng(0)
    docs = []
    for i in range(n):
        length = 3 + (i * 7) % 17  # distinct-ish lengths
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=length)]
        docs.append(Document(f"d{i:02d}", " ".join(words) + f" uniq{i}"))
    digest = hashlib.sha256("|".join(d.docno + d.text for d in docs).encode()).hexdigest()
    return Corpus("toy", digest, docs)


def _topics(queries: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"qid": [str(i) for i in range(len(queries))], "query": queries})


def _run(method, corpus: Corpus, queries: list[str]) -> pd.DataFrame:
    method.set_depth(1000)
    method.index(corpus)
    return method.transformer()(_topics(queries))


# ---------------------------------------------------------------- scores and selection


def test_length_score_counts_index_tokens_and_short_documents_go_first():
    texts = ["one two three", "a", "Cat's U.S.A. sat-on 3.5", "w " * 10]
    # PISA's tokens: cat, usa, sat, on, 3, 5 (the possessive dropped, the acronym joined)
    assert length_scores(texts).tolist() == [3, 1, 6, 10]
    docnos = ["a", "b", "c", "d"]
    assert docs_to_remove(length_scores(texts), docnos, 0.5).tolist() == [0, 1]  # the two shortest
    # ties by docno ascending
    assert docs_to_remove(np.array([1.0, 1.0, 1.0, 5.0]), ["z", "x", "y", "w"], 0.5).tolist() == [1, 2]


def test_removal_count_rounds_half_up_and_keeps_one():
    assert removal_count(0.3, 20) == 6
    assert removal_count(0.25, 10) == 3  # 2.5 -> 3
    assert removal_count(0.9, 1) == 0
    assert removal_count(0.99, 10) == 9


# ---------------------------------------------------------------- static-pruning end to end


def test_static_pruning_removes_exactly_the_fraction_and_never_returns_a_removed_document():
    corpus = _corpus(20)
    m = instantiate("static-pruning", {"fraction": "0.3", "score": "length"})
    lengths = length_scores([d.text for d in corpus])
    removed = {corpus.documents[i].docno for i in np.argsort(lengths, kind="stable")[:6]}
    # each document's unique token: a removed document's own token finds nothing
    run = _run(m, corpus, [f"uniq{i}" for i in range(20)] + [" ".join(WORDS)])
    assert m.stats["documents_removed"] == 6 and m.stats["fraction_removed"] == pytest.approx(0.3)
    assert m.stats["index_size"]["documents"] == 14
    assert m.stats["unpruned_index_size"]["documents"] == 20
    assert not set(run["docno"]) & removed
    assert set(run[run["qid"] == "20"]["docno"]) == {d.docno for d in corpus} - removed
    found = set(run[run["qid"].astype(int) < 20]["docno"])
    assert found == {d.docno for d in corpus} - removed
    assert m.stats["index_size"]["postings"] < m.stats["unpruned_index_size"]["postings"]
    lat = m.stats["latency_vs_unpruned"]
    assert lat["pruned"]["n"] == lat["unpruned"]["n"] == 21


# ---------------------------------------------------------------- postings-pruning


def test_plan_follows_carmel_rule_on_constructed_lists():
    from methods.retrieval._index_pruning import InvertedFiles

    # one term over 6 equal-length documents, tf 1..6; k=2: z = A(tf=5); the rest have ratio < 1
    inv = InvertedFiles(["t", "stop"], [np.arange(6, dtype=np.uint32), np.arange(6, dtype=np.uint32)],
                        [np.array([3, 1, 6, 2, 5, 4], dtype=np.uint32), np.ones(6, dtype=np.uint32)],
                        np.full(6, 10, dtype=np.uint32))
    plan = plan_pruning(inv, 0.34, k=2, k1=0.9, b=0.4, stop_ids={1})
    assert plan.queryable == 6 and plan.removed == 2  # round(0.34 * 6) = 2
    assert plan.keep[0].tolist() == [True, False, True, False, True, True]  # tf 1 and 2 go
    assert plan.keep[1].all()  # stop-listed term untouched
    a = lambda tf: tf * 1.9 / (tf + 0.9)  # noqa: E731 - dl = avgdl
    assert plan.epsilon == pytest.approx(a(3) / a(5))
    with pytest.raises(Exception, match="at most 4"):
        plan_pruning(inv, 0.9, k=2, k1=0.9, b=0.4, stop_ids={1})


def test_postings_pruning_removes_the_fraction_and_pruned_postings_no_longer_match():
    corpus = _corpus(20)
    m = instantiate("postings-pruning", {"fraction": "0.3", "k": "2"})
    queries = list(WORDS)
    run = _run(m, corpus, queries)
    st = m.stats
    assert st["postings_removed"] == removal_count(0.3, st["postings_queryable"])
    assert st["index_size"]["postings"] == st["unpruned_index_size"]["postings"] - st["postings_removed"]
    assert st["fraction_removed"] == pytest.approx(st["postings_removed"] / st["postings_queryable"])
    # what each word matches in the pruned index = the documents whose posting survived
    pruned = read_inverted(Path(st["index_path"]))
    docno = [d.docno for d in corpus]
    gone_somewhere = False
    for qi, w in enumerate(queries):
        t = pruned.terms.index(pyterrier_pisa.tokenize(w, pyterrier_pisa.PisaStemmer.porter2)[0])
        kept = {docno[i] for i in pruned.docids[t]}
        contains = {d.docno for d in corpus if w in d.text.split()}
        got = set(run[run["qid"] == str(qi)]["docno"])
        assert got == kept <= contains
        gone_somewhere |= kept != contains
    assert gone_somewhere
    lat = st["latency_vs_unpruned"]
    assert lat["pruned"]["n"] == lat["unpruned"]["n"] == len(queries)
    # document lengths are the original ones
    base = read_inverted(Path(m._base.stats["index_path"]))
    assert pruned.sizes.tolist() == base.sizes.tolist()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("method", ["static-pruning", "postings-pruning"])
@pytest.mark.parametrize("fraction", ["0", "1", "1.5", "-0.1"])
def test_fraction_outside_open_unit_interval_is_refused(method, fraction):
    with pytest.raises(ParamError, match="fraction"):
        instantiate(method, {"fraction": fraction})


def test_unknown_score_is_refused():
    with pytest.raises(ParamError, match="score"):
        instantiate("static-pruning", {"score": "pagerank"})


# ---------------------------------------------------------------- model-based scores (embedded models)


@pytest.mark.slow
def test_perplexity_score_ranks_gibberish_below_prose():
    from methods.retrieval.static_pruning import perplexity_scores

    texts = ["The experiment measured the pressure distribution over the wing at several speeds.",
             "zq xv wib ploo fnarg 77 qq zzt vorp jinx blarg"]
    scores, calls = perplexity_scores(texts, max_tokens=32, batch_size=2, device="cpu", progress=False)
    assert calls == 1 and scores[0] > scores[1]  # minus the perplexity: higher is better
    assert docs_to_remove(scores, ["a", "b"], 0.5).tolist() == [1]


@pytest.mark.slow
def test_quality_proxy_ranks_the_off_topic_document_lowest():
    from methods.retrieval.static_pruning import quality_scores

    docs = [Document(f"d{i}", t) for i, t in enumerate([
        "boundary layer transition on a flat plate at supersonic speed",
        "heat transfer in the laminar boundary layer of a cone",
        "pressure distribution over a swept wing in supersonic flow",
        "my favourite chocolate cake recipe with three eggs"])]
    corpus = Corpus("toy-q", hashlib.sha256(b"toy-q").hexdigest(), docs)
    scores, _, _ = quality_scores(corpus, batch_size=4, device="cpu")
    assert int(np.argmin(scores)) == 3
