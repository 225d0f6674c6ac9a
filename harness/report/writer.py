"""Writing the site: the output directory is wiped and rebuilt, but only one this module made."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.errors import HarnessError

MARKER = ".harness-site"  # marks an output directory this module may wipe and rebuild


class SiteWriter:
    """Writes files under ``out`` and remembers their relative paths."""

    def __init__(self, out: Path):
        self.out = out
        self.files: list[str] = []

    def write(self, rel: str, data: bytes | str) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        self.files.append(rel)


def prepare_out(out_dir: Path) -> SiteWriter:
    """Empty ``out_dir`` (refusing a directory `harness report` did not make) and mark it as ours."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise HarnessError(f"site output {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise HarnessError(
                f"site output {out_dir} is not empty and was not made by `harness report` (no {MARKER} file);"
                " refusing to delete its contents"
            )
        for child in sorted(out_dir.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    w = SiteWriter(out_dir)
    w.write(MARKER, "Made by `harness report`; this directory is rebuilt (wiped) on every run.\n")
    return w
