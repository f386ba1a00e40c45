"""The last resort for a bug (an unexpected exception): one line for the user and a log
file holding the traceback, never a traceback on the terminal (the command line) or in
the algorithm's log (Processing, ui/processing/common.py)."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

#: Exit status of an internal error (BSD sysexits' EX_SOFTWARE); 2 is a usage or input
#: error, 130 an interrupt.
EXIT_INTERNAL = 70


def crash_log_dir() -> Path:
    """Where crash logs go: the user's cache folder, as each platform names it."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
        return base / "map-refiner" / "Logs"
    if sys.platform == "darwin":
        return home / "Library" / "Logs" / "map-refiner"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "map-refiner"


def write_crash_log(exc: BaseException, running: str) -> Path:
    """Write the traceback, after ``running`` (what was run, e.g. ``command: ...``), into a
    new file of the cache folder, else of the temp folder; OSError when neither takes it."""
    now = datetime.datetime.now()
    name = f"crash-{now:%Y%m%d-%H%M%S}-{os.getpid()}.log"
    text = (
        f"map-refiner internal error at {now.isoformat(timespec='seconds')}\n"
        f"{running}\n"
        f"python {platform.python_version()} on {platform.platform()}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    try:
        return _write_new(crash_log_dir(), name, text)
    except OSError:  # no cache folder to write in: the temp folder
        return _write_new(Path(tempfile.gettempdir()), name, text)


def _write_new(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "x", encoding="utf-8") as f:
        f.write(text)
    return path


def summary(exc: BaseException) -> str:
    """``<type>: <first line of the message>``, for the one line a user sees."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else '(no message)'}"


def report_internal_error(exc: BaseException, argv: Sequence[str]) -> int:
    """Print ``map-refiner: internal error: <type>: <message>; details in <log>``; the
    exit status of a bug."""
    try:
        where = f"details in {write_crash_log(exc, 'command: map-refiner ' + ' '.join(argv))}"
    except OSError as log_exc:
        where = f"no log could be written ({log_exc.strerror or log_exc}); rerun with -v"
    print(f"map-refiner: internal error: {summary(exc)}; {where}", file=sys.stderr)
    return EXIT_INTERNAL
