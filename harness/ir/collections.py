"""Loaders of the IR test collections the retrieval tasks evaluate on.

Each task YAML (``tasks/retrieval/<id>.yaml``) pins three data entries, ``corpus``, ``topics`` and
``qrels``, each with a ``format``: a registered reader (:mod:`harness.formats`; the built-in ones
are in :mod:`harness.ir.formats`, one module each). Any registered format that produces a corpus,
topics or qrels can be used, including a plug-in's. The built-in ones:

corpus formats
  ``trec-docs``      ``<DOC><DOCNO>id</DOCNO> text </DOC>`` (Vaswani)
  ``smart-docs``     SMART sections ``.I id`` then ``.T`` (title) ``.W`` (text) and ``.A .B .X .N .K .C``
                     (ignored); CRLF tolerated (Cranfield, CISI, CACM)
  ``scifact-zip``    the SciFact CSV export (``corpus_train.csv`` in a zip); ``abstract`` is a numpy
                     repr of a list of sentences, parsed token by token (see ``_parse_sentence_list``)
  ``sciq-arrow``     derived: SciQ ``support`` paragraphs (see the ``sciq-derived`` task)
topics formats
  ``trec-topics``    ``<top><num>id</num><title>text</title></top>``
  ``smart-queries``  SMART ``.I id`` + ``.W`` text; option ``ids: ordinal`` renumbers queries 1..N in
                     file order (Cranfield's qrels number queries by position, not by ``.I``);
                     a trailing ``.I 0`` placeholder with no text (CACM) is skipped
  ``beir-topics``    gzipped ``qid<TAB>query``
  ``sciq-arrow``     derived: the SciQ questions
qrels formats
  ``trec-qrels``     ``qid iter docno rel`` (parsed by ``ir_measures.read_trec_qrels``)
  ``pair-qrels``     ``qid docno [anything]``: every listed pair is relevant (relevance 1) (CISI, CACM)
  ``graded-qrels``   ``qid docno grade`` with option ``grade_map`` {grade: relevance} (Cranfield)
  ``sciq-arrow``     derived: each question's own passage has relevance 1

An entry split over several files (``parts``) is read part by part in the declared order; the rows
are concatenated before the rules below apply.

Identifiers from SMART files are integers and are normalised (``"001"`` -> ``"1"``) so that the
topics, qrels and corpus agree.

Deterministic rules for imperfect data (each occurrence counted in the ``parse`` entry of the data
provenance, which is stored with every result):

* duplicate document id: the first occurrence wins (``duplicate_docnos``);
* empty document (no title and no text): kept, so the document set equals the collection's
  (``empty_documents``);
* duplicate query id: the first occurrence wins (``duplicate_qids``);
* duplicate (qid, docno) judgement: the first occurrence wins (``duplicate_qrels``);
* judgement whose query is not in the topics: dropped (``qrels_unknown_qid``);
* judgement whose document is not in the corpus: kept, as trec_eval does (it counts towards recall
  denominators) (``qrels_unknown_docno``);
* topic with no judgement at all: dropped from the evaluated topics, as trec_eval averages over
  judged queries only (``topics_without_qrels``; ``topics_in_file`` keeps the raw count).

Malformed input raises :class:`DataIntegrityError` naming the file and the line.

When the data directory is unavailable and the hub is allowed, a task whose ``options.ir_datasets``
names an ``ir_datasets`` id is loaded through ``ir_datasets`` instead (same parsing rules for qrels
grades and unjudged topics); the provenance then says ``source: ir_datasets``.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Iterable
from typing import Any

import pandas as pd

from harness import config
from harness.data import ResolvedData, local_path, provenance_of, resolve_parts
from harness.errors import DataIntegrityError, HarnessError
from harness.formats import check_spec, get_format, parse_options, reader, spec_where
from harness.ir.base import Corpus, Document, IRCollection
from harness.ir.formats._common import Parsed, clean
from harness.ir.formats._smart import SMART_MARKERS, smart_records
from harness.ir.formats.beir_topics import parse_beir_topics
from harness.ir.formats.qrels import parse_qrels
from harness.ir.formats.scifact_zip import parse_scifact_zip, parse_sentence_list
from harness.ir.formats.sciq_arrow import parse_sciq
from harness.ir.formats.smart_docs import parse_smart_docs
from harness.ir.formats.smart_queries import parse_smart_queries
from harness.ir.formats.trec_docs import parse_trec_docs
from harness.ir.formats.trec_topics import parse_trec_topics
from harness.tasks import Task

log = logging.getLogger(__name__)

# Names kept for code written against the single-module loader.
_Parsed = Parsed
_clean = clean
_parse_sentence_list = parse_sentence_list
_smart_records = smart_records
__all__ = [
    "SMART_MARKERS", "assemble", "corpus_digest", "load_collection", "load_ir_collection", "load_ir_datasets",
    "parse_beir_topics", "parse_qrels", "parse_scifact_zip", "parse_sciq", "parse_smart_docs",
    "parse_smart_queries", "parse_trec_docs", "parse_trec_topics",
]

ENTRIES = ("corpus", "topics", "qrels")
_PARSE_KEYS = {
    "corpus": ("duplicate_docnos", "empty_documents"),
    "topics": ("topics_in_file", "duplicate_qids", "topics_without_qrels", "placeholder_queries",
               "questions_without_support"),
    "qrels": ("duplicate_qrels", "qrels_unknown_qid", "qrels_unknown_docno"),
}


def corpus_digest(documents: Iterable[Document]) -> str:
    """sha256 over ``docno \\x1f title \\x1f text \\x1e`` for each document, in corpus order."""
    h = hashlib.sha256()
    for d in documents:
        h.update(f"{d.docno}\x1f{d.title}\x1f{d.text}\x1e".encode())
    return h.hexdigest()


def _dedupe_documents(docs: list[Document], counts: dict[str, int]) -> list[Document]:
    seen: set[str] = set()
    out = []
    for d in docs:
        if d.docno in seen:
            counts["duplicate_docnos"] += 1
            continue
        seen.add(d.docno)
        if not d.text and not d.title:
            counts["empty_documents"] += 1
        out.append(d)
    return out


def assemble(
    collection_id: str,
    documents: list[Document] | None,
    topic_rows: list[tuple[str, str]],
    qrel_rows: list[tuple[str, str, int]],
) -> tuple[Corpus | None, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Apply the documented rules; return corpus, topics, qrels and the counts of what they changed."""
    counts = {k: 0 for k in (
        "duplicate_docnos", "empty_documents", "duplicate_qids", "duplicate_qrels",
        "qrels_unknown_qid", "qrels_unknown_docno", "topics_without_qrels",
    )}
    corpus = None
    if documents is not None:
        docs = _dedupe_documents(documents, counts)
        corpus = Corpus(collection_id, corpus_digest(docs), docs)
    topics: dict[str, str] = {}
    for qid, query in topic_rows:
        if qid in topics:
            counts["duplicate_qids"] += 1
            continue
        topics[qid] = query
    counts["topics_in_file"] = len(topic_rows)
    docnos = {d.docno for d in corpus.documents} if corpus is not None else None
    qrels: dict[tuple[str, str], int] = {}
    for qid, docno, rel in qrel_rows:
        if qid not in topics:
            counts["qrels_unknown_qid"] += 1
            continue
        if (qid, docno) in qrels:
            counts["duplicate_qrels"] += 1
            continue
        if docnos is not None and docno not in docnos:
            counts["qrels_unknown_docno"] += 1
        qrels[(qid, docno)] = rel
    judged = {qid for qid, _ in qrels}
    kept = [(qid, q) for qid, q in topics.items() if qid in judged]
    counts["topics_without_qrels"] = len(topics) - len(kept)
    topics_df = pd.DataFrame(kept, columns=["qid", "query"]).astype({"qid": str, "query": str})
    qrels_df = pd.DataFrame(
        [(q, d, r) for (q, d), r in qrels.items()], columns=["query_id", "doc_id", "relevance"]
    ).astype({"query_id": str, "doc_id": str, "relevance": "int64"})
    return corpus, topics_df, qrels_df, counts


