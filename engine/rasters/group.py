"""Outputs of one run that are finished together (a refine's class map, scores and
coarse map, or a cluster refine's VRTs): either all of them are written or the message
says which were."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import MapRefinerError
from .files import claim_temp, failure_reason, place, release, remove_stale_sidecars, write_error

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
            raise partly_written(placed, missing, exc) from exc

    def abort(self) -> None:
        for w in self.writers:
            w.abort()


def partly_written(
    placed: list[Path], missing: list[Path], exc: MapRefinerError
) -> MapRefinerError:
    """The error of a move that failed after ``placed`` were moved into place."""
    why = exc.message
    if exc.__cause__ is not None:  # an OSError: its reason, without "nothing written"
        reason, advice = failure_reason(missing[0], exc.__cause__)
        why = f"{reason}. {advice}"
    return MapRefinerError(
        f"Wrote {_names(placed)} but not {_names(missing)}: {why}", details=exc.details
    )


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths)


@contextlib.contextmanager
def paths_together(targets: Sequence[Path], overwrite: bool) -> Iterator[list[Path]]:
    """Temporary paths for ``targets``, all moved into place when the block ends, like
    :class:`WriterGroup` for files a writer of its own does not make (a cluster's VRTs):
    a failure while they are written (the caller says which as a write error) leaves
    none of them."""
    temps: list[Path] = []
    locks: list[IO[bytes] | None] = []
    try:
        for target in targets:
            tmp, lock = claim_temp(target)
            temps.append(tmp)
            locks.append(lock)
        yield temps
        _place_all(temps, list(targets), overwrite)
    finally:
        for tmp in temps:  # those not moved into place
            with contextlib.suppress(OSError):
                tmp.unlink()
        for lock in locks:
            release(lock)


def _place_all(temps: list[Path], targets: list[Path], overwrite: bool) -> None:
    placed: list[Path] = []
    for tmp, final in zip(temps, targets):
        try:
            try:
                place(tmp, final, overwrite)
            except OSError as exc:
                raise write_error(final, exc) from exc
        except MapRefinerError as exc:
            if not placed:
                raise
            raise partly_written(placed, targets[len(placed) :], exc) from exc
        placed.append(final)
        remove_stale_sidecars(final)  # the old file's overviews and statistics


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
