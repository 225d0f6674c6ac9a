"""``scifact-zip``: the SciFact CSV export (``corpus_train.csv`` in a zip)."""

from __future__ import annotations

import ast
import csv
import io
import tokenize
import zipfile
from pathlib import Path
from typing import Any

from harness.errors import DataIntegrityError
from harness.formats import FormatOptions
from harness.ir.base import Document
from harness.ir.formats._common import Parsed, PerFileFormat, fail


def parse_sentence_list(raw: str, where: str) -> list[str]:
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


def parse_scifact_zip(path: Path, member: str = "corpus_train.csv") -> Parsed:
    with zipfile.ZipFile(path) as zf:
        if member not in zf.namelist():
            raise fail(path, None, f"zip has no member {member!r} (has {zf.namelist()})")
        text = zf.read(member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"doc_id", "title", "abstract"} - set(reader.fieldnames or [])
    if missing:
        raise fail(f"{path}!{member}", 1, f"missing columns {sorted(missing)}")
    docs = []
    for row in reader:
        where = f"{path}!{member}:{reader.line_num}"
        sentences = parse_sentence_list(row["abstract"], where)
        docs.append(Document(str(row["doc_id"]).strip(), " ".join(s.strip() for s in sentences), row["title"].strip()))
    return Parsed(docs)


class ScifactZip(PerFileFormat):
    """The SciFact CSV export in a zip (``doc_id, title, abstract``); ``abstract`` is a numpy repr of
    a list of sentences, parsed token by token and joined with spaces. Option ``member``: the CSV."""

    name = "scifact-zip"
    produces = "corpus"

    class Options(FormatOptions):
        member: str = "corpus_train.csv"

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_scifact_zip(path, options.member)
