"""Shared pieces of the IR readers: parsed rows with counts, file/line errors, id normalisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.data import ResolvedData
from harness.errors import DataIntegrityError
from harness.formats import DataFormat


@dataclass
class Parsed:
    """What one file reader returns: rows plus counts of what its rules changed."""

    rows: list[Any]
    counts: dict[str, int] = field(default_factory=dict)

    def extend(self, other: Parsed) -> None:
        self.rows.extend(other.rows)
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v


def fail(path: Path | str, lineno: int | None, msg: str) -> DataIntegrityError:
    where = f"{path}:{lineno}" if lineno is not None else str(path)
    return DataIntegrityError(f"{where}: {msg}")


def read_lines(path: Path) -> list[str]:
    """Strict UTF-8 lines (a bad byte is reported by line); CRLF tolerated."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise fail(path, line, f"not valid UTF-8 ({exc.reason})") from None
    return text.splitlines()  # handles CRLF


def norm_int_id(path: Path, lineno: int, raw: str, what: str) -> str:
    """SMART ids are integers: ``"001"`` -> ``"1"``, so topics, qrels and corpus agree."""
    try:
        return str(int(raw))
    except ValueError:
        raise fail(path, lineno, f"{what} {raw!r} is not an integer") from None


def clean(text: str) -> str:
    return " ".join(text.split())


class PerFileFormat(DataFormat):
    """A format whose files are read one by one; the rows of several parts are concatenated in the
    declared order and their counts summed."""

    produces: ClassVar[str] = ""

    def read_file(self, path: Path, options: Any) -> Parsed:
        raise NotImplementedError

    def read(self, files: list[ResolvedData], options: Any) -> Parsed:
        out = Parsed([])
        for f in files:
            assert f.path is not None
            out.extend(self.read_file(f.path, options))
        return out
