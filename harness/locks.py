"""A per-run-id lock, so two processes never compute the same cell at once.

``with run_lock(results_dir, run_id):`` takes an exclusive ``flock`` on
``<results>/.locks/<run id>.lock``; a second process asking for the same run id waits (printing
who holds it) and then, finding the cell stored, skips it. The lock dies with its process (the
kernel releases a flock when the file descriptor closes), so a killed worker never leaves a cell
locked. Lock files are empty and may be deleted when no run is in progress.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("harness")
LOCK_DIR = ".locks"


@contextlib.contextmanager
def run_lock(results_dir: Path | str, run_id: str, *, poll_seconds: float = 0.5,
             timeout: float | None = None, what: str = "run") -> Iterator[Path]:
    """Hold the lock of ``run_id`` in ``results_dir`` for the body; wait while another process
    holds it (up to ``timeout`` seconds, then TimeoutError). ``what`` names the locked thing in
    the messages (the same lock guards cache entries: a pruned model, a converted checkpoint)."""
    path = Path(results_dir) / LOCK_DIR / f"{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.info("%s %s is being computed by another process; waiting", what, run_id)
                    told = True
                if timeout is not None and time.monotonic() - start > timeout:
                    raise TimeoutError(f"{what} {run_id} stayed locked for {timeout} s ({path})") from None
                time.sleep(poll_seconds)
        yield path
    finally:
        os.close(fd)  # releases the flock
