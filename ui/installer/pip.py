"""Running pip and other helper processes for the installer, with cancel and a log.

QGIS's Python may have no pip (Debian without python3-pip, where ``ensurepip`` is
disabled too). A pip wheel is a runnable zip, so ``python pip-X.whl/pip`` works
without installing anything: Debian's python3-pip-whl (a dependency of
python3-venv) and CPython's ensurepip bundle both carry one.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from ...engine.errors import CancelledError, MapRefinerError
from ...engine.progress import CancelFn

LogFn = Callable[[str], None]
WHEEL_FOLDERS = (Path("/usr/share/python-wheels"),)


def run_logged(
    argv: Sequence[str],
    log: LogFn,
    is_cancelled: CancelFn,
    env: dict[str, str] | None = None,
    cancel_message: str = "",
) -> tuple[int, list[str]]:
    """Run ``argv``, passing each output line to ``log``; kill it when cancelled.

    Returns the exit code and the lines; raises CancelledError when cancelled.
    """
    kwargs: dict = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        kwargs["start_new_session"] = True  # its own process group, killed as one
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        env=env,
        **kwargs,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc, lines), daemon=True)
    reader.start()
    out: list[str] = []
    while True:
        if is_cancelled():
            _kill(proc)
            raise CancelledError(cancel_message or "Cancelled; nothing was changed.")
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        out.append(line.rstrip("\n"))
        log(out[-1])
    return proc.wait(), out


def _pump(proc: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(None)


def _kill(proc: subprocess.Popen) -> None:
    try:
        if os.name == "nt":
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def quiet(
    argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120.0
) -> tuple[int, str]:
    """Exit code and output of a short helper command."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return -1, str(exc)
    return proc.returncode, proc.stdout + proc.stderr


def pip_wheels(python: str, env: dict[str, str] | None = None) -> list[Path]:
    """Pip wheels that ``python`` can run as a zip application, newest name first."""
    code, stdlib = quiet(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"], env
    )
    folders = list(WHEEL_FOLDERS)
    if code == 0:
        folders.append(Path(stdlib.strip()) / "ensurepip" / "_bundled")
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += sorted(folder.glob("pip-*.whl"), reverse=True)
    return found


def pip_command(python: str, env: dict[str, str] | None = None) -> list[str]:
    """How to run pip with ``python``: its own ``-m pip``, else a pip wheel."""
    if quiet([python, "-m", "pip", "--version"], env)[0] == 0:
        return [python, "-m", "pip"]
    for wheel in pip_wheels(python, env):
        argv = [python, str(wheel / "pip")]
        if quiet(argv + ["--version"], env)[0] == 0:
            return argv
    raise MapRefinerError(
        f"QGIS's Python ({python}) has no pip and no pip wheel was found. Install pip for it "
        "(Debian/Ubuntu: sudo apt install python3-pip) and try again; nothing was changed."
    )


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def reachable(url: str, env: dict[str, str], timeout: float = 5.0) -> bool:
    """Whether ``url`` answers at all (any HTTP status), through the proxies in ``env``."""
    import urllib.error
    import urllib.request

    proxies = {}
    for scheme in ("http", "https"):
        value = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
        if value:
            proxies[scheme] = value
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    try:
        opener.open(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True
