"""``rankgpt-candidates-json``: the first stage with passage text that RankGPT distributes
(``[{"query", "hits": [{"qid", "docid", "rank", "score", "content"}]}]``), TREC DL."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.data import ResolvedData
from harness.errors import DataIntegrityError
from harness.formats import DataFormat


def _bad(path: Path, where: str, msg: str) -> DataIntegrityError:
    return DataIntegrityError(f"{path}: {where}: {msg}")


def read_candidates(path: Path, depth: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """RankGPT candidates JSON -> [(qid, query, hits)], each hits list ranked 1..depth.

    Checks every field's type, one qid per entry, ranks 1..n in order, non-increasing scores,
    unique docids and non-empty text; errors name the entry and hit index.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _bad(path, f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}") from None
    if not isinstance(raw, list) or not raw:
        raise _bad(path, "top level", "expected a non-empty list of {query, hits}")
    out = []
    seen_q: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"entry [{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("query"), str) or not isinstance(
            entry.get("hits"), list
        ):
            raise _bad(path, where, "expected {'query': str, 'hits': list}")
        hits = entry["hits"]
        if len(hits) != depth:
            raise _bad(path, where, f"{len(hits)} candidates; the protocol's depth is {depth}")
        qid = None
        docnos: set[str] = set()
        prev_score = math.inf
        for j, h in enumerate(hits):
            hw = f"{where}.hits[{j}]"
            if not isinstance(h, dict):
                raise _bad(path, hw, "expected an object")
            missing = [k for k in ("qid", "docid", "rank", "score", "content") if k not in h]
            if missing:
                raise _bad(path, hw, f"missing field(s) {missing}")
            if not isinstance(h["qid"], (int, str)) or not isinstance(h["docid"], (int, str)):
                raise _bad(path, hw, "qid and docid must be int or str")
            hq = str(h["qid"])
            if qid is None:
                qid = hq
            elif hq != qid:
                raise _bad(path, hw, f"qid {hq} differs from the entry's qid {qid}")
            if h["rank"] != j + 1 or isinstance(h["rank"], bool):
                raise _bad(path, hw, f"rank {h['rank']!r}; expected {j + 1} (hits must be in rank order)")
            score = h["score"]
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
                raise _bad(path, hw, f"score {score!r} is not a finite number")
            if score > prev_score:
                raise _bad(path, hw, f"score {score} is higher than the previous hit's {prev_score}")
            prev_score = score
            if not isinstance(h["content"], str) or not h["content"].strip():
                raise _bad(path, hw, "empty or non-string 'content' (passage text)")
            docno = str(h["docid"])
            if docno in docnos:
                raise _bad(path, hw, f"passage {docno} appears twice for query {qid}")
            docnos.add(docno)
        assert qid is not None
        if qid in seen_q:
            raise _bad(path, where, f"query {qid} appears twice")
        seen_q.add(qid)
        out.append((qid, entry["query"], hits))
    return out


class RankGPTCandidates(DataFormat):
    """RankGPT's candidates JSON: one entry per query, hits ranked 1..depth with non-increasing
    scores, unique docids and non-empty text; every field's type is checked and errors name the
    entry and hit. ``depth`` comes from the task's protocol (the TREC DL loader passes it)."""

    name = "rankgpt-candidates-json"
    produces = "first-stage"
    multi_file = False

    def read(self, files: list[ResolvedData], options: Any, *, depth: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
        assert len(files) == 1 and files[0].path is not None
        return read_candidates(files[0].path, depth)
