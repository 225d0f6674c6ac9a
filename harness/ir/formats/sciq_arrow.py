"""``sciq-arrow``: a retrieval collection derived from the SciQ split (see the ``sciq-derived`` task)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data import ResolvedData
from harness.errors import HarnessError
from harness.formats import DataFormat
from harness.ir.base import Document
from harness.ir.formats._common import Parsed, clean, fail


def _sciq_table(path: Path):
    import pyarrow.ipc as ipc

    with open(path, "rb") as fh:
        table = ipc.open_stream(fh).read_all()
    missing = {"question", "support"} - set(table.column_names)
    if missing:
        raise fail(path, None, f"missing columns {sorted(missing)}")
    return table.select(["question", "support"]).to_pandas()


def parse_sciq(path: Path) -> tuple[Parsed, Parsed, Parsed]:
    """Passages = distinct non-empty ``support`` paragraphs (docno ``p<row of first use>``);
    queries = the questions whose support is non-empty (qid ``q<row>``); qrels = (question, its own
    passage, 1). Questions with an empty support are skipped (``questions_without_support``)."""
    df = _sciq_table(path)
    docs: list[Document] = []
    by_text: dict[str, str] = {}
    topics, qrels = [], []
    skipped = 0
    for i, (question, support) in enumerate(zip(df["question"], df["support"], strict=True)):
        support = clean(support or "")
        if not support:
            skipped += 1
            continue
        if support not in by_text:
            by_text[support] = f"p{i}"
            docs.append(Document(f"p{i}", support))
        topics.append((f"q{i}", clean(question)))
        qrels.append((f"q{i}", by_text[support], 1))
    return Parsed(docs), Parsed(topics, {"questions_without_support": skipped}), Parsed(qrels)


class SciqArrow(DataFormat):
    """Derived collection from one SciQ Arrow stream: passages = distinct ``support`` paragraphs,
    queries = the questions, qrels = each question's own passage. The corpus, topics and qrels
    entries of the task all name this format and the same file."""

    name = "sciq-arrow"
    produces = "collection"
    multi_file = False

    def read(self, files: list[ResolvedData], options: Any) -> tuple[Parsed, Parsed, Parsed]:
        if len(files) != 1 or files[0].path is None:
            raise HarnessError("sciq-arrow reads exactly one local file")
        return parse_sciq(files[0].path)
