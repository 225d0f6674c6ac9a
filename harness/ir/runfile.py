"""The stored form of a ranked run, and its export to the TREC run format.

A stored run is *ranked lists*: one line per query, in run order, ``qid<TAB>docno docno ...`` with
the documents in rank order (rank 1 first), compressed with xz. That is exactly what the metrics
were computed on (the evaluator hands ir-measures rank-derived scores), at a quarter of the size of
a gzipped TREC file: the ``Q0``, rank, score and tag columns of a TREC run carry no information
once the order is fixed. ``harness export-run RUN_ID`` writes the standard TREC file
(``qid Q0 docno rank score tag``, score = depth - rank + 1 ... 1, as trec_eval needs to keep the
order), byte-identical to what the harness stored before this format existed.
"""

from __future__ import annotations

import lzma
from collections.abc import Iterable, Sequence

from harness.errors import DataIntegrityError

FORMAT = "ranked-lists+xz"
TREC_GZIP_FORMAT = "trec+gzip"  # the older stored form, still read
_XZ_PRESET = 9


def encode(lists: Iterable[tuple[str, Sequence[str]]]) -> bytes:
    """(qid, docnos in rank order) per query -> xz-compressed ranked lists."""
    lines = []
    for qid, docnos in lists:
        for token in (qid, *docnos):
            if not token or any(c.isspace() for c in token):
                raise ValueError(f"query/document ids must be non-empty without whitespace, got {token!r}")
        lines.append(f"{qid}\t{' '.join(docnos)}\n")
    return lzma.compress("".join(lines).encode(), preset=_XZ_PRESET)


def decode(data: bytes, where: str = "run") -> list[tuple[str, list[str]]]:
    try:
        text = lzma.decompress(data).decode()
    except (lzma.LZMAError, UnicodeDecodeError) as exc:
        raise DataIntegrityError(f"{where}: not an xz-compressed ranked-lists file ({exc})") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        qid, sep, docs = line.partition("\t")
        if not sep or not qid:
            raise DataIntegrityError(f"{where}:{lineno}: expected 'qid<TAB>docno docno ...'")
        out.append((qid, docs.split(" ") if docs else []))
    return out


def from_frame(run) -> bytes:  # noqa: ANN001 - a normalised pandas run (qid, docno, rank)
    """A normalised run (sorted by query first appearance, then rank) -> stored bytes."""
    lists: dict[str, list[str]] = {}
    for qid, docno in zip(run["qid"], run["docno"], strict=True):
        lists.setdefault(str(qid), []).append(str(docno))
    return encode(lists.items())


def to_trec(lists: Sequence[tuple[str, Sequence[str]]], tag: str) -> bytes:
    """Ranked lists -> TREC run text with rank-derived scores (``depth - rank``, ranks from 0),
    written by PyTerrier's writer (:func:`harness.ir.formats.trec_run.write_trec_run`)."""
    import pandas as pd

    from harness.ir.formats.trec_run import write_trec_run

    rows = [(qid, docno, r) for qid, docs in lists for r, docno in enumerate(docs)]
    return write_trec_run(pd.DataFrame(rows, columns=["qid", "docno", "rank"]), tag)


def from_trec(text: bytes, where: str = "run") -> tuple[list[tuple[str, list[str]]], str]:
    """A TREC run written by :func:`to_trec` (or the older gzipped artifacts) -> (lists, tag).
    Refuses a file whose rows are not in rank order, so nothing is silently reordered."""
    lists: dict[str, list[str]] = {}
    tags = set()
    for lineno, line in enumerate(text.decode().splitlines(), 1):
        parts = line.split()
        if len(parts) != 6:
            raise DataIntegrityError(f"{where}:{lineno}: expected 6 columns 'qid Q0 docno rank score tag'")
        qid, _q0, docno, rank, _score, tag = parts
        docs = lists.setdefault(qid, [])
        if int(rank) != len(docs) + 1:
            raise DataIntegrityError(f"{where}:{lineno}: rank {rank} out of order for query {qid}")
        docs.append(docno)
        tags.add(tag)
    if len(tags) > 1:
        raise DataIntegrityError(f"{where}: several run tags {sorted(tags)}")
    return list(lists.items()), (tags.pop() if tags else "run")


def stored_lists(result_path, result) -> tuple[list[tuple[str, list[str]]], str]:  # noqa: ANN001
    """(ranked lists, tag) of a stored IR result: its ``run`` artifact (or the older gzipped TREC
    file ``run.trec.gz``), checked against the recorded sha256."""
    import gzip

    from harness.results import load_artifact

    arts = result.artifacts or {}
    name = "run" if "run" in arts else "run.trec.gz"
    fmt, data = load_artifact(result_path, result, name)
    where = f"{result_path}: artifact {name!r}"
    if fmt == FORMAT:
        return decode(data, where), result.method.name
    if fmt == TREC_GZIP_FORMAT:
        return from_trec(gzip.decompress(data), where)
    raise DataIntegrityError(f"{where}: unknown run format {fmt!r}")


def export_trec(result_path, result) -> bytes:  # noqa: ANN001
    """The standard TREC run file of a stored IR result (what ``harness export-run`` writes)."""
    lists, tag = stored_lists(result_path, result)
    return to_trec(lists, tag)
