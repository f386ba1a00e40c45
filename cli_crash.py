"""The command line's last resort: an unexpected exception (a bug) becomes one line on
stderr and a log file holding the traceback, never a traceback on the terminal."""

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


def _write_log(exc: BaseException, argv: Sequence[str]) -> Path:
    """Write the traceback into a new file of the cache folder, else of the temp folder."""
    now = datetime.datetime.now()
    name = f"crash-{now:%Y%m%d-%H%M%S}-{os.getpid()}.log"
    text = (
        f"map-refiner internal error at {now.isoformat(timespec='seconds')}\n"
        f"command: map-refiner {' '.join(argv)}\n"
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


def report_internal_error(exc: BaseException, argv: Sequence[str]) -> int:
    """Print ``map-refiner: internal error: <type>: <message>; details in <log>``; the
    exit status of a bug."""
    lines = str(exc).strip().splitlines()
    message = f"{type(exc).__name__}: {lines[0][:300] if lines else '(no message)'}"
    try:
        where = f"details in {_write_log(exc, argv)}"
    except OSError as log_exc:
        where = f"no log could be written ({log_exc.strerror or log_exc}); rerun with -v"
    print(f"map-refiner: internal error: {message}; {where}", file=sys.stderr)
    return EXIT_INTERNAL
