"""Writing class maps and score rasters: tiled GeoTIFFs, written under a temporary
name and renamed into place only when complete."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from .files import adopt_sidecar, claim_temp, place, release, sidecar, write_error
from .read import RasterInfo

if TYPE_CHECKING:
    from .group import WriterGroup

gdal.UseExceptions()
CLASS_NODATA = 255
CREATION_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]


def create_geotiff(
    path: Path,
    width: int,
    height: int,
    bands: int,
    dtype: int,
    geotransform: Sequence[float],
    projection: str,
    target: Path | None = None,
) -> gdal.Dataset:
    """A tiled, compressed GeoTIFF on a grid: the one place the engine creates one.
    A failure names ``target`` (the final name when ``path`` is a temporary one)."""
    try:
        ds = gdal.GetDriverByName("GTiff").Create(
            str(path), width, height, bands, dtype, CREATION_OPTIONS
        )
    except RuntimeError as exc:
        raise write_error(target or path, exc) from exc
    ds.SetGeoTransform(tuple(geotransform))
    if projection:
        ds.SetProjection(projection)
    return ds


def _create(tmp: Path, target: Path, info: RasterInfo, bands: int, dtype: int) -> gdal.Dataset:
    return create_geotiff(
        tmp, info.width, info.height, bands, dtype, info.geotransform, info.projection, target
    )


def style_class_band(
    band: gdal.Band, names: Sequence[str], colours: Sequence[tuple[int, int, int]]
) -> None:
    """Colour table and category names, so QGIS and other tools show classes."""
    ct = gdal.ColorTable()
    for i, c in enumerate(colours):
        ct.SetColorEntry(i, (int(c[0]), int(c[1]), int(c[2]), 255))
    ct.SetColorEntry(CLASS_NODATA, (0, 0, 0, 0))
    band.SetRasterColorTable(ct)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    cats: list[str] = [""] * 256
    for i, n in enumerate(names):
        cats[i] = n
    cats[CLASS_NODATA] = "nodata"
    band.SetRasterCategoryNames(cats)
    band.SetNoDataValue(CLASS_NODATA)


class RefinedWriter:
    """Class map (uint8) and, optionally, per-class probabilities (float32)."""

    def __init__(
        self,
        info: RasterInfo,
        out: Path,
        names: Sequence[str],
        colours: Sequence[tuple[int, int, int]],
        scores: Path | None = None,
        description: str = "",
        overwrite: bool = True,
    ) -> None:
        self.overwrite = overwrite
        self.targets: list[tuple[Path, Path]] = []
        self.locks: list[IO[bytes] | None] = []
        self.class_ds = self.scores_ds = None
        self.class_tmp = self._claim(out)
        try:
            self.class_ds = _create(self.class_tmp, out, info, 1, gdal.GDT_Byte)
        except BaseException:
            self.abort()
            raise
        style_class_band(self.class_ds.GetRasterBand(1), names, colours)
        if description:
            self.class_ds.GetRasterBand(1).SetDescription(description)
        if scores is not None:
            try:
                self.scores_tmp = self._claim(scores)
                self.scores_ds = _create(
                    self.scores_tmp, scores, info, len(names), gdal.GDT_Float32
                )
            except BaseException:
                self.abort()  # the class map's temporary file exists already
                raise
            for i, n in enumerate(names):
                b = self.scores_ds.GetRasterBand(i + 1)
                b.SetDescription(f"P({n})")
                b.SetNoDataValue(-1.0)

    def _claim(self, target: Path) -> Path:
        """A locked temporary file beside ``target`` (stale ones of earlier runs removed)."""
        tmp, lock = claim_temp(target)
        self.targets.append((tmp, target))
        self.locks.append(lock)
        return tmp

    def write(self, x0: int, y0: int, classes: np.ndarray, probs: np.ndarray | None = None) -> None:
        if self.class_ds is None:
            raise ValueError("the writer was committed or aborted; nothing more can be written")
        try:
            self.class_ds.GetRasterBand(1).WriteArray(classes, x0, y0)
            if self.scores_ds is not None and probs is not None:
                for i in range(probs.shape[0]):
                    self.scores_ds.GetRasterBand(i + 1).WriteArray(probs[i], x0, y0)
        except RuntimeError as exc:
            raise write_error(self._failed(exc), exc) from exc

    def _failed(self, exc: BaseException) -> Path:
        """The target whose temporary file GDAL names in ``exc`` (default: the class map)."""
        return next(
            (final for tmp, final in self.targets if tmp.name in str(exc)), self.targets[0][1]
        )

    def _close(self) -> None:
        for attr in ("class_ds", "scores_ds"):
            ds = getattr(self, attr, None)
            if ds is not None:
                setattr(self, attr, None)  # released even if the flush fails (disk full)
                try:
                    ds.FlushCache()
                finally:
                    del ds

    def commit(self) -> None:
        self.finish()
        self.place_files([])

    def finish(self) -> None:
        """Close the temporary files: every byte is on disk (a full disk shows here)."""
        try:
            self._close()
        except RuntimeError as exc:
            target = self._failed(exc)
            self.abort()
            raise write_error(target, exc) from exc

    def place_files(self, placed: list[Path]) -> None:
        """Move the finished files onto their targets, appending each to ``placed``."""
        try:
            for tmp, final in self.targets:
                try:
                    place(tmp, final, self.overwrite)
                except MapRefinerError:
                    self.abort()  # this run's temporaries go; the file in the way stays
                    raise
                except OSError as exc:
                    self.abort()
                    raise write_error(final, exc) from exc
                placed.append(final)
                adopt_sidecar(tmp, final)  # category names live in GDAL's sidecar
        finally:
            self._release()

    def _release(self) -> None:
        for lock in self.locks:
            release(lock)
        self.locks = []

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
        for tmp, _ in self.targets:  # best effort: a name never created may be unusable
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                sidecar(tmp).unlink()
        self._release()


@contextlib.contextmanager
def refined_writer(
    info: RasterInfo,
    out: Path,
    names: Sequence[str],
    colours: Sequence[tuple[int, int, int]],
    scores: Path | None = None,
    description: str = "",
    overwrite: bool = True,
    group: WriterGroup | None = None,
) -> Iterator[RefinedWriter]:
    """A writer committed when the block ends, or with the rest of ``group``."""
    w = RefinedWriter(info, out, names, colours, scores, description, overwrite)
    try:
        yield w
    except BaseException:
        w.abort()
        raise
    if group is None:
        w.commit()
    else:
        group.writers.insert(0, w)  # blocks end innermost first: keep the order of entry
