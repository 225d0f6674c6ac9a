"""TREC DL loader: parsing and checks on tiny files; counts and BM25 baseline on the mirrored data."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.data import DataSource, DataSpec
from harness.errors import DataIntegrityError, TaskDefinitionError
from harness.ir import trecdl
from harness.tasks import Task, get_task


def _hit(qid, docid, rank, score, content="some passage text"):
    return {"qid": qid, "docid": docid, "rank": rank, "score": score, "content": content}


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _candidates(qid=1, n=3, query="what is x"):
    return [{"query": query, "hits": [_hit(qid, str(100 + r), r, 10.0 - r) for r in range(1, n + 1)]}]


def test_read_candidates_valid(tmp_path):
    got = trecdl.read_candidates(_write_json(tmp_path / "c.json", _candidates()), depth=3)
    assert [(q, query, [h["docid"] for h in hits]) for q, query, hits in got] == [
        ("1", "what is x", ["101", "102", "103"])
    ]


@pytest.mark.parametrize(
    "mutate, position, message",
    [
        (lambda d: d[0]["hits"][1].update(rank=3), "entry [0].hits[1]", "expected 2"),
        (lambda d: d[0]["hits"][2].update(score=99.0), "entry [0].hits[2]", "higher than the previous"),
        (lambda d: d[0]["hits"][1].update(docid="101"), "entry [0].hits[1]", "appears twice"),
        (lambda d: d[0]["hits"][0].pop("content"), "entry [0].hits[0]", "missing field"),
        (lambda d: d[0]["hits"][2].update(content="  "), "entry [0].hits[2]", "empty"),
        (lambda d: d[0]["hits"][1].update(qid=2), "entry [0].hits[1]", "differs"),
        (lambda d: d[0]["hits"].pop(), "entry [0]", "2 candidates"),
        (lambda d: d.append(dict(d[0])), "entry [1]", "appears twice"),
        (lambda d: d[0].pop("hits"), "entry [0]", "expected"),
    ],
)
def test_read_candidates_malformed_names_file_and_position(tmp_path, mutate, position, message):
    data = _candidates()
    mutate(data)
    path = _write_json(tmp_path / "bad.json", data)
    with pytest.raises(DataIntegrityError) as exc:
        trecdl.read_candidates(path, depth=3)
    text = str(exc.value)
    assert str(path) in text and position in text and message in text


def test_read_candidates_invalid_json_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"query": "x",\n  "hits": [}\n]')
    with pytest.raises(DataIntegrityError, match=r"bad\.json: line 3 column"):
        trecdl.read_candidates(path, depth=3)


def test_read_qrels_and_topics(tmp_path):
    q = tmp_path / "qrels.txt"
    q.write_text("1 Q0 101 3\n1 Q0 102 0\n\n2 Q0 201 2\n")
    assert trecdl.read_qrels(q) == [("1", "101", 3), ("1", "102", 0), ("2", "201", 2)]
    q.write_text("1 Q0 101 3\n1 Q0 102\n")
    with pytest.raises(DataIntegrityError, match=r"qrels\.txt: line 2: expected"):
        trecdl.read_qrels(q)
    q.write_text("1 Q0 101 high\n")
    with pytest.raises(DataIntegrityError, match="line 1: grade 'high'"):
        trecdl.read_qrels(q)
    q.write_text("1 Q0 101 1\n1 Q0 101 2\n")
    with pytest.raises(DataIntegrityError, match="line 2: duplicate judgement"):
        trecdl.read_qrels(q)
    t = tmp_path / "topics.txt"
    t.write_text("1\twhat is x\n2\twho is y\n")
    assert trecdl.read_topics(t) == {"1": "what is x", "2": "who is y"}
    t.write_text("1\twhat is x\n2 who is y\n")
    with pytest.raises(DataIntegrityError, match=r"topics\.txt: line 2"):
        trecdl.read_topics(t)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_task(root: Path, candidates, topics="1\twhat is x\n2\tunjudged topic\n", qrels="1 Q0 101 0\n1 Q0 103 2\n",
               depth=3, sha_override=None) -> Task:
    (root / "topics.txt").write_text(topics)
    (root / "qrels.txt").write_text(qrels)
    _write_json(root / "cands.json", candidates)
    data = {}
    for name, file in (("topics", "topics.txt"), ("qrels", "qrels.txt"), ("first_stage", "cands.json")):
        sha = (sha_override or {}).get(name) or _sha(root / file)
        data[name] = DataSpec(name, trecdl.FORMATS[name], (DataSource("data_dir", path=file, sha256=sha),))
    return Task(id="tiny-dl", version=1, kind="reranking", title="", description="", data=data,
                protocol={"depth": depth, "queries": 1, "rel_threshold": 2}, metrics=(), options={"loader": "trecdl"})


def test_load_collection_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    coll = trecdl.load_collection(_tiny_task(tmp_path, _candidates()))
    fs = coll.first_stage
    assert list(fs.columns) == ["qid", "query", "docno", "text", "score", "rank"]
    assert fs["docno"].tolist() == ["101", "102", "103"]
    assert fs["rank"].tolist() == [0, 1, 2]  # PyTerrier ranks start at 0
    assert fs["score"].tolist() == [9.0, 8.0, 7.0]
    assert coll.topics.to_dict("records") == [{"qid": "1", "query": "what is x"}]  # unjudged topic 2 dropped
    assert coll.qrels.to_dict("records") == [
        {"query_id": "1", "doc_id": "101", "relevance": 0},
        {"query_id": "1", "doc_id": "103", "relevance": 2},
    ]
    assert {d["name"] for d in coll.data} == {"topics", "qrels", "first_stage"}
    assert all(d["source"] == "data_dir" and len(d["sha256"]) == 64 for d in coll.data)


def test_load_collection_refuses_inconsistent_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataIntegrityError, match=r"cands\.json: entry \[0\]: query text"):
        trecdl.load_collection(_tiny_task(tmp_path, _candidates(query="what is z")))
    with pytest.raises(DataIntegrityError, match="no candidates for judged queries"):
        trecdl.load_collection(_tiny_task(tmp_path, _candidates(), qrels="1 Q0 101 0\n2 Q0 9 1\n"))
    with pytest.raises(DataIntegrityError, match="3 candidates; the protocol's depth is 100"):
        trecdl.load_collection(_tiny_task(tmp_path, _candidates(), depth=100))
    with pytest.raises(DataIntegrityError, match="sha256 mismatch"):
        trecdl.load_collection(_tiny_task(tmp_path, _candidates(), sha_override={"qrels": "0" * 64}))
    with pytest.raises(TaskDefinitionError, match="protocol.depth"):
        trecdl.load_collection(_tiny_task(tmp_path, _candidates(), depth=0))


def test_load_collection_refuses_other_formats_and_ignored_options(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    task = _tiny_task(tmp_path, _candidates())
    other = dict(task.data, topics=dataclasses.replace(task.data["topics"], format="beir-topics"))
    with pytest.raises(TaskDefinitionError, match=r"field 'data.topics.format': the trecdl loader reads 'tsv-topics'"):
        trecdl.load_collection(dataclasses.replace(task, data=other))
    mapped = dict(task.data, qrels=dataclasses.replace(task.data["qrels"], options={"grade_map": {0: 0}}))
    with pytest.raises(TaskDefinitionError, match=r"field 'data.qrels.grade_map': not supported by the trecdl loader"):
        trecdl.load_collection(dataclasses.replace(task, data=mapped))
    typo = dict(task.data, qrels=dataclasses.replace(task.data["qrels"], options={"int_id": True}))
    with pytest.raises(TaskDefinitionError, match=r"field 'data.qrels.int_id': unknown option .*'int_ids'"):
        trecdl.load_collection(dataclasses.replace(task, data=typo))


# ---- the mirrored data -------------------------------------------------------------------------

needs_data = pytest.mark.skipif(
    not os.environ.get("HARNESS_DATA_DIR"), reason="HARNESS_DATA_DIR is unset (mirrored TREC DL data needed)"
)


@pytest.mark.slow
@pytest.mark.data
@needs_data
@pytest.mark.parametrize(
    "task_id, queries, qrels, bm25_ndcg10",
    # Published BM25 (Anserini, k1=0.9 b=0.4) nDCG@10 of these first stages: 50.58 and 47.96
    [("trec-dl-2019", 43, 9260, 0.5058), ("trec-dl-2020", 54, 11386, 0.4796)],
)
def test_real_collections(task_id, queries, qrels, bm25_ndcg10):
    import ir_measures
    from ir_measures import nDCG

    task = get_task(task_id)
    assert task.options["loader"] == "trecdl" and task.protocol["depth"] == 100
    assert [m.name for m in task.metrics] == ["nDCG@10", "RR@10", "R@100", "AP@1000"]
    coll = trecdl.load_collection(task)
    fs = coll.first_stage
    assert len(fs) == queries * 100 and fs["qid"].nunique() == queries
    assert fs.groupby("qid").size().eq(100).all()
    assert len(coll.qrels) == qrels and coll.qrels["query_id"].nunique() == queries
    assert set(coll.qrels["relevance"]) == {0, 1, 2, 3}
    run = fs.rename(columns={"qid": "query_id", "docno": "doc_id"})
    got = ir_measures.calc_aggregate([nDCG @ 10], coll.qrels, run)[nDCG @ 10]
    assert got == pytest.approx(bm25_ndcg10, abs=5e-5)
