"""The plugin loads and unloads through classFactory/initGui/unload without leaks."""

from __future__ import annotations

import logging
from unittest.mock import MagicMock

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent

try:  # QAction is in QtGui under Qt6 (QGIS 4), in QtWidgets under Qt5
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

from map_refiner import classFactory

REGISTERING = (
    "addPluginToRasterMenu",
    "removePluginRasterMenu",
    "addToolBarIcon",
    "removeToolBarIcon",
)


def _plugin_actions(window) -> list:  # noqa: ANN001
    return [a for a in window.findChildren(QAction) if a.objectName().startswith("map_refiner")]


def test_load_and_unload_leave_nothing_behind(qgis_iface, qgis_new_project, monkeypatch) -> None:
    for name in REGISTERING:
        monkeypatch.setattr(qgis_iface, name, MagicMock(name=name), raising=False)
    registry = QgsApplication.processingRegistry()
    handlers_before = list(logging.getLogger("map_refiner").handlers)

    for _ in range(2):  # a reload must not duplicate anything
        plugin = classFactory(qgis_iface)
        plugin.initGui()
        assert registry.providerById("map_refiner") is not None
        ids = sorted(a.id() for a in registry.providerById("map_refiner").algorithms())
        assert ids == [
            "map_refiner:changes",
            "map_refiner:compare",
            "map_refiner:evaluate",
            "map_refiner:finetune",
            "map_refiner:refine",
            "map_refiner:snap_outlines",
            "map_refiner:survey_model",
            "map_refiner:train_coarse",
            "map_refiner:vectorize",
        ]
        texts = [c.args[1].text() for c in qgis_iface.addPluginToRasterMenu.call_args_list[-4:]]
        assert texts == [
            "Map Refiner…",
            "New correction layer",
            "Snap correction outlines…",
            "Install engine dependencies…",
        ]
        assert qgis_iface.addPluginToRasterMenu.call_args_list[-1].args[0] == "Map Refiner"
        assert len(_plugin_actions(qgis_iface.mainWindow())) == 4
        assert len(logging.getLogger("map_refiner").handlers) == len(handlers_before) + 1

        plugin.unload()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        assert registry.providerById("map_refiner") is None
        assert _plugin_actions(qgis_iface.mainWindow()) == []
        assert logging.getLogger("map_refiner").handlers == handlers_before

    added = [c.args for c in qgis_iface.addPluginToRasterMenu.call_args_list]
    removed = [c.args for c in qgis_iface.removePluginRasterMenu.call_args_list]
    assert added == removed and len(added) == 8
    tool_added = [c.args for c in qgis_iface.addToolBarIcon.call_args_list]
    assert tool_added == [c.args for c in qgis_iface.removeToolBarIcon.call_args_list]
    assert len(tool_added) == 2


def test_processing_only_start_as_in_qgis_process() -> None:
    """qgis_process passes no iface and calls only initProcessing()."""
    plugin = classFactory(None)
    plugin.initProcessing()
    registry = QgsApplication.processingRegistry()
    try:
        assert registry.algorithmById("map_refiner:refine") is not None
    finally:
        plugin.unload()
    assert registry.providerById("map_refiner") is None


def test_log_records_reach_the_map_refiner_tab(plugin) -> None:  # noqa: ANN001
    seen = []
    log = QgsApplication.messageLog()

    def collect(message: str, tag: str, _level) -> None:  # noqa: ANN001
        seen.append((tag, message))

    log.messageReceived.connect(collect)
    try:
        logging.getLogger("map_refiner.engine.refine.pipeline").info("hello from the engine")
    finally:
        log.messageReceived.disconnect(collect)
    assert ("Map Refiner", "map_refiner.engine.refine.pipeline: hello from the engine") in seen
