"""TREC Deep Learning 2019/2020 passage reranking: topics, NIST qrels and the pinned BM25 top-100.

The standard reranking benchmark of the literature (monoT5, RankGPT, PRP, RankZephyr) reranks the
BM25 top-100 of the judged DL19 (43 queries) and DL20 (54 queries) topics and reports nDCG@10, with
grade >= 2 as relevant for binary measures. The first stage is the Anserini/Pyserini BM25 run with
passage text that RankGPT distributes as ``retrieve_results_dl{19,20}.json``
(``[{"query", "hits": [{"qid", "docid", "rank", "score", "content"}]}]``), mirrored in
``$HARNESS_DATA_DIR/trec-dl``; every file is pinned by sha256 in the task YAML.

A task opts in with ``options: {loader: trecdl}`` and declares three data entries:

* ``topics``: ``qid<TAB>text`` lines (DL20's file has all 200 topics; only judged ones are kept);
* ``qrels``: TREC qrels ``qid Q0 docno grade``;
* ``first_stage``: the candidates JSON above.

``options.ir_datasets`` names the equivalent ``ir_datasets`` id of topics and qrels for reference;
the first stage with text exists only as the mirrored file, so nothing is downloaded.

:func:`load_collection` checks the protocol's counts (queries x ``depth`` candidates), that each
candidate list is ranked 1..depth with non-increasing scores and that the JSON's query text equals
the topic's; a malformed file fails with the file and the position of the bad entry.
The first stage follows PyTerrier's conventions: ``rank`` starts at ``pyterrier.model.FIRST_RANK``
(0), i.e. the JSON's rank 1 becomes rank 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.data import resolve
from harness.errors import DataIntegrityError, TaskDefinitionError
from harness.ir.base import IRCollection
from harness.tasks import Task

REQUIRED_DATA = ("topics", "qrels", "first_stage")


def _bad(path: Path, where: str, msg: str) -> DataIntegrityError:
    return DataIntegrityError(f"{path}: {where}: {msg}")


def read_topics(path: Path) -> dict[str, str]:
    """``qid<TAB>text`` lines -> {qid: text}; refuses blank ids, missing tabs and duplicates."""
    topics: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            qid, sep, text = line.partition("\t")
            qid, text = qid.strip(), text.strip()
            if not sep or not qid or not text:
                raise _bad(path, f"line {lineno}", f"expected 'qid<TAB>query', got {line[:80]!r}")
            if qid in topics:
                raise _bad(path, f"line {lineno}", f"duplicate topic id {qid!r}")
            topics[qid] = text
    if not topics:
        raise _bad(path, "file", "no topics")
    return topics


def read_qrels(path: Path) -> list[tuple[str, str, int]]:
    """TREC qrels ``qid iter docno grade`` -> [(qid, docno, grade)]; refuses malformed lines."""
    out: list[tuple[str, str, int]] = []
    seen: set[tuple[str, str]] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise _bad(path, f"line {lineno}", f"expected 'qid Q0 docno grade' (4 fields), got {len(parts)}")
            qid, _, docno, grade = parts
            try:
                rel = int(grade)
            except ValueError:
                raise _bad(path, f"line {lineno}", f"grade {grade!r} is not an integer") from None
            if (qid, docno) in seen:
                raise _bad(path, f"line {lineno}", f"duplicate judgement for query {qid} passage {docno}")
            seen.add((qid, docno))
            out.append((qid, docno, rel))
    if not out:
        raise _bad(path, "file", "no judgements")
    return out


def read_candidates(path: Path, depth: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """RankGPT candidates JSON -> [(qid, query, hits)], each hits list ranked 1..depth.

    Checks every field's type, one qid per entry, ranks 1..n in order, non-increasing scores,
    unique docids and non-empty text; errors name the entry and hit index.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _bad(path, f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}") from None
    if not isinstance(raw, list) or not raw:
        raise _bad(path, "top level", "expected a non-empty list of {query, hits}")
    out = []
    seen_q: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"entry [{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("query"), str) or not isinstance(
            entry.get("hits"), list
        ):
            raise _bad(path, where, "expected {'query': str, 'hits': list}")
        hits = entry["hits"]
        if len(hits) != depth:
            raise _bad(path, where, f"{len(hits)} candidates; the protocol's depth is {depth}")
        qid = None
        docnos: set[str] = set()
        prev_score = math.inf
        for j, h in enumerate(hits):
            hw = f"{where}.hits[{j}]"
            if not isinstance(h, dict):
                raise _bad(path, hw, "expected an object")
            missing = [k for k in ("qid", "docid", "rank", "score", "content") if k not in h]
            if missing:
                raise _bad(path, hw, f"missing field(s) {missing}")
            if not isinstance(h["qid"], (int, str)) or not isinstance(h["docid"], (int, str)):
                raise _bad(path, hw, "qid and docid must be int or str")
            hq = str(h["qid"])
            if qid is None:
                qid = hq
            elif hq != qid:
                raise _bad(path, hw, f"qid {hq} differs from the entry's qid {qid}")
            if h["rank"] != j + 1 or isinstance(h["rank"], bool):
                raise _bad(path, hw, f"rank {h['rank']!r}; expected {j + 1} (hits must be in rank order)")
            score = h["score"]
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
                raise _bad(path, hw, f"score {score!r} is not a finite number")
            if score > prev_score:
                raise _bad(path, hw, f"score {score} is higher than the previous hit's {prev_score}")
            prev_score = score
            if not isinstance(h["content"], str) or not h["content"].strip():
                raise _bad(path, hw, "empty or non-string 'content' (passage text)")
            docno = str(h["docid"])
            if docno in docnos:
                raise _bad(path, hw, f"passage {docno} appears twice for query {qid}")
            docnos.add(docno)
        assert qid is not None
        if qid in seen_q:
            raise _bad(path, where, f"query {qid} appears twice")
        seen_q.add(qid)
        out.append((qid, entry["query"], hits))
    return out


