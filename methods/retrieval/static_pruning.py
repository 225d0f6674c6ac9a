"""Document-centric static index pruning: drop the lowest-quality documents, index the rest (PISA BM25)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from harness.errors import HarnessError, ParamError
from harness.ir.base import Corpus, RetrievalMethod
from harness.registry import register_method
from methods.retrieval._common import (
    build_dir_atomically,
    cache_path,
    length_batches,
    save_array_atomically,
    silenced,
)
from methods.retrieval._index_pruning import (
    PruningBM25Params,
    index_size,
    make_compared,
    open_retriever,
    removal_count,
    unpruned_baseline,
)
from methods.retrieval.bm25 import _pisa

SCORES = ("length", "perplexity", "quality")


@dataclass(frozen=True)
class StaticPruningParams(PruningBM25Params):
    # length: tokens of the indexed text; perplexity: SmolLM2-135M on the first max_tokens tokens
    # (lower is better); quality: cosine of the MiniLM embedding to the corpus centroid
    score: Literal["length", "perplexity", "quality"] = "length"
    max_tokens: int = 128  # LM tokens per document for the perplexity score (its cost)
    batch_size: int = 16
    device: str = "cpu"

    NON_SEMANTIC = ("threads", "verbose", "batch_size", "device")

    def check(self) -> None:
        if self.score not in SCORES:
            raise ParamError(f"parameter score={self.score!r} is not a known quality score; one of {list(SCORES)}")
        super().check()
        if not 8 <= self.max_tokens <= 2048:
            raise ParamError(f"parameter max_tokens={self.max_tokens} must be in [8, 2048]")
        if self.batch_size < 1:
            raise ParamError(f"parameter batch_size={self.batch_size} must be >= 1")


def length_scores(texts: list[str]) -> np.ndarray:
    """Number of index tokens of each text (PISA's tokenizer, before stemming and stopping)."""
    pisa = _pisa()
    return np.array([len(pisa.tokenize(t)) for t in texts], dtype=np.float64)


def docs_to_remove(scores: np.ndarray, docnos: list[str], fraction: float) -> np.ndarray:
    """Indices of the ``removal_count(fraction, n)`` lowest-scoring documents (higher score = better
    quality), ties broken by docno ascending."""
    n = removal_count(fraction, len(docnos))
    order = np.lexsort((np.asarray(docnos, dtype=object).astype(str), scores))
    return np.sort(order[:n])


def perplexity_scores(texts: list[str], max_tokens: int, batch_size: int, device: str,
                      progress: bool = True) -> tuple[np.ndarray, int]:
    """Per document: minus its perplexity (exp of the mean next-token NLL) under SmolLM2-135M over its
    first ``max_tokens`` tokens (BOS prepended when the tokenizer has one); a document of fewer than
    two tokens gets the vocabulary size (a uniform guess). Returns (scores, model calls)."""
    import torch

    from harness.llm.models import load_model

    lm = load_model("smollm2-135m", device=device)
    tok, model = lm.tokenizer, lm.model
    out = np.zeros(len(texts), dtype=np.float64)
    calls = 0
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    ids = [bos + tok(t, add_special_tokens=False)["input_ids"][: max_tokens] for t in texts]
    for batch in tqdm(length_batches(["x" * len(i) for i in ids], batch_size), desc="perplexity", unit="batch",
                      disable=not progress, mininterval=5):
        width = max(len(ids[i]) for i in batch)
        x = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        with torch.inference_mode():
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.float().cpu()
        calls += 1
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), x[:, 1:], reduction="none")
        m = mask[:, 1:].float()
        mean = (nll * m).sum(1) / m.sum(1).clamp(min=1.0)
        out[batch] = -torch.exp(mean).numpy()
    # a document without a token to predict: the perplexity of a uniform guess over the vocabulary
    empty = np.array([len(i) - len(bos) < 2 for i in ids], dtype=bool)
    out[empty] = -float(len(tok))
    return out, calls


def quality_scores(corpus: Corpus, batch_size: int, device: str) -> tuple[np.ndarray, str, int]:
    """In the spirit of Chang et al.'s passage-quality estimate (not their trained QualT5): cosine of a
    document's all-MiniLM-L6-v2 embedding to the corpus centroid. The embeddings are the
    ``dense-retrieval`` ones (same cache)."""
    from methods.retrieval.dense import DenseParams, MeanPoolEncoder

    p = DenseParams(batch_size=batch_size, device=device)
    enc = MeanPoolEncoder(p.model, p.max_length, p.normalize, p.device)
    key = {"model_digest": enc.digest, "max_length": p.max_length, "normalize": p.normalize}
    path = cache_path("encodings", "dense", corpus.digest, key).with_suffix(".npz")
    texts = [d["text"] for d in corpus.iter_dicts()]
    if path.exists():
        emb = np.load(path)["emb"]
    else:
        emb = np.zeros((len(texts), enc.model.config.hidden_size), dtype=np.float32)
        for batch in tqdm(length_batches(texts, batch_size), desc=f"MiniLM encoding {corpus.id}", unit="batch",
                          mininterval=5):
            emb[batch] = enc.encode([texts[i] for i in batch])
        save_array_atomically(path, emb=emb)
    centroid = emb.astype(np.float64).mean(axis=0)
    centroid /= max(np.linalg.norm(centroid), 1e-12)
    norms = np.linalg.norm(emb.astype(np.float64), axis=1).clip(min=1e-12)
    return (emb.astype(np.float64) @ centroid) / norms, enc.digest, enc.calls