def _log_counts(collection_id: str, counts: dict[str, int]) -> None:
    notable = {k: v for k, v in counts.items() if v and k not in ("topics_in_file",)}
    if notable:
        log.warning("collection %s: %s", collection_id, ", ".join(f"{k}={v}" for k, v in sorted(notable.items())))


def _data_dir_unavailable(task: Task) -> bool:
    """True when no local file of the task exists at all (so ir_datasets may be tried)."""
    for spec in task.data.values():
        for src in spec.all_sources():
            p = local_path(src)
            if p is not None and p.is_file():
                return False
    return True


def _read_entries(task: Task, resolved: dict[str, list[ResolvedData]]) -> dict[str, Parsed]:
    """Parse corpus, topics and qrels with their registered formats (one read for a format that
    produces the whole collection, such as ``sciq-arrow``)."""
    specs = {name: task.data[name] for name in ENTRIES}
    where = task.path or task.id
    opts = {name: check_spec(spec, where) for name, spec in specs.items()}
    produces = {name: get_format(spec.format).produces for name, spec in specs.items()}
    if "collection" in produces.values():
        fmts = {spec.format for spec in specs.values()}
        if set(produces.values()) != {"collection"} or len(fmts) != 1:
            raise HarnessError(f"{where}: field 'data': a format that produces a whole collection ({sorted(fmts)}) "
                               "must be named by corpus, topics and qrels alike")
        paths = {tuple(f.path for f in files) for files in resolved.values()}
        if len(paths) != 1:
            raise HarnessError(f"task {task.id!r}: corpus, topics and qrels must be the same {specs['corpus'].format} file")
        corpus_p, topics_p, qrels_p = reader(specs["corpus"].format).read(resolved["corpus"], opts["corpus"])
        return {"corpus": corpus_p, "topics": topics_p, "qrels": qrels_p}
    out = {}
    for name, spec in specs.items():
        if produces[name] != name:
            raise HarnessError(f"{where}: field 'data.{name}.format': {spec.format!r} produces {produces[name]}, "
                               f"not {name}")
        out[name] = reader(spec.format).read(resolved[name], opts[name])
    return out


