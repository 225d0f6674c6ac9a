"""Move the per-layer figures of stored pruning results into the artifact ``pruning_layers``.

A pruning's per-layer figures (one entry per pruned linear layer) were stored inline in the result
of every task the pruned model was evaluated on; they are now an artifact, stored once by content
(``harness.llm.pruning.layers_to_artifact``, what new runs write: canonical JSON, xz-compressed;
figures moved earlier as plain JSON are re-stored compressed). Each migrated result keeps its
run id, gets ``pruning.layer_count`` and ``pruning.layers_artifact``, a new body digest, and a
``provenance.amendments`` entry saying what moved; the figures themselves are unchanged (the blob
is checked to decode to exactly the old list before the file is replaced).

    python scripts/migrate_pruning_layers.py [RESULTS_DIR]    # idempotent
"""

from __future__ import annotations

import hashlib
import json
import lzma
import sys
from pathlib import Path

from harness.llm.pruning import LAYERS_ARTIFACT, layers_blob, layers_to_artifact
from harness.results import ARTIFACTS_DIR, ResultStore


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("results")
    store = ResultStore(root)
    moved = 0
    for path in list(store.iter_paths()):
        stored = store.check(path)
        doc = stored.result.to_dict()
        layers = (doc.get("pruning") or {}).get("layers")
        old_art = (doc.get("artifacts") or {}).get(LAYERS_ARTIFACT)
        if (not isinstance(layers, list) or not layers) and old_art and old_art.get("format") == "json":
            # moved by an earlier run of this script as plain JSON: re-store it compressed
            layers = json.loads((path.parent / old_art["file"]).read_bytes())
            doc["pruning"]["layers"] = layers
        if not isinstance(layers, list) or not layers:
            continue
        arts: dict[str, tuple[str, bytes]] = {}
        doc["pruning"] = layers_to_artifact(doc["pruning"], arts)
        fmt, data = arts[LAYERS_ARTIFACT]
        assert json.loads(lzma.decompress(data)) == layers and data == layers_blob(layers)
        sha = store.put_blob(data, hashlib.sha256(data).hexdigest()).name
        doc.setdefault("artifacts", {})
        doc["artifacts"] = dict(doc.get("artifacts") or {}) | {LAYERS_ARTIFACT: {
            "file": f"../{ARTIFACTS_DIR}/{sha[:2]}/{sha}", "sha256": sha, "format": fmt, "bytes": len(data)}}
        store.amend(stored, doc, {"moved": ["pruning.layers -> artifacts.pruning_layers"],
                                  "added": ["pruning.layer_count", "pruning.layers_artifact"],
                                  "from": "the result's own per-layer figures, unchanged; nothing re-run"},
                    "python scripts/migrate_pruning_layers.py")
        moved += 1
    print(f"{moved} results: per-layer figures moved into the artifact {LAYERS_ARTIFACT!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