def _protocol_int(task: Task, key: str) -> int:
    value = task.protocol.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        where = task.path or task.id
        raise TaskDefinitionError(f"{where}: field 'protocol.{key}': must be a positive integer, got {value!r}")
    return value


def load_collection(task: Task) -> IRCollection:
    """Topics, qrels and the pinned first stage of a TREC DL reranking task (see module doc)."""
    import pandas as pd
    import pyterrier as pt

    where = task.path or task.id
    for name in REQUIRED_DATA:
        if name not in task.data:
            raise TaskDefinitionError(f"{where}: field 'data.{name}': required by the trecdl loader")
    depth = _protocol_int(task, "depth")
    expected_queries = task.protocol.get("queries")

    resolved = {name: resolve(task.data[name]) for name in REQUIRED_DATA}
    for name, r in resolved.items():
        if r.path is None:  # only local sources exist for this data
            raise DataIntegrityError(f"data {name!r} of task {task.id}: only a local (data_dir) source is supported")
    topics_path = resolved["topics"].path
    qrels_path = resolved["qrels"].path
    fs_path = resolved["first_stage"].path
    assert topics_path and qrels_path and fs_path

    topics_all = read_topics(topics_path)
    qrels = read_qrels(qrels_path)
    judged = {q for q, _, _ in qrels}
    unknown = sorted(judged - set(topics_all))
    if unknown:
        raise _bad(qrels_path, "file", f"judged queries missing from {topics_path.name}: {unknown[:5]}")
    candidates = read_candidates(fs_path, depth)

    rows = []
    for i, (qid, query, hits) in enumerate(candidates):
        if qid not in judged:
            raise _bad(fs_path, f"entry [{i}]", f"query {qid} has no judgements in {qrels_path.name}")
        if query.strip() != topics_all[qid]:
            raise _bad(fs_path, f"entry [{i}]", f"query text {query!r} differs from the topic {topics_all[qid]!r}")
        for h in hits:
            rows.append((qid, topics_all[qid], str(h["docid"]), h["content"], float(h["score"]),
                         int(h["rank"]) - 1 + pt.model.FIRST_RANK))
    fs_qids = {qid for qid, _, _ in candidates}
    if fs_qids != judged:
        missing = sorted(judged - fs_qids)
        raise _bad(fs_path, "file", f"no candidates for judged queries {missing[:5]} ({len(missing)} in all)")
    if expected_queries is not None and len(fs_qids) != expected_queries:
        raise _bad(fs_path, "file", f"{len(fs_qids)} queries; the protocol declares {expected_queries}")

    order = [qid for qid, _, _ in candidates]
    topics = pd.DataFrame({"qid": order, "query": [topics_all[q] for q in order]})
    qrels_df = pd.DataFrame(qrels, columns=["query_id", "doc_id", "relevance"])
    first_stage = pd.DataFrame(rows, columns=["qid", "query", "docno", "text", "score", "rank"])
    return IRCollection(
        id=task.id,
        topics=topics,
        qrels=qrels_df,
        first_stage=first_stage,
        data=[r.provenance() for r in resolved.values()],
    )
