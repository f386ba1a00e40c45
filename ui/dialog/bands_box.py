"""The "Bands" choice: which of the raster's bands a colour model reads as red, green and
blue. By default the image's own (the bands its file names red, green and blue, else 1,
2, 3: rasters.read.model_bands, as the CLI and Processing read them); offered besides,
the bands the layer shows as red, green and blue when they differ (QGIS shows a file's
bands 1, 2, 3 whatever their names, and a user who set the layer's symbology to 3, 2, 1
sees true colours there), and one band read as grey for a layer shown grey (a grey or
panchromatic image, which a colour model otherwise refuses). Decided from the layer's
renderer and the file's band descriptions alone: no pixel is read, torch is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
)
from qgis.PyQt.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from ...engine.errors import MapRefinerError
from ..jobs.fetch_job import is_online
from ..sources import raster_path
from .model_info import ModelSummary

#: The colours a model of true-colour imagery reads (both bundled models).
COLOURS = ("red", "green", "blue")
HELP = (
    "Which of the raster's bands the model reads as red, green and blue. The image's own: "
    "the bands its file names red, green and blue, else bands 1, 2, 3 (as map-refiner "
    "refine and Processing read it). As the layer shows them: the bands the layer's "
    "symbology shows as red, green and blue (Properties ▸ Symbology), for an image stored "
    "in another band order without colour names (blue-green-red, or blue-green-red-"
    "infrared). Grey: one band read three times, for a grey or panchromatic image (a "
    "colour model reads it less well than colour). The fine-tune reads the same bands, "
    "and the round it makes remembers them."
)


@dataclass(frozen=True)
class BandChoice:
    key: str  # "image", "shown", "product" or "grey": what the user chose, kept across updates
    label: str
    bands: tuple[int, ...] | None  # None: the engine's own reading (the image's)


def _listed(bands: tuple[int, ...], names: tuple[str, ...]) -> str:
    return f"bands {', '.join(map(str, bands))} as {', '.join(names)}"


def shown_bands(layer: QgsRasterLayer, names: tuple[str, ...]) -> tuple[int, ...] | None:
    """The bands the layer's renderer shows as each of ``names`` (red, green, blue), or
    None when it is no three-band colour renderer."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsMultiBandColorRenderer):
        return None
    by_colour = {
        "red": renderer.redBand(),
        "green": renderer.greenBand(),
        "blue": renderer.blueBand(),
    }
    bands = tuple(by_colour[n] for n in names)
    return bands if all(b >= 1 for b in bands) else None


def file_bands(
    layer: QgsRasterLayer, summary: ModelSummary, names: tuple[str, ...]
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """From the layer's file, opened once: the bands a refine reads with no bands chosen
    (rasters.read.model_bands; None when the file lacks them: the refine then says why),
    and those a satellite product of its band count usually holds as ``names`` where its
    bands name no colours (rasters.read.product_order); both None when it cannot be
    opened."""
    from ...engine.rasters.read import model_bands, open_image, product_order

    try:  # a paletted image's bands are its colours, as a refine reads them
        ds = open_image(raster_path(layer))
    except (MapRefinerError, RuntimeError):
        return None, None
    bands = model_bands(ds, None, list(summary.band_names), summary.bands)
    order = product_order(ds, names)
    return (
        tuple(bands) if max(bands) <= ds.RasterCount else None,
        tuple(order) if order is not None else None,
    )


def band_choices(layer: QgsMapLayer | None, summary: ModelSummary | None) -> list[BandChoice]:
    """What the box offers for ``layer`` and a model; empty when there is no choice (no
    raster file, online imagery, a model of other bands than red, green and blue)."""
    if summary is None or not isinstance(layer, QgsRasterLayer) or is_online(layer):
        return []
    names = tuple(n.lower() for n in summary.band_names)
    if sorted(names) != sorted(COLOURS) or len(summary.bands) != len(COLOURS):
        return []
    choices = []
    own, product = file_bands(layer, summary, names)
    if own is not None:
        choices.append(BandChoice("image", f"by default: {_listed(own, names)}", None))
    shown = shown_bands(layer, names)
    if shown is not None and shown != own:
        choices.append(
            BandChoice("shown", f"as the layer shows them: {_listed(shown, names)}", shown)
        )
    if product is not None and product not in (own, shown):
        label = f"as a satellite product of {layer.bandCount()} bands: {_listed(product, names)}"
        choices.append(BandChoice("product", label, product))
    renderer = layer.renderer()
    if isinstance(renderer, QgsSingleBandGrayRenderer) and renderer.grayBand() >= 1:
        grey = (renderer.grayBand(),) * len(names)
        choices.append(BandChoice("grey", f"band {grey[0]} as grey ({_listed(grey, names)})", grey))
    return choices


class BandsBox(QWidget):
    """A combo box of band_choices and a line when there is nothing to choose. The user's
    choice (its key) stays while the layer or the model changes, where it is offered; by
    default the image's own bands, or grey where those cannot be read."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox(self)
        self.combo.setToolTip(HELP)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        self.wanted = "image"
        self._layer: QgsRasterLayer | None = None
        self._summary: ModelSummary | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.note, 1)
        self.combo.activated.connect(self._on_activated)

    def _on_activated(self, index: int) -> None:
        choice = self.combo.itemData(index)
        if isinstance(choice, BandChoice):
            self.wanted = choice.key
        self._hint()

    def _hint(self) -> None:
        """Under the image's own bands, a word that the layer shows others as colours, or
        that its bands name no colours where a satellite product's order is offered."""
        keys = [self.combo.itemData(i).key for i in range(self.combo.count())]
        current = self.combo.currentData()
        own = isinstance(current, BandChoice) and current.key == "image"
        text = ""
        if own and "shown" in keys:
            text = "the layer shows other bands as its colours"
        elif own and "product" in keys:
            text = "its bands name no colours"
        if self.combo.count():
            self.note.setText(text)
            self.note.setVisible(bool(text))

    def update_for(self, layer: QgsMapLayer | None, summary: ModelSummary | None) -> None:
        """Offer ``layer``'s choices for the model, and follow its symbology's changes."""
        if self._layer is not None:
            try:
                self._layer.rendererChanged.disconnect(self._refresh)
            except (TypeError, RuntimeError):  # not connected, or the layer is gone
                pass
        self._layer = layer if isinstance(layer, QgsRasterLayer) else None
        self._summary = summary
        if self._layer is not None:
            self._layer.rendererChanged.connect(self._refresh)
        self._refresh()

    def _refresh(self) -> None:
        choices = band_choices(self._layer, self._summary)
        self.combo.clear()
        for choice in choices:
            self.combo.addItem(choice.label, choice)
        keys = [c.key for c in choices]
        if self.wanted in keys:
            self.combo.setCurrentIndex(keys.index(self.wanted))
        elif "image" not in keys and "grey" in keys:  # one band: grey, else a refusal
            self.combo.setCurrentIndex(keys.index("grey"))
        self.combo.setEnabled(len(choices) > 1)
        self.combo.setVisible(bool(choices))
        self.note.setVisible(not choices)
        self.note.setText(self._why_none() if not choices else "")
        self._hint()

    def _why_none(self) -> str:
        if self._summary is not None and self._layer is not None and not is_online(self._layer):
            return f"the model's own ({', '.join(map(str, self._summary.bands))})"
        return "the model's own"

    def bands(self) -> list[int] | None:
        """The bands to name to the engine; None: its own reading."""
        choice = self.combo.currentData()
        if not isinstance(choice, BandChoice) or choice.bands is None:
            return None
        return list(choice.bands)
