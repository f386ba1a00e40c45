"""The "Install engine dependencies" dialog: what is there, which build, a log.

Slots only read widgets and emit; :mod:`.flow` runs the installer.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QFontDatabase
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .builds import CUDA_BUILDS, BuildChoice, build, choose_build
from .deps import REQUIREMENTS, missing_modules, pinned_requirements
from .run import PACKAGES, InstallPlan
from .site import read_manifest


def engine_status(folder: Path) -> str:
    """One line: installed here (versions, build), found elsewhere, or missing."""
    manifest = read_manifest(folder)
    if manifest is not None:
        pkgs = manifest.get("packages", {})
        return (
            f"Installed by Map Refiner: torch {pkgs.get('torch', '?')}, safetensors "
            f"{pkgs.get('safetensors', '?')} ({manifest.get('build', '?')} build, "
            f"{manifest.get('installed', '')})."
        )
    missing = missing_modules()
    if not missing:
        return "QGIS's Python already has torch and safetensors (not installed by Map Refiner)."
    return f"Not installed: QGIS's Python cannot import {' and '.join(missing)}."


class InstallerDialog(QDialog):
    install_requested = pyqtSignal(object)  # InstallPlan
    uninstall_requested = pyqtSignal()
    cancel_requested = pyqtSignal()

    def __init__(
        self,
        python: str,
        folder: Path,
        build_key: str = "auto",
        driver: str | None = "detect",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Map Refiner — engine dependencies")
        self.setMinimumWidth(640)
        self.python, self.folder = python, folder
        self.requirements = REQUIREMENTS
        self.pip_env: dict[str, str] = {}  # extra environment for pip (proxies; tests)
        self.auto = choose_build("auto", driver)
        self.message_bar = QgsMessageBar(self)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        pins = pinned_requirements(self.requirements)
        self.versions_label = QLabel(
            ", ".join(pins.get(n, n) for n in PACKAGES) + "  (pinned in requirements.txt)", self
        )
        self.build_combo = QComboBox(self)
        self.build_combo.addItem(f"Automatic: {self.auto.label}", "auto")
        self.build_combo.addItem("CPU", "cpu")
        for key, label, _ in CUDA_BUILDS:
            self.build_combo.addItem(f"{label} (NVIDIA GPU)", key)
        self.build_combo.setCurrentIndex(max(0, self.build_combo.findData(build_key)))
        self.reason_label = QLabel(self)
        self.reason_label.setWordWrap(True)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 100)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log_view.setMaximumBlockCount(5000)
        self.install_button = QPushButton("Install", self)
        self.uninstall_button = QPushButton("Uninstall", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        for button in (self.install_button, self.uninstall_button, self.cancel_button):
            self.buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
            button.setAutoDefault(False)
        self._layout()
        self.buttons.rejected.connect(self.reject)
        self.install_button.clicked.connect(self._on_install)
        self.uninstall_button.clicked.connect(self.uninstall_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.build_combo.currentIndexChanged.connect(self._show_reason)
        self._show_reason()
        self.refresh()
        self.set_running(False)

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("Status", self.status_label)
        form.addRow("QGIS's Python", QLabel(f"{self.python}  (Python {sys.version.split()[0]})"))
        target = QLabel(
            f"{self.folder}  (private to this QGIS profile; QGIS's own packages, "
            "numpy and GDAL included, are never changed)",
            self,
        )
        target.setWordWrap(True)
        form.addRow("Install into", target)
        form.addRow("Versions", self.versions_label)
        build_box = QVBoxLayout()
        build_box.setSpacing(2)
        build_box.addWidget(self.build_combo)
        build_box.addWidget(self.reason_label)
        form.addRow("Build", build_box)
        box = QVBoxLayout(self)
        box.addWidget(self.message_bar)
        box.addLayout(form)
        box.addWidget(self.progress_bar)
        box.addWidget(self.log_view, 1)
        box.addWidget(self.buttons)

    def chosen_build(self) -> BuildChoice:
        key = self.build_combo.currentData()
        return self.auto if key == "auto" else build(key)

    def _show_reason(self, _index: int = 0) -> None:
        choice = self.chosen_build()
        how = "Automatic choice" if self.build_combo.currentData() == "auto" else "Your choice"
        where = choice.index_url or "PyPI"
        self.reason_label.setText(
            f"{how}: {choice.label}, because {choice.reason}. "
            f"Packages from {where} (and pip's own configuration)."
        )

    def plan(self) -> InstallPlan:
        return InstallPlan(
            python=self.python,
            folder=self.folder,
            build=self.chosen_build(),
            requirements=self.requirements,
            env=dict(self.pip_env),
        )

    def _on_install(self) -> None:
        self.log_view.clear()
        self.install_requested.emit(self.plan())

    def refresh(self) -> None:
        installed = read_manifest(self.folder) is not None
        self.status_label.setText(engine_status(self.folder))
        self.install_button.setText("Repair" if installed else "Install")
        self.install_button.setToolTip(
            "Install again from scratch (replaces the folder only when the new install works)"
            if installed
            else "Install the pinned versions into the private folder"
        )
        self.uninstall_button.setEnabled(installed and not self.cancel_button.isEnabled())

    def set_running(self, running: bool) -> None:
        self.install_button.setEnabled(not running)
        self.build_combo.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress_bar.setVisible(running)
        self.progress_bar.setValue(0)
        self.refresh()

    def set_progress(self, percent: float) -> None:
        self.progress_bar.setValue(int(round(percent)))

    def append_log(self, line: str) -> None:
        self.log_view.appendPlainText(line)
