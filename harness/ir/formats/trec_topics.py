"""``trec-topics``: ``<top><num>id</num><title>text</title></top>``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.ir.formats._common import Parsed, PerFileFormat, clean, fail, read_lines


def parse_trec_topics(path: Path) -> Parsed:
    text = "\n".join(read_lines(path))
    rows = []
    for m in re.finditer(r"<top>(.*?)</top>", text, flags=re.S):
        lineno = text.count("\n", 0, m.start()) + 1
        block = m.group(1)
        num = re.search(r"<num>\s*(?:Number:)?\s*(\S+?)\s*(?:</num>|\n)", block)
        title = re.search(r"<title>(.*?)(?:</title>|<desc>|<narr>|$)", block, flags=re.S)
        if not num:
            raise fail(path, lineno, "<top> without <num>")
        if not title or not clean(title.group(1)):
            raise fail(path, lineno, f"topic {num.group(1)} has no <title> text")
        rows.append((num.group(1), clean(title.group(1))))
    if not rows:
        raise fail(path, None, "no <top> topics found")
    return Parsed(rows)


class TrecTopics(PerFileFormat):
    """TREC topics ``<top><num>id</num><title>text</title></top>``: the title is the query."""

    name = "trec-topics"
    produces = "topics"

    def read_file(self, path: Path, options: Any) -> Parsed:
        return parse_trec_topics(path)
