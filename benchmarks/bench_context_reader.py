"""The context-pruning reader: the cached-prompt scorer against scoring each (prompt, choice) whole.

    HF_HUB_OFFLINE=1 python benchmarks/bench_context_reader.py [--questions 10] [--rounds 2]

The first ``--questions`` SciQ questions of ``sciq-context`` with their whole passages, read by
the embedded SmolLM2-135M. Baseline: ``continuation_logprobs`` (the LLM rerankers' scorer) on the
four (prompt, " choice") sequences of each question, batched per question. Harness: ``LMReader``,
which runs the prompt once and the choices' later tokens in one batched forward on its cache.
Variants alternate per round (same questions, same process); prints s/question for each, their
ratio and the largest difference in a choice's log-likelihood. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> None:
    import torch

    from harness.context.context_pruning_task import load_items
    from harness.context.reader import LMReader, build_prompt
    from harness.llm.models import load_model
    from harness.tasks import get_task
    from methods.reranking._llm_scoring import continuation_logprobs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    items, _counts, _data = load_items(get_task("sciq-context"), args.questions)
    lm = load_model("smollm2-135m")
    reader = LMReader(lm.model, lm.tokenizer)

    def harness_scores() -> list[list[float]]:
        return [reader.score(" ".join(it.sentences), it.question, it.choices).logprobs for it in items]

    def baseline_scores() -> list[list[float]]:
        out = []
        for it in items:
            prompt = build_prompt(" ".join(it.sentences), it.question)
            res = continuation_logprobs(lm.model, lm.tokenizer, [prompt] * len(it.choices),
                                        [" " + c for c in it.choices], batch_size=len(it.choices))
            out.append([v[0] for v in res.values])
        return out

    times: dict[str, list[float]] = {"baseline": [], "harness": []}
    scores: dict[str, list[list[float]]] = {}
    harness_scores()  # warm-up, not timed
    for _ in range(args.rounds):
        for name, fn in (("baseline", baseline_scores), ("harness", harness_scores)):
            t0 = time.perf_counter()
            scores[name] = fn()
            times[name].append((time.perf_counter() - t0) / len(items))
    diff = max(abs(a - b) for qa, qb in zip(scores["baseline"], scores["harness"]) for a, b in zip(qa, qb))
    base, ours = min(times["baseline"]), min(times["harness"])
    print(f"device=cpu threads={torch.get_num_threads()} questions={len(items)} rounds={args.rounds} "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"baseline (each prompt+choice whole): {base:.3f} s/question")
    print(f"harness (prompt once, cached):       {ours:.3f} s/question   ratio {ours / base:.2f}")
    print(f"largest log-likelihood difference: {diff:.2e}")


if __name__ == "__main__":
    main()
