"""A map the user already has as the RNN's starting point, instead of the coarse CNN.

The paper's RNN moves a coarse map onto the image's edges; the coarse map need not
be our CNN's. A prior here is a class raster (any grid, CRS and resolution GDAL
reads; nodata respected) whose values map to the model's classes. On each tile's
model-grid window it is warped (nearest neighbour) and turned into heat maps the RNN
knows: by default (``calibrate``) each prior class takes the coarse CNN's own mean
heat vector over the pixels the CNN calls that class on this image, measured once on
a fixed lattice of windows (so the map does not depend on the tile size); with a
fixed ``strength``, the prior's class gets that logit and the others 0. Where the
prior has no data the CNN's own heat maps are kept.

With the default model's RNN, on four of the five georeferenced shared scenes, the
calibrated start moved a 2 m-shifted reference up by 9-15 points of building IoU and
kept 87-90 of a right one; fixed logits of 1 or 3 did worse (docs/results_prior.md).
``refine --prior`` uses the bundled snap model, whose RNN was trained from this start
(resources/models/SNAP_MODEL_CARD.md, docs/results_prior_snap.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from ..rasters.grid import GridSpec
from ..rasters.read import open_raster

#: Default logit of the prior's class (the others 0).
DEFAULT_STRENGTH = 1.0


@dataclass
class Prior:
    path: Path
    num_classes: int
    value_map: Mapping[int, int] | None = None  # raster value -> class; None: values are classes
    strength: float = DEFAULT_STRENGTH
    class_heat: np.ndarray | None = None  # (K, K): row k = the heat vector of prior class k

    def __post_init__(self) -> None:
        self.ds = open_raster(self.path)
        if not self.ds.GetProjection():
            raise MapRefinerError(
                f"The prior {Path(self.path).name} has no coordinate reference system; "
                "assign one (it must be placed on the image)."
            )
        if not (0 < self.strength < 100):
            raise MapRefinerError(
                f"The prior strength must be between 0 and 100, not {self.strength}."
            )
        lut = np.full(65536, -1, dtype=np.int32)
        if self.value_map is None:
            lut[: self.num_classes] = np.arange(self.num_classes)
        else:
            for value, cls in self.value_map.items():
                if not 0 <= int(cls) < self.num_classes:
                    raise MapRefinerError(
                        f"The prior's value {value} maps to class {cls}; the model has "
                        f"{self.num_classes} classes."
                    )
                lut[int(value)] = int(cls)
        self.lut = lut

    def classes_on(self, grid: GridSpec) -> np.ndarray:
        """The prior's class on each pixel of ``grid`` (int32, -1 where it has none)."""
        gt = grid.geotransform
        if gt[2] or gt[4]:
            raise MapRefinerError("A prior needs a north-up image (no rotation).")
        bounds = (
            gt[0],
            gt[3] + grid.height * gt[5],
            gt[0] + grid.width * gt[1],
            gt[3],
        )
        band = self.ds.GetRasterBand(1)
        nodata = band.GetNoDataValue()
        source = self.ds
        if self.ds.RasterCount > 1:  # the first band holds the classes
            source = gdal.Translate("", self.ds, format="VRT", bandList=[1])
        try:
            warped = gdal.Warp(
                "",
                source,
                format="MEM",
                outputBounds=bounds,
                width=grid.width,
                height=grid.height,
                dstSRS=grid.projection_wkt or None,
                resampleAlg="near",
                srcNodata=nodata,
                dstNodata=65535 if nodata is None else nodata,
                outputType=gdal.GDT_UInt16,
            )
        except RuntimeError as exc:
            raise MapRefinerError(
                f"The prior {Path(self.path).name} cannot be placed on the image's grid "
                f"({str(exc).splitlines()[0]}); check its CRS.",
                details=str(exc),
            ) from exc
        values = warped.GetRasterBand(1).ReadAsArray().astype(np.int64)
        classes = self.lut[np.clip(values, 0, 65535)]
        fill = 65535 if nodata is None else int(nodata)
        classes[values == fill] = -1
        return classes

    def heat(self, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
        """Starting heat maps on ``grid``, ``(num_classes, h, w)`` float32, and where the
        prior covers it ``(h, w)`` bool (elsewhere the CNN's own heat maps are used)."""
        classes = self.classes_on(grid)
        out = np.zeros((self.num_classes, grid.height, grid.width), dtype=np.float32)
        for k in range(self.num_classes):
            sel = classes == k
            if self.class_heat is not None:
                out[:, sel] = self.class_heat[k][:, None]
            else:
                out[k][sel] = self.strength
        return out, classes >= 0


def calibration(heats: list[np.ndarray], valids: list[np.ndarray], strength: float) -> np.ndarray:
    """Row k: the mean CNN heat vector over the pixels the CNN calls class k in
    ``heats`` ((K, h, w) each, valid where ``valids``); a class the CNN never calls
    falls back to ``strength`` on its own logit."""
    k = heats[0].shape[0]
    sums = np.zeros((k, k))
    counts = np.zeros(k)
    for heat, valid in zip(heats, valids):
        calls = heat.argmax(0)
        for c in range(k):
            sel = (calls == c) & valid
            sums[c] += heat[:, sel].sum(1)
            counts[c] += sel.sum()
    out = np.zeros((k, k), dtype=np.float32)
    for c in range(k):
        if counts[c]:
            out[c] = sums[c] / counts[c]
        else:
            out[c, c] = strength
    return out
