"""Running text and documents from a resolved data entry, through its registered format.

The formats (the ``format`` field of a task's data entry) live in :mod:`harness.llm.formats`, one
module each, and any registered format that produces ``text`` or ``documents`` works here:

* ``wikitext-rows``: WikiText raw rows joined by blank lines (CRLF converted to LF); from the hub,
  the split's ``text`` rows joined with ``"\\n\\n"`` (the standard pruning-paper protocol).
* ``jsonl-text``: one JSON object per line with a ``text`` field (C4 shards); hub: ``data_files``.
* ``gensim-wiki``: the Wikipedia dump excerpt shipped in gensim's test data, cleaned with
  ``gensim.corpora.wikicorpus.filter_wiki``; articles shorter than ``min_chars`` are dropped and
  ``articles: [start, stop]`` selects a contiguous slice (so calibration and evaluation never share
  an article).
"""

from __future__ import annotations

from harness.data import ResolvedData, check_content
from harness.errors import DataIntegrityError
from harness.formats import get_format, read_resolved
from harness.llm.formats._hub import hub_rows as _hub_rows  # noqa: F401  (old name)
from harness.llm.formats.gensim_wiki import gensim_articles as _gensim_articles  # noqa: F401  (old name)


def _files(resolved: ResolvedData | list[ResolvedData]) -> list[ResolvedData]:
    return [resolved] if isinstance(resolved, ResolvedData) else list(resolved)


def read_text(resolved: ResolvedData | list[ResolvedData]) -> str:
    """Running text for perplexity, checked against the spec's content_sha256."""
    files = _files(resolved)
    spec = files[0].spec
    fmt = get_format(spec.format)
    if fmt.produces == "text":
        text = read_resolved(files)
    elif fmt.produces == "documents" and fmt.joins_as_text:
        text = "\n\n".join(read_resolved(files))
    else:
        raise DataIntegrityError(f"data {spec.name!r}: format {spec.format!r} is not running text")
    check_content(spec, text.encode("utf-8"), files[0].source)
    return text


def read_documents(resolved: ResolvedData | list[ResolvedData]) -> list[str]:
    """Documents (for calibration sampling)."""
    files = _files(resolved)
    spec = files[0].spec
    if get_format(spec.format).produces != "documents":
        raise DataIntegrityError(f"data {spec.name!r}: format {spec.format!r} has no document reader")
    return read_resolved(files)
