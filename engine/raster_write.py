"""Writing class maps and score rasters: tiled GeoTIFFs, written under a temporary
name and renamed into place only when complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from .errors import MapRefinerError
from .files import temp_sibling
from .raster_io import RasterInfo

gdal.UseExceptions()
CLASS_NODATA = 255
CREATION_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]


def _create(tmp: Path, info: RasterInfo, bands: int, dtype: int) -> gdal.Dataset:
    drv = gdal.GetDriverByName("GTiff")
    try:
        ds = drv.Create(str(tmp), info.width, info.height, bands, dtype, CREATION_OPTIONS)
    except RuntimeError as exc:
        raise MapRefinerError(f"Cannot create {tmp.parent / tmp.name}: {exc}. Check the folder "
                              "is writable and the disk has space.") from exc
    ds.SetGeoTransform(info.geotransform)
    if info.projection:
        ds.SetProjection(info.projection)
    return ds


def style_class_band(band: gdal.Band, names: Sequence[str],
                     colours: Sequence[Tuple[int, int, int]]) -> None:
    """Colour table and category names, so QGIS and other tools show classes."""
    ct = gdal.ColorTable()
    for i, c in enumerate(colours):
        ct.SetColorEntry(i, (int(c[0]), int(c[1]), int(c[2]), 255))
    ct.SetColorEntry(CLASS_NODATA, (0, 0, 0, 0))
    band.SetRasterColorTable(ct)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    cats: List[str] = [""] * 256
    for i, n in enumerate(names):
        cats[i] = n
    cats[CLASS_NODATA] = "nodata"
    band.SetRasterCategoryNames(cats)
    band.SetNoDataValue(CLASS_NODATA)


class RefinedWriter:
    """Class map (uint8) and, optionally, per-class probabilities (float32)."""

    def __init__(self, info: RasterInfo, out: Path, names: Sequence[str],
                 colours: Sequence[Tuple[int, int, int]], scores: Optional[Path] = None,
                 description: str = "") -> None:
        self.targets: List[Tuple[Path, Path]] = []
        self.class_tmp = temp_sibling(out)
        self.targets.append((self.class_tmp, out))
        self.class_ds = _create(self.class_tmp, info, 1, gdal.GDT_Byte)
        style_class_band(self.class_ds.GetRasterBand(1), names, colours)
        if description:
            self.class_ds.GetRasterBand(1).SetDescription(description)
        self.scores_ds = None
        if scores is not None:
            self.scores_tmp = temp_sibling(scores)
            self.targets.append((self.scores_tmp, scores))
            try:
                self.scores_ds = _create(self.scores_tmp, info, len(names), gdal.GDT_Float32)
            except BaseException:
                self.abort()  # the class map's temporary file exists already
                raise
            for i, n in enumerate(names):
                b = self.scores_ds.GetRasterBand(i + 1)
                b.SetDescription(f"P({n})")
                b.SetNoDataValue(-1.0)

    def write(self, x0: int, y0: int, classes: np.ndarray,
              probs: Optional[np.ndarray] = None) -> None:
        try:
            self.class_ds.GetRasterBand(1).WriteArray(classes, x0, y0)
            if self.scores_ds is not None and probs is not None:
                for i in range(probs.shape[0]):
                    self.scores_ds.GetRasterBand(i + 1).WriteArray(probs[i], x0, y0)
        except RuntimeError as exc:
            raise MapRefinerError(f"Writing the output failed ({exc}); check free disk space.") from exc

    def _close(self) -> None:
        for attr in ("class_ds", "scores_ds"):
            ds = getattr(self, attr, None)
            if ds is not None:
                ds.FlushCache()
                setattr(self, attr, None)
                del ds

    def commit(self) -> None:
        try:
            self._close()
        except RuntimeError as exc:
            self.abort()
            raise MapRefinerError(f"Finishing the output failed ({exc}); check free disk space.") from exc
        for tmp, final in self.targets:
            os.replace(tmp, final)
            aux = Path(str(tmp) + ".aux.xml")  # category names live in GDAL's sidecar
            if aux.exists():
                os.replace(aux, Path(str(final) + ".aux.xml"))

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
        for tmp, _ in self.targets:  # best effort: a name never created may be unusable
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                Path(str(tmp) + ".aux.xml").unlink()


@contextlib.contextmanager
def refined_writer(info: RasterInfo, out: Path, names: Sequence[str],
                   colours: Sequence[Tuple[int, int, int]], scores: Optional[Path] = None,
                   description: str = "") -> Iterator[RefinedWriter]:
    w = RefinedWriter(info, out, names, colours, scores, description)
    try:
        yield w
    except BaseException:
        w.abort()
        raise
    w.commit()
