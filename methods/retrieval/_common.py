"""Helpers shared by the retrieval adapters: cache locations, atomic writes, silencing C++ output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import config


def params_digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path(kind: str, name: str, corpus_digest: str, semantic: dict[str, Any]) -> Path:
    """``cache_dir()/<kind>/<name>/<corpus digest[:16]>-<digest of the semantic params>``."""
    return config.cache_dir() / kind / name / f"{corpus_digest[:16]}-{params_digest(semantic)}"


def build_dir_atomically(final: Path, build: Callable[[Path], None], meta: dict[str, Any]) -> Path:
    """Build into a sibling temporary directory, then rename: readers never see half an index."""
    if (final / "harness_meta.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        build(tmp)
        (tmp / "harness_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        try:
            os.rename(tmp, final)
        except OSError:  # another process won the race (or a stale, incomplete dir is there)
            if (final / "harness_meta.json").exists():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def save_array_atomically(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; caches may be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def silenced(enabled: bool = True) -> Iterator[None]:
    """Redirect the process's stdout/stderr file descriptors to /dev/null (PISA logs from C++,
    which Python-level redirection cannot catch, and its log_level switch does not work)."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def add_ranks(df: pd.DataFrame, single_query: bool = False) -> pd.DataFrame:
    """``pyterrier.model.add_ranks`` (rank by score descending, ties to the earlier row, from
    ``FIRST_RANK``), without the pandas deprecation warning its ``drop(inplace=True)`` raises on
    every call under pandas 3."""
    import warnings

    import pyterrier as pt

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
        return pt.model.add_ranks(df, single_query=single_query)


def ranked_frame(queries: pd.DataFrame, per_query: list[tuple[list[str], list[float]]]) -> pd.DataFrame:
    """Assemble a run: for each query row, its (docnos, scores); rows sorted by (query row, score
    desc, docno asc) and ranked by ``pyterrier.model.add_ranks``, whose "first" tie rule then gives
    ties to the smaller docno. Query ids are unique here (the collection readers keep the first of
    duplicate topics), so ranking per qid is ranking per query row."""
    rows_q, docnos, scores = [], [], []
    for i, (ds, ss) in enumerate(per_query):
        rows_q.extend([i] * len(ds))
        docnos.extend(ds)
        scores.extend(ss)
    res = queries.iloc[rows_q].reset_index(drop=True)
    res["docno"] = pd.Series(docnos, dtype=object)
    res["score"] = np.asarray(scores, dtype=np.float64)
    res["_i"] = rows_q
    res = res.sort_values(["_i", "score", "docno"], ascending=[True, False, True], kind="mergesort")
    return add_ranks(res).drop(columns="_i").reset_index(drop=True)


def docno_order(docnos: list[str]) -> np.ndarray:
    """Position of each document in docno-ascending order (the tie-break key for numpy top-k)."""
    order = np.argsort(np.asarray(docnos, dtype=object), kind="stable")
    pos = np.empty(len(docnos), dtype=np.int64)
    pos[order] = np.arange(len(docnos))
    return pos


def top_k(scores: np.ndarray, k: int, tie_key: np.ndarray) -> np.ndarray:
    """Indices of the top ``k`` scores, ordered by score descending then ``tie_key`` ascending.

    Exact at the boundary: every document tied with the k-th score competes on ``tie_key``.
    """
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        thr = np.partition(scores, n - k)[n - k]
        cand = np.nonzero(scores >= thr)[0]
    else:
        cand = np.arange(n)
    order = np.lexsort((tie_key[cand], -scores[cand]))
    return cand[order[:k]]


# --------------------------------------------------------------------------------- neural encoders


def state_digest(model: Any, tokenizer: Any) -> str:
    """sha256 over the model's parameters (name, dtype, shape, bytes) and the tokenizer's vocabulary:
    encodings cached under it are invalidated by any change of weights or vocabulary."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()


def length_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Batches of indices with texts of similar length (less padding); deterministic."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
