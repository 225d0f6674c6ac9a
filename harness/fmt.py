"""Number, p-value and label formatting shared by the report, `harness compare` and tables.

One place decides how a figure is shown, so the site, the downloads and the paper tables agree.
"""

from __future__ import annotations

import math
from typing import Any

from harness.results import canonical_json

MISSING = "—"  # shown for a value that is absent (LaTeX: ``--``)


def fmt_num(v: float | None) -> str:
    """Four decimals below 10, two below 1000, one above: enough to separate entries, no more."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    a = abs(v)
    if a >= 1000:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    return f"{v:.4f}"


def fmt_diff(v: float | None) -> str:
    """A difference, always signed."""
    if v is None:
        return MISSING
    s = fmt_num(v)
    return s if s.startswith("-") else "+" + s


def fmt_p(p: float | None) -> str:
    if p is None:
        return MISSING
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}"


def fmt_ci(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return MISSING
    return f"[{fmt_num(low)}, {fmt_num(high)}]"


def arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _short(v: Any) -> str:
    return v if isinstance(v, str) else canonical_json(v)


def params_label(params: dict[str, Any]) -> str:
    """``k=v, k=v`` in key order; strings bare, everything else as canonical JSON."""
    return ", ".join(f"{k}={_short(v)}" for k, v in sorted(params.items()))


def short_labels(entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Paper-table labels: each (method, params) as the method name plus only the params that differ
    between that method's entries in the same table (``wanda (sparsity=0.5)``)."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for method, params in entries:
        by_method.setdefault(method, []).append(params)
    out = []
    for method, params in entries:
        same = by_method[method]
        keys = sorted({k for p in same for k in p})
        varying = [k for k in keys if len({canonical_json(p.get(k, "<absent>")) for p in same}) > 1]
        shown = {k: params[k] for k in varying if k in params}
        out.append(method + (f" ({params_label(shown)})" if shown else ""))
    return out


def protocol_value(key: str, v: Any) -> str:
    if key == "limit" and v is None:
        return "all"
    return _short(v)


def protocol_text(protocol: dict[str, Any]) -> str:
    return ", ".join(f"{k}={protocol_value(k, v)}" for k, v in sorted(protocol.items()))


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "Δ": r"$\Delta$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "—": "--",
    "−": "-",
    "×": r"$\times$",
    "▲": r"$\blacktriangle$",
    "▼": r"$\blacktriangledown$",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "α": r"$\alpha$",
    "…": r"\ldots{}",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(s))


def md_escape(s: str) -> str:
    """A Markdown table cell: pipes and backslashes escaped, one line."""
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
