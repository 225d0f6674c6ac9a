"""LM-scored top-k sentences: relevance = how likely the question is given the sentence, under the reader's LM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.context.base import TopKMethod, TopKParams
from harness.errors import ParamError
from harness.registry import register_method
from methods.reranking._llm_scoring import continuation_logprobs

PROMPT = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"  # UPR's, as qlm


@dataclass(frozen=True)
class LMTopKParams(TopKParams):
    model: str = "smollm2-135m"  # the scoring LM (default: the reader's own model)
    batch_size: int = 16
    NON_SEMANTIC = ("batch_size",)

    def check(self) -> None:
        super().check()
        if self.batch_size < 1:
            raise ParamError(f"parameter batch_size={self.batch_size} must be >= 1")


@register_method("lm-topk", "context-pruning", LMTopKParams)
class LMTopK(TopKMethod):
    """Keep the k sentences under which the LM finds the question most likely (query likelihood per sentence).

    score(sentence) = mean over the question's tokens of log P(question token | UPR prompt with the
    sentence as the passage, earlier question tokens), the ``qlm`` reranker's score (Sachan et al.
    2022) applied to single sentences, with the embedded SmolLM2-135M (the reader's own model) by
    default. Provence-like in spirit (Chirkova et al. 2025 mark the context's relevant sentences for
    the question with a trained cross-encoder and keep those) but zero-shot: no trained pruning
    head, and a fixed budget of k sentences instead of Provence's threshold. Ties go to the earlier sentence.
    """

    params: LMTopKParams

    def __init__(self, params: LMTopKParams, loaded: Any | None = None):
        super().__init__(params)
        self._loaded = loaded  # a harness.llm.models.LoadedModel, loaded lazily from params.model
        self.stats |= {"model_calls": 0, "forward_passes": 0}

    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from harness.llm.models import load_model

            self._loaded = load_model(self.params.model, device=self.device)
            if self._loaded.tokenizer is None:
                raise ParamError(f"model {self.params.model!r} has no tokenizer; lm-topk needs one")
        return self._loaded

    def score(self, question: str, sentences: list[str]) -> list[float]:
        prefixes = [PROMPT.format(passage=s) for s in sentences]
        res = continuation_logprobs(self.loaded.model, self.loaded.tokenizer, prefixes,
                                    [" " + question.strip()] * len(sentences), batch_size=self.params.batch_size)
        self.stats["model_calls"] += res.model_calls
        self.stats["forward_passes"] += res.forward_passes
        return [total / n for total, n in res.values]
