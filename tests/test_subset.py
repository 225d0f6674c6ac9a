"""harness subset: SMART filtering, anchor points, stratified draws, rank fidelity, the sequential stop,
refusals and the stored form — on constructed score matrices (fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import subset as sub
from harness.errors import HarnessError
from harness.subset_adaptive import confidence_bounds, sequential_rank


def spread_matrix(n_entries: int = 8, n_items: int = 120, seed: int = 0) -> np.ndarray:
    """Binary scores: entry i gets item j right with a probability rising with i (so rows are well ordered)."""
    rng = np.random.default_rng(seed)
    ability = np.linspace(0.2, 0.8, n_entries)[:, None]
    difficulty = rng.uniform(-0.3, 0.3, n_items)[None, :]
    return (rng.random((n_entries, n_items)) < np.clip(ability + difficulty, 0.02, 0.98)).astype(float)


def matrix(scores: np.ndarray, hib: bool = True) -> sub.ScoreMatrix:
    k, n = scores.shape
    return sub.ScoreMatrix(task_id="toy", version=1, kind="zeroshot", model="m", protocol={"limit": None},
                           primary="acc", field="acc", hib=hib, run_ids=[f"{i:016x}" for i in range(k)],
                           labels=[f"e{i}" for i in range(k)], items=[str(j) for j in range(n)], scores=scores)


# --- SMART filtering -----------------------------------------------------------------------------


def test_smart_drops_all_right_all_wrong_and_duplicates_keeps_the_rest():
    m = np.array([
        # all right, all wrong, a, dup of a, b, all same (0.5), c
        [1, 0, 1, 1, 0, 0.5, 0],
        [1, 0, 0, 0, 1, 0.5, 1],
        [1, 0, 1, 1, 1, 0.5, 0],
    ], dtype=float)
    keep, mult, dropped = sub.smart_filter(m)
    assert keep.tolist() == [2, 4, 6]
    assert mult.tolist() == [2.0, 1.0, 1.0]  # item 2 stands for its duplicate 3
    assert dropped == {"all_right": [0], "all_wrong": [1], "duplicate_scores": [3], "all_same": [5]}


def test_smart_lower_is_better_swaps_right_and_wrong():
    m = np.array([[0.0, 9.0, 1.0], [0.0, 9.0, 2.0]])
    _keep, _mult, dropped = sub.smart_filter(m, hib=False)
    assert dropped == {"all_right": [0], "all_wrong": [1]}


def test_smart_near_identical_text_dropped_distinct_text_kept():
    m = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]], dtype=float)
    texts = ["What is the capital of France?", "what is the  capital of France ?", "Name a prime number.", None]
    keep, mult, dropped = sub.smart_filter(m, texts=texts)
    assert dropped == {"duplicate_text": [1]}
    assert keep.tolist() == [0, 2, 3] and mult.tolist() == [2.0, 1.0, 1.0]


def test_smart_filtered_set_alone_keeps_the_in_sample_ranking_exactly():
    s = spread_matrix()
    keep, mult = sub.select_smart(s, s.shape[1], seed=0)
    assert len(keep) < s.shape[1]  # something was filtered
    # constant items shift every entry's sum equally; duplicates keep their weight: the order is the full one
    assert np.array_equal(sub.ranks(sub.weighted_scores(s, keep, mult) * mult.sum() + 0, True),
                          sub.ranks(s.mean(axis=1), True))


# --- anchor points and strata ----------------------------------------------------------------------


def test_anchor_picks_one_medoid_per_obvious_cluster_weighted_by_size():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0] * 6, [1.0] * 6, [1, 1, 1, 0, 0, 0.0]])
    sizes = [30, 20, 10]
    items = np.vstack([c + rng.normal(0, 0.02, (n, 6)) for c, n in zip(centres, sizes)])
    truth = np.repeat([0, 1, 2], sizes)
    idx, w = sub.select_anchor(items.T, 3, seed=0)
    assert sorted(truth[idx].tolist()) == [0, 1, 2]
    assert dict(zip(truth[idx].tolist(), w.tolist())) == {0: 30.0, 1: 20.0, 2: 10.0}
    for c in range(3):  # the medoid: the member with the least total distance to its cluster
        members = np.flatnonzero(truth == c)
        d = np.abs(items[members][:, None] - items[members][None]).sum(axis=(1, 2))
        assert members[np.argmin(d)] in idx


def test_anchor_with_fewer_distinct_vectors_than_k_uses_the_identical_groups():
    s = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1.0]])
    idx, w = sub.select_anchor(s, 3, seed=0)
    assert len(idx) == 3 and len(set(idx.tolist())) == 3
    assert w.sum() == pytest.approx(6.0)
    assert sum(1 for i in idx if i < 4) == 2  # the spare pick goes to the larger group


def test_stratified_draws_each_difficulty_stratum_in_proportion():
    s = np.tile(np.repeat([0.0, 0.25, 0.5, 1.0], 25), (3, 1)) + np.arange(3)[:, None] * 0.0
    s[0, :] += 0.01 * np.random.default_rng(0).random(100)  # difficulty = the item's mean
    idx, w = sub.select_stratified(s, 8, seed=3)
    assert np.bincount(idx // 25, minlength=4).tolist() == [2, 2, 2, 2]
    assert w.tolist() == [12.5] * 8
    assert len(set(idx.tolist())) == 8


def test_random_is_seeded_and_without_replacement():
    s = spread_matrix()
    a, _ = sub.select_random(s, 30, seed=5)
    b, _ = sub.select_random(s, 30, seed=5)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 30


# --- rank fidelity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", sub.STRATEGIES)
def test_fidelity_is_one_on_the_full_set(strategy):
    s = spread_matrix()
    n = s.shape[1] if strategy != "smart" else len(sub.smart_filter(s)[0])
    f = sub.fidelity(s, True, strategy, n, seed=0)
    assert f["tau_in_sample"] == pytest.approx(1.0)
    if strategy in ("random", "stratified", "anchor"):  # every item, whatever the entries: held out too
        assert f["tau_held_out"] == pytest.approx(1.0)
        assert f["top_k_held_out"] == 1.0 and f["mean_abs_rank_shift_held_out"] == 0.0


def test_fidelity_drops_on_a_random_tiny_subset():
    s = spread_matrix(n_entries=10, n_items=200)
    taus = [sub.fidelity(s, True, "random", 3, seed=seed)["tau_held_out"] or 0.0 for seed in range(10)]
    assert np.mean(taus) < 0.8
    assert sub.fidelity(s, True, "random", 200)["tau_held_out"] == pytest.approx(1.0)


def test_held_out_rank_is_the_entrys_rank_on_the_subset_chosen_without_it():
    s = spread_matrix(n_entries=6, n_items=60)
    f = sub.fidelity(s, True, "anchor", 6, seed=0)
    e = 2
    idx, w = sub.select_anchor(np.delete(s, e, axis=0), 6, seed=0)
    assert f["held_out_ranks"][e] == sub.ranks(sub.weighted_scores(s, idx, w), True)[e]


def test_ranks_are_competition_ranks_in_the_metric_direction():
    assert sub.ranks(np.array([0.5, 0.9, 0.5, 0.1]), True).tolist() == [2, 1, 2, 4]
    assert sub.ranks(np.array([0.5, 0.9, 0.5, 0.1]), False).tolist() == [2, 4, 2, 1]


# --- the sequential stop ---------------------------------------------------------------------------


def test_confidence_sequence_covers_the_population_mean_and_collapses_at_the_end():
    rng = np.random.default_rng(0)
    pop = rng.random(300)
    misses = 0
    for seed in range(200):
        y = np.random.default_rng(seed).permutation(pop)[:, None]
        lo, hi = confidence_bounds(y, 300, 0.1)
        misses += bool(((lo > pop.mean()) | (hi < pop.mean())).any())
    assert misses <= 0.1 * 200
    assert hi[-1, 0] - lo[-1, 0] < hi[50, 0] - lo[50, 0]


def test_a_clearly_separated_entry_stops_early_with_the_correct_rank():
    rng = np.random.default_rng(2)
    board = (rng.random((4, 1000)) < np.array([[0.2], [0.3], [0.8], [0.9]])).astype(float)
    new = (rng.random(1000) < 0.55).astype(float)  # between the 0.3 and 0.8 entries: rank 3
    out = sequential_rank(new, board, alpha=0.05, seed=0, bounds=(0, 1))
    assert out.settled and out.items_used < 400
    assert out.rank == out.true_rank == 3 and out.correct
    assert sorted(out.better) == [2, 3] and sorted(out.worse) == [0, 1]
    low = sequential_rank(1 - board[3], board, alpha=0.05, seed=0, bounds=(0, 1), hib=False)
    assert low.rank == low.true_rank == 1  # lower is better: the mirror of the best entry leads


def test_a_tie_does_not_stop_falsely_at_the_stated_error_rate():
    rng = np.random.default_rng(3)
    j = (rng.random(400) < 0.5).astype(float)
    new = rng.permutation(j)  # the same mean as j exactly, different items
    board = np.vstack([j, np.zeros(400)])
    alpha, runs = 0.1, 300
    false = sum(not sequential_rank(new, board, alpha=alpha, seed=s, bounds=(0, 1)).correct for s in range(runs))
    assert false <= alpha * runs + 3 * np.sqrt(alpha * (1 - alpha) * runs)
    out = sequential_rank(new, board, alpha=alpha, seed=0, bounds=(0, 1))
    assert not out.settled and out.items_used == 400 and out.rank == 1  # shares rank 1 with j, exactly


def test_a_margin_lets_a_tie_settle_as_tied():
    rng = np.random.default_rng(4)
    j = (rng.random(2000) < 0.5).astype(float)
    out = sequential_rank(rng.permutation(j), j[None, :], alpha=0.05, seed=0, bounds=(0, 1), margin=0.15)
    assert out.settled and out.tied == [0] and out.correct and out.items_used < 2000


def test_sequential_refuses_scores_outside_the_bounds_and_bad_alpha():
    with pytest.raises(HarnessError, match="bounds"):
        sequential_rank(np.array([0, 2.0]), np.array([[0, 1.0]]), bounds=(0, 1))
    with pytest.raises(HarnessError, match="alpha"):
        sequential_rank(np.array([0, 1.0]), np.array([[0, 1.0]]), alpha=1.5)


# --- refusals, ids and the stored form -------------------------------------------------------------


def test_refusals_name_the_reason():
    m = matrix(spread_matrix())
    with pytest.raises(HarnessError, match="larger than the task: board toy has 120 items"):
        sub.check_request(m, "random", 121)
    with pytest.raises(HarnessError, match="unknown strategy 'best'; known: random, stratified, anchor, smart"):
        sub.check_request(m, "best", 5)
    with pytest.raises(HarnessError, match="at least 1"):
        sub.check_request(m, "random", 0)
    kept = len(sub.smart_filter(m.scores)[0])
    with pytest.raises(HarnessError, match=f"SMART filtering keeps {kept} of 120 items"):
        sub.check_request(m, "smart", kept + 1)


def stored_board(root, n_entries: int, n_items: int = 60):
    from fixtures_results import write_synthetic

    from harness.results import ResultStore

    store = ResultStore(root)
    return [write_synthetic(store, method="wanda", params={"sparsity": round(0.1 * i, 1)}, task_id="boolq",
                            quality=1.0 - 0.4 * i, n_items=n_items)[1]["run_id"] for i in range(n_entries)]


def test_too_few_results_refused_with_how_many_are_needed(tmp_path):
    (tmp_path / "boolq").mkdir()
    with pytest.raises(HarnessError, match="no valid stored result"):
        sub.board_matrix(tmp_path, "boolq")
    stored_board(tmp_path, 3)
    with pytest.raises(HarnessError, match=r"3 stored result\(s\) with per-item scores on one board .* at least 4"):
        sub.board_matrix(tmp_path, "boolq")


def test_cli_end_to_end_on_stored_results(tmp_path, capsys):
    from harness.cli import main

    runs = stored_board(tmp_path, 5)
    m = sub.board_matrix(tmp_path, "boolq")
    assert sorted(m.run_ids) == sorted(runs) and m.scores.shape == (5, 60) and m.field == "acc" and m.hib
    assert main(["subset", "boolq", "--strategy", "stratified", "--size", "12", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (path,) = (tmp_path / "subsets" / "boolq").glob("*.subset")
    rec = json.loads(path.read_text())
    assert rec["id"] in out and rec["command"].startswith("harness subset boolq --strategy stratified --size 12")
    assert sorted(rec["source"]["run_ids"]) == sorted(runs) and len(rec["items"]) == 12
    assert main(["subset", "boolq", "--strategy", "random", "--size", "61", "--results", str(tmp_path)]) != 0
    assert "larger than the task: board boolq has 60 items" in capsys.readouterr().err
    assert main(["subset", "boolq", "--adaptive", "--run", runs[0][:8], "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    want = sub.ranks(m.full, True)[m.run_ids.index(runs[0])]
    assert out.startswith("simulation on the stored per-item scores") and f"full-set rank {want}; correct" in out


def test_cli_refuses_before_reading_anything(tmp_path, capsys):
    from harness.cli import main

    missing = tmp_path / "nothing-here"
    assert main(["subset", "toy", "--strategy", "nope", "--size", "5", "--results", str(missing)]) != 0
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert main(["subset", "toy", "--strategy", "random", "--size", "0", "--results", str(missing)]) != 0
    assert "--size 0" in capsys.readouterr().err
    assert main(["subset", "toy", "--adaptive", "--results", str(missing)]) != 0
    assert "--run RUN_ID" in capsys.readouterr().err
    assert main(["subset", "toy", "--adaptive", "--run", "ab", "--size", "5", "--results", str(missing)]) != 0
    assert "takes no --strategy or --size" in capsys.readouterr().err
    assert main(["subset", "toy", "--adaptive", "--run", "ab", "--alpha", "0", "--results", str(missing)]) != 0
    assert "--alpha 0.0" in capsys.readouterr().err
    assert main(["subset", "toy", "--adaptive", "--run", "ab", "--bounds", "1,0", "--results", str(missing)]) != 0
    assert "LO must be below HI" in capsys.readouterr().err


def test_stored_subset_round_trips_and_is_never_its_task(tmp_path):
    from harness.tasks import get_task

    m = matrix(spread_matrix())
    rec = sub.make_subset(m, "anchor", 10, seed=0, command="harness subset toy ...", created_at="now")
    assert rec["id"].startswith("toy~subset-anchor-10-") and len(rec["items"]) == 10
    assert rec["source"]["run_ids"] == m.run_ids and rec["fidelity"]["tau_in_sample"] is not None
    assert [e["full_rank"] for e in rec["entries"]] == sub.ranks(m.full, True).tolist()
    path = sub.write_subset(tmp_path, rec)
    assert path == tmp_path / "subsets" / "toy" / f"{rec['id']}.subset"
    assert sub.load_subset(tmp_path, rec["id"]) == json.loads(path.read_text())
    with pytest.raises(HarnessError, match="is a task id, not a subset id"):
        sub.load_subset(tmp_path, "toy")
    with pytest.raises(HarnessError):
        get_task(rec["id"])
    from harness.results import ResultStore

    assert ResultStore(tmp_path).scan() == ([], [])  # the store never reads a subset as a result
    bad = tmp_path / "subsets" / "toy" / "toy~subset-random-3-00000000.subset"
    bad.write_text("{}")
    good, problems = sub.load_subsets(tmp_path)
    assert [r["id"] for r in good] == [rec["id"]] and problems and "field 'id'" in problems[0][1]
    assert sub.make_subset(m, "anchor", 10, seed=0)["id"] == rec["id"]  # the id is a digest of what chose it
    assert sub.make_subset(m, "anchor", 10, seed=1)["id"] != rec["id"]


def test_read_texts_refuses_a_bad_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"item": "1", "text": "a"}\n{"item": "2"}\n')
    with pytest.raises(HarnessError, match="line 2"):
        sub.read_texts(p, ["1", "2"])
    p.write_text('{"item": "1", "text": "a"}\n')
    assert sub.read_texts(p, ["1", "2"]) == ["a", None]


def test_identical_entries_count_once_in_the_selection():
    s = spread_matrix(n_entries=5, n_items=80)
    twins = np.vstack([s, np.repeat(s[:1], 4, axis=0)])  # entry 0 stored five times over
    for strategy in sub.STRATEGIES:
        a = sub.select(strategy, s, 12, seed=1)
        b = sub.select(strategy, twins, 12, seed=1)
        assert a[0].tolist() == b[0].tolist() and np.allclose(a[1], b[1]), strategy


def test_site_shows_each_subset_with_its_fidelity_and_links_it_from_the_index(tmp_path):
    from harness.report.build import build_site

    results = tmp_path / "results"
    stored_board(results, 5)
    m = sub.board_matrix(results, "boolq")
    rec = sub.make_subset(m, "anchor", 8, seed=0, command="harness subset boolq --strategy anchor --size 8")
    sub.write_subset(results, rec)
    (results / "subsets" / "boolq" / "broken.subset").write_text("[]")
    summary = build_site(results, tmp_path / "site")
    assert "subsets/index.html" in summary.pages and not summary.problems  # never a result problem
    page = (tmp_path / "site" / "subsets" / "index.html").read_text()
    assert f'id="{rec["id"]}"' in page and "broken.subset" in page
    tau = rec["fidelity"]["tau_held_out"]
    from harness.fmt import fmt_num

    assert fmt_num(tau) in page and "boards/" in page  # the figure, and a link to the source board
    assert 'href="subsets/index.html"' in (tmp_path / "site" / "index.html").read_text()


def test_site_without_subsets_has_no_subsets_page(tmp_path):
    from harness.report.build import build_site

    results = tmp_path / "results"
    stored_board(results, 4)
    summary = build_site(results, tmp_path / "site")
    assert "subsets/index.html" not in summary.pages
    assert "subsets/index.html" not in (tmp_path / "site" / "index.html").read_text()
