"""Listwise reranking by generated permutations (RankGPT: Sun et al., EMNLP 2023, "Is ChatGPT Good at
Search? Investigating Large Language Models as Re-Ranking Agents", arXiv:2304.09542).

The LLM sees ``window`` passages labelled ``[1]..[w]`` with the query, and writes their order,
``[3] > [1] > [2] ...``. Windows slide from the bottom of the first-stage list to the top,
``step`` positions at a time (RankGPT's defaults: window 20, step 10), so strong passages bubble
up; ``passes`` repeats the whole sweep. The prompt is RankGPT's instruction as one user turn in
the model's chat template (SmolLM2-135M-Instruct by default), and the answer is primed with its
opening ``[``; decoding is greedy and stops at the end-of-turn token, a newline, or the first
character that cannot belong to a ranking (anything but digits, brackets, ``>`` and spaces: only
the text before it is parsed), and at most after the tokens a full permutation needs plus 8. The
last rule is a cost cut of this adapter: a model that drifts into prose stops paying for tokens
the parser would mostly ignore.

The generated text is parsed robustly (:func:`methods.reranking._listwise_common.parse_permutation`):
every integer is an id; ids out of range and repeated ids are dropped (the first occurrence
kept), and ids never written are appended in their window order. Each kind of repair is counted
in the run's method stats (``repair_out_of_range``, ``repair_repeated``, ``repair_missing``,
``repaired_windows``).

Cost, per query (extra fields of each query's row in the per-item sidecar) and in total
(method stats): LLM calls (one per window), prompt tokens, generated tokens, wall seconds.

Differences from the reference implementation: RankGPT's loop stops before a window would start
above the top of the list, which can leave the top positions unseen when ``depth - window`` is not
a multiple of ``step``; here the last window is clamped to start at the top (as rank_llm does).
A window larger than ``depth`` is refused; a query with fewer candidates than the window gets one
window over all of them (counted as ``short_lists``).
"""

from __future__ import annotations

import re
from typing import Any

from harness.registry import register_method
from methods.reranking._listwise_common import (
    ListwiseMethod,
    ListwiseParams,
    WindowResult,
    build_prompt,
    parse_permutation,
)


# what a ranking "[3] > [1] > [2]" is written with; decoding stops at the first other character
_OFF_FORMAT = re.compile(r"[^\d\[\]>\s]")


def answer_prefix(text: str) -> str:
    """The generated text up to its first character that cannot be part of a ranking."""
    m = _OFF_FORMAT.search(text)
    return text if m is None else text[: m.start()]


class _StopOffFormat:
    """A transformers stopping criterion: stop once the answer leaves the ranking format."""

    def __init__(self, tokenizer: Any, prompt_len: int):
        self.tok, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        text = self.tok.decode(input_ids[0, self.prompt_len:], skip_special_tokens=True)
        done = _OFF_FORMAT.search(text) is not None
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def _stop_ids(tokenizer: Any) -> list[int]:
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    nl = tokenizer("\n", add_special_tokens=False)["input_ids"]
    if len(nl) == 1:
        ids.append(int(nl[0]))
    return ids


@register_method("listwise", "reranking", ListwiseParams)
class ListwiseReranking(ListwiseMethod):
    """Listwise reranking (RankGPT, Sun et al. 2023): sliding windows, generated permutations, repaired."""

    tag = "listwise"

    def max_new_tokens(self, k: int) -> int:
        tok = self.loaded.tokenizer
        full = " > ".join(f"[{i}]" for i in range(k, 0, -1))[1:]  # the prompt already holds the first "["
        return len(tok(full, add_special_tokens=False)["input_ids"]) + 8

    def llm_window(self, query: str, passages: list[str]) -> WindowResult:
        import torch

        tok, model = self.loaded.tokenizer, self.loaded.model
        k = len(passages)
        prompt = build_prompt(tok, query, passages, [str(i) for i in range(1, k + 1)],
                              self.params.max_passage_tokens, self.params.chat)
        ids = tok(prompt, add_special_tokens=True, return_tensors="pt")["input_ids"]
        budget = self.max_new_tokens(k)
        self.check_context(ids.shape[1] + budget)
        device = next(model.parameters()).device
        stop = _stop_ids(tok)
        from transformers import StoppingCriteriaList

        with torch.inference_mode():
            out = model.generate(ids.to(device), attention_mask=torch.ones_like(ids).to(device),
                                 max_new_tokens=budget, do_sample=False, num_beams=1,
                                 eos_token_id=stop or None, pad_token_id=stop[0] if stop else None,
                                 stopping_criteria=StoppingCriteriaList([_StopOffFormat(tok, ids.shape[1])]))
        new = out[0, ids.shape[1]:].tolist()
        n_gen = len(new)
        while new and new[-1] in stop:  # the stop token is generated but is no part of the answer
            new.pop()
        parsed = parse_permutation("[" + answer_prefix(tok.decode(new, skip_special_tokens=True)), k)
        return WindowResult(parsed.order, prompt_tokens=int(ids.shape[1]), generated_tokens=n_gen,
                            repairs=parsed.repairs)
