"""Loaders of the IR test collections the retrieval tasks evaluate on.

Each task YAML (``tasks/retrieval/<id>.yaml``) pins three data entries, ``corpus``, ``topics`` and
``qrels``, each with a ``format`` read here:

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
  ``trec-qrels``     ``qid iter docno rel``
  ``pair-qrels``     ``qid docno [anything]``: every listed pair is relevant (relevance 1) (CISI, CACM)
  ``graded-qrels``   ``qid docno grade`` with option ``grade_map`` {grade: relevance} (Cranfield)
  ``sciq-arrow``     derived: each question's own passage has relevance 1

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

import ast
import csv
import gzip
import hashlib
import io
import logging
import re
import tokenize
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import config
from harness.data import DataSpec, ResolvedData, local_path, resolve
from harness.errors import DataIntegrityError, HarnessError
from harness.ir.base import Corpus, Document, IRCollection
from harness.tasks import Task

log = logging.getLogger(__name__)

SMART_MARKERS = {"I", "T", "A", "B", "W", "X", "N", "K", "C"}


def corpus_digest(documents: Iterable[Document]) -> str:
    """sha256 over ``docno \\x1f title \\x1f text \\x1e`` for each document, in corpus order."""
    h = hashlib.sha256()
    for d in documents:
        h.update(f"{d.docno}\x1f{d.title}\x1f{d.text}\x1e".encode())
    return h.hexdigest()


@dataclass
class _Parsed:
    """What one file parser returns: rows plus counts of what the rules above changed."""

    rows: list[Any]
    counts: dict[str, int] = field(default_factory=dict)


def _fail(path: Path | str, lineno: int | None, msg: str) -> DataIntegrityError:
    where = f"{path}:{lineno}" if lineno is not None else str(path)
    return DataIntegrityError(f"{where}: {msg}")


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(path, line, f"not valid UTF-8 ({exc.reason})") from None
    return text.splitlines()  # handles CRLF


def _norm_int_id(path: Path, lineno: int, raw: str, what: str) -> str:
    try:
        return str(int(raw))
    except ValueError:
        raise _fail(path, lineno, f"{what} {raw!r} is not an integer") from None


def _clean(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------- corpus formats


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


def parse_trec_docs(path: Path) -> _Parsed:
    docs: list[Document] = []
    docno: str | None = None
    body: list[str] | None = None
    start = 0
    for lineno, line in enumerate(_read_lines(path), 1):
        s = line.strip()
        if s == "<DOC>":
            if body is not None:
                raise _fail(path, lineno, f"<DOC> opened inside the <DOC> of line {start}")
            body, docno, start = [], None, lineno
            continue
        if body is None:
            if s:
                raise _fail(path, lineno, "text outside <DOC>...</DOC>")
            continue
        if s == "</DOC>":
            if docno is None:
                raise _fail(path, lineno, f"the <DOC> of line {start} has no <DOCNO>")
            docs.append(Document(docno, _clean(" ".join(body))))
            body = None
            continue
        m = re.match(r"^<DOCNO>\s*(.*?)\s*</DOCNO>(.*)$", s)
        if m:
            if docno is not None:
                raise _fail(path, lineno, "second <DOCNO> in one document")
            if not m.group(1):
                raise _fail(path, lineno, "empty <DOCNO>")
            docno = m.group(1)
            body.append(m.group(2))
        else:
            body.append(line)
    if body is not None:
        raise _fail(path, start, "<DOC> is never closed")
    return _Parsed(docs)


def _smart_records(path: Path, lines: list[str] | None = None) -> list[tuple[int, str, dict[str, str]]]:
    """(line of .I, raw id, {marker: text}) for each record of a SMART file."""
    records: list[tuple[int, str, dict[str, str]]] = []
    current: dict[str, list[str]] | None = None
    section: str | None = None
    for lineno, line in enumerate(lines if lines is not None else _read_lines(path), 1):
        m = re.match(r"^\.([A-Z])(?:\s+(.*?))?\s*$", line)
        if m and m.group(1) in SMART_MARKERS:
            marker, arg = m.group(1), m.group(2)
            if marker == "I":
                if not arg:
                    raise _fail(path, lineno, ".I without an id")
                current = {}
                records.append((lineno, arg, current))  # type: ignore[arg-type]
                section = None
                continue
            if current is None:
                raise _fail(path, lineno, f".{marker} before the first .I")
            section = marker
            current.setdefault(section, [])
            if arg:  # text on the marker line itself (rare; CISI has ".T " with a trailing space)
                current[section].append(arg)
            continue
        if m and line.startswith(".") and m.group(1) not in SMART_MARKERS:
            raise _fail(path, lineno, f"unknown SMART section marker {line.split()[0]!r}")
        if current is None:
            if line.strip():
                raise _fail(path, lineno, "text before the first .I")
            continue
        if section is None:
            if line.strip():
                raise _fail(path, lineno, "text after .I and before any section marker")
            continue
        current[section].append(line)
    return [(ln, rid, {k: _clean(" ".join(v)) for k, v in sec.items()}) for ln, rid, sec in records]  # type: ignore[union-attr]


def parse_smart_docs(path: Path) -> _Parsed:
    docs = []
    for lineno, rid, sec in _smart_records(path):
        docno = _norm_int_id(path, lineno, rid, "document id")
        docs.append(Document(docno, sec.get("W", ""), sec.get("T", "")))
    return _Parsed(docs)


def _parse_sentence_list(raw: str, where: str) -> list[str]:
    """Sentences from a numpy-array repr such as ``"['s1'\\n 's2']"``.

    Each STRING token is evaluated on its own: ``ast.literal_eval`` of the whole field would merge
    adjacent literals (implicit concatenation), because numpy omits the commas.
    """
    s = raw.strip()
    if not (s.startswith("[") and s.endswith("]")):
        raise DataIntegrityError(f"{where}: abstract is not a bracketed list of sentences")
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(s).readline):
            if tok.type == tokenize.STRING:
                out.append(ast.literal_eval(tok.string))
            elif tok.type == tokenize.OP and tok.string in ("[", "]", ","):
                continue
            elif tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
                continue
            else:
                raise DataIntegrityError(f"{where}: unexpected token {tok.string!r} in abstract")
    except (tokenize.TokenError, SyntaxError, ValueError) as exc:
        raise DataIntegrityError(f"{where}: cannot parse abstract: {exc}") from None
    return out


def parse_scifact_zip(path: Path, member: str = "corpus_train.csv") -> _Parsed:
    with zipfile.ZipFile(path) as zf:
        if member not in zf.namelist():
            raise _fail(path, None, f"zip has no member {member!r} (has {zf.namelist()})")
        text = zf.read(member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"doc_id", "title", "abstract"} - set(reader.fieldnames or [])
    if missing:
        raise _fail(f"{path}!{member}", 1, f"missing columns {sorted(missing)}")
    docs = []
    for row in reader:
        where = f"{path}!{member}:{reader.line_num}"
        sentences = _parse_sentence_list(row["abstract"], where)
        docs.append(Document(str(row["doc_id"]).strip(), " ".join(s.strip() for s in sentences), row["title"].strip()))
    return _Parsed(docs)


# --------------------------------------------------------------------------------- topic formats


def parse_trec_topics(path: Path) -> _Parsed:
    text = "\n".join(_read_lines(path))
    rows = []
    for m in re.finditer(r"<top>(.*?)</top>", text, flags=re.S):
        lineno = text.count("\n", 0, m.start()) + 1
        block = m.group(1)
        num = re.search(r"<num>\s*(?:Number:)?\s*(\S+?)\s*(?:</num>|\n)", block)
        title = re.search(r"<title>(.*?)(?:</title>|<desc>|<narr>|$)", block, flags=re.S)
        if not num:
            raise _fail(path, lineno, "<top> without <num>")
        if not title or not _clean(title.group(1)):
            raise _fail(path, lineno, f"topic {num.group(1)} has no <title> text")
        rows.append((num.group(1), _clean(title.group(1))))
    if not rows:
        raise _fail(path, None, "no <top> topics found")
    return _Parsed(rows)


def parse_smart_queries(path: Path, ids: str = "file") -> _Parsed:
    rows = []
    counts = {"placeholder_queries": 0}
    for lineno, rid, sec in _smart_records(path):
        qid = _norm_int_id(path, lineno, rid, "query id")
        text = sec.get("W", "")
        if not text:
            if qid == "0":  # CACM's query file ends with an empty ".I 0" sentinel
                counts["placeholder_queries"] += 1
                continue
            raise _fail(path, lineno, f"query {rid} has no .W text")
        rows.append((qid, text))
    if ids == "ordinal":
        rows = [(str(i), text) for i, (_, text) in enumerate(rows, 1)]
    elif ids != "file":
        raise DataIntegrityError(f"{path}: option ids must be 'file' or 'ordinal', got {ids!r}")
    return _Parsed(rows, counts)


def parse_beir_topics(path: Path) -> _Parsed:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip():
                raise _fail(path, lineno, f"expected 'qid<TAB>query', got {len(parts)} fields")
            rows.append((parts[0].strip(), _clean(parts[1])))
    return _Parsed(rows)


# --------------------------------------------------------------------------------- qrels formats


def parse_qrels(path: Path, fmt: str, grade_map: dict[int, int] | None = None, int_ids: bool = False) -> _Parsed:
    rows = []
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if fmt == "trec-qrels":
            if len(parts) != 4:
                raise _fail(path, lineno, f"expected 'qid iter docno rel', got {len(parts)} fields")
            qid, docno, grade = parts[0], parts[2], parts[3]
        elif fmt == "pair-qrels":
            if len(parts) < 2:
                raise _fail(path, lineno, "expected 'qid docno ...'")
            qid, docno, grade = parts[0], parts[1], "1"
        elif fmt == "graded-qrels":
            if len(parts) != 3:
                raise _fail(path, lineno, f"expected 'qid docno grade', got {len(parts)} fields")
            qid, docno, grade = parts
        else:
            raise DataIntegrityError(f"{path}: unknown qrels format {fmt!r}")
        try:
            g = int(grade)
        except ValueError:
            raise _fail(path, lineno, f"relevance {grade!r} is not an integer") from None
        if grade_map is not None:
            if g not in grade_map:
                raise _fail(path, lineno, f"grade {g} is not in the task's grade_map {sorted(grade_map)}")
            g = grade_map[g]
        if int_ids:
            qid = _norm_int_id(path, lineno, qid, "query id")
            docno = _norm_int_id(path, lineno, docno, "document id")
        rows.append((qid, docno, g))
    return _Parsed(rows)


# --------------------------------------------------------------------------------- derived: SciQ


def _sciq_table(path: Path) -> pd.DataFrame:
    import pyarrow.ipc as ipc

    with open(path, "rb") as fh:
        table = ipc.open_stream(fh).read_all()
    missing = {"question", "support"} - set(table.column_names)
    if missing:
        raise _fail(path, None, f"missing columns {sorted(missing)}")
    return table.select(["question", "support"]).to_pandas()


def parse_sciq(path: Path) -> tuple[_Parsed, _Parsed, _Parsed]:
    """Passages = distinct non-empty ``support`` paragraphs (docno ``p<row of first use>``);
    queries = the questions whose support is non-empty (qid ``q<row>``); qrels = (question, its own
    passage, 1). Questions with an empty support are skipped (``questions_without_support``)."""
    df = _sciq_table(path)
    docs: list[Document] = []
    by_text: dict[str, str] = {}
    topics, qrels = [], []
    skipped = 0
    for i, (question, support) in enumerate(zip(df["question"], df["support"], strict=True)):
        support = _clean(support or "")
        if not support:
            skipped += 1
            continue
        if support not in by_text:
            by_text[support] = f"p{i}"
            docs.append(Document(f"p{i}", support))
        topics.append((f"q{i}", _clean(question)))
        qrels.append((f"q{i}", by_text[support], 1))
    return _Parsed(docs), _Parsed(topics, {"questions_without_support": skipped}), _Parsed(qrels)


# --------------------------------------------------------------------------------- assembling


def _parse_corpus(resolved: ResolvedData) -> _Parsed:
    fmt, path = resolved.spec.format, resolved.path
    assert path is not None
    if fmt == "trec-docs":
        return parse_trec_docs(path)
    if fmt == "smart-docs":
        return parse_smart_docs(path)
    if fmt == "scifact-zip":
        return parse_scifact_zip(path, resolved.spec.options.get("member", "corpus_train.csv"))
    raise DataIntegrityError(f"data {resolved.spec.name!r}: unknown corpus format {fmt!r}")


def _parse_topics(resolved: ResolvedData) -> _Parsed:
    fmt, path = resolved.spec.format, resolved.path
    assert path is not None
    if fmt == "trec-topics":
        return parse_trec_topics(path)
    if fmt == "smart-queries":
        return parse_smart_queries(path, ids=str(resolved.spec.options.get("ids", "file")))
    if fmt == "beir-topics":
        return parse_beir_topics(path)
    raise DataIntegrityError(f"data {resolved.spec.name!r}: unknown topics format {fmt!r}")


def _grade_map(spec: DataSpec) -> dict[int, int] | None:
    raw = spec.options.get("grade_map")
    if raw is None:
        return None
    try:
        return {int(k): int(v) for k, v in raw.items()}
    except (AttributeError, ValueError):
        raise HarnessError(f"data {spec.name!r}: grade_map must map integer grades to integer relevance") from None


def _parse_qrels(resolved: ResolvedData) -> _Parsed:
    spec, path = resolved.spec, resolved.path
    assert path is not None
    return parse_qrels(path, spec.format, _grade_map(spec), bool(spec.options.get("int_ids", False)))


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
        for src in spec.sources:
            p = local_path(src)
            if p is not None and p.is_file():
                return False
    return True


def load_collection(task: Task) -> IRCollection:
    """The corpus, judged topics and qrels of a retrieval task, with provenance and parse counts."""
    if task.kind != "retrieval":
        raise HarnessError(f"task {task.id!r} is of kind {task.kind!r}; load_collection reads retrieval tasks")
    irds_id = task.options.get("ir_datasets")
    if irds_id and _data_dir_unavailable(task) and config.hub_allowed():
        return load_ir_datasets(task, str(irds_id))
    for name in ("corpus", "topics", "qrels"):
        if name not in task.data:
            raise HarnessError(f"{task.path}: field 'data.{name}': a retrieval task needs corpus, topics and qrels")
    resolved = {name: resolve(task.data[name]) for name in ("corpus", "topics", "qrels")}
    if any(r.path is None for r in resolved.values()):
        raise HarnessError(f"task {task.id!r}: retrieval data must be local files (data_dir or package sources)")
    formats = {r.spec.format for r in resolved.values()}
    if formats == {"sciq-arrow"}:
        paths = {r.path for r in resolved.values()}
        if len(paths) != 1:
            raise HarnessError(f"task {task.id!r}: corpus, topics and qrels must be the same SciQ file")
        corpus_p, topics_p, qrels_p = parse_sciq(resolved["corpus"].path)  # type: ignore[arg-type]
    else:
        corpus_p = _parse_corpus(resolved["corpus"])
        topics_p = _parse_topics(resolved["topics"])
        qrels_p = _parse_qrels(resolved["qrels"])
    corpus, topics, qrels, counts = assemble(task.id, corpus_p.rows, topics_p.rows, qrels_p.rows)
    assert corpus is not None
    counts.update(topics_p.counts)
    _log_counts(task.id, counts)
    data = []
    for name, r in resolved.items():
        prov = r.provenance()
        if name == "corpus":
            prov["parse"] = {"documents": len(corpus), "corpus_digest": corpus.digest,
                             **{k: counts[k] for k in ("duplicate_docnos", "empty_documents")}}
        elif name == "topics":
            prov["parse"] = {"topics": len(topics), **{k: v for k, v in counts.items() if k in (
                "topics_in_file", "duplicate_qids", "topics_without_qrels", "placeholder_queries",
                "questions_without_support")}}
        else:
            prov["parse"] = {"qrels": len(qrels), **{k: counts[k] for k in (
                "duplicate_qrels", "qrels_unknown_qid", "qrels_unknown_docno")}}
        data.append(prov)
    return IRCollection(id=task.id, topics=topics, qrels=qrels, corpus=corpus, data=data)


def load_ir_datasets(task: Task, irds_id: str) -> IRCollection:
    """Online path: the same collection through ``ir_datasets`` (untested offline)."""
    try:
        import ir_datasets
    except ImportError:
        raise HarnessError("the data directory is unavailable and ir_datasets is not installed") from None
    ds = ir_datasets.load(irds_id)
    docs = [Document(str(d.doc_id), _clean(getattr(d, "text", "") or ""), _clean(getattr(d, "title", "") or ""))
            for d in ds.docs_iter()]
    topic_rows = [(str(q.query_id), _clean(getattr(q, "text", "") or getattr(q, "title", ""))) for q in ds.queries_iter()]
    qrels_spec = task.data.get("qrels")
    gmap = _grade_map(qrels_spec) if qrels_spec is not None and qrels_spec.options.get("grade_map_ir_datasets", True) else None
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
