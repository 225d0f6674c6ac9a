"""Reading the harness's YAML files (tasks, suites, grids, tolerances) with one kind of error: the
file named, and why it could not be read or parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError


def read_yaml(path: Path, what: str, error: type[HarnessError] = HarnessError,
              loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The content of the YAML file ``path`` (a ``what``: "task file", "grid file", ...); an
    unreadable file or invalid YAML raises ``error`` naming the file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader (or a subclass of it)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
