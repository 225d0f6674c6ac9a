"""TREC Deep Learning 2019/2020 passage reranking: topics, NIST qrels and the pinned BM25 top-100.

The standard reranking benchmark of the literature (monoT5, RankGPT, PRP, RankZephyr) reranks the
BM25 top-100 of the judged DL19 (43 queries) and DL20 (54 queries) topics and reports nDCG@10, with
grade >= 2 as relevant for binary measures. The first stage is the Anserini/Pyserini BM25 run with
passage text that RankGPT distributes as ``retrieve_results_dl{19,20}.json``
(``[{"query", "hits": [{"qid", "docid", "rank", "score", "content"}]}]``), mirrored in
``$HARNESS_DATA_DIR/trec-dl``; every file is pinned by sha256 in the task YAML.

A task opts in with ``options: {loader: trecdl}`` and declares three data entries, read by the
registered formats (:mod:`harness.ir.formats`):

* ``topics``: ``tsv-topics``, ``qid<TAB>text`` lines (DL20's file has all 200 topics; only judged
  ones are kept);
* ``qrels``: ``trec-qrels``, ``qid Q0 docno grade``, read through ir-measures; this loader is
  strict (a duplicate judgement or an empty file is refused) and takes the grades as they are;
* ``first_stage``: ``rankgpt-candidates-json``, the candidates JSON above.

``options.ir_datasets`` names the equivalent ``ir_datasets`` id of topics and qrels for reference;
the first stage with text exists only as the mirrored file, so nothing is downloaded.

:func:`load_collection` checks the protocol's counts (queries x ``depth`` candidates), that each
candidate list is ranked 1..depth with non-increasing scores and that the JSON's query text equals
the topic's; a malformed file fails with the file and the position of the bad entry.
The first stage follows PyTerrier's conventions: ``rank`` starts at ``pyterrier.model.FIRST_RANK``
(0), i.e. the JSON's rank 1 becomes rank 0.
"""

from __future__ import annotations

from harness.data import resolve
from harness.errors import DataIntegrityError, TaskDefinitionError
from harness.formats import check_spec
from harness.ir.base import IRCollection
from harness.ir.formats.qrels import read_trec_qrels_strict
from harness.ir.formats.rankgpt_candidates import _bad, read_candidates
from harness.ir.formats.tsv_topics import read_topics
from harness.tasks import Task

REQUIRED_DATA = ("topics", "qrels", "first_stage")
FORMATS = {"topics": "tsv-topics", "qrels": "trec-qrels", "first_stage": "rankgpt-candidates-json"}
read_qrels = read_trec_qrels_strict  # the name this module had for it
__all__ = ["REQUIRED_DATA", "load_collection", "read_candidates", "read_qrels", "read_topics"]


def _protocol_int(task: Task, key: str) -> int:
    value = task.protocol.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        where = task.path or task.id
        raise TaskDefinitionError(f"{where}: field 'protocol.{key}': must be a positive integer, got {value!r}")
    return value


def _check_formats(task: Task) -> None:
    """The loader reads fixed layouts: refuse another format, or options it would ignore."""
    where = task.path or task.id
    for name, fmt in FORMATS.items():
        spec = task.data[name]
        if spec.format != fmt:
            raise TaskDefinitionError(f"{where}: field 'data.{name}.format': the trecdl loader reads {fmt!r}, "
                                      f"not {spec.format!r}")
        if len(spec.part_sources) != 1:
            raise TaskDefinitionError(f"{where}: field 'data.{name}.parts': the trecdl loader reads one file")
        opts = check_spec(spec, where)
        ignored = sorted(opts.model_fields_set)
        if ignored:
            raise TaskDefinitionError(f"{where}: field 'data.{name}.{ignored[0]}': not supported by the trecdl "
                                      "loader (it reads the file as it is)")


def load_collection(task: Task) -> IRCollection:
    """Topics, qrels and the pinned first stage of a TREC DL reranking task (see module doc)."""
    import pandas as pd
    import pyterrier as pt

    where = task.path or task.id
    for name in REQUIRED_DATA:
        if name not in task.data:
            raise TaskDefinitionError(f"{where}: field 'data.{name}': required by the trecdl loader")
    _check_formats(task)
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
    qrels = read_trec_qrels_strict(qrels_path)
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
