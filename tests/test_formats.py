"""Data formats: the registry, typed options refused at load, each reader on a tiny hand-checked
file, entries split over several parts."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from harness import formats
from harness.data import DataSpec, parse_entry, provenance_of, resolve, resolve_parts
from harness.errors import DataIntegrityError, TaskDefinitionError
from harness.ir.base import Document
from harness.tasks import Task, load_tasks

WHERE = "tasks/retrieval/cacm.yaml: field 'data.qrels'"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    return tmp_path


def entry(root: Path, name: str, fmt: str, *files: str, **options) -> DataSpec:
    """A data entry as a task file writes it: one file -> ``sources``, several -> ``parts``."""
    pins = [{"data_dir": f, "sha256": _sha(root / f)} for f in files]
    raw = {"format": fmt, **options}
    if len(files) == 1:
        raw["sources"] = pins
    else:
        raw["parts"] = pins
    return parse_entry("toy.yaml", name, raw)


def read(root: Path, fmt: str, *files: str, **options):
    value, _ = formats.read_spec(entry(root, "x", fmt, *files, **options))
    return value


# ---------------------------------------------------------------- registry and options


def test_builtin_formats_are_registered_lazily_and_documented():
    names = formats.format_names()
    for expected in ("trec-docs", "smart-docs", "scifact-zip", "sciq-arrow", "trec-topics", "smart-queries",
                     "beir-topics", "tsv-topics", "trec-qrels", "pair-qrels", "graded-qrels", "trec-run",
                     "rankgpt-candidates-json", "wikitext-rows", "jsonl-text", "gensim-wiki", "hf-arrow-stream",
                     "oe-eval-requests"):
        assert expected in names
        cls = formats.get_format(expected)
        assert issubclass(cls, formats.DataFormat) and cls.name == expected
        assert cls.produces in formats.PRODUCES and cls.summary()
        assert cls.Options.model_config["extra"] == "forbid"


def test_every_shipped_task_passes_the_option_check():
    tasks = load_tasks()
    assert len(tasks) >= 20
    for task in tasks.values():
        formats.check_task_data(task)  # raises on the first bad entry


def test_unknown_format_lists_the_valid_ones():
    with pytest.raises(TaskDefinitionError) as exc:
        formats.check_options("smart-qeries", {}, WHERE)
    msg = str(exc.value)
    assert msg.startswith("tasks/retrieval/cacm.yaml: field 'data.qrels.format': unknown data format 'smart-qeries'")
    assert "Did you mean 'smart-queries'" in msg
    assert "Known data formats: beir-topics, gensim-wiki, graded-qrels" in msg and "trec-docs" in msg


def test_misspelt_option_suggests_the_right_one():
    formats.check_options("pair-qrels", {"int_ids": True}, WHERE)
    with pytest.raises(TaskDefinitionError) as exc:
        formats.check_options("pair-qrels", {"int_id": True}, WHERE)
    msg = str(exc.value)
    assert msg.startswith("tasks/retrieval/cacm.yaml: field 'data.qrels.int_id': unknown option of data format 'pair-qrels'")
    assert "Did you mean 'int_ids'?" in msg and "grade_map, grade_map_ir_datasets, int_ids" in msg
    with pytest.raises(TaskDefinitionError, match=r"field 'data.qrels.colour': .* Trec-docs takes no options"):
        formats.check_options("trec-docs", {"colour": "blue"}, WHERE)


@pytest.mark.parametrize(
    "fmt, options, field, text",
    [
        ("smart-queries", {"ids": "ordnal"}, "ids", "'file' or 'ordinal'"),
        ("graded-qrels", {"grade_map": {"high": 1}}, "grade_map", "valid integer"),
        ("gensim-wiki", {"articles": [1]}, "articles", "got [1]"),
        ("gensim-wiki", {"min_chars": "many"}, "min_chars", "valid integer"),
        ("hf-arrow-stream", {"count": "lots"}, "count", "valid integer"),
    ],
)
def test_mistyped_option_names_the_field(fmt, options, field, text):
    formats.check_options("smart-queries", {"ids": "ordinal"}, WHERE)
    with pytest.raises(TaskDefinitionError) as exc:
        formats.check_options(fmt, options, WHERE)
    assert str(exc.value).startswith(f"tasks/retrieval/cacm.yaml: field 'data.qrels.{field}': ")
    assert text in str(exc.value) and "valid options of" in str(exc.value)


def test_typed_options_have_their_defaults():
    opts = formats.parse_options("graded-qrels", {"grade_map": {-1: 0, 1: 4}}, WHERE)
    assert opts.grade_map == {-1: 0, 1: 4} and opts.int_ids is False and opts.grade_map_ir_datasets is True
    assert formats.parse_options("smart-queries", {}, WHERE).ids == "file"
    assert formats.parse_options("gensim-wiki", {"articles": [0, 52]}, WHERE).articles == (0, 52)


def test_single_file_format_refuses_parts(data_dir):
    for i in (0, 1):
        (data_dir / f"w{i}.txt").write_text("x")
    spec = entry(data_dir, "text", "wikitext-rows", "w0.txt", "w1.txt")
    with pytest.raises(TaskDefinitionError, match=r"toy.yaml: field 'data.text.parts': .*reads a single file"):
        formats.read_spec(spec, task_file="toy.yaml")


# ---------------------------------------------------------------- the data entry: sources or parts


def test_parse_entry_sources_parts_and_options(data_dir):
    (data_dir / "a").write_text("1")
    sha = _sha(data_dir / "a")
    one = parse_entry("t.yaml", "corpus", {"format": "trec-docs", "member": "m", "sources": [{"data_dir": "a", "sha256": sha}]})
    assert one.parts == () and one.options == {"member": "m"} and len(one.part_sources) == 1
    two = parse_entry("t.yaml", "corpus", {"format": "trec-docs", "parts": [
        {"data_dir": "a", "sha256": sha},
        {"sources": [{"data_dir": "b", "sha256": sha}, {"data_dir": "a", "sha256": sha}]},
    ]})
    assert [len(p) for p in two.parts] == [1, 2] and two.sources == ()
    files = resolve_parts(two)  # part 1 falls back to its second source
    assert [(f.part, f.path.name) for f in files] == [(0, "a"), (1, "a")]
    prov = provenance_of(files)
    assert prov["location"] == ["$HARNESS_DATA_DIR/a", "$HARNESS_DATA_DIR/a"] and prov["sha256"] == [sha, sha]
    single = resolve(one)
    assert provenance_of([single]) == single.provenance()  # a one-file entry's provenance is unchanged
    with pytest.raises(TaskDefinitionError, match=r"t.yaml: field 'data.corpus': needs either sources"):
        parse_entry("t.yaml", "corpus", {"format": "trec-docs"})
    with pytest.raises(TaskDefinitionError, match=r"field 'data.corpus.parts\[1\].sha256'"):
        parse_entry("t.yaml", "corpus", {"format": "x", "parts": [{"data_dir": "a", "sha256": sha}, {"data_dir": "b"}]})
    with pytest.raises(DataIntegrityError, match="data 'corpus' part 1 is not available"):
        resolve_parts(parse_entry("t.yaml", "corpus", {"format": "x", "parts": [
            {"data_dir": "a", "sha256": sha}, {"data_dir": "missing", "sha256": sha}]}))


# ---------------------------------------------------------------- IR readers on tiny files


def test_trec_docs_parts_are_concatenated_in_order(data_dir):
    (data_dir / "d0.trec").write_text("<DOC>\n<DOCNO>7</DOCNO>\nsome  text\n</DOC>\n")
    (data_dir / "d1.trec").write_text("<DOC>\n<DOCNO> 8 </DOCNO> inline\nmore\n</DOC>\n")
    parsed = read(data_dir, "trec-docs", "d1.trec", "d0.trec")
    assert parsed.rows == [Document("8", "inline more"), Document("7", "some text")]


def test_smart_docs_and_queries(data_dir):
    (data_dir / "docs.all").write_bytes(b".I 001\r\n.T\r\nTitle one\r\n.A\r\nX\r\n.W\r\nbody\r\n.I 2\r\n.W\r\ntext\r\n")
    assert read(data_dir, "smart-docs", "docs.all").rows == [Document("1", "body", "Title one"), Document("2", "text")]
    (data_dir / "q0").write_text(".I 001\n.W\nfirst?\n.I 004\n.W\nsecond\n")
    (data_dir / "q1").write_text(".I 009\n.W\nthird\n.I 0\n")
    both = read(data_dir, "smart-queries", "q0", "q1")
    assert both.rows == [("1", "first?"), ("4", "second"), ("9", "third")] and both.counts == {"placeholder_queries": 1}
    ordinal = read(data_dir, "smart-queries", "q0", "q1", ids="ordinal")  # renumbered across the parts
    assert ordinal.rows == [("1", "first?"), ("2", "second"), ("3", "third")]


def test_topic_readers(data_dir):
    (data_dir / "t.trec").write_text("<top>\n<num>1</num><title>\nFIRST  query\n</title>\n</top>\n")
    assert read(data_dir, "trec-topics", "t.trec").rows == [("1", "FIRST query")]
    with gzip.open(data_dir / "b.tsv.gz", "wt", encoding="utf-8") as fh:
        fh.write("3\tsecond  claim\n\n1\tfirst\n")
    assert read(data_dir, "beir-topics", "b.tsv.gz").rows == [("3", "second claim"), ("1", "first")]
    (data_dir / "dl0.tsv").write_text("1\twhat is x \n")
    (data_dir / "dl1.tsv").write_text("2\twho is y\n")
    assert read(data_dir, "tsv-topics", "dl0.tsv", "dl1.tsv").rows == [("1", "what is x"), ("2", "who is y")]
    with pytest.raises(DataIntegrityError, match=r"dl0.tsv: file: topic ids also in an earlier part: \['1'\]"):
        read(data_dir, "tsv-topics", "dl0.tsv", "dl0.tsv")


def test_qrels_readers(data_dir):
    (data_dir / "qrels.trec").write_text("1 0 d1 1\n\n1 0 d2 0\n2 Q0 d1 2\n")
    assert read(data_dir, "trec-qrels", "qrels.trec").rows == [("1", "d1", 1), ("1", "d2", 0), ("2", "d1", 2)]
    (data_dir / "bad.trec").write_text("1 0 d1 1\n1 0 d2\n")
    with pytest.raises(DataIntegrityError, match=r"bad\.trec:2: expected 'qid iter docno rel', got 3 fields"):
        read(data_dir, "trec-qrels", "bad.trec")
    (data_dir / "pairs").write_text("01 0010 0 0\n1 11\n")
    assert read(data_dir, "pair-qrels", "pairs", int_ids=True).rows == [("1", "10", 1), ("1", "11", 1)]
    (data_dir / "graded").write_text("1 184 2\n1 486 -1\n")
    assert read(data_dir, "graded-qrels", "graded", grade_map={-1: 0, 2: 3}).rows == [("1", "184", 3), ("1", "486", 0)]
    with pytest.raises(DataIntegrityError, match=r"graded:1: grade 2 is not in the task's grade_map \[-1\]"):
        read(data_dir, "graded-qrels", "graded", grade_map={-1: 0})


def test_trec_run_through_ir_measures(data_dir):
    (data_dir / "run.trec").write_text("1 Q0 d3 1 2.5 bm25\n1 Q0 d1 2 1 bm25\n2 Q0 d9 1 -0.5 bm25\n")
    assert read(data_dir, "trec-run", "run.trec").rows == [("1", "d3", 2.5), ("1", "d1", 1.0), ("2", "d9", -0.5)]
    (data_dir / "bad.run").write_text("1 Q0 d3 1 2.5 bm25\n1 Q0 d1 2 high bm25\n")
    with pytest.raises(DataIntegrityError, match=r"bad\.run:2: score 'high' is not a number"):
        read(data_dir, "trec-run", "bad.run")


def test_scifact_zip(data_dir):
    csv_text = 'doc_id,title,abstract\n4983,A title ,"[\'First.\'\n \'It\\\'s second.\']"\n'
    with zipfile.ZipFile(data_dir / "s.zip", "w") as zf:
        zf.writestr("corpus_train.csv", csv_text)
        zf.writestr("other.csv", "doc_id,title,abstract\n1,t,['x']\n")
    assert read(data_dir, "scifact-zip", "s.zip").rows == [Document("4983", "First. It's second.", "A title")]
    assert read(data_dir, "scifact-zip", "s.zip", member="other.csv").rows == [Document("1", "x", "t")]


def test_sciq_arrow_derives_the_collection(data_dir):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.table({"question": ["q a?", "q b?", "q c?"], "support": ["same text", "", "same  text"],
                      "correct_answer": ["x", "y", "z"]})
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    (data_dir / "sciq.arrow").write_bytes(sink.getvalue())
    corpus, topics, qrels = read(data_dir, "sciq-arrow", "sciq.arrow")
    assert corpus.rows == [Document("p0", "same text")]
    assert topics.rows == [("q0", "q a?"), ("q2", "q c?")] and topics.counts == {"questions_without_support": 1}
    assert qrels.rows == [("q0", "p0", 1), ("q2", "p0", 1)]


def test_rankgpt_candidates_reader(data_dir):
    hits = [{"qid": 1, "docid": d, "rank": r, "score": 9.0 - r, "content": "text"} for r, d in ((1, "a"), (2, "b"))]
    (data_dir / "c.json").write_text(json.dumps([{"query": "what", "hits": hits}]))
    spec = entry(data_dir, "first_stage", "rankgpt-candidates-json", "c.json")
    got = formats.read_resolved(resolve_parts(spec), depth=2)
    assert [(q, text, [h["docid"] for h in hs]) for q, text, hs in got] == [("1", "what", ["a", "b"])]


# ---------------------------------------------------------------- text and zero-shot readers


def test_text_readers(data_dir):
    from harness.llm.textdata import read_documents, read_text

    (data_dir / "wiki.txt").write_bytes(b" = A = \r\n\r\n text \r\n")
    spec = entry(data_dir, "text", "wikitext-rows", "wiki.txt")
    assert read_text(resolve(spec)) == " = A = \n\n text \n"
    (data_dir / "c0.jsonl").write_text('{"text": "doc one", "url": "u"}\n\n{"text": "doc two"}\n')
    (data_dir / "c1.jsonl").write_text('{"text": "doc three"}\n')
    docs = entry(data_dir, "documents", "jsonl-text", "c0.jsonl", "c1.jsonl")
    assert read_documents(resolve_parts(docs)) == ["doc one", "doc two", "doc three"]
    (data_dir / "c2.jsonl").write_text('{"text": "x"}\n["no"]\n')
    with pytest.raises(DataIntegrityError, match=r"c2.jsonl: line 2: expected a JSON object with a 'text' field"):
        read_documents(resolve(entry(data_dir, "documents", "jsonl-text", "c2.jsonl")))
    with pytest.raises(DataIntegrityError, match="is not running text"):
        read_text(resolve(entry(data_dir, "documents", "jsonl-text", "c1.jsonl")))


def test_gensim_wiki_reader(data_dir):
    pytest.importorskip("gensim")
    from harness.llm.textdata import read_documents, read_text

    ns = "http://www.mediawiki.org/xml/export-0.10/"
    pages = "".join(
        f"<page><title>T{i}</title><ns>0</ns><id>{i}</id><revision><text>{body}</text></revision></page>"
        for i, body in enumerate(["Alpha plain text here.", "tiny", "Gamma [[link|linked]] words."])
    )
    (data_dir / "wiki.xml.bz2").write_bytes(bz2.compress(f'<mediawiki xmlns="{ns}"><siteinfo/>{pages}</mediawiki>'.encode()))
    spec = entry(data_dir, "documents", "gensim-wiki", "wiki.xml.bz2", min_chars=10)
    assert read_documents(resolve(spec)) == ["Alpha plain text here.", "Gamma linked words."]
    sliced = entry(data_dir, "text", "gensim-wiki", "wiki.xml.bz2", min_chars=10, articles=[1, 2])
    assert read_text(resolve(sliced)) == "Gamma linked words."


def test_zero_shot_readers(data_dir):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from harness.llm.zeroshot_data import read_rows

    table = pa.table({"sentence1": ["a", "b"], "label": [0, 1]})
    with ipc.new_stream(str(data_dir / "rte.arrow"), table.schema) as writer:
        writer.write_table(table)
    assert read(data_dir, "hf-arrow-stream", "rte.arrow") == [{"sentence1": "a", "label": 0}, {"sentence1": "b", "label": 1}]
    with gzip.open(data_dir / "r.jsonl.gz", "wt", encoding="utf-8") as fh:
        for doc_id, doc in ((1, {"id": "one"}), (0, {"id": "zero"}), (0, {"id": "zero"}), (1_000_000, {"id": "dup"})):
            fh.write(json.dumps({"doc_id": doc_id, "doc": doc}) + "\n")
    assert read(data_dir, "oe-eval-requests", "r.jsonl.gz", count=2) == [{"id": "zero"}, {"id": "one"}]
    assert read_rows(data_dir / "r.jsonl.gz", "oe-eval-requests") == [{"id": "zero"}, {"id": "one"}]


# ---------------------------------------------------------------- a retrieval task over parts


def test_retrieval_collection_with_a_corpus_in_parts(data_dir):
    from harness.ir.collections import load_collection

    (data_dir / "d0.trec").write_text("<DOC>\n<DOCNO>1</DOCNO>\none\n</DOC>\n<DOC>\n<DOCNO>2</DOCNO>\ntwo\n</DOC>\n")
    (data_dir / "d1.trec").write_text("<DOC>\n<DOCNO>2</DOCNO>\ntwo again\n</DOC>\n<DOC>\n<DOCNO>3</DOCNO>\n</DOC>\n")
    (data_dir / "q.tsv").write_text("a\tfirst query\nb\tsecond\n")
    (data_dir / "qrels").write_text("a 0 1 1\na 0 3 0\n")
    data = {"corpus": entry(data_dir, "corpus", "trec-docs", "d0.trec", "d1.trec"),
            "topics": entry(data_dir, "topics", "beir-topics", "q.tsv"),
            "qrels": entry(data_dir, "qrels", "trec-qrels", "qrels")}
    task = Task(id="toy", version=1, kind="retrieval", title="", description="", data=data, protocol={}, metrics=())
    coll = load_collection(task)
    assert [(d.docno, d.text) for d in coll.corpus.documents] == [("1", "one"), ("2", "two"), ("3", "")]
    assert coll.topics.to_dict("records") == [{"qid": "a", "query": "first query"}]
    parse = {d["name"]: d for d in coll.data}
    assert parse["corpus"]["parse"] == {"documents": 3, "corpus_digest": coll.corpus.digest, "duplicate_docnos": 1,
                                        "empty_documents": 1}
    assert parse["corpus"]["location"] == ["$HARNESS_DATA_DIR/d0.trec", "$HARNESS_DATA_DIR/d1.trec"]
    assert parse["topics"]["location"] == "$HARNESS_DATA_DIR/q.tsv"  # one-file entries as before
    assert parse["topics"]["parse"] == {"topics": 1, "duplicate_qids": 0, "topics_without_qrels": 1, "topics_in_file": 2}
    wrong = dict(data, topics=entry(data_dir, "topics", "trec-qrels", "qrels"))
    with pytest.raises(Exception, match=r"field 'data.topics.format': 'trec-qrels' produces qrels, not topics"):
        load_collection(Task(id="toy", version=1, kind="retrieval", title="", description="", data=wrong,
                             protocol={}, metrics=()))


def test_trec_qrels_and_runs_are_parsed_by_ir_measures(data_dir, monkeypatch):
    import ir_measures

    from harness.ir import trecdl

    calls = []
    real_qrels, real_run = ir_measures.read_trec_qrels, ir_measures.read_trec_run
    monkeypatch.setattr(ir_measures, "read_trec_qrels", lambda f: (calls.append("qrels"), real_qrels(f))[1])
    monkeypatch.setattr(ir_measures, "read_trec_run", lambda f: (calls.append("run"), real_run(f))[1])
    (data_dir / "q").write_text("1 0 d1 1\n")
    (data_dir / "r").write_text("1 Q0 d1 1 3.0 x\n")
    assert read(data_dir, "trec-qrels", "q").rows == [("1", "d1", 1)]
    assert trecdl.read_qrels(data_dir / "q") == [("1", "d1", 1)]
    assert read(data_dir, "trec-run", "r").rows == [("1", "d1", 3.0)]
    assert calls == ["qrels", "qrels", "run"]


def test_trec_run_writer_is_byte_identical_to_the_evaluators(data_dir):
    import pandas as pd

    from harness.ir.evaluate import normalize_run
    from harness.ir.formats.trec_run import write_trec_run

    raw = pd.DataFrame({"qid": ["2", "2", "10", "2", "10"], "docno": ["d1", "d3", "x", "d2", "y"],
                        "score": [0.5, 2.0, 1.0, 0.5, 1.0]})
    run = normalize_run(raw)
    written = write_trec_run(run, "my bm25")
    assert written.decode().splitlines()[:2] == ["2 Q0 d3 1 3 my_bm25", "2 Q0 d1 2 2 my_bm25"]
    (data_dir / "run.trec").write_bytes(written)  # and it reads back through ir-measures
    assert read(data_dir, "trec-run", "run.trec").rows[0] == ("2", "d3", 3.0)
    with pytest.raises(ValueError, match="cannot be written"):
        write_trec_run(pd.DataFrame({"qid": ["1"], "docno": ['a"b'], "rank": [0]}), "t")
