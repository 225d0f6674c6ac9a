"""One table type for the site's downloads, its LaTeX, and `harness compare` (after ranx's Report).

A :class:`Table` is data first: typed columns and rows of raw values. Views render it:
:meth:`Table.to_csv` and :meth:`Table.to_json` export raw values (floats at full precision), while
:meth:`Table.to_markdown` and :meth:`Table.to_latex` (booktabs) show them formatted by
:mod:`harness.fmt`. A column can be limited to some views (``show``), so one table carries both the
machine-readable fields and the labels a reader sees.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.fmt import MISSING, arrow, fmt_ci, fmt_diff, fmt_num, fmt_p, latex_escape, md_escape

Kind = Literal["text", "int", "num", "diff", "p", "ci", "bool"]
View = Literal["csv", "json", "markdown", "latex"]
ALL_VIEWS: tuple[View, ...] = ("csv", "json", "markdown", "latex")
EXPORT: tuple[View, ...] = ("csv", "json")
DISPLAY: tuple[View, ...] = ("markdown", "latex")


@dataclass(frozen=True)
class Column:
    """``kind`` decides how a value is shown (``num``: :func:`fmt_num`, ``p``: :func:`fmt_p`,
    ``diff``: signed, ``ci``: a (low, high) pair, ``bool``: yes/no, ``int`` and ``text`` as they are);
    ``higher_is_better`` (when known) adds the arrow to the header; ``latex_label`` overrides the
    escaped label with raw LaTeX."""

    name: str
    label: str | None = None
    kind: Kind = "text"
    higher_is_better: bool | None = None
    show: tuple[View, ...] = ALL_VIEWS
    latex_label: str | None = None

    @property
    def header(self) -> str:
        text = self.label if self.label is not None else self.name
        return text if self.higher_is_better is None else f"{text} {arrow(self.higher_is_better)}"

    @property
    def align(self) -> str:
        return "l" if self.kind in ("text", "ci") else "r"

    def display(self, v: Any) -> str:
        """The value as a reader sees it; :data:`MISSING` when absent."""
        if v is None or v == "":
            return MISSING
        fn = _DISPLAY.get(self.kind)
        if fn is not None:
            return fn(v)
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return fmt_num(v)
        return str(v)


_DISPLAY: dict[str, Callable[[Any], str]] = {
    "num": lambda v: fmt_num(float(v)) if not isinstance(v, str) else v,
    "diff": lambda v: fmt_diff(float(v)),
    "p": lambda v: fmt_p(float(v)),
    "ci": lambda v: fmt_ci(*v),
    "bool": lambda v: "yes" if v else "no",
}


# Per-cell marks (ranx / PyTerrier style): "top" = the best entry of its column or statistically tied
# with it (bold); "up" / "down" = significantly better / worse than the baseline (a superscript).
MARKS: dict[str, tuple[str, str]] = {  # mark -> (Markdown/HTML suffix, LaTeX suffix)
    "top": ("", ""),
    "up": ("▲", r"$^{\blacktriangle}$"),
    "down": ("▼", r"$^{\blacktriangledown}$"),
}


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else v


@dataclass
class Table:
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    caption: str = ""
    label: str = ""  # LaTeX \label (a slug of [A-Za-z0-9.:-])
    notes: list[str] = field(default_factory=list)
    group: str | None = None  # LaTeX: a rule between groups of this column; its value shown once
    source: str = "harness"  # the command named in the LaTeX comment line
    marks: dict[tuple[int, str], tuple[str, ...]] = field(default_factory=dict)  # (row index, column) -> MARKS
    fit: bool | None = False  # LaTeX: scale the tabular to the line width (graphicx); None: when it would not fit

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {names}")

    def cell_marks(self, i: int, name: str) -> tuple[str, ...]:
        return self.marks.get((i, name), ())

    def marked(self, i: int, col: Column, view: View) -> str:
        """A cell as a reader sees it with its marks: bold when "top", then the superscripts."""
        text = col.display(self.rows[i].get(col.name))
        marks = self.cell_marks(i, col.name)
        if view == "latex":
            text = latex_escape(text)
        else:
            text = md_escape(text)
        if "top" in marks and text != MISSING:
            text = f"\\textbf{{{text}}}" if view == "latex" else f"**{text}**"
        k = 1 if view == "latex" else 0
        return text + "".join(MARKS[m][k] for m in marks if m != "top")

    def view(self, name: View) -> list[Column]:
        return [c for c in self.columns if name in c.show]

    def records(self, view: View = "json") -> list[dict[str, Any]]:
        """Rows as dicts of raw values, in column order (absent values as None)."""
        cols = self.view(view)
        return [{c.name: r.get(c.name) for c in cols} for r in self.rows]

    def to_csv(self) -> str:
        cols = self.view("csv")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([c.name for c in cols])
        for r in self.rows:
            w.writerow([_csv_cell(r.get(c.name)) for c in cols])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "caption": self.caption,
            "columns": [{"name": c.name, "label": c.label if c.label is not None else c.name, "kind": c.kind,
                         "higher_is_better": c.higher_is_better} for c in self.view("json")],
            "rows": self.records("json"),
            "notes": list(self.notes),
        } | ({"marks": [{"row": i, "column": c, "marks": list(m)} for (i, c), m in sorted(self.marks.items())]}
             if self.marks else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"

    def to_markdown(self) -> str:
        cols = self.view("markdown")
        lines = [self.caption, ""] if self.caption else []
        lines.append("| " + " | ".join(md_escape(c.header) for c in cols) + " |")
        lines.append("|" + "|".join("---:" if c.align == "r" else "---" for c in cols) + "|")
        for i in range(len(self.rows)):
            lines.append("| " + " | ".join(self.marked(i, c, "markdown") for c in cols) + " |")
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def latex_too_wide(self, line_chars: int = 70) -> bool:
        """Whether the tabular would run past a one-column line (about 70 characters of \\small text)."""
        cols = self.view("latex")
        width = 0
        for c in cols:
            cells = [len(c.display(r.get(c.name))) + 2 for r in self.rows]
            width += max([len(c.header)] + cells) + 2
        return width > line_chars

    def to_latex(self) -> str:
        cols = self.view("latex")
        fit = self.latex_too_wide() if self.fit is None else self.fit
        head = [c.latex_label if c.latex_label is not None else latex_escape(c.header) for c in cols]
        triangles = any(m in ("up", "down") for ms in self.marks.values() for m in ms) or "▲" in self.caption
        pkgs = "booktabs" + (", amssymb" if triangles else "")
        pkgs += ", graphicx" if fit else ""
        lines = [
            f"% Generated by `{self.source}`; needs \\usepackage{{{pkgs}}}.",
            "\\begin{table}[t]",
            "\\centering",
            "\\small",
            *(["\\resizebox{\\linewidth}{!}{%"] if fit else []),
            f"\\begin{{tabular}}{{{''.join(c.align for c in cols)}}}",
            "\\toprule",
            " & ".join(head) + " \\\\",
            "\\midrule",
        ]
        lines += self._latex_body(cols)
        lines += ["\\bottomrule", "\\end{tabular}" + ("}" if fit else "")]
        if self.caption:
            lines.append(f"\\caption{{{latex_escape(self.caption)}}}")
        if self.label:
            lines.append(f"\\label{{{self.label}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def _latex_body(self, cols: list[Column]) -> list[str]:
        lines: list[str] = []
        prev: Any = object()
        for i, r in enumerate(self.rows):
            cells = [self.marked(i, c, "latex") for c in cols]
            if self.group is not None:
                g = r.get(self.group)
                if g != prev:
                    if i:
                        lines.append("\\midrule")
                    prev = g
                else:
                    cells = ["" if c.name == self.group else cell for c, cell in zip(cols, cells)]
            lines.append(" & ".join(cells) + " \\\\")
        return lines


def table_of(rows: Iterable[dict[str, Any]], names: list[str]) -> Table:
    """A plain export table: one text column per name, the rows as given."""
    return Table([Column(n) for n in names], list(rows))
