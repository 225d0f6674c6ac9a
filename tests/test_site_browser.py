"""The generated site in a real headless Chromium, opened from disk (file://, no server).

Drives Chromium through the DevTools protocol (``--remote-debugging-port`` + websocket-client):
checks the table rows against the results, that every plot loads (naturalWidth > 0), that every
relative link resolves to a file on disk, and that the console shows no errors. Keeps screenshots in
tests/artifacts/ (gitignored). Needs Debian's ``chromium`` (``apt-get install -y chromium``) and the
``websocket-client`` package; skipped with the reason when either is missing.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

import fixtures_results
from fixtures_results import make_doc, small_results
from harness.results import ResultStore
from harness.fmt import fmt_num
from harness.report import build_site

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _chromium() -> str:
    for cand in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        path = shutil.which(cand)
        if path:
            return path
    pytest.skip("Chromium not found: install it with `apt-get install -y chromium` (the Makefile's test setup does)")


class Browser:
    """A minimal DevTools-protocol client: one page, flattened session, synchronous calls."""

    def __init__(self, binary: str, profile: Path):
        websocket = pytest.importorskip("websocket", reason="needs the websocket-client package (pip install websocket-client)")
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = None
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            self.close()
            pytest.fail("Chromium did not report a DevTools endpoint within 60 s")
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            if any(e.get("method") == name for e in self.events[seen:]):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(name)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self.wait_event("Page.loadEventFired")

    def eval(self, expr: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True},
                        session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"])
        return res["result"].get("value")

    def console_errors(self) -> list[str]:
        errs = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                errs.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errs.append(json.dumps(p.get("args", []))[:300])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errs.append(p["entry"].get("text", ""))
        return errs

    def screenshot(self, dest: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PAGE_FACTS = """(() => ({
  rows: Array.from(document.querySelectorAll('table.board tbody tr')).map(tr =>
      Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim())),
  listRows: Array.from(document.querySelectorAll('table.list:not(.suites) tbody tr')).length,
  images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, done: i.complete})),
  links: Array.from(document.querySelectorAll('[href]')).map(a => a.getAttribute('href')),
  resolved: Array.from(document.querySelectorAll('a[href], link[href]')).map(a => a.href),
  title: document.title,
}))()"""


@pytest.fixture(scope="module")
def browser_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Browser]:
    binary = _chromium()
    base = tmp_path_factory.mktemp("browser")
    small_results(base / "results")
    suite_results(base / "results")
    build_site(base / "results", base / "site")
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=base))
    browser = Browser(binary, profile)
    yield base / "site", browser
    browser.close()


def _check_links(page: Path, facts: dict[str, Any]) -> None:
    for href in facts["links"]:
        assert "://" not in href and not href.startswith("/"), f"{page.name}: non-relative link {href}"
    for url in facts["resolved"]:
        parsed = urlparse(url)
        assert parsed.scheme == "file", url
        target = Path(unquote(parsed.path))
        assert target.is_file(), f"{page.name}: link to missing file {target}"


def test_index_in_chromium(browser_site: tuple[Path, Browser]) -> None:
    site, browser = browser_site
    browser.open(site / "index.html")
    facts = browser.eval(PAGE_FACTS)
    boards = json.loads((site / "downloads" / "boards.json").read_text())
    assert facts["title"].startswith("leaderboards")
    # one row per leaderboard plus the random-weights table is on its own page
    assert facts["listRows"] == len(boards)
    _check_links(site / "index.html", facts)
    assert browser.console_errors() == []
    browser.screenshot(ARTIFACTS / "index.png")


def test_leaderboard_in_chromium(browser_site: tuple[Path, Browser]) -> None:
    site, browser = browser_site
    boards = json.loads((site / "downloads" / "boards.json").read_text())
    board = next(b for b in boards if b["task"] == "wikitext2" and b["protocol"].endswith("limit=all"))
    page = site / board["page"]
    data = json.loads(page.with_suffix(".json").read_text())
    browser.open(page)
    facts = browser.eval(PAGE_FACTS)
    rows = facts["rows"]
    assert len(rows) == len(data["rows"]) == 5
    for cells, expected in zip(rows, data["rows"]):
        assert cells[0].split("×")[0] == str(expected["rank"])  # then the tie group's size, if any
        assert cells[1] == expected["method"]
        assert cells[3].startswith(fmt_num(expected["metrics"]["ppl"]))  # primary metric column
        assert cells[-1] == expected["run_id"][:8]
    assert len(facts["images"]) == 1
    assert all(img["done"] and img["w"] > 0 for img in facts["images"]), facts["images"]
    _check_links(page, facts)
    assert browser.console_errors() == []
    browser.screenshot(ARTIFACTS / "leaderboard.png")


def test_retrieval_board_and_run_page_in_chromium(browser_site: tuple[Path, Browser]) -> None:
    site, browser = browser_site
    boards = json.loads((site / "downloads" / "boards.json").read_text())
    board = next(b for b in boards if b["task"] == "msmarco-dev-small")
    browser.open(site / board["page"])
    facts = browser.eval(PAGE_FACTS)
    assert [i["w"] > 0 for i in facts["images"]] == [True]  # the Pareto plot
    _check_links(site / board["page"], facts)
    run_id = json.loads((site / board["page"]).with_suffix(".json").read_text())["rows"][0]["run_id"]
    run_page = site / "runs" / f"{run_id}.html"
    browser.open(run_page)
    facts = browser.eval(PAGE_FACTS)
    code = browser.eval("document.getElementById('reproduce').textContent")
    assert code.startswith("harness run --method")
    # the copy button is shown by the inline script (the page works without it)
    assert browser.eval("document.querySelector('button.copy').hidden") is False
    _check_links(run_page, facts)
    assert browser.console_errors() == []
    browser.screenshot(ARTIFACTS / "run.png")


ZEROSHOT_7 = ["boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]


def suite_results(root: Path) -> None:
    """Zero-shot runs under the zeroshot-7 protocol (limit 50), one method missing members."""
    store = ResultStore(root)
    saved = dict(fixtures_results.TASKS)
    try:
        for t in ZEROSHOT_7:  # the fixture's zero-shot task shape serves every member
            fixtures_results.TASKS.setdefault(t, fixtures_results.TASKS["boolq"])
        for method, params, sp, q in (("dense", {}, 0.0, 0.9), ("wanda", {"sparsity": 0.5, "nsamples": 128}, 0.5, 0.7),
                                      ("wanda", {"sparsity": 0.7, "nsamples": 128}, 0.7, 0.5),
                                      ("magnitude", {"sparsity": 0.5}, 0.5, 0.6)):
            for t in ZEROSHOT_7 if method != "magnitude" else ZEROSHOT_7[:4]:
                doc = make_doc(method=method, params=params, task_id=t, limit=50, metrics={"acc": q, "acc_norm": q},
                               measured_sparsity=sp, family="pruning")
                for m in doc["metrics"].values():
                    m["n"] = 50  # the store checks n and the mean against the per-item rows
                items = [{"doc_id": str(i), "acc": float((i * 7) % 50 < q * 50), "acc_norm": float((i * 7) % 50 < q * 50)}
                         for i in range(50)]
                store.write(doc, items=items, item_key="doc_id")
    finally:
        fixtures_results.TASKS.clear()
        fixtures_results.TASKS.update(saved)


LAYOUT_FACTS = """(() => ({
  pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
  brokenChips: Array.from(document.querySelectorAll('.chip')).filter(c => c.getClientRects().length > 1).length,
  tallChips: Array.from(document.querySelectorAll('.chip')).filter(c => c.getBoundingClientRect().height > 24).length,
  wideTables: Array.from(document.querySelectorAll('table')).filter(t => {
      const box = t.parentElement.getBoundingClientRect();
      const inScroll = t.parentElement.classList.contains('scroll');
      return !inScroll && t.getBoundingClientRect().right > window.innerWidth + 1; }).length,
  images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), w: i.naturalWidth})),
}))()"""


def _page_types(site: Path) -> dict[str, Path]:
    boards = json.loads((site / "downloads" / "boards.json").read_text())
    ppl = next(b for b in boards if b["task"] == "wikitext2" and b["protocol"].endswith("limit=all"))
    ir = next(b for b in boards if b["task"] == "msmarco-dev-small")
    run_id = json.loads((site / ppl["page"]).with_suffix(".json").read_text())["rows"][1]["run_id"]
    return {
        "index": site / "index.html", "board-ppl": site / ppl["page"], "board-ir": site / ir["page"],
        "run": site / "runs" / f"{run_id}.html", "method": next((site / "methods").glob("wanda*.html")),
        "suite": site / "suites" / "zeroshot-7.html", "random-weights": site / "random-weights.html",
        "problems": site / "problems.html",
    }


@pytest.mark.parametrize("width", [1400, 800])
def test_every_page_type_fits_at_width(browser_site: tuple[Path, Browser], width: int) -> None:
    """No page scrolls sideways (wide tables scroll inside their box), no param chip wraps mid-token,
    every image loads; screenshots of each page type at this width are kept in tests/artifacts/."""
    site, browser = browser_site
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)
    try:
        for name, page in _page_types(site).items():
            browser.open(page)
            facts = browser.eval(LAYOUT_FACTS)
            assert facts["pageOverflow"] <= 0, f"{name} at {width}px scrolls sideways by {facts['pageOverflow']}px"
            assert facts["wideTables"] == 0, f"{name} at {width}px: a table runs off the page outside a scroll box"
            assert facts["brokenChips"] == 0 and facts["tallChips"] == 0, f"{name} at {width}px: a param chip wraps"
            assert all(i["w"] > 0 for i in facts["images"]), facts["images"]
            assert browser.console_errors() == []
            browser.screenshot(ARTIFACTS / f"{name}-{width}.png")
    finally:
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)


def test_suite_page_in_chromium(browser_site: tuple[Path, Browser]) -> None:
    site, browser = browser_site
    page = site / "suites" / "zeroshot-7.html"
    browser.open(page)
    facts = browser.eval(PAGE_FACTS)
    rows = facts["rows"]
    data = json.loads((site / "suites" / "zeroshot-7--smollm2-135m.json").read_text())
    assert [r[0] for r in rows] == [r["label"] for r in data["rows"]]
    mag = next(r for r in rows if r[0] == "magnitude")
    assert mag[5:] == ["—", "—", "—", "—"]  # three missing members and no mean
    bold = browser.eval("Array.from(document.querySelectorAll('table.suite td.top')).map(td => "
                        "getComputedStyle(td).fontWeight)")
    assert bold and all(int(w) >= 700 for w in bold)
    assert [i["w"] > 0 for i in facts["images"]] == [True]  # the aggregate vs sparsity plot
    _check_links(page, facts)
    assert browser.console_errors() == []
