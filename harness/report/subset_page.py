"""The subsets page: every stored item subset (``harness subset``) with its measured rank fidelity.

One page, ``subsets/index.html``: per subset its source board (linked), strategy, size and seed,
Kendall tau in sample and held out (each entry ranked on a subset chosen without it), top-k
agreement, the entries' full / subset / held-out ranks, and what SMART filtering dropped. A subset
whose source entries are no longer all on the board's ranked entries is marked as made from an older
board. Broken subset files are listed, never fatal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from harness.report.data import Site
from harness.results import canonical_json
from harness.subset import load_subsets

PAGE = "subsets/index.html"


def _board_of(site: Site, src: dict[str, Any]) -> Any:
    for b in site.boards:
        if (b.task_id, b.version, b.model, canonical_json(b.protocol)) == (
                src["task"], src["task_version"], src["model"], canonical_json(src["protocol"])):
            return b
    return None


def _view(site: Site, rec: dict[str, Any]) -> dict[str, Any]:
    src = rec["source"]
    b = _board_of(site, src)
    now = {e.run_id for e in b.entries if e.rank is not None} if b is not None else set()
    gone = [r for r in src["run_ids"] if r not in now]
    known = {s.run_id for s in site.results}
    return {"rec": rec, "src": src, "board": b.files["html"] if b is not None else None,
            "board_label": b.protocol_label if b is not None else None,
            "gone": gone, "new": sorted(now - set(src["run_ids"])), "known": known,
            "filtered": {r: len(v) for r, v in rec.get("filtered", {}).items()}}


def subset_pages(site: Site, results_dir: Path, env: jinja2.Environment, write: Any) -> int:
    """Write the subsets page when the store holds subsets; the index links to it (a template
    global). Returns how many subsets were shown."""
    good, bad = load_subsets(Path(results_dir))
    if not good and not bad:
        return 0
    env.globals["subsets_page"] = PAGE
    views = [_view(site, rec) for rec in good]
    write(PAGE, env.get_template("subsets.html.j2").render(root="../", views=views, problems=bad,
                                                           page_title="item subsets"))
    return len(good)