def _provenance(resolved: dict[str, list[ResolvedData]], parsed: dict[str, Parsed], corpus: Corpus,
                topics: pd.DataFrame, qrels: pd.DataFrame, counts: dict[str, int]) -> list[dict[str, Any]]:
    sizes = {"corpus": {"documents": len(corpus), "corpus_digest": corpus.digest},
             "topics": {"topics": len(topics)}, "qrels": {"qrels": len(qrels)}}
    data = []
    for name, files in resolved.items():
        prov = provenance_of(files)
        keys = _PARSE_KEYS[name]
        parse = {**sizes[name], **{k: v for k, v in counts.items() if k in keys}}
        # counts a reader reports beyond the documented ones (a plug-in's rules) go with its entry
        parse.update({k: v for k, v in parsed[name].counts.items() if k not in parse})
        prov["parse"] = parse
        data.append(prov)
    return data


def load_collection(task: Task) -> IRCollection:
    """The corpus, judged topics and qrels of a retrieval task, with provenance and parse counts."""
    if task.kind != "retrieval":
        raise HarnessError(f"task {task.id!r} is of kind {task.kind!r}; load_collection reads retrieval tasks")
    irds_id = task.options.get("ir_datasets")
    if irds_id and _data_dir_unavailable(task) and config.hub_allowed():
        return load_ir_datasets(task, str(irds_id))
    for name in ENTRIES:
        if name not in task.data:
            raise HarnessError(f"{task.path}: field 'data.{name}': a retrieval task needs corpus, topics and qrels")
    resolved = {name: resolve_parts(task.data[name]) for name in ENTRIES}
    if any(f.path is None for files in resolved.values() for f in files):
        raise HarnessError(f"task {task.id!r}: retrieval data must be local files (data_dir or package sources)")
    parsed = _read_entries(task, resolved)
    corpus, topics, qrels, counts = assemble(task.id, parsed["corpus"].rows, parsed["topics"].rows,
                                             parsed["qrels"].rows)
    assert corpus is not None
    counts.update(parsed["topics"].counts)
    _log_counts(task.id, counts)
    data = _provenance(resolved, parsed, corpus, topics, qrels, counts)
    return IRCollection(id=task.id, topics=topics, qrels=qrels, corpus=corpus, data=data)


def load_ir_collection(task: Task) -> IRCollection:
    """The collection of any IR task: the loader module named by ``options.loader`` (e.g. ``trecdl``
    for the TREC DL reranking tasks), else :func:`load_collection`. Same behaviour as the function
    of that name in :mod:`harness.ir.evaluate`."""
    loader = task.options.get("loader")
    if loader:
        try:
            module = importlib.import_module(f"harness.ir.{loader}")
        except ModuleNotFoundError:
            raise HarnessError(f"{task.path}: field 'options.loader': no loader module harness.ir.{loader}") from None
        return module.load_collection(task)
    return load_collection(task)


def load_ir_datasets(task: Task, irds_id: str) -> IRCollection:
    """Online path: the same collection through ``ir_datasets`` (untested offline)."""
    try:
        import ir_datasets
    except ImportError:
        raise HarnessError("the data directory is unavailable and ir_datasets is not installed") from None
    ds = ir_datasets.load(irds_id)
    docs = [Document(str(d.doc_id), clean(getattr(d, "text", "") or ""), clean(getattr(d, "title", "") or ""))
            for d in ds.docs_iter()]
    topic_rows = [(str(q.query_id), clean(getattr(q, "text", "") or getattr(q, "title", ""))) for q in ds.queries_iter()]
    qrels_spec = task.data.get("qrels")
    gmap = None
    if qrels_spec is not None:
        opts = parse_options(qrels_spec.format, qrels_spec.options, spec_where(qrels_spec, task.path or task.id))
        if getattr(opts, "grade_map_ir_datasets", False):
            gmap = getattr(opts, "grade_map", None)
    qrel_rows = []
    for q in ds.qrels_iter():
        rel = int(q.relevance)
        if gmap is not None:
            if rel not in gmap:
                raise DataIntegrityError(f"ir_datasets {irds_id}: grade {rel} not in the task's grade_map")
            rel = gmap[rel]
        qrel_rows.append((str(q.query_id), str(q.doc_id), rel))
    corpus, topics, qrels, counts = assemble(task.id, docs, topic_rows, qrel_rows)
    assert corpus is not None
    _log_counts(task.id, counts)
    data = [{"name": "collection", "source": "ir_datasets", "location": f"ir_datasets:{irds_id}",
             "sha256": None, "content_sha256": None,
             "parse": {"documents": len(corpus), "corpus_digest": corpus.digest, "topics": len(topics),
                       "qrels": len(qrels), **counts}}]
    return IRCollection(id=task.id, topics=topics, qrels=qrels, corpus=corpus, data=data)
