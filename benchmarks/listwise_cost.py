"""Listwise reranking cost per query (LLM calls, prompt tokens, generated tokens, seconds) against PRP
and QLM, on the same TREC DL 2019 queries and the same SmolLM2-135M, side by side in one run.

    HARNESS_DATA_DIR=/path/to/data HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/listwise_cost.py \
        [--queries 2] [--depth 20] [--window 10] [--step 5] [--methods listwise,first-listwise,prp,qlm]

The model is loaded once and shared; each method reranks one warm-up query (not counted), then
the next ``--queries`` queries at ``--depth``, timed with ``time.perf_counter``. An LLM call is one
sequence through the model: a window (listwise: prompt + greedy decoding; first-listwise: one
forward pass), an ordered pair prompt (prp, sliding, 10 passes, with its cache), a (passage,
query) pair (qlm). Prompt tokens of PRP and QLM are counted by wrapping their scoring helper
(the tokens of every sequence they send). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


class TokenCounter:
    """Wraps a scoring helper of _llm_scoring and sums the tokens of the sequences it is given."""

    def __init__(self, fn, tokenizer, pairs: bool):
        self.fn, self.tok, self.pairs, self.tokens = fn, tokenizer, pairs, 0

    def __call__(self, model, tokenizer, prompts, other, **kw):
        self.tokens += sum(len(self.tok(p)["input_ids"]) for p in prompts)
        if self.pairs:  # continuation_logprobs(model, tok, prefixes, continuations)
            self.tokens += sum(len(self.tok(c, add_special_tokens=False)["input_ids"]) for c in other)
        return self.fn(model, tokenizer, prompts, other, **kw)


def measure(name, params, loaded, warm, timed, n_queries):
    """(calls, prompt tokens, generated tokens, seconds) per query for one method."""
    import methods.reranking.prp as prp
    import methods.reranking.qlm as qlm
    from harness.registry import get_method

    info = get_method(name)
    method = info.cls(info.params_cls(**params), loaded=loaded)
    counter = None
    if name == "prp":
        counter = prp.next_token_logprobs = TokenCounter(prp.next_token_logprobs, loaded.tokenizer, False)
    if name == "qlm":
        counter = qlm.continuation_logprobs = TokenCounter(qlm.continuation_logprobs, loaded.tokenizer, True)
    t = method.transformer()
    t.progress = False
    try:
        t(warm)
        before = dict(method.stats)
        tokens0 = counter.tokens if counter else 0
        t0 = time.perf_counter()
        t(timed)
        dt = time.perf_counter() - t0
    finally:
        if name == "prp":
            prp.next_token_logprobs = counter.fn
        if name == "qlm":
            qlm.continuation_logprobs = counter.fn
    s = method.stats
    if name in ("listwise", "first-listwise"):
        calls = s["llm_calls"] - before["llm_calls"]
        prompt = s["prompt_tokens"] - before["prompt_tokens"]
        gen = s["generated_tokens"] - before["generated_tokens"]
    else:
        calls = s["model_calls"] - before["model_calls"]
        prompt, gen = counter.tokens - tokens0, 0
    return calls / n_queries, prompt / n_queries, gen / n_queries, dt / n_queries


def main() -> None:
    import torch

    from harness.ir.trecdl import load_collection
    from harness.llm.models import load_model
    from harness.tasks import get_task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--step", type=int, default=5)
    ap.add_argument("--max-passage-tokens", type=int, default=128)
    ap.add_argument("--methods", default="listwise,first-listwise,prp,qlm")
    args = ap.parse_args()

    fs = load_collection(get_task("trec-dl-2019")).first_stage
    fs["qid"] = fs["qid"].astype(str)
    qids = list(dict.fromkeys(fs["qid"]))
    warm, timed = fs[fs["qid"] == qids[0]], fs[fs["qid"].isin(qids[1 : 1 + args.queries])]
    loaded = load_model("smollm2-135m")
    print(f"SmolLM2-135M, device=cpu threads={torch.get_num_threads()}, DL19, {args.queries} queries after "
          f"1 warm-up query, depth {args.depth}, passages cut to {args.max_passage_tokens} tokens")
    print(f"{'method':34s} {'calls/q':>8s} {'prompt tok/q':>13s} {'gen tok/q':>10s} {'s/q':>8s}")
    cut = args.max_passage_tokens
    settings = {
        "listwise": (f"listwise w={args.window} s={args.step} 1 pass",
                     {"window": args.window, "step": args.step, "max_passage_tokens": cut}),
        "first-listwise": (f"first-listwise w={args.window} s={args.step}",
                           {"window": args.window, "step": args.step, "max_passage_tokens": cut}),
        "prp": ("prp sliding 10 passes (cache)", {"variant": "sliding", "passes": 10, "max_passage_tokens": cut}),
        "qlm": ("qlm", {"max_passage_tokens": cut}),
    }
    for name in args.methods.split(","):
        label, params = settings[name]
        calls, prompt, gen, sec = measure(name, {"depth": args.depth, **params}, loaded, warm, timed, args.queries)
        print(f"{label:34s} {calls:8.1f} {prompt:13.0f} {gen:10.1f} {sec:8.2f}", flush=True)


if __name__ == "__main__":
    main()
