"""Does Qt's C++ event loop keep running while the dialog's task imports torch?

    OMP_NUM_THREADS=1 python -m map_refiner.dev.benchmarks.event_loop_probe [--old] [--runs 3]
        [--desktop]

A child process (offscreen QGIS, the plugin loaded through classFactory) runs the C++
event loop (``app.exec()``, which releases the GIL) with a 2 ms precise QTimer wired
to a C++ slot (``QSpinBox.stepUp``: no Python), opens the Map Refiner dialog from a
single-shot timer and quits on the task manager's ``allTasksFinished`` (C++ to C++), so
none of this probe's own Python runs while the task imports torch. The parent samples
the child's main thread every ~0.3 ms from outside, in ``/proc/PID/task/PID/syscall``
(Linux): in ``poll`` the loop is waiting for events, in ``futex`` it waits for a lock
(the GIL, or the dynamic loader's). It prints, over the import, the longest stretch the
loop spent away from ``poll`` (a stall) and the longest stretch in ``futex`` (shorter: a
thread waiting for the GIL wakes every switch interval, 5 ms, to ask for it again; gdb
on such a stall showed ``sipQgsFileWidget::paintEvent`` in ``PyGILState_Ensure``: sip
asks Python whether a Python-made widget reimplements the virtual). ``--old`` turns the
plugin's ``load_torch_library`` off, as before it existed. ``--desktop`` samples the
real QGIS desktop instead (under Xvfb, a throwaway profile in out/desktop_stall/, the
Austin tile open, dev/desktop/stall_session.py opening the dialog): its event loop is
QGIS's own, with its Python plugins loaded (gdb on a stall there: QgsApplication::notify
-> QWidget::event of a PyQt-made widget -> PyGILState_Ensure). Prints; writes nothing
else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

TESTS = Path(__file__).resolve().parents[2] / "tests" / "qgis"
POLL = {"7", "271"}  # poll, ppoll on x86-64
FUTEX = "202"


def child(old: bool) -> None:
    from pytest_qgis.mock_qgis_classes import MockMessageBar
    from pytest_qgis.qgis_interface import QgisInterface
    from qgis.core import QgsApplication
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import Qt, QTimer
    from qgis.PyQt.QtWidgets import QMainWindow, QSpinBox

    app = QgsApplication([], True)
    app.initQgis()
    window = QMainWindow()
    iface = QgisInterface(QgsMapCanvas(window), MockMessageBar(), window)
    from map_refiner import classFactory
    from map_refiner.ui.dialog import device_info, dialog

    plugin = classFactory(iface)
    plugin.initGui()
    if old:
        device_info.load_torch_library = lambda: None  # type: ignore[assignment]
    marks: dict[str, float] = {}
    summary = dialog.device_summary

    def timed_summary() -> str:
        marks["start"] = time.time()
        text = summary()
        marks["end"] = time.time()
        return text

    dialog.device_summary = timed_summary
    counter = QSpinBox()
    counter.setRange(0, 10**9)
    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(2)
    ticker.timeout.connect(counter.stepUp)  # a C++ slot: PyQt connects it without Python

    def begin() -> None:
        ticker.start()
        plugin.actions[0].trigger()

    QTimer.singleShot(200, begin)
    QgsApplication.taskManager().allTasksFinished.connect(app.quit)
    print("PID", os.getpid(), flush=True)
    app.exec()
    label = plugin.controller.dialog.device_label.text()
    print("REPORT " + json.dumps({**marks, "ticks": counter.value(), "label": label}), flush=True)
    os._exit(0)  # the probe's numbers are out; QGIS's teardown adds nothing


def longest(samples: list[tuple[float, str]], inside: set[str], negate: bool) -> float:
    """The longest run of consecutive samples whose state is (not, with negate) in inside."""
    best, start = 0.0, None
    for t, state in samples:
        if (state in inside) != negate:
            start = t if start is None else start
            best = max(best, t - start)
        else:
            start = None
    return best


def sample(pid: int, running: Callable[[], bool]) -> list[tuple[float, str]]:
    """(time, system call number or "running") of ``pid``'s main thread, ~every 0.3 ms."""
    samples = []
    while running():
        try:
            with open(f"/proc/{pid}/task/{pid}/syscall") as f:
                samples.append((time.time(), f.read().split()[0]))
        except (OSError, IndexError):
            break
        time.sleep(0.0003)
    return samples


def summary(label: str, samples: list[tuple[float, str]], report: dict) -> str:
    window = [(t, s) for t, s in samples if report["start"] <= t <= report["end"]]
    in_futex = sum(s == FUTEX for _, s in window) / max(len(window), 1)
    return (
        f"{label}: import {1000 * (report['end'] - report['start']):.0f} ms; "
        f"loop away from poll at most {1000 * longest(window, POLL, True):.0f} ms, "
        f"in futex at most {1000 * longest(window, {FUTEX}, False):.0f} ms "
        f"({100 * in_futex:.0f} % of {len(window)} samples); {report['label']}"
    )


def probe(old: bool) -> str:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    args = [sys.executable, "-m", __spec__.name, "--child"] + (["--old"] if old else [])
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=TESTS
    )
    assert proc.stdout is not None
    pid = int(proc.stdout.readline().split()[1])
    samples = sample(pid, lambda: proc.poll() is None)
    lines = [ln for ln in proc.stdout.read().splitlines() if ln.startswith("REPORT ")]
    report = json.loads(lines[-1][len("REPORT ") :])
    return summary("old" if old else "now", samples, report)


def qgis_child() -> int | None:
    """The qgis.bin this process started (through /usr/bin/qgis, which execs it)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name, ppid = fields[0].split("(", 1)[1], int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and name.startswith("qgis"):
            return int(stat.parent.name)
    return None


def desktop(old: bool) -> str:
    from ..desktop.qgis_profile import QUIET_DESKTOP, enable_plugin, install_plugin, qgis_env
    from ..desktop.screenshots import DATA, run_session
    from ..package_zip import ROOT

    work = ROOT / "out" / "desktop_stall"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    install_plugin(work)
    enable_plugin(work, QUIET_DESKTOP)
    env = qgis_env(work)
    env.pop("QT_QPA_PLATFORM", None)
    env["MAP_REFINER_OLD"] = "1" if old else "0"
    status: dict = {}
    session = Path(__file__).resolve().parents[1] / "desktop" / "stall_session.py"
    image = DATA / "austin" / "austin_dev_rgb.tif"

    def run() -> None:
        status.update(
            run_session(session, work, env, image, work / "project" / "stall.qgz", work, 180)
        )

    thread = threading.Thread(target=run)
    thread.start()
    pid = None
    while pid is None and thread.is_alive():
        time.sleep(0.05)
        pid = qgis_child()
    samples = sample(pid, thread.is_alive) if pid is not None else []
    thread.join()
    report = {
        "start": status["import_start"],
        "end": status["import_end"],
        "label": status.get("device_line", ""),
    }
    return summary(f"{'old' if old else 'now'}, QGIS desktop", samples, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", action="store_true", help="without load_torch_library")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--desktop", action="store_true", help="the real QGIS under Xvfb")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.old)
    for _ in range(args.runs):
        print(desktop(args.old) if args.desktop else probe(args.old), flush=True)


if __name__ == "__main__":
    main()
