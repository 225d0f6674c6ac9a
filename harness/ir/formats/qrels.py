"""Relevance judgements: ``trec-qrels`` (read through ir-measures), ``pair-qrels``, ``graded-qrels``.

TREC qrels ``qid iter docno rel`` are parsed by :func:`ir_measures.read_trec_qrels`; this module
feeds it the strictly decoded lines and names the file and line of a malformed one. The other two
layouts are not TREC formats (no library reads them) and are parsed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import DataIntegrityError
from harness.formats import FormatOptions
from harness.ir.formats._common import Parsed, PerFileFormat, fail, norm_int_id, read_lines


class LineFeed:
    """A file-like object over decoded lines for ir-measures' readers, remembering the current line
    so a malformed one can be named (ir-measures reports only the unpacking error)."""

    def __init__(self, lines: Iterable[str]):
        self._lines = lines
        self.lineno = 0
        self.line = ""

    def read(self) -> str:  # ir-measures only checks that the attribute exists
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:
        for self.lineno, self.line in enumerate(self._lines, 1):
            yield self.line


def trec_qrels_rows(path: Path, lines: Iterable[str], bad_fields, bad_grade) -> Iterator[tuple[int, str, str, int]]:
    """(line, qid, docno, rel) of each TREC qrels line, parsed by ir-measures; ``bad_fields(lineno,
    n)`` / ``bad_grade(lineno, raw)`` build the error for a malformed line."""
    import ir_measures

    feed = LineFeed(lines)
    try:
        for q in ir_measures.read_trec_qrels(feed):
            yield feed.lineno, q.query_id, q.doc_id, q.relevance
    except ValueError:
        parts = feed.line.split()
        if len(parts) != 4:
            raise bad_fields(feed.lineno, len(parts)) from None
        raise bad_grade(feed.lineno, parts[3]) from None


def _pairs(path: Path, fmt: str) -> Iterator[tuple[int, str, str, int]]:
    if fmt == "trec-qrels":
        yield from trec_qrels_rows(
            path, read_lines(path),
            lambda n, k: fail(path, n, f"expected 'qid iter docno rel', got {k} fields"),
            lambda n, raw: fail(path, n, f"relevance {raw!r} is not an integer"))
        return
    for lineno, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if fmt == "pair-qrels":
            if len(parts) < 2:
                raise fail(path, lineno, "expected 'qid docno ...'")
            qid, docno, grade = parts[0], parts[1], "1"
        elif fmt == "graded-qrels":
            if len(parts) != 3:
                raise fail(path, lineno, f"expected 'qid docno grade', got {len(parts)} fields")
            qid, docno, grade = parts
        else:
            raise DataIntegrityError(f"{path}: unknown qrels format {fmt!r}")
        try:
            g = int(grade)
        except ValueError:
            raise fail(path, lineno, f"relevance {grade!r} is not an integer") from None
        yield lineno, qid, docno, g


def parse_qrels(path: Path, fmt: str, grade_map: dict[int, int] | None = None, int_ids: bool = False) -> Parsed:
    rows = []
    for lineno, qid, docno, g in _pairs(path, fmt):
        if grade_map is not None:
            if g not in grade_map:
                raise fail(path, lineno, f"grade {g} is not in the task's grade_map {sorted(grade_map)}")
            g = grade_map[g]
        if int_ids:
            qid = norm_int_id(path, lineno, qid, "query id")
            docno = norm_int_id(path, lineno, docno, "document id")
        rows.append((qid, docno, g))
    return Parsed(rows)


class QrelsOptions(FormatOptions):
    int_ids: bool = False  # normalise integer ids ("001" -> "1") as the SMART readers do
    grade_map: dict[int, int] | None = None  # {grade in the file: relevance}; a grade not listed is refused
    grade_map_ir_datasets: bool = True  # apply grade_map also to qrels read through ir_datasets (online)


class _Qrels(PerFileFormat):
    produces = "qrels"
    Options: ClassVar[type[FormatOptions]] = QrelsOptions

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_qrels(path, self.name, options.grade_map, options.int_ids)


class TrecQrels(_Qrels):
    """TREC qrels ``qid iter docno rel`` (read by ir-measures). Options: ``int_ids``, ``grade_map``."""

    name = "trec-qrels"


class PairQrels(_Qrels):
    """``qid docno [anything]``: every listed pair is relevant (relevance 1) (CISI, CACM).
    Options: ``int_ids``, ``grade_map``."""

    name = "pair-qrels"


class GradedQrels(_Qrels):
    """``qid docno grade``, mapped through ``grade_map`` {grade: relevance} (Cranfield: -1..4).
    Options: ``grade_map``, ``int_ids``."""

    name = "graded-qrels"


def read_trec_qrels_strict(path: Path) -> list[tuple[str, str, int]]:
    """TREC qrels for the TREC DL loader -> [(qid, docno, grade)]: malformed lines, duplicate
    judgements and an empty file are refused (errors ``<file>: line N: ...``)."""

    def bad(where: str, msg: str) -> DataIntegrityError:
        return DataIntegrityError(f"{path}: {where}: {msg}")

    out: list[tuple[str, str, int]] = []
    seen: set[tuple[str, str]] = set()
    with open(path, encoding="utf-8") as fh:
        rows = trec_qrels_rows(
            path, fh,
            lambda n, k: bad(f"line {n}", f"expected 'qid Q0 docno grade' (4 fields), got {k}"),
            lambda n, raw: bad(f"line {n}", f"grade {raw!r} is not an integer"))
        for lineno, qid, docno, rel in rows:
            if (qid, docno) in seen:
                raise bad(f"line {lineno}", f"duplicate judgement for query {qid} passage {docno}")
            seen.add((qid, docno))
            out.append((qid, docno, rel))
    if not out:
        raise bad("file", "no judgements")
    return out
