"""Perplexity-based data pruning with a small reference LM (Marion et al. 2023; Ankner et al. 2024)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness import config
from harness.datapruning.base import Learner, Pool, ScoreMethod
from harness.errors import ParamError
from harness.params import MethodParams
from harness.registry import register_method

KEEP_RULE = {"high": "hard", "low": "easy", "middle": "middle"}


@dataclass(frozen=True)
class PerplexityParams(MethodParams):
    keep: Literal["low", "middle", "high"] = "middle"  # which perplexities are kept
    model: Literal["smollm2-135m"] = "smollm2-135m"  # the embedded reference LM
    max_tokens: int = 32  # perplexity of the first max_tokens tokens of each item's text
    batch_size: int = 16

    NON_SEMANTIC = ("batch_size",)

    def check(self) -> None:
        if not 2 <= self.max_tokens <= 2048:
            raise ParamError(f"parameter max_tokens={self.max_tokens} must be in [2, 2048]")
        if self.batch_size < 1:
            raise ParamError(f"parameter batch_size={self.batch_size} must be >= 1")


def text_perplexities(texts: list[str], model, tokenizer, max_tokens: int, batch_size: int) -> np.ndarray:
    """exp(mean token NLL) of each text's first ``max_tokens`` tokens, every token predicted
    (an end-of-text token is prepended as the context of the first)."""
    import torch

    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    seqs = [[start] + tokenizer(t, add_special_tokens=False)["input_ids"][:max_tokens] for t in texts]
    out = np.zeros(len(texts))
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for b in range(0, len(seqs), batch_size):
        idx = order[b:b + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), start, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
            mask[r, :len(seqs[i])] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        m = mask[:, 1:].float()
        mean = (nll * m).sum(1) / m.sum(1).clamp(min=1)
        out[idx] = torch.exp(mean).double().numpy()
    return out


@register_method("perplexity", "data-pruning", PerplexityParams)
class PerplexityPruning(ScoreMethod):
    """Perplexity pruning: rank items by the perplexity a small reference LM gives their text; keep low, middle or high.

    Marion et al. 2023 ("When Less is More") and Ankner et al. 2024 ("Perplexed by Perplexity") prune
    pretraining text by a small reference model's perplexity; the middle or high band worked best
    there. Here the reference is the embedded SmolLM2-135M, the text is the item's task text
    (first ``max_tokens`` tokens), and labels are not used. Scores are cached per pool and model.
    """

    def keep_rule(self) -> str:
        return KEEP_RULE[self.params.keep]

    def scores(self, pool: Pool, learner: Learner) -> np.ndarray:
        p = self.params
        from harness.llm.models import EMBEDDED, embedded_checkpoint

        key = hashlib.sha256(json.dumps([EMBEDDED[p.model]["gguf_sha256"], p.max_tokens, pool.digest]).encode()).hexdigest()
        cache = config.cache_dir() / "datapruning" / "perplexity" / f"{key[:32]}.npy"
        if cache.is_file():
            self.stats["perplexity_cached"] = True
            return np.load(cache)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path, _info = embedded_checkpoint(p.model, progress=False)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(path)
        ppl = text_perplexities(pool.texts, model, tok, p.max_tokens, p.batch_size)
        self.stats["model_calls"] = -(-len(pool) // p.batch_size)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache.with_suffix(".tmp.npy"), ppl)
        cache.with_suffix(".tmp.npy").replace(cache)
        return ppl
