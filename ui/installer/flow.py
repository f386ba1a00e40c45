"""What the installer dialog's buttons do: one QgsTask per install, the log streamed
to the dialog, the new folder put on sys.path on success."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Callable

from qgis.core import QgsApplication
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QPushButton, QWidget

from ...engine.errors import CancelledError, MapRefinerError
from ..jobs.tasks import EngineTask
from ..messages import dismiss, show_error, show_success
from ..settings import load_install_build, save_install_build
from .deps import python_command
from .dialog import InstallerDialog
from .run import InstallPlan, InstallResult, install, uninstall
from .site import activate, deactivate, deps_folder, loaded_from, profile_dir

log = logging.getLogger(__name__)
OFFER_TEXT = "Install engine dependencies…"
#: Words of the missing-dependencies message (installer/deps.py) that a successful
#: install takes off the message bar.
NEEDS_TORCH = "Map Refiner needs"


class LogRelay(QObject):
    """Carries log lines from the task's thread to the dialog (queued across threads)."""

    line = pyqtSignal(str)


class InstallerFlow(QObject):
    def __init__(
        self,
        bar: QgsMessageBar,
        parent_window: QWidget | None = None,
        folder: Path | None = None,
        python: str | None = None,
    ) -> None:
        super().__init__()
        self.bar = bar
        self.parent_window = parent_window
        self.folder = folder or deps_folder(profile_dir())
        self.python = python or python_command()
        self.dialog: InstallerDialog | None = None
        self.task: EngineTask | None = None
        self.relay = LogRelay()

    def show(self) -> InstallerDialog:
        if self.dialog is None:
            self.dialog = InstallerDialog(
                self.python, self.folder, load_install_build(), parent=self.parent_window
            )
            self.dialog.install_requested.connect(self.start)
            self.dialog.uninstall_requested.connect(self.remove)
            self.dialog.cancel_requested.connect(self.cancel)
            self.relay.line.connect(self.dialog.append_log)
        self.dialog.refresh()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def start(self, plan: InstallPlan) -> EngineTask:
        save_install_build(self.dialog.build_combo.currentData() if self.dialog else "auto")
        self.task = EngineTask(
            "Map Refiner: installing engine dependencies",
            partial(self._job, plan),
            self._done,
            self._failed,
        )
        if self.dialog is not None:
            self.dialog.set_running(True)
            self.task.progressChanged.connect(self.dialog.set_progress)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _job(self, plan: InstallPlan, progress, is_cancelled) -> InstallResult:  # noqa: ANN001
        def emit(line: str) -> None:
            log.info("pip: %s", line)
            self.relay.line.emit(line)

        return install(plan, progress, is_cancelled, emit)

    def _done(self, task: EngineTask, result: InstallResult) -> None:
        self.task = None
        restart = loaded_from(result.folder)
        activate(result.folder)
        if not restart:  # torch imports now: the "needs torch" message is stale
            dismiss(self.bar, NEEDS_TORCH)
        text = (
            f"Engine installed: torch {result.versions['torch']}, safetensors "
            f"{result.versions['safetensors']} ({result.build} build, checked) in "
            f"{result.seconds:.0f} s; "
            + (
                "restart QGIS to use the repaired install."
                if restart
                else "Map Refiner is ready, no restart needed."
            )
        )
        self._finish(text)

    def _failed(self, task: EngineTask, exc: BaseException) -> None:
        self.task = None
        if isinstance(exc, CancelledError) and exc.message.startswith("Cancelled by the user"):
            exc = CancelledError("Installation cancelled; nothing was changed.")
        if self.dialog is not None:
            self.dialog.set_running(False)
            show_error(self.dialog.message_bar, exc)
        show_error(self.bar, exc)

    def _finish(self, text: str) -> None:
        if self.dialog is not None:
            self.dialog.set_running(False)
            show_success(self.dialog.message_bar, text)
        show_success(self.bar, text)

    def remove(self) -> None:
        restart = loaded_from(self.folder)
        try:
            removed = uninstall(self.folder)
        except MapRefinerError as exc:
            show_error(self.dialog.message_bar if self.dialog else self.bar, exc)
            return
        deactivate(self.folder)
        self._finish(
            f"Removed {self.folder}" + ("; restart QGIS to unload torch." if restart else ".")
            if removed
            else "Nothing to remove: Map Refiner had not installed anything."
        )

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def unload(self) -> None:
        self.cancel()
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None


def offer_install(bar: QgsMessageBar, open_installer: Callable[[], None]) -> QPushButton | None:
    """Put an "Install engine dependencies…" button on the bar's current message."""
    item = bar.currentItem()
    if item is None:
        return None
    button = QPushButton(OFFER_TEXT, item)  # owned by the item, not by Python
    button.clicked.connect(open_installer)
    item.setWidget(button)
    return button
