"""Plain callbacks that long jobs use to report progress and check for cancel.

The engine never sees Qt: QGIS tasks and the CLI pass these two callables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import CancelledError

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]


def _no_progress(_fraction: float) -> None:
    return None


def _never_cancelled() -> bool:
    return False


@dataclass
class Reporter:
    """Maps a sub-job's 0..1 progress onto a span of the parent's 0..1 range."""

    progress: ProgressFn = _no_progress
    is_cancelled: CancelFn = _never_cancelled
    start: float = 0.0
    span: float = 1.0

    def report(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        self.progress(self.start + self.span * fraction)

    def check(self) -> None:
        """Raise :class:`CancelledError` when the caller asked to stop."""
        if self.is_cancelled():
            raise CancelledError()

    def sub(self, start: float, end: float) -> Reporter:
        """A reporter for the part of this job between ``start`` and ``end``."""
        return Reporter(
            self.progress,
            self.is_cancelled,
            self.start + self.span * start,
            self.span * (end - start),
        )


def make_reporter(
    progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None
) -> Reporter:
    return Reporter(progress or _no_progress, is_cancelled or _never_cancelled)
