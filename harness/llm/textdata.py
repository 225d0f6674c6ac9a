"""Readers that turn a resolved data file into documents or running text.

Formats (the ``format`` field of a task's data entry):

* ``wikitext-rows``: WikiText raw rows joined by blank lines (CRLF converted to LF); from the hub,
  the split's ``text`` rows joined with ``"\\n\\n"`` (the standard pruning-paper protocol).
* ``jsonl-text``: one JSON object per line with a ``text`` field (C4 shards); hub: ``data_files``.
* ``gensim-wiki``: the Wikipedia dump excerpt shipped in gensim's test data, cleaned with
  ``gensim.corpora.wikicorpus.filter_wiki``; articles shorter than ``min_chars`` are dropped and
  ``articles: [start, stop]`` selects a contiguous slice (so calibration and evaluation never share
  an article).
"""

from __future__ import annotations

import bz2
import json
from functools import lru_cache

from harness.data import ResolvedData, check_content
from harness.errors import DataIntegrityError


def _hub_rows(resolved: ResolvedData) -> list[str]:
    import datasets

    src = resolved.source
    kwargs = {"revision": src.revision, "split": src.split or "train"}
    if src.files:
        ds = datasets.load_dataset(src.repo, data_files=list(src.files), **kwargs)
    else:
        ds = datasets.load_dataset(src.repo, src.config, **kwargs)
    return list(ds["text"])


def read_text(resolved: ResolvedData) -> str:
    """Running text for perplexity, checked against the spec's content_sha256."""
    spec = resolved.spec
    if spec.format == "wikitext-rows":
        if resolved.path is None:
            text = "\n\n".join(_hub_rows(resolved))
        else:
            text = resolved.path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    elif spec.format == "gensim-wiki":
        text = "\n\n".join(read_documents(resolved))
    else:
        raise DataIntegrityError(f"data {spec.name!r}: format {spec.format!r} is not running text")
    check_content(spec, text.encode("utf-8"), resolved.source)
    return text


def read_documents(resolved: ResolvedData) -> list[str]:
    """Documents (for calibration sampling)."""
    spec = resolved.spec
    if spec.format == "jsonl-text":
        if resolved.path is None:
            return _hub_rows(resolved)
        docs = []
        with open(resolved.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    docs.append(json.loads(line)["text"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataIntegrityError(
                        f"{resolved.path}: line {lineno}: expected a JSON object with a 'text' field"
                    ) from None
        return docs
    if spec.format == "gensim-wiki":
        if resolved.path is None:
            raise DataIntegrityError(f"data {spec.name!r}: gensim-wiki is read from the gensim package only")
        articles = _gensim_articles(str(resolved.path), int(spec.options.get("min_chars", 500)))
        start, stop = spec.options.get("articles", [0, len(articles)])
        return list(articles[start:stop])
    raise DataIntegrityError(f"data {spec.name!r}: format {spec.format!r} has no document reader")


@lru_cache(maxsize=2)
def _gensim_articles(path: str, min_chars: int) -> tuple[str, ...]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    out = []
    with bz2.open(path) as fh:
        for _title, text, _pageid in extract_pages(fh):
            clean = filter_wiki(text).strip()
            if len(clean) >= min_chars:
                out.append(clean)
    return tuple(out)
