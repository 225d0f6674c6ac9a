"""Single-token listwise reranking from first-token logits (FIRST: Reddy et al., EMNLP 2024, "FIRST:
Faster Improved Listwise Reranking with Single Token Decoding", arXiv:2406.15657).

The same sliding windows and prompt as ``listwise`` (RankGPT), but the passages are labelled with
single-token identifiers ``[A]..[Z]`` and nothing is decoded: the answer is primed with its
opening ``[`` and the window is ranked by the logits of the first generated token over the
identifier tokens (highest first; ties keep the window's order). One forward pass per window, no
decoding and no parsing, so no repairs: the cost drops from prompt + ~4 tokens per passage of
greedy decoding to the prompt alone.

Differences from the paper: FIRST fine-tunes its reranker (Zephyr-7B) with a ranking loss on the
first-token logits; here the logits of an off-the-shelf instruction model (SmolLM2-135M-Instruct
by default) are used zero-shot, without that training, so the figures measure the single-token
inference, not the FIRST model. The window is at most 26 (the letters).

Cost, per query (sidecar) and in total (method stats): LLM calls (one forward pass per window),
prompt tokens, generated tokens (always 0), wall seconds.
"""

from __future__ import annotations

import dataclasses
import string

from harness.errors import ParamError
from harness.registry import register_method
from methods.reranking._listwise_common import ListwiseMethod, ListwiseParams, WindowResult, build_prompt
from methods.reranking._llm_scoring import next_token_logprobs, single_token_id

LABELS = string.ascii_uppercase


@dataclasses.dataclass(frozen=True)
class FirstListwiseParams(ListwiseParams):
    def check(self) -> None:
        super().check()
        if self.window > len(LABELS):
            raise ParamError(f"parameter window={self.window} must be <= {len(LABELS)} for first-listwise "
                             "(passages are labelled A..Z, one token each)")


@register_method("first-listwise", "reranking", FirstListwiseParams)
class FirstListwiseReranking(ListwiseMethod):
    """Single-token listwise reranking (FIRST, Reddy et al. 2024): windows ranked by first-token logits."""

    tag = "first-listwise"

    def llm_window(self, query: str, passages: list[str]) -> WindowResult:
        tok = self.loaded.tokenizer
        labels = list(LABELS[: len(passages)])
        ids = [single_token_id(tok, lab) for lab in labels]
        prompt = build_prompt(tok, query, passages, labels, self.params.max_passage_tokens, self.params.chat)
        n_prompt = len(tok(prompt, add_special_tokens=True)["input_ids"])
        self.check_context(n_prompt)
        res = next_token_logprobs(self.loaded.model, tok, [prompt], ids, batch_size=1)
        logits = res.values[0]
        order = sorted(range(len(passages)), key=lambda j: (-logits[j], j))
        return WindowResult(order, prompt_tokens=n_prompt, generated_tokens=0, repairs=None)
