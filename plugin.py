"""QGIS entry point: builds and removes the actions and the Processing provider.

Everything else lives in ``ui/`` (QGIS side) and ``engine/`` (no QGIS). Nothing
here imports torch, so QGIS starts fast and loads the plugin without it.
"""

from __future__ import annotations

import logging
from typing import Callable

from qgis.core import QgsApplication
from qgis.gui import QgisInterface
from qgis.PyQt.QtGui import QIcon

try:  # QAction is in QtGui under Qt6 (QGIS 4), in QtWidgets under Qt5
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

from .ui.controller import Controller
from .ui.icons import correction_layer_icon, plugin_icon
from .ui.installer.site import activate, deps_folder, profile_dir
from .ui.log import attach_log_handler, detach_log_handler
from .ui.processing.provider import MapRefinerProvider

MENU = "Map Refiner"


class MapRefinerPlugin:
    def __init__(self, iface: QgisInterface | None) -> None:
        self.iface = iface  # None under qgis_process, which only calls initProcessing()
        self.actions: list[QAction] = []
        self.toolbar_actions: list[QAction] = []
        self.provider: MapRefinerProvider | None = None
        self.log_handler: logging.Handler | None = None
        self.controller: Controller | None = None
        activate(deps_folder(profile_dir()))  # torch from the plugin's own installer, if any

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        if self.log_handler is None:
            self.log_handler = attach_log_handler()
        if self.provider is None:
            self.provider = MapRefinerProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()
        self.controller = Controller(self.iface)
        self._add_action(
            plugin_icon(),
            "Map Refiner…",
            self.controller.show_dialog,
            "Refine a classification map of the active raster",
            toolbar=True,
        )
        self._add_action(
            correction_layer_icon(),
            "New correction layer",
            self.controller.new_correction_layer,
            "A polygon layer with a class drop-down, for labels and corrections",
        )
        self._add_action(
            QIcon(),
            "Snap correction outlines…",
            self.controller.snap_outlines,
            "Move a correction layer's outlines onto the image's edges, as a new layer",
        )
        self._add_action(
            QIcon(),
            "Install engine dependencies…",
            self.controller.open_installer,
            "Install, repair or remove torch for Map Refiner in this QGIS profile",
        )

    def _add_action(
        self, icon: QIcon, text: str, slot: Callable[[], None], tip: str, toolbar: bool = False
    ) -> QAction:
        action = QAction(icon, text, self.iface.mainWindow())
        action.setObjectName("map_refiner_" + text.lower().replace(" ", "_").strip("…"))
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.iface.addPluginToRasterMenu(MENU, action)
        if toolbar:
            self.iface.addToolBarIcon(action)
            self.toolbar_actions.append(action)
        self.actions.append(action)
        return action

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            if action in self.toolbar_actions:
                self.iface.removeToolBarIcon(action)
            action.deleteLater()
        self.actions, self.toolbar_actions = [], []
        if self.controller is not None:
            self.controller.unload()
            self.controller = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.log_handler is not None:
            detach_log_handler(self.log_handler)
            self.log_handler = None
