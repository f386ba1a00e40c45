"""Outputs of one run that are finished together (a refine's class map, scores and
coarse map): either all of them are written or the message says which were."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MapRefinerError
from .files import failure_reason

if TYPE_CHECKING:
    from .write import RefinedWriter


class WriterGroup:
    """Every file is complete on disk before any is moved into place, so a full disk
    leaves none of them; a move that fails after another was made names both sets."""

    def __init__(self) -> None:
        self.writers: list[RefinedWriter] = []

    def commit(self) -> None:
        try:
            for w in self.writers:
                w.finish()
        except BaseException:
            self.abort()
            raise
        placed: list[Path] = []
        try:
            for w in self.writers:
                w.place_files(placed)
        except MapRefinerError as exc:
            self.abort()
            if not placed:
                raise
            missing = [f for w in self.writers for _, f in w.targets if f not in placed]
            why = exc.message
            if exc.__cause__ is not None:  # an OSError: its reason, without "nothing written"
                reason, advice = failure_reason(missing[0], exc.__cause__)
                why = f"{reason}. {advice}"
            raise MapRefinerError(
                f"Wrote {_names(placed)} but not {_names(missing)}: {why}",
                details=exc.details,
            ) from exc

    def abort(self) -> None:
        for w in self.writers:
            w.abort()


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths)


@contextlib.contextmanager
def writer_group() -> Iterator[WriterGroup]:
    """Writers given this group (``refined_writer(..., group=g)``) commit when it ends."""
    group = WriterGroup()
    try:
        yield group
    except BaseException:
        group.abort()
        raise
    group.commit()
