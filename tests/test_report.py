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
