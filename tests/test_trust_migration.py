"""The identity migration (scripts/migrate_identity.py) keeps every metric, item and artifact, and
refuses a result that was not made with today's task definition."""

from __future__ import annotations

import importlib.util
import json

import pytest

from harness import config
from harness.results import ITEMS_SUFFIX, ResultStore, run_digest
from test_trust import run_toy, toy  # noqa: F401 (the fixture)

spec = importlib.util.spec_from_file_location("migrate_identity", config.REPO_ROOT / "scripts" / "migrate_identity.py")
migration = importlib.util.module_from_spec(spec)
spec.loader.exec_module(migration)


def make_old(path, doc, *, protocol_n=None):
    """``doc`` as results were stored before the migration: without the new identity fields and
    under the run id of the old digest."""
    old = json.loads(json.dumps(doc))
    for block, key in (("task", "definition_digest"), ("method", "version"), ("model", "digest")):
        old[block].pop(key, None)
    old.pop("body_sha256")
    if protocol_n is not None:
        old["task"]["protocol"]["n"] = protocol_n
    skip = set(old["method"]["non_semantic"])
    old["run_id"] = run_digest(old["method"]["name"], {k: v for k, v in old["method"]["params"].items() if k not in skip},
                               old["model"]["id"], old["task"]["id"], old["task"]["version"], old["task"]["protocol"])
    old["items"]["file"] = f"{old['run_id']}{ITEMS_SUFFIX}"
    target = path.with_name(f"{old['run_id']}.json")
    (path.parent / old["items"]["file"]).write_bytes((path.parent / doc["items"]["file"]).read_bytes())
    target.write_text(json.dumps(old, indent=2))
    return target, old


def test_the_migration_keeps_every_metric_and_assigns_todays_identity(toy):  # noqa: F811
    (out,) = run_toy(toy.results)
    new = json.loads(out.path.read_text())
    items = (out.path.parent / new["items"]["file"]).read_bytes()
    old_path, old = make_old(out.path, new)
    out.path.unlink()
    (out.path.parent / new["items"]["file"]).unlink()
    assert migration.migrate(toy.results) == 0
    assert not old_path.exists() and not (old_path.parent / old["items"]["file"]).exists()
    migrated = json.loads(out.path.read_text())  # under the run id a new run computes
    assert migrated["run_id"] == new["run_id"] and migrated["metrics"] == old["metrics"] == new["metrics"]
    assert migrated["artifacts"] == old["artifacts"]
    assert (out.path.parent / migrated["items"]["file"]).read_bytes() == items
    assert migrated["method"]["version"] == 1 and migrated["task"]["definition_digest"]
    ResultStore(toy.results).check(out.path)
    assert run_toy(toy.results)[0].status == "skipped"


def test_a_result_made_with_another_definition_is_not_migrated(toy, capsys):  # noqa: F811
    (out,) = run_toy(toy.results)
    doc = json.loads(out.path.read_text())
    old_path, _ = make_old(out.path, doc, protocol_n=7)  # made when the task's protocol said n: 7
    before = old_path.read_bytes()
    assert migration.migrate(toy.results) == 1
    assert "NOT MIGRATED" in capsys.readouterr().out and old_path.read_bytes() == before


@pytest.mark.parametrize("field, value", [("sha256", "0" * 64), ("content_sha256", "1" * 64)])
def test_a_data_file_the_task_does_not_pin_refuses_the_migration(field, value):
    from harness.tasks import get_task

    task = get_task("wikitext2")
    committed = next(config.REPO_ROOT.glob("results/wikitext2/*.json"))
    doc = json.loads(committed.read_text())
    migration.check_against_task(doc, task)  # the committed one was made with today's definition
    doc["provenance"]["data"][0][field] = value
    with pytest.raises(migration.Mismatch, match="data text"):
        migration.check_against_task(doc, task)
