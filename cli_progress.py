"""A plain-text progress bar on stderr for the command line (no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with a 0..1 fraction; redraws at most a few times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        # sys.stderr looked up now, not at import, so redirections are honoured.
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.t0 = time.perf_counter()
        self.last = -1.0
        self.tty = self.stream.isatty()

    def __call__(self, fraction: float) -> None:
        now = time.perf_counter()
        if fraction < 1.0 and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% {now - self.t0:6.1f}s"
        end = "\r" if self.tty and fraction < 1.0 else "\n"
        self.stream.write(line + end)
        self.stream.flush()
