import hashlib
from pathlib import Path

import pytest

from harness import data as datamod
from harness.data import DataSource, DataSpec
from harness.errors import DataIntegrityError, TaskDefinitionError, UnknownNameError
from harness.tasks import get_task, load_task_file, load_tasks

GOOD = """
id: toy
version: 1
kind: perplexity
data:
  text:
    format: wikitext-rows
    sources:
      - data_dir: toy/text.txt
        sha256: {sha}
protocol: {{seqlen: 16}}
metrics:
  - {{name: ppl, higher_is_better: false, primary: true}}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "task.yaml"
    p.write_text(text)
    return p


def test_all_shipped_tasks_load():
    tasks = load_tasks()
    assert "wikitext2" in tasks and "wikipedia-gensim-ppl" in tasks
    for t in tasks.values():
        if t.kind != "calibration":
            assert t.primary_metric.name


def test_unknown_task_suggests_nearest():
    with pytest.raises(UnknownNameError, match="Did you mean 'wikitext2'"):
        get_task("wikitext")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda s: s.replace("kind: perplexity", "kind: ppl"), "kind"),
        (lambda s: s.replace("        sha256: {sha}\n", ""), "data.text.sources[0].sha256"),
        (lambda s: s.replace("primary: true", "primary: false"), "metrics"),
        (lambda s: s + "colour: blue\n", "colour"),
        (lambda s: s.replace("version: 1", "version: one"), "version"),
        (lambda s: s.replace("    format: wikitext-rows\n", ""), "data.text.format"),
        (lambda s: s.replace("{sha}", "abc"), "data.text.sources[0].sha256"),
    ],
)
def test_malformed_task_names_file_and_field(tmp_path, mutate, field):
    path = write(tmp_path, mutate(GOOD).format(sha="a" * 64))
    with pytest.raises(TaskDefinitionError) as exc:
        load_task_file(path)
    assert str(path) in str(exc.value) and repr(field) in str(exc.value)


def test_sha_mismatch_is_refused_and_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    f = tmp_path / "toy" / "text.txt"
    f.write_text("hello world\n")
    good = hashlib.sha256(f.read_bytes()).hexdigest()
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    spec = DataSpec("text", "wikitext-rows", (DataSource("data_dir", path="toy/text.txt", sha256=good),))
    assert datamod.resolve(spec).path == f
    bad = DataSpec("text", "wikitext-rows", (DataSource("data_dir", path="toy/text.txt", sha256="1" * 64),))
    with pytest.raises(DataIntegrityError, match=r"sha256 mismatch for .*text\.txt"):
        datamod.resolve(bad)


def test_missing_everywhere_lists_what_was_tried(monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    spec = DataSpec(
        "text",
        "wikitext-rows",
        (
            DataSource("data_dir", path="x.txt", sha256="0" * 64),
            DataSource("hub", repo="org/x", split="test", revision="abc"),
        ),
    )
    with pytest.raises(DataIntegrityError, match="HARNESS_DATA_DIR is not set.*offline"):
        datamod.resolve(spec, allow_hub=False)
    assert datamod.resolve(spec, allow_hub=True).source.type == "hub"


def test_content_digest_of_wikitext_matches_pin(data_dir):
    from harness.llm.textdata import read_text

    task = get_task("wikitext2")
    resolved = datamod.resolve(task.data["text"])
    text = read_text(resolved)  # raises on a content digest mismatch
    assert text.startswith("\n\n = Robert Boulter = \n") and "\r" not in text
    assert resolved.provenance()["source"] == "data_dir"
