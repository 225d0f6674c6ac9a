"""The SMART record layout shared by ``smart-docs`` and ``smart-queries`` (hand-written: no library
reads it): ``.I id`` then sections ``.T .A .B .W .X .N .K .C``; CRLF tolerated."""

from __future__ import annotations

import re
from pathlib import Path

from harness.ir.formats._common import clean, fail, read_lines

SMART_MARKERS = {"I", "T", "A", "B", "W", "X", "N", "K", "C"}


def smart_records(path: Path, lines: list[str] | None = None) -> list[tuple[int, str, dict[str, str]]]:
    """(line of .I, raw id, {marker: text}) for each record of a SMART file."""
    records: list[tuple[int, str, dict[str, str]]] = []
    current: dict[str, list[str]] | None = None
    section: str | None = None
    for lineno, line in enumerate(lines if lines is not None else read_lines(path), 1):
        m = re.match(r"^\.([A-Z])(?:\s+(.*?))?\s*$", line)
        if m and m.group(1) in SMART_MARKERS:
            marker, arg = m.group(1), m.group(2)
            if marker == "I":
                if not arg:
                    raise fail(path, lineno, ".I without an id")
                current = {}
                records.append((lineno, arg, current))  # type: ignore[arg-type]
                section = None
                continue
            if current is None:
                raise fail(path, lineno, f".{marker} before the first .I")
            section = marker
            current.setdefault(section, [])
            if arg:  # text on the marker line itself (rare; CISI has ".T " with a trailing space)
                current[section].append(arg)
            continue
        if m and line.startswith(".") and m.group(1) not in SMART_MARKERS:
            raise fail(path, lineno, f"unknown SMART section marker {line.split()[0]!r}")
        if current is None:
            if line.strip():
                raise fail(path, lineno, "text before the first .I")
            continue
        if section is None:
            if line.strip():
                raise fail(path, lineno, "text after .I and before any section marker")
            continue
        current[section].append(line)
    return [(ln, rid, {k: clean(" ".join(v)) for k, v in sec.items()}) for ln, rid, sec in records]  # type: ignore[union-attr]
