"""One-off migration (issue "Results that defend themselves", storage): every stored gzipped TREC
run (``<run id>.run.trec.gz``) becomes a ``run`` artifact in the xz ranked-lists form, stored once
by content under ``results/artifacts/``. Checked before anything is replaced: the new artifact
exports to exactly the bytes of the old TREC file, and the result's metrics, items and run id are
untouched. Usage: python scripts/migrate_artifacts.py [RESULTS_DIR]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

from harness.ir import runfile
from harness.results import ResultStore, atomic_write_bytes, validate_result


def migrate(root: Path) -> None:
    store = ResultStore(root)
    encoded: dict[str, bytes] = {}  # old sha256 -> new bytes (identical runs are encoded once)
    for path in store.iter_paths():
        doc = json.loads(path.read_text())
        old = (doc.get("artifacts") or {}).get("run.trec.gz")
        if old is None:
            continue
        old_path = path.parent / old["file"]
        raw = old_path.read_bytes()
        assert hashlib.sha256(raw).hexdigest() == old["sha256"], old_path
        text = gzip.decompress(raw)
        lists, tag = runfile.from_trec(text, str(old_path))
        assert tag == doc["method"]["name"], (path, tag)
        if old["sha256"] not in encoded:
            encoded[old["sha256"]] = runfile.encode(lists)
        data = encoded[old["sha256"]]
        assert runfile.to_trec(runfile.decode(data), tag) == text, path  # nothing is lost
        sha = hashlib.sha256(data).hexdigest()
        store.put_blob(data, sha)
        arts = {k: v for k, v in doc["artifacts"].items() if k != "run.trec.gz"}
        arts["run"] = {"file": f"../artifacts/{sha[:2]}/{sha}", "sha256": sha, "format": runfile.FORMAT,
                       "bytes": len(data)}
        new = dict(doc, artifacts=arts)
        validate_result(new, str(path))
        atomic_write_bytes(path, (json.dumps(new, indent=2, sort_keys=False, default=str) + "\n").encode())
        old_path.unlink()
        print(f"{path}: {len(raw)} -> {len(data)} bytes", flush=True)


if __name__ == "__main__":
    migrate(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
