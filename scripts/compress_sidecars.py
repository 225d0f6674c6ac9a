"""Store the per-item sidecars of results over 4 kB xz-compressed (``<run id>.items.jsonl.xz``).

What the store now writes for large sidecars (``harness.results.ITEMS_COMPRESS_OVER``). The rows
are read and checked against the result's ``items.sha256`` first; ``items.sha256`` stays the digest
of the same JSON lines, only ``items.file`` changes, so the result gets a new body digest and a
``provenance.amendments`` entry saying so. Nothing is re-run.

    python scripts/compress_sidecars.py [RESULTS_DIR]    # idempotent
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.results import ITEMS_COMPRESS_OVER, ITEMS_XZ_SUFFIX, ResultStore, items_to_jsonl


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("results")
    store = ResultStore(root)
    done = 0
    for path in list(store.iter_paths()):
        stored = store.check(path)
        meta = stored.result.items
        if meta is None or meta.file.endswith(ITEMS_XZ_SUFFIX):
            continue
        rows = stored.items()
        if len(items_to_jsonl(rows)) <= ITEMS_COMPRESS_OVER:
            continue
        doc = stored.result.to_dict()
        store.amend(stored, doc, {"changed": ["items.file (the same rows, xz-compressed)"],
                                  "from": "the result's own per-item rows, unchanged; nothing re-run"},
                    "python scripts/compress_sidecars.py", items=rows)
        done += 1
    print(f"{done} sidecars stored xz-compressed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
