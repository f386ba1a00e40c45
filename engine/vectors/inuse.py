"""A GeoPackage another program is writing to is never replaced under it.

Replacing the file is atomic, and SQLite connections that still hold the old file see
that it moved (their next write fails) instead of writing into the new one; but a
transaction in progress there would be thrown away. So an overwrite first takes
SQLite's write lock on the old file, refuses if another program holds it, and keeps it
until the new file is in place, so no write can start in between.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..errors import MapRefinerError


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold SQLite's write lock on the existing GeoPackage ``path`` (if any) meanwhile."""
    if not path.is_file():
        yield
        return
    try:
        con = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None
        )
    except sqlite3.Error:  # not a database we can open: nothing of SQLite to protect
        yield
        return
    try:
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                yield  # not a database (a damaged file): replaced as any file is
                return
            raise MapRefinerError(
                f"{path.name} is being written by another program (a QGIS edit being saved, "
                "a script); it was left as it is. Let that finish or close the file there, "
                "and run again, or choose another name.",
                details=str(exc),
            ) from None
        yield
        con.execute("ROLLBACK")
    finally:
        con.close()
