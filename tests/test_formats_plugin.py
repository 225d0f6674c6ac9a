"""The worked example of tasks/README.md, as a test: a data format from a separate package.

The package module is written to tmp_path, registered through an entry point in the group
``harness.data_formats`` (``importlib.metadata.entry_points`` is monkeypatched, as an installed
package's pyproject would declare it), and reads a corpus split over two part files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from harness import formats
from harness.data import parse_entry
from harness.errors import DataIntegrityError, TaskDefinitionError
from harness.ir.collections import load_collection
from harness.tasks import Task, load_task_file

PLUGIN = '''
"""my_formats: a JSON-lines corpus for the harness."""
import json

from harness.errors import DataIntegrityError
from harness.formats import DataFormat, FormatOptions
from harness.ir.base import Document
from harness.ir.formats import Parsed


class JsonlCorpus(DataFormat):
    """JSON lines {"id": ..., "title": ..., "text": ...}, one document each; several parts in order."""

    name = "jsonl-corpus"
    produces = "corpus"

    class Options(FormatOptions):
        id_field: str = "id"  # the key holding the document id
        title: bool = True  # index the title (False: text only)

    def read(self, files, options):
        docs = []
        for f in files:
            with open(f.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        docno = str(row[options.id_field])
                    except (ValueError, KeyError, TypeError):
                        raise DataIntegrityError(
                            f"{f.path}:{lineno}: expected a JSON object with {options.id_field!r}") from None
                    title = row.get("title", "") if options.title else ""
                    docs.append(Document(docno, " ".join(row.get("text", "").split()), title))
        return Parsed(docs)
'''

TASK = """
id: my-collection
version: 1
kind: retrieval
title: A corpus in two JSON-lines parts
data:
  corpus:
    format: jsonl-corpus
    id_field: docid
    parts:
      - data_dir: mine/docs-0.jsonl
        sha256: {sha0}
      - data_dir: mine/docs-1.jsonl
        sha256: {sha1}
  topics:
    format: beir-topics
    sources:
      - data_dir: mine/topics.tsv
        sha256: {sha_t}
  qrels:
    format: trec-qrels
    sources:
      - data_dir: mine/qrels.txt
        sha256: {sha_q}
protocol: {{cutoff: 1000, rel_threshold: 1}}
metrics:
  - {{name: nDCG@10, higher_is_better: true, primary: true}}
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "my_formats.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(pkg))
    ep = importlib.metadata.EntryPoint(name="jsonl-corpus", value="my_formats:JsonlCorpus",
                                       group=formats.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [ep] if group == formats.ENTRY_POINT_GROUP else [])
    formats.DATA_FORMATS.load()  # the built-ins (no-op if already loaded)
    formats.DATA_FORMATS._load_entry_point(ep)  # what load() does for each installed entry point
    yield ep
    formats.DATA_FORMATS.unregister("jsonl-corpus")
    sys.modules.pop("my_formats", None)


def _files(root: Path) -> dict[str, str]:
    mine = root / "mine"
    mine.mkdir()
    (mine / "docs-0.jsonl").write_text('{"docid": "d1", "title": "Graph search", "text": "breadth  first"}\n'
                                       '{"docid": "d2", "text": "depth first"}\n')
    (mine / "docs-1.jsonl").write_text('\n{"docid": "d3", "title": "Sorting", "text": "quick sort"}\n')
    (mine / "topics.tsv").write_text("q1\tgraph search\nq2\tsorting\n")
    (mine / "qrels.txt").write_text("q1 0 d1 1\nq2 0 d3 2\n")
    return {"sha0": _sha(mine / "docs-0.jsonl"), "sha1": _sha(mine / "docs-1.jsonl"),
            "sha_t": _sha(mine / "topics.tsv"), "sha_q": _sha(mine / "qrels.txt")}


def _load(path: Path) -> Task:
    """What the task loader does with a data section: parse each entry, check its format's options."""
    raw = yaml.safe_load(path.read_text())
    data = {name: parse_entry(path, name, entry) for name, entry in raw["data"].items()}
    task = Task(id=raw["id"], version=raw["version"], kind=raw["kind"], title=raw["title"], description="",
                data=data, protocol=raw["protocol"], metrics=(), path=path)
    formats.check_task_data(task)
    return task


