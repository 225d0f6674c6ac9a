"""``oe-eval-requests``: OLMES request files whose ``doc`` holds the processed document."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.llm.formats._zeroshot import ExamplesFormat

DUPLICATE_DOC_ID = 1_000_000


class OEEvalRequests(ExamplesFormat):
    """Gzipped OLMES requests (``requests.jsonl.gz``), one per choice: the ``doc`` of each
    ``doc_id`` once (the repeats must agree), ids ``>= 1_000_000`` (duplicates) skipped, ids
    0..N-1 required. Options: ``split``, ``count``, ``converted_sha256``."""

    name = "oe-eval-requests"

    def read_path(self, path: Path) -> list[dict[str, Any]]:
        docs: dict[int, dict[str, Any]] = {}
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                req = json.loads(line)
                doc_id = req.get("doc_id")
                if not isinstance(doc_id, int) or "doc" not in req:
                    raise HarnessError(f"{path}:{lineno}: a request needs an integer 'doc_id' and a 'doc'")
                if doc_id >= DUPLICATE_DOC_ID:
                    continue
                # one request per choice: the doc is repeated; keep the first and check the others agree
                if doc_id in docs:
                    if docs[doc_id] != req["doc"]:
                        raise HarnessError(f"{path}:{lineno}: doc_id {doc_id} has differing docs")
                    continue
                docs[doc_id] = req["doc"]
        ids = sorted(docs)
        if ids != list(range(len(ids))):
            raise HarnessError(f"{path}: doc_ids are not 0..{len(ids) - 1}")
        return [docs[i] for i in ids]
