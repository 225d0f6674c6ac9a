"""The static site: determinism, problems page, escaping, protocol separation, random weights."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fixtures_results import small_results
from harness.errors import HarnessError
from harness.report import build_site
from harness.report.build import ReportSummary


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any], ReportSummary]:
    base = tmp_path_factory.mktemp("report")
    results = base / "results"
    info = small_results(results)
    out = base / "site"
    return results, out, info, build_site(results, out)


def _boards(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "downloads" / "boards.json").read_text())


def test_deterministic_bytes(site: tuple[Path, Path, dict[str, Any], ReportSummary], tmp_path: Path) -> None:
    results, out, _info, summary = site
    again = build_site(results, tmp_path / "site2")
    assert again.files == summary.files
    for rel in summary.files:
        assert (out / rel).read_bytes() == (tmp_path / "site2" / rel).read_bytes(), rel
    svgs = [f for f in summary.files if f.endswith(".svg")]
    assert len(svgs) >= 3  # sparsity plots + a latency Pareto plot
    assert b"<dc:date>" not in (out / svgs[0]).read_bytes()


def test_problems_listed_and_rest_renders(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, _info, summary = site
    paths = [p for p, _m in summary.problems]
    assert paths == ["foreign.json", "wikitext2/corrupt.json"]
    page = (out / "problems.html").read_text()
    assert "foreign.json" in page and "wikitext2/corrupt.json" in page
    assert "not valid JSON" in page and "schema_version" in page
    assert "/tmp" not in page  # no machine paths
    assert summary.results == 21 and summary.boards == 6
    assert "index.html" in summary.pages and "problems.html" in summary.pages


def test_param_with_script_is_escaped(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, info, summary = site
    for rel in summary.pages:
        assert "<script>alert" not in (out / rel).read_text(), rel
    run_page = (out / "runs" / f"{info['script_run']}.html").read_text()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in run_page
    board = next(b for b in _boards(out) if b["task"] == "boolq")
    assert "&lt;script&gt;" in (out / board["page"]).read_text()


def test_protocols_are_separate_tables(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, info, _summary = site
    wt = [b for b in _boards(out) if b["task"] == "wikitext2"]
    assert len(wt) == 2
    assert sorted(b["protocol"] for b in wt) == ["protocol differs: limit=8", "protocol differs: limit=all"]
    for b in wt:
        data = json.loads((out / b["page"].replace(".html", ".json")).read_text())
        limits = {r["run_id"]: data["task"]["protocol"]["limit"] for r in data["rows"]}
        expected = {d["run_id"] for d in info["ppl_runs"] if d["task"]["protocol"]["limit"] == data["task"]["protocol"]["limit"]}
        assert set(limits) == expected and len(expected) == 5
        html = (out / b["page"]).read_text()
        assert b["protocol"] in html


def test_board_rows_ranks_and_downloads(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, info, _summary = site
    b = next(b for b in _boards(out) if b["task"] == "wikitext2" and b["protocol"].endswith("limit=all"))
    stem = out / b["page"][: -len(".html")]
    data = json.loads(stem.with_suffix(".json").read_text())
    vals = [r["metrics"]["ppl"] for r in data["rows"]]
    assert vals == sorted(vals)  # lower is better, best first
    assert data["rows"][0]["method"] == "dense" and data["rows"][0]["rank"] == 1
    # the synthetic systems are far apart on 40 windows: every rank distinct
    assert [r["rank"] for r in data["rows"]] == [1, 2, 3, 4, 5]
    assert data["ranking"]["test_field"] == "nll"
    rows = list(csv.DictReader(io.StringIO(stem.with_suffix(".csv").read_text())))
    assert [float(r["ppl"]) for r in rows] == pytest.approx(vals)
    tex = stem.with_suffix(".tex").read_text()
    assert "\\toprule" in tex and "ppl $\\downarrow$" in tex
    html = (out / b["page"]).read_text()
    assert "Holm" in html and "α = 0.05" in html and "randomization" in html
    # measured sparsity and prune seconds next to quality
    assert "measured sparsity" in html and "prune seconds" in html
    # the failed run is listed with its error, escaped, and is not a row
    assert "Failed runs" in html and "CUDA out of memory &lt;in block 3&gt;" in html
    failed_id = info["failed_path"].stem
    assert failed_id not in {r["run_id"] for r in data["rows"]}


def test_tied_entries_share_a_rank(tmp_path: Path) -> None:
    from fixtures_results import write_synthetic
    from harness.results import ResultStore

    store = ResultStore(tmp_path / "r")
    # two systems with the same quality and different noise: not separable on 12 items
    write_synthetic(store, method="a", params={}, task_id="msmarco-dev-small", quality=0.50, n_items=12, model=None, seed=1)
    write_synthetic(store, method="b", params={}, task_id="msmarco-dev-small", quality=0.50, n_items=12, model=None, seed=2)
    write_synthetic(store, method="c", params={}, task_id="msmarco-dev-small", quality=-3.0, n_items=12, model=None, seed=3)
    build_site(tmp_path / "r", tmp_path / "s")
    b = _boards(tmp_path / "s")[0]
    data = json.loads((tmp_path / "s" / b["page"].replace(".html", ".json")).read_text())
    assert [r["rank"] for r in data["rows"]] == [1, 1, 3]
    assert "exact over all 2^12 sign vectors" in data["ranking"]["method"]


def test_board_params_leave_out_non_semantic_ones_downloads_keep_them(tmp_path: Path) -> None:
    from fixtures_results import write_synthetic
    from harness.results import ResultStore

    store = ResultStore(tmp_path / "r")
    for method, q in (("bm25", 0.4), ("splade", 0.9)):
        write_synthetic(store, method=method, params={"k1": 0.9, "threads": 1, "batch_size": 64},
                        non_semantic=["threads", "batch_size"], task_id="msmarco-dev-small", quality=q,
                        n_items=20, model=None)
    build_site(tmp_path / "r", tmp_path / "s")
    b = _boards(tmp_path / "s")[0]
    html = (tmp_path / "s" / b["page"]).read_text()
    assert "k1=0.9" in html and "threads=" not in html and "batch_size=" not in html
    data = json.loads((tmp_path / "s" / b["page"].replace(".html", ".json")).read_text())
    assert data["rows"][0]["params"] == {"k1": 0.9, "threads": 1, "batch_size": 64}


def test_random_weights_only_on_latency_pages(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, info, _summary = site
    rid = info["random_quality_run"]
    for b in _boards(out):
        data = json.loads((out / b["page"].replace(".html", ".json")).read_text())
        if b["track"] != "latency":
            assert rid not in {r["run_id"] for r in data["rows"]}
            assert not data["random_weights"]
    rw = (out / "random-weights.html").read_text()
    assert rid[:8] in rw and "random weights (latency only)" in rw
    run_page = (out / "runs" / f"{rid}.html").read_text()
    assert "meaningless and not shown" in run_page
    lat = next(b for b in _boards(out) if b["track"] == "latency")
    assert "random weights (latency only)" in lat["model"]
    assert "random weights (latency only)" in (out / lat["page"]).read_text()


def test_pages_link_only_to_existing_relative_files(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, _info, summary = site
    for rel in summary.pages:
        html = (out / rel).read_text()
        for target in re.findall(r'(?:href|src)="([^"]+)"', html):
            assert "://" not in target and not target.startswith("/"), (rel, target)
            path = target.split("#")[0]
            if path:
                assert ((out / rel).parent / path).resolve().is_file(), (rel, target)


def test_method_page_and_run_page(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, info, _summary = site
    unknown = (out / "methods" / "unregistered-retriever.html").read_text()
    assert "No adapter named" in unknown or "registry could not be loaded" in unknown
    rid = info["ppl_runs"][0]["run_id"]
    page = (out / "runs" / f"{rid}.html").read_text()
    assert '<pre><code id="reproduce">harness run --method' in page
    assert "&#34;git_commit&#34;" in page or '"git_commit"' in page


def test_method_page_shows_adapter_docstring(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, _info, _summary = site
    mag = (out / "methods" / "magnitude.html").read_text()
    try:
        from harness.registry import get_method

        doc = get_method("magnitude").doc
    except Exception as exc:  # the registry itself is broken: the page must say so, not crash
        assert "registry could not be loaded" in mag
        pytest.skip(f"method registry does not load ({exc}); adapter docstrings cannot be checked")
    assert doc.splitlines()[0] in mag  # the registered adapter's docstring
    unknown = (out / "methods" / "unregistered-retriever.html").read_text()
    assert "No adapter named" in unknown


def test_refuses_to_wipe_foreign_directory(tmp_path: Path, site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    results, _out, _info, _summary = site
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(HarnessError, match="refusing"):
        build_site(results, target)
    assert (target / "thesis.tex").read_text() == "precious"


def test_board_notes_come_from_the_results(tmp_path: Path) -> None:
    from fixtures_results import write_synthetic
    from harness.results import ResultStore

    store = ResultStore(tmp_path / "r")
    note = "Its checkpoint is dequantised from 4 bits: a few weights are exactly zero before pruning."
    for s, details in ((0.3, None), (0.6, None), (0.25, {"structure": "block removal (whole blocks)"}),
                       (0.5, {"structure": "block removal (whole blocks)"})):
        method = "masker" if details is None else "remover"
        write_synthetic(store, method=method, params={"sparsity": s}, task_id="wikitext2", quality=1 - s,
                        n_items=10, measured_sparsity=s, model_info={"notes": note}, pruning_details=details)
    build_site(tmp_path / "r", tmp_path / "s")
    b = _boards(tmp_path / "s")[0]
    html = (tmp_path / "s" / b["page"]).read_text()
    assert f"Model smollm2-135m: {note}" in html  # the model record's own notes
    assert "on this board: block removal:" in html  # the structure the results declare, no method names
    assert "methods marked [block removal])" in html  # the plot caption names what the legend marks
    svg = (tmp_path / "s" / "boards" / f"{Path(b['page']).stem}-sparsity.svg").read_text()
    assert "remover [block removal]" in svg and "masker [" not in svg


def test_board_without_model_notes_or_structures_says_neither(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, _info, _summary = site
    b = next(b for b in _boards(out) if b["task"] == "wikitext2" and b["model"] == "smollm2-135m")
    html = (out / b["page"]).read_text()
    assert "Measured sparsity:" in html and "on this board:" not in html and "Model smollm2-135m:" not in html


def test_report_code_names_no_method() -> None:
    try:
        from harness.registry import load_methods

        names = sorted(load_methods())
    except Exception as exc:
        pytest.skip(f"method registry does not load ({exc})")
    from harness.kinds import kind_names

    names = [n for n in names if n not in kind_names()]  # a kind's name may appear (tracks' fallback)
    root = Path(__file__).resolve().parent.parent / "harness" / "report"
    code = "\n".join(p.read_text() for p in sorted(root.rglob("*.py")))
    templates = "\n".join(p.read_text() for p in sorted(root.rglob("*.j2")))
    # In code (and template expressions) a method is named by a string literal ("wanda"); in a
    # template's prose by the word itself, except ids that are plain English words used as such
    # ("random weights": data pruning's `random` baseline is not meant).
    plain_words = {"random"}
    found = [n for n in names if re.search(rf"[\"']{re.escape(n)}[\"']", code + templates, re.IGNORECASE)
             or (n not in plain_words and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", templates, re.IGNORECASE))]
    assert not found, f"the report names methods: {found}"


def test_tracks_come_from_the_task_kind_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.kinds
    from fixtures_results import write_synthetic
    from harness.results import ResultStore

    declared = [("llm", "LLM pruning", ("perplexity", "zeroshot")),
                ("ir", "Information retrieval", ("reranking", "retrieval")), ("latency", "Latency", ("latency",))]
    monkeypatch.setattr(harness.kinds, "tracks", lambda: declared, raising=False)
    store = ResultStore(tmp_path / "r")
    write_synthetic(store, method="r1", params={}, task_id="msmarco-dev-small", quality=0.5, n_items=10, model=None)
    build_site(tmp_path / "r", tmp_path / "s")
    index = (tmp_path / "s" / "index.html").read_text()
    assert '<section id="ir">\n<h2>Information retrieval</h2>' in index
    assert 'href="index.html#ir">Information retrieval</a>' in index  # the navigation follows the tracks
    assert 'id="retrieval"' not in index and 'id="reranking"' not in index
    assert [b["track"] for b in _boards(tmp_path / "s")] == ["ir"]


def test_board_that_cannot_reach_significance_says_so(tmp_path: Path) -> None:
    from fixtures_results import write_synthetic
    from harness.report.data import min_achievable_p
    from harness.results import ResultStore

    # 8 windows and 8 entries: 7 comparisons, exact test min p = 2/2^8, Holm x7 = 0.0547 >= 0.05
    assert min_achievable_p(8, 7) == pytest.approx(7 * 2 / 256)
    assert min_achievable_p(8, 18) == pytest.approx(18 * 2 / 256)
    store = ResultStore(tmp_path / "r")
    for i in range(8):
        write_synthetic(store, method=f"m{i}", params={}, task_id="wikitext2", quality=-0.5 * i, n_items=8, limit=8)
    build_site(tmp_path / "r", tmp_path / "s")
    b = _boards(tmp_path / "s")[0]
    html = (tmp_path / "s" / b["page"]).read_text()
    assert "Ranks not separable" in html and "0.0547" in html and "2/2^8" in html
    assert html.count('class="ns"') == 8 and "×8" in html  # every rank shown as not separable, group of 8
    index = (tmp_path / "s" / "index.html").read_text()
    assert "not separable (8 items): all 8 tied" in index


def test_index_names_the_tie_at_the_top_and_boards_show_intervals_and_chips(
        site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, _info, _summary = site
    boards = {(b["task"], b["protocol"]): b for b in _boards(out)}
    index = (out / "index.html").read_text()
    tied = [b for b in boards.values() if b["tied_top"]]
    assert tied and all(f"{b['tied_top']} tied at the top" in index for b in tied if b["separable"])
    ppl = next(b for b in boards.values() if b["task"] == "wikitext2" and "limit=all" in b["protocol"])
    html = (out / ppl["page"]).read_text()
    assert re.search(r'<span class="ci" title="95% interval \(normal, stored stderr\)">\[[0-9.]+, [0-9.]+\]</span>', html) or \
        re.search(r'<span class="ci" title="95% interval \(bootstrap over items, 2000 resamples\)">', html)
    # the params that tell a method's rows apart are chips; the constant ones are collapsed
    assert '<span class="chip vary">sparsity=0.5</span>' in html and '<span class="chip">nsamples=128</span>' in html


def test_suite_pages_are_linked_from_the_index(site: tuple[Path, Path, dict[str, Any], ReportSummary]) -> None:
    _results, out, _info, summary = site
    for sid in ("zeroshot-7", "llm-pruning", "ir-classic", "trec-dl"):
        assert f"suites/{sid}.html" in summary.pages
        assert f'href="suites/{sid}.html"' in (out / "index.html").read_text()


def test_suite_page_table_marks_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures_results import make_doc
    from harness.results import ResultStore

    store = ResultStore(tmp_path / "r")
    zs = ["boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]
    import fixtures_results as fx

    for t in zs[1:]:  # the fixture knows boolq and arc_easy only; the others share boolq's shape
        monkeypatch.setitem(fx.TASKS, t, fx.TASKS.get(t, fx.TASKS["boolq"]))
    for method, sp, q in (("dense", 0.0, 0.9), ("wanda", 0.5, 0.7), ("wanda", 0.7, 0.5), ("gap", 0.5, 0.6)):
        for t in zs if method != "gap" else zs[:3]:
            doc = make_doc(method=method, params={"sparsity": sp} if sp else {}, task_id=t, limit=50,
                           metrics={"acc": q, "acc_norm": q}, measured_sparsity=sp, family="pruning")
            for m in doc["metrics"].values():
                m["n"] = 50  # the store checks n and the mean against the per-item rows
            items = [{"doc_id": str(i), "acc": float(i < q * 50), "acc_norm": float(i < q * 50)} for i in range(50)]
            store.write(doc, items=items, item_key="doc_id")
    build_site(tmp_path / "r", tmp_path / "s")
    page = (tmp_path / "s" / "suites" / "zeroshot-7.html").read_text()
    assert "Model smollm2-135m" in page and "the first 50 items" in page
    rows = re.findall(r"<tr>\n(.*?)</tr>", page)
    dense = next(r for r in rows if ">dense<" in r)
    assert dense.count('top') == 8  # best in every column and the mean
    gap = next(r for r in rows if ">gap<" in r)
    assert gap.count(">—<") == 5  # four missing members and no mean
    assert (tmp_path / "s" / "suites" / "zeroshot-7--smollm2-135m-aggregate.svg").is_file()
    csv_rows = list(csv.DictReader(io.StringIO((tmp_path / "s" / "suites" / "zeroshot-7--smollm2-135m.csv").read_text())))
    assert {r["label"]: r["aggregate"] for r in csv_rows}["gap"] == ""


def test_a_kind_declares_its_board_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``TaskKind.plots``: a line per entry from its points, or dots with the Pareto front; entries
    with no points are left out, and a figure with fewer than two points is not drawn."""
    import dataclasses

    from harness.kinds import BoardPlot, get_kind
    from harness.report import pages

    results = tmp_path / "results"
    small_results(results)
    seen: list[str] = []

    def curve(res: Any) -> list[tuple[float, float]]:
        seen.append(res.method.name)
        if res.method.name == "dense":
            return []  # no points: left out
        acc = res.value("acc")
        return [(0.25, acc / 2), (1.0, acc)]

    def one_dot(res: Any) -> list[tuple[float, float]]:
        return [(float(len(res.method.name)), res.value("acc"))]

    def lonely(res: Any) -> list[tuple[float, float]]:
        return [(1.0, 1.0)] if res.method.name == "dense" else []

    real = get_kind

    def patched(name: str) -> Any:
        kind = real(name)
        if name != "zeroshot":
            return kind
        return dataclasses.replace(kind, plots=(
            BoardPlot("curve", "fraction kept", "acc vs fraction kept", curve),
            BoardPlot("cost", "name length", "acc vs name length", one_dot, pareto=True),
            BoardPlot("lonely", "x", "never drawn", lonely),
        ))

    monkeypatch.setattr(pages, "get_kind", patched)
    summary = build_site(results, tmp_path / "site")
    boolq = [f for f in summary.files if f.startswith("boards/") and "boolq" in f]
    curve_svg = next(f for f in boolq if f.endswith("-curve.svg"))
    assert any(f.endswith("-cost.svg") for f in boolq)
    assert not any(f.endswith("-lonely.svg") for f in summary.files)
    svg = (tmp_path / "site" / curve_svg).read_text()
    assert "fraction kept" in svg and "wanda" in svg and "dense" not in svg
    assert {"dense", "wanda", "magnitude"} <= set(seen)
    page = (tmp_path / "site" / curve_svg.replace("-curve.svg", ".html")).read_text()
    assert "acc vs fraction kept" in page and "acc vs name length" in page