def test_plugin_format_reads_a_corpus_in_two_parts(plugin, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    assert "jsonl-corpus" in formats.format_names()
    assert formats.get_format("jsonl-corpus").summary().startswith("JSON lines")
    path = tmp_path / "my-collection.yaml"
    path.write_text(TASK.format(**_files(tmp_path)))
    coll = load_collection(_load(path))
    assert [(d.docno, d.title, d.text) for d in coll.corpus.documents] == [
        ("d1", "Graph search", "breadth first"), ("d2", "", "depth first"), ("d3", "Sorting", "quick sort")]
    assert coll.topics.to_dict("records") == [{"qid": "q1", "query": "graph search"}, {"qid": "q2", "query": "sorting"}]
    assert coll.qrels.values.tolist() == [["q1", "d1", 1], ["q2", "d3", 2]]
    corpus = next(d for d in coll.data if d["name"] == "corpus")
    assert corpus["location"] == ["$HARNESS_DATA_DIR/mine/docs-0.jsonl", "$HARNESS_DATA_DIR/mine/docs-1.jsonl"]
    assert corpus["parse"]["documents"] == 3

    # a malformed part is named by file and line
    (tmp_path / "mine" / "docs-1.jsonl").write_text('{"id": "d3"}\n')
    bad = tmp_path / "bad-part.yaml"
    bad.write_text(TASK.format(**{**_files_shas(tmp_path), "sha1": _sha(tmp_path / "mine" / "docs-1.jsonl")}))
    with pytest.raises(DataIntegrityError, match=r"docs-1\.jsonl:1: expected a JSON object with 'docid'"):
        load_collection(_load(bad))


def _files_shas(root: Path) -> dict[str, str]:
    mine = root / "mine"
    return {"sha0": _sha(mine / "docs-0.jsonl"), "sha1": _sha(mine / "docs-1.jsonl"),
            "sha_t": _sha(mine / "topics.tsv"), "sha_q": _sha(mine / "qrels.txt")}


def test_plugin_format_bad_option_fails_with_file_and_field(plugin, tmp_path):
    shas = _files(tmp_path)
    path = tmp_path / "typo.yaml"
    path.write_text(TASK.format(**shas).replace("id_field: docid", "id_feild: docid"))
    with pytest.raises(TaskDefinitionError) as exc:
        _load(path)
    assert str(exc.value).startswith(f"{path}: field 'data.corpus.id_feild': unknown option of data format "
                                     "'jsonl-corpus'. Did you mean 'id_field'?")
    assert "Valid options of jsonl-corpus: id_field, title" in str(exc.value)
    path.write_text(TASK.format(**shas).replace("id_field: docid", "title: [not, a, bool]"))
    with pytest.raises(TaskDefinitionError, match=r"field 'data.corpus.title': Input should be a valid boolean"):
        _load(path)

    # the same through today's task loader (one-file entry): the file and the field are named
    single = TASK.format(**shas).replace(
        "    parts:\n      - data_dir: mine/docs-0.jsonl\n", "    sources:\n      - data_dir: mine/docs-0.jsonl\n"
    ).replace(f"      - data_dir: mine/docs-1.jsonl\n        sha256: {shas['sha1']}\n", "")
    path.write_text(single.replace("id_field: docid", "id_feild: docid"))
    with pytest.raises(TaskDefinitionError, match=rf"{path}: field 'data.corpus.id_feild': unknown option"):
        load_task_file(path)  # refused when the task loads, before any work
    # and a several-part entry loads through the task loader as a whole
    path.write_text(TASK.format(**shas))
    task = load_task_file(path)
    assert len(task.data["corpus"].parts) == 2 and task.data["corpus"].sources == ()


def test_plugin_that_is_not_a_data_format_is_refused(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "not_a_format.py").write_text("class Reader:\n    name = 'csv-qrels'\n")
    monkeypatch.syspath_prepend(str(pkg))
    ep = importlib.metadata.EntryPoint(name="csv-qrels", value="not_a_format:Reader", group=formats.ENTRY_POINT_GROUP)
    formats.DATA_FORMATS.load()
    formats.DATA_FORMATS._load_entry_point(ep)
    try:
        with pytest.raises(Exception, match="is not a DataFormat"):
            formats.get_format("csv-qrels")
    finally:
        formats.DATA_FORMATS.unregister("csv-qrels")
        sys.modules.pop("not_a_format", None)


def test_module_entry_point_with_register_format(tmp_path, monkeypatch):
    """An entry point may name a module; its classes register themselves with @register_format."""
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "csv_qrels_fmt.py").write_text(textwrap.dedent('''
        import csv

        from harness.formats import DataFormat, FormatOptions, register_format
        from harness.ir.formats import Parsed


        @register_format
        class CsvQrels(DataFormat):
            """CSV qrels with a header: query,doc,label."""

            name = "csv-qrels"
            produces = "qrels"

            class Options(FormatOptions):
                delimiter: str = ","

            def read(self, files, options):
                rows = []
                for f in files:
                    with open(f.path, newline="", encoding="utf-8") as fh:
                        for row in csv.DictReader(fh, delimiter=options.delimiter):
                            rows.append((row["query"], row["doc"], int(row["label"])))
                return Parsed(rows)
    '''))
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    ep = importlib.metadata.EntryPoint(name="csv-qrels", value="csv_qrels_fmt", group=formats.ENTRY_POINT_GROUP)
    formats.DATA_FORMATS.load()
    formats.DATA_FORMATS._load_entry_point(ep)
    try:
        (tmp_path / "q.csv").write_text("query;doc;label\nq1;d1;2\nq1;d2;0\n")
        spec = parse_entry("t.yaml", "qrels", {"format": "csv-qrels", "delimiter": ";",
                                               "sources": [{"data_dir": "q.csv", "sha256": _sha(tmp_path / "q.csv")}]})
        parsed, _ = formats.read_spec(spec)
        assert parsed.rows == [("q1", "d1", 2), ("q1", "d2", 0)]
        with pytest.raises(TaskDefinitionError, match=r"t.yaml: field 'data.qrels.delimeter': .*'delimiter'"):
            formats.check_options("csv-qrels", {"delimeter": ";"}, "t.yaml: field 'data.qrels'")
    finally:
        formats.DATA_FORMATS.unregister("csv-qrels")
        sys.modules.pop("csv_qrels_fmt", None)
