"""The multiple-choice reader of context-pruning tasks: log-likelihood of each answer choice.

The prompt is lm-eval's SciQ prompt (lm-eval 0.4 ``sciq.yaml``) with the pruned context in place
of the support paragraph::

    {context}\\nQuestion: {question}\\nAnswer:

and each choice is scored as the continuation ``" {choice}"``: the sum of
``log P(choice token | prompt, earlier choice tokens)``. The prompt is tokenised with the
tokenizer's special tokens and the continuation without, and their ids concatenated (as
:func:`methods.reranking._llm_scoring.continuation_logprobs` does), so the scored tokens are
exactly the choice's own. The prompt runs through the model once per question; the choices' later
tokens then run in one batched forward on the prompt's key/value cache, which gives the same
log-probabilities as scoring each (prompt, choice) sequence whole (to float rounding; checked by
the slow test), at about a quarter of the cost for four choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.llm.latency import cache_keyword, returned_cache

PROMPT = "{context}\nQuestion: {question}\nAnswer:"


def build_prompt(context: str, question: str) -> str:
    """lm-eval's SciQ ``doc_to_text`` with ``context`` as the support (left-stripped, as there)."""
    return PROMPT.format(context=context.lstrip(), question=question)


@dataclass
class ChoiceScores:
    logprobs: list[float]  # summed log-probability of each choice
    lengths: list[int]  # characters of each scored continuation (for acc_norm, as lm-eval)
    prompt_tokens: int  # tokens of the prompt the reader read


class LMReader:
    """A causal LM answering multiple-choice questions by the log-likelihood of each choice."""

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu"):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.stats = {"questions": 0, "prompt_tokens": 0, "choice_forwards": 0}
        self._cache_arg = cache_keyword(model)  # ``cache`` (transformers 5.x) or ``past_key_values``

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no special tokens): the measure of a context's cost."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def score(self, context: str, question: str, choices: Sequence[str]) -> ChoiceScores:
        import torch

        prompt_ids = list(self.tokenizer(build_prompt(context, question), add_special_tokens=True)["input_ids"])
        conts = [" " + c for c in choices]
        ids = [list(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in conts]
        if any(not i for i in ids):
            raise HarnessError(f"an empty answer choice in {list(choices)!r} (question {question[:60]!r})")
        n = len(prompt_ids)
        with torch.inference_mode():
            first = self.model(input_ids=torch.tensor([prompt_ids], device=self.device), use_cache=True)
            last = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
            totals = [float(last[i[0]]) for i in ids]
            longer = [j for j, i in enumerate(ids) if len(i) > 1]
            if longer:
                for j, lp in zip(longer, self._rest(returned_cache(first), n, [ids[j] for j in longer])):
                    totals[j] += lp
        self.stats["questions"] += 1
        self.stats["prompt_tokens"] += n
        return ChoiceScores(totals, [len(c) for c in conts], n)

    def _rest(self, cache: Any, n: int, seqs: list[list[int]]) -> list[float]:
        """log P(tokens 2.. of each sequence | prompt, earlier tokens): one batched forward on the
        prompt's cache repeated per sequence, the sequences right-padded (a padded position comes
        after every real one, so it changes no real position's output). The cache is the prompt
        forward's own, used once, so it is repeated in place."""
        import torch

        width = max(len(s) for s in seqs) - 1
        inp = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), n + width), dtype=torch.long)
        mask[:, :n] = 1
        for r, s in enumerate(seqs):
            inp[r, : len(s) - 1] = torch.tensor(s[:-1])
            mask[r, n : n + len(s) - 1] = 1
        cache.batch_repeat_interleave(len(seqs))
        res = self.model(input_ids=inp.to(self.device), attention_mask=mask.to(self.device),
                         **{self._cache_arg: cache}, use_cache=True)
        self.stats["choice_forwards"] += 1
        lp = torch.log_softmax(res.logits.float(), dim=-1)
        return [float(lp[r, torch.arange(len(s) - 1), torch.tensor(s[1:])].sum()) for r, s in enumerate(seqs)]


def load_reader(model_id: str, device: str = "cpu") -> tuple[LMReader, dict[str, Any]]:
    """The reader named by a task's ``protocol.reader`` (any id harness.llm.models resolves) and
    its model record (id, content digest, info) for the result."""
    from harness.llm.models import load_model, model_digest

    loaded = load_model(model_id, device=device)
    if loaded.tokenizer is None:
        raise HarnessError(f"reader {model_id!r} has no tokenizer")
    if loaded.random_weights:
        raise HarnessError(f"reader {model_id!r} has random weights: its answers would mean nothing")
    return LMReader(loaded.model, loaded.tokenizer, device), {
        "id": model_id, "digest": model_digest(model_id), "info": loaded.info}