@register_method("static-pruning", "retrieval", StaticPruningParams)
class StaticPruning(RetrievalMethod):
    """Static document pruning: the lowest-quality `fraction` of documents is never indexed (BM25, PISA).

    Document-centric static pruning (the setting of Chang et al., "Neural Passage Quality
    Estimation for Static Pruning", SIGIR 2024): every document gets a query-independent quality
    score, the ``fraction`` with the lowest scores (rounded half up; ties by docno) is removed, and
    the rest is indexed exactly as ``bm25`` does (PISA, same stemmer, stop list at query time,
    BM25 k1/b). Scores (``score=``): ``length`` (index tokens; short documents go first);
    ``perplexity`` (SmolLM2-135M over the first ``max_tokens`` tokens; the most perplexing go first;
    cached per corpus); ``quality``: *in the spirit of* Chang et al., not their trained QualT5
    estimator, a cheap offline proxy: the cosine between the document's all-MiniLM-L6-v2 embedding
    and the corpus centroid (documents far from what the collection is about go first).
    The statistics of IDF and average length are those of the kept documents. Stored with the
    result: index size (bytes of the compressed index and its WAND data, of every file but the
    forward index; postings) of the pruned and the unpruned index, documents removed, and
    per-query latency on both, interleaved on the same queries in the same run.
    """

    def __init__(self, params: StaticPruningParams):
        super().__init__(params)
        self.params: StaticPruningParams = params
        self.num_results = 1000
        self._pruned_path: Any = None
        self._base: Any = None
        self.stats.update({"model_calls": 0})

    def _scores(self, corpus: Corpus) -> np.ndarray:
        p = self.params
        if p.score == "length":
            return length_scores([d["text"] for d in corpus.iter_dicts()])
        if p.score == "quality":  # the MiniLM embeddings are cached (the dense-retrieval cache)
            scores, digest, calls = quality_scores(corpus, p.batch_size, p.device)
            self.stats.update({"model_calls": calls, "score_model_digest": digest})
            return scores
        from harness.llm.models import model_digest

        digest = model_digest("smollm2-135m")
        key = {"score": p.score, "max_tokens": p.max_tokens, "model_digest": digest}
        path = cache_path("scores", "static-pruning", corpus.digest, key).with_suffix(".npz")
        self.stats.update({"score_model_digest": digest, "scores_cached": path.exists()})
        if path.exists():
            return np.load(path)["scores"]
        texts = [d["text"] for d in corpus.iter_dicts()]
        scores, calls = perplexity_scores(texts, p.max_tokens, p.batch_size, p.device)
        save_array_atomically(path, scores=scores)
        self.stats["model_calls"] = calls
        return scores

    def index(self, corpus: Corpus) -> None:
        p, pisa = self.params, _pisa()
        scores = self._scores(corpus)
        if scores.shape[0] != len(corpus):
            raise HarnessError(f"static-pruning: {scores.shape[0]} scores for {len(corpus)} documents")
        docnos = [d.docno for d in corpus.documents]
        removed = docs_to_remove(scores, docnos, p.fraction)
        gone = set(removed.tolist())
        kept_digest = hashlib.sha256(np.asarray(removed, dtype=np.int64).tobytes()).hexdigest()
        final = cache_path("indexes", "static-pruning", corpus.digest,
                           {"stemmer": p.stemmer, "pyterrier_pisa": pisa.__version__, "removed": kept_digest})

        def build(tmp: Any) -> None:
            idx = pisa.PisaIndex(str(tmp), text_field="text", stemmer=p.stemmer, threads=p.threads)
            with silenced(not p.verbose):
                idx.index(d for i, d in enumerate(corpus.iter_dicts()) if i not in gone)

        build_dir_atomically(final, build, {"corpus": corpus.id, "corpus_digest": corpus.digest,
                                            "documents": len(corpus) - len(gone), "removed": len(gone)})
        self._pruned_path = final
        self._base = unpruned_baseline(corpus, p)
        self.stats.update({
            "index_path": str(final), "documents": len(corpus), "documents_removed": len(gone),
            "fraction_removed": len(gone) / len(corpus), "score": p.score,
            "score_of_removed_max": float(scores[removed].max()) if len(removed) else None,
            "score_of_kept_min": float(np.delete(scores, removed).min()),
        })

    def transformer(self) -> Any:
        if self._pruned_path is None or self._base is None:
            raise HarnessError("static-pruning: call index(corpus) before transformer()")
        pruned = open_retriever(self._pruned_path, self.params, self.num_results)
        self._base.set_depth(self.num_results)
        unpruned = self._base.transformer()
        p = self.params
        self.stats["index_size"] = index_size(self._pruned_path, p.stops, p.stemmer)
        self.stats["unpruned_index_size"] = index_size(self._base.stats["index_path"], p.stops, p.stemmer)
        self.stats["postings_removed_fraction"] = 1 - self.stats["index_size"]["postings_queryable"] / max(
            1, self.stats["unpruned_index_size"]["postings_queryable"])
        return make_compared(pruned, unpruned, self.stats)
