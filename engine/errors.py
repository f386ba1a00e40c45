"""The one error type a user sees.

Every expected failure (bad input, missing file, cancelled job) is raised as a
:class:`MapRefinerError` carrying a one-line message that says what was wrong
and what to do, plus optional details for the log. The CLI prints the message
on stderr and exits non-zero; QGIS shows it in the message bar.
"""

from __future__ import annotations


class MapRefinerError(Exception):
    """An expected, user-facing failure with an actionable one-line message."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class CancelledError(MapRefinerError):
    """The user cancelled the job; nothing was written."""

    def __init__(self, message: str = "Cancelled by the user; no output was written.") -> None:
        super().__init__(message)
