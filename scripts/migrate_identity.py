"""One-off migration (issue "Results that defend themselves", identity): every stored result gets
the identity fields the run id now covers -- the task's definition digest, the method's version, the
model's content digest -- a new run id derived from them, and its body digest; the result file and
its per-item sidecar are renamed to the new run id. Metrics, items and artifacts are untouched.

Before a result is migrated it is checked against today's task file, so a digest is only ever
assigned to a result that was made with that exact definition: the task version and protocol are
the task's, every data file the result records reading has a sha256 the task pins (and the content
digest it pins), its metrics are the task's, and an embedded model's recorded GGUF sha256 is the
pinned one. A result that fails a check is left as it is and reported.

Usage:
  python scripts/migrate_identity.py [RESULTS_DIR]              migrate in place
  python scripts/migrate_identity.py --check REF [RESULTS_DIR]  compare every result of git REF
      (before the migration) with its migrated file: metrics, items and artifacts identical
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.kinds import RunSettings, get_kind
from harness.llm.models import CONFIGS, EMBEDDED, model_digest
from harness.results import ITEMS_SUFFIX, atomic_write_bytes, body_digest, run_digest, validate_result
from harness.tasks import Task, definition_digest, load_tasks

METHOD_VERSION = 1  # every committed result was made before any method declared a version


class Mismatch(Exception):
    """The stored result was not made with today's task definition (or model pin)."""


def _pins(task: Task, name: str) -> set[str]:
    spec = task.data.get(name)
    if spec is None:
        raise Mismatch(f"data entry {name!r} is not in the task")
    return {s.sha256 for s in spec.all_sources() if s.sha256}


def check_against_task(doc: dict[str, Any], task: Task) -> None:
    """Mismatch unless ``doc`` was made with exactly ``task``'s definition."""
    t = doc["task"]
    if t["version"] != task.version or t["kind"] != task.kind:
        raise Mismatch(f"task version/kind {t['version']}/{t['kind']} vs {task.version}/{task.kind}")
    protocol = t["protocol"]
    settings = RunSettings(protocol.get("device", "cpu"), protocol.get("dtype", "float32"))
    expected = get_kind(task.kind).protocol_for(task.protocol, protocol.get("limit"), settings)
    if protocol != expected:
        raise Mismatch(f"protocol {protocol} vs the task's {expected}")
    for rec in doc["provenance"]["data"]:
        if rec.get("sha256") and rec["sha256"] not in _pins(task, rec["name"]):
            raise Mismatch(f"data {rec['name']}: read sha256 {rec['sha256'][:12]} is not pinned by the task")
        pinned = task.data[rec["name"]].content_sha256 if rec["name"] in task.data else None
        if pinned and rec.get("content_sha256") != pinned:
            raise Mismatch(f"data {rec['name']}: content sha256 {rec.get('content_sha256')} vs pinned {pinned}")
    declared = {m.name: (m.higher_is_better, m.primary) for m in task.metrics}
    for name, m in doc["metrics"].items():
        if declared.get(name) != (m["higher_is_better"], m["primary"]):
            raise Mismatch(f"metric {name} is not declared so by the task")


def _model_digest(model: dict[str, Any]) -> str | None:
    mid = model["id"]
    if mid is None:
        return None
    if mid in EMBEDDED and (model.get("info") or {}).get("sha256") != EMBEDDED[mid]["gguf_sha256"]:
        raise Mismatch(f"model {mid}: recorded GGUF sha256 differs from the pinned one")
    if mid.startswith("config:") and (model.get("info") or {}).get("config") != CONFIGS.get(mid[7:]):
        raise Mismatch(f"model {mid}: recorded config differs from today's")
    return model_digest(mid)


def migrate_doc(doc: dict[str, Any], task: Task) -> dict[str, Any]:
    """The migrated document (a new dict; metrics, items block contents and artifacts as they were)."""
    check_against_task(doc, task)
    new = json.loads(json.dumps(doc))
    new["method"]["version"] = METHOD_VERSION
    new["model"]["digest"] = _model_digest(doc["model"])
    new["task"]["definition_digest"] = definition_digest(task)
    skip = set(new["method"].get("non_semantic") or ())
    new["run_id"] = run_digest(
        new["method"]["name"], {k: v for k, v in new["method"]["params"].items() if k not in skip},
        new["model"]["id"], new["task"]["id"], new["task"]["version"], new["task"]["protocol"],
        task_definition=new["task"]["definition_digest"], method_version=METHOD_VERSION,
        model_digest=new["model"]["digest"],
    )
    if new.get("items"):
        new["items"]["file"] = f"{new['run_id']}{ITEMS_SUFFIX}"
    new.pop("body_sha256", None)
    new["body_sha256"] = body_digest(new)
    return new


def migrate(root: Path, tasks_dir: Path | None = None) -> int:
    tasks = load_tasks(tasks_dir)
    refused = 0
    for path in sorted(root.glob("*/*.json")):
        doc = json.loads(path.read_text())
        if doc["task"].get("definition_digest"):
            continue  # already migrated
        try:
            new = migrate_doc(doc, tasks[doc["task"]["id"]])
        except (Mismatch, KeyError) as exc:
            refused += 1
            print(f"NOT MIGRATED {path}: {exc}", flush=True)
            continue
        target = path.with_name(f"{new['run_id']}.json")
        validate_result(new, str(target))
        if doc.get("items"):
            os.replace(path.parent / doc["items"]["file"], path.parent / new["items"]["file"])
        atomic_write_bytes(target, (json.dumps(new, indent=2, sort_keys=False, default=str) + "\n").encode())
        if target != path:
            path.unlink()
        print(f"{path.parent.name}: {doc['run_id']} -> {new['run_id']}", flush=True)
    return refused


def _git_show(ref: str, rel: str) -> bytes:
    return subprocess.run(["git", "show", f"{ref}:{rel}"], capture_output=True, check=True).stdout


def check(ref: str, root: Path) -> int:
    """Every result of ``ref`` has its migrated file with identical metrics, items and artifacts."""
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "--", str(root)],
                            capture_output=True, text=True, check=True).stdout.split()
    tasks = load_tasks()
    problems = compared = 0
    for rel in sorted(r for r in listed if r.endswith(".json") and r.count("/") == 2):
        old = json.loads(_git_show(ref, rel))
        new_path = Path(rel).with_name(f"{migrate_doc(old, tasks[old['task']['id']])['run_id']}.json")
        new = json.loads(new_path.read_text())
        same = (new["metrics"] == old["metrics"] and new.get("artifacts") == old.get("artifacts")
                and new["status"] == old["status"])
        if old.get("items"):
            old_items = _git_show(ref, str(Path(rel).parent / old["items"]["file"]))
            same &= (new_path.parent / new["items"]["file"]).read_bytes() == old_items
            same &= {k: v for k, v in new["items"].items() if k != "file"} == \
                {k: v for k, v in old["items"].items() if k != "file"}
        compared += 1
        if not same:
            problems += 1
            print(f"DIFFERS {rel} -> {new_path}")
    print(f"{compared} results compared, {problems} differ")
    return 1 if problems or not compared else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results")
    parser.add_argument("--check", metavar="REF", help="compare with the results of git REF instead")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.check, Path(args.results))
    return 1 if migrate(Path(args.results)) else 0


if __name__ == "__main__":
    sys.exit(main())
