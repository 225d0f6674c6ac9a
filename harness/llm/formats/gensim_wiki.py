"""``gensim-wiki``: the Wikipedia dump excerpt shipped in gensim's test data."""

from __future__ import annotations

import bz2
from functools import lru_cache

from harness.data import ResolvedData
from harness.formats import DataFormat, FormatOptions


@lru_cache(maxsize=2)
def gensim_articles(path: str, min_chars: int) -> tuple[str, ...]:
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    out = []
    with bz2.open(path) as fh:
        for _title, text, _pageid in extract_pages(fh):
            clean = filter_wiki(text).strip()
            if len(clean) >= min_chars:
                out.append(clean)
    return tuple(out)


class GensimWiki(DataFormat):
    """A bz2 MediaWiki dump (gensim's test excerpt), each page cleaned with gensim's
    ``filter_wiki``; pages shorter than ``min_chars`` are dropped and ``articles: [start, stop]``
    selects a contiguous slice (so calibration and evaluation never share an article). As running
    text, the articles are joined with blank lines."""

    name = "gensim-wiki"
    produces = "documents"
    multi_file = False
    joins_as_text = True

    class Options(FormatOptions):
        min_chars: int = 500
        articles: tuple[int, int] | None = None

    def read(self, files: list[ResolvedData], options: Options) -> list[str]:
        (resolved,) = files
        articles = gensim_articles(str(resolved.path), options.min_chars)
        start, stop = options.articles if options.articles is not None else (0, len(articles))
        return list(articles[start:stop])
