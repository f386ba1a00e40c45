"""Dialog and canvas helpers the desktop sessions that drive the dialog share
(dev/desktop/rounds_session.py, dropped_session.py; run *inside* QGIS by ``qgis --code``).

For the pictures only (a 1920 x 1080 screen): the Browser panel is closed and the Layers
panel widened, the dialog is placed under the message bar, the map is zoomed before each
shot so the image lies left of the dialog, and each shot waits for the canvas to finish
drawing; a tooltip can be shown as a hover would (there is no pointer under Xvfb).
"""

from pathlib import Path

import qgis.utils
from qgis.core import QgsLayerTreeGroup, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QRect, Qt
from qgis.PyQt.QtWidgets import QDockWidget, QToolTip

from map_refiner.dev.desktop.steps import IMAGE, SCREEN, controller, shoot, status, step

iface = qgis.utils.iface
LAYERS_WIDTH = 520  # px: the deepest names (the iterations view's) read whole


def dialog():
    return controller().dialog


def place_dialog():
    d = dialog()
    d.adjustSize()
    d.resize(max(d.width(), 800), d.height())
    d.move(SCREEN[0] - d.width() - 30, 150)  # under the message bar


def shot(name, tip=None):
    """The image fitted left of the dialog again (the panels and message bar resize the
    canvas as the session goes), then the screenshot, with ``tip`` (a function showing a
    tooltip) called once the canvas is drawn."""
    fit_map()
    if tip is not None:
        tip()
    shoot(name)
    QToolTip.hideText()


def show_tip(widget, rect, text):
    """The tooltip a hover over ``rect`` of ``widget`` shows (no pointer under Xvfb)."""
    QToolTip.showText(widget.mapToGlobal(rect.center()), text, widget, QRect(rect), 60000)
    status.setdefault("tooltips", []).append(text)


def layer_tip(name_part):
    """The Layers panel's tooltip of the first layer whose name holds ``name_part``."""
    view = iface.layerTreeView()
    model = view.layerTreeModel()
    layer = next(
        layer for layer in QgsProject.instance().mapLayers().values() if name_part in layer.name()
    )
    index = model.node2index(QgsProject.instance().layerTreeRoot().findLayer(layer.id()))
    shown = view.model()  # QGIS 3.18+ puts a proxy model between the view and the tree's
    rect = view.visualRect(shown.mapFromSource(index) if shown is not model else index)
    show_tip(view.viewport(), rect, model.data(index, Qt.ItemDataRole.ToolTipRole))


def rounds_tip(row):
    rounds = dialog().labels.rounds_list
    item = rounds.item(row)
    show_tip(rounds.viewport(), rounds.visualItemRect(item), item.toolTip())


def arrange_panels():
    """Browser closed, Layers panel wide: the names in the tree read in full."""
    window = iface.mainWindow()
    docks = {dock.objectName(): dock for dock in window.findChildren(QDockWidget)}
    if "Browser" in docks:
        docks["Browser"].hide()
    if "Layers" in docks:
        window.resizeDocks([docks["Layers"]], [LAYERS_WIDTH], Qt.Orientation.Horizontal)


def fit_map():
    """Zoom so the whole image lies in the canvas left of the dialog."""
    canvas = iface.mapCanvas()
    visible = dialog().frameGeometry().x() - canvas.mapToGlobal(canvas.rect().topLeft()).x()
    visible = max(300, min(visible - 20, canvas.width()))
    e = QgsProject.instance().mapLayersByName(Path(IMAGE).stem)[0].extent()
    per_px = max(e.width() / (visible * 0.96), e.height() / (canvas.height() * 0.96))
    x0 = e.xMinimum() - (visible * per_px - e.width()) / 2
    y_mid = e.center().y()
    half_h = canvas.height() * per_px / 2
    canvas.setExtent(QgsRectangle(x0, y_mid - half_h, x0 + canvas.width() * per_px, y_mid + half_h))
    status.setdefault("fit", []).append(
        [canvas.width(), canvas.height(), visible, round(per_px, 3), canvas.scale()]
    )
    canvas.refresh()


def wait(name, then):
    """Poll until the controller's tasks are done, then ``then``."""

    def check():
        if controller().tasks:
            step(name, 500, check)
            return
        then()

    step(name, 500, check)


def names():
    return [layer.name() for layer in QgsProject.instance().mapLayers().values()]


def tree(node=None):
    """The layer tree, groups as {name: [children]}, top first."""
    node = node or QgsProject.instance().layerTreeRoot()
    return [
        {child.name(): tree(child)} if isinstance(child, QgsLayerTreeGroup) else child.name()
        for child in node.children()
    ]


def message():
    """The newest Map Refiner message (QGIS's own "task complete" notes come after it)."""
    bar = iface.messageBar()  # items(): the ones under the current item, newest first
    items = [i for i in [bar.currentItem(), *bar.items()] if i and i.title() == "Map Refiner"]
    return items[0].text() if items else ""
