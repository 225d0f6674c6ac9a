"""Rewrite stored result files in the store's current layout (harness.results.result_json).

Whitespace only: each file is parsed, re-dumped, parsed again and compared with the original
object before it is replaced atomically, so no field, value or digest changes (``harness validate``
re-checks the body digests afterwards). Files that do not parse are left alone (validate lists them).

    python scripts/compact_results.py [RESULTS_DIR]   # default: results
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.results import ResultStore, atomic_write_bytes, result_json


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("results")
    before = after = changed = 0
    for path in ResultStore(root).iter_paths():
        raw = path.read_bytes()
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        new = (result_json(doc) + "\n").encode()
        before, after = before + len(raw), after + len(new)
        if new != raw:
            if json.loads(new) != doc:  # never: the dumper only moves whitespace
                raise SystemExit(f"{path}: re-dumped content differs; left alone")
            atomic_write_bytes(path, new)
            changed += 1
    print(f"{changed} files rewritten; result files {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
