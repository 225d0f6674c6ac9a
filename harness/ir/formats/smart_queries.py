"""``smart-queries``: SMART ``.I id`` + ``.W`` text."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.data import ResolvedData
from harness.errors import DataIntegrityError
from harness.formats import DataFormat, FormatOptions
from harness.ir.formats._common import Parsed, fail, norm_int_id
from harness.ir.formats._smart import smart_records


def _read(path: Path) -> Parsed:
    rows = []
    counts = {"placeholder_queries": 0}
    for lineno, rid, sec in smart_records(path):
        qid = norm_int_id(path, lineno, rid, "query id")
        text = sec.get("W", "")
        if not text:
            if qid == "0":  # CACM's query file ends with an empty ".I 0" sentinel
                counts["placeholder_queries"] += 1
                continue
            raise fail(path, lineno, f"query {rid} has no .W text")
        rows.append((qid, text))
    return Parsed(rows, counts)


def renumber(parsed: Parsed, ids: str, where: object) -> Parsed:
    if ids == "ordinal":
        parsed.rows = [(str(i), text) for i, (_, text) in enumerate(parsed.rows, 1)]
    elif ids != "file":
        raise DataIntegrityError(f"{where}: option ids must be 'file' or 'ordinal', got {ids!r}")
    return parsed


def parse_smart_queries(path: Path, ids: str = "file") -> Parsed:
    return renumber(_read(path), ids, path)


class SmartQueries(DataFormat):
    """SMART queries ``.I id`` + ``.W`` text; a trailing ``.I 0`` with no text (CACM) is skipped
    (``placeholder_queries``). ``ids: ordinal`` renumbers the queries 1..N in file order (Cranfield's
    qrels number queries by position, not by ``.I``); with several parts, across all parts."""

    name = "smart-queries"
    produces = "topics"

    class Options(FormatOptions):
        ids: Literal["file", "ordinal"] = "file"

    def read(self, files: list[ResolvedData], options: Options) -> Parsed:
        out = Parsed([], {"placeholder_queries": 0})
        for f in files:
            assert f.path is not None
            out.extend(_read(f.path))
        return renumber(out, options.ids, files[0].path)
