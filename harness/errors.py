"""User-facing errors. The CLI prints their message without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """An error caused by input the user can fix (names, parameters, files)."""


class UnknownNameError(HarnessError):
    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}.{hint} Known {kind}s: {listing}")
        self.name = name
        self.suggestions = close


class ParamError(HarnessError):
    """A method parameter is unknown, malformed or out of range."""


class TaskDefinitionError(HarnessError):
    """A task YAML file is malformed; the message names the file and field."""


class DataIntegrityError(HarnessError):
    """A data file is missing or its sha256 differs from the pinned one."""


class ResultValidationError(HarnessError):
    """A stored result does not match the result schema."""
