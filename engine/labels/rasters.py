"""Label rasters (masks, ground truth, predictions) brought onto a grid, and
labels carried onto a coarser grid by majority vote."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from ..rasters.grid import GridSpec, grid_of, mem_dataset, same_grid, window
from ..rasters.read import open_raster
from .classes import IGNORE, check_class_index, value_key

gdal.UseExceptions()
PathLike = Union[str, Path]


def read_label_raster(
    path: PathLike, grid: GridSpec, value_map: Mapping[object, int] | None = None
) -> np.ndarray:
    """Band 1 of a mask as labels on ``grid``.

    Pixel values go through ``value_map`` (raster value -> class index;
    unmapped values become IGNORE); without one they are class indices
    already. The raster's nodata and pixels it does not cover are IGNORE.
    Another grid or CRS is warped with nearest neighbour; a raster without
    georeferencing (e.g. a PNG) is taken as-is when its size is the grid's.
    """
    values, valid = read_on_grid(path, grid)
    name = Path(str(path)).name
    if not valid.any():
        raise MapRefinerError(
            f"{name} has no data on the image; check that both cover the same "
            "area and that their CRSs are set."
        )
    labels = to_labels(values, valid, value_map, name)
    if (labels == IGNORE).all():
        seen = ", ".join(value_key(v) for v in np.unique(values[valid])[:10])
        raise MapRefinerError(
            f"No pixel of {name} has a known class (it holds {seen}); "
            "give a value map for these values."
        )
    objects = bool(((labels > 0) & (labels < IGNORE) & valid).any())
    refuse_0_255_mask(pixels_of_255(values, valid, value_map), objects, name)
    return labels


def pixels_of_255(values: np.ndarray, valid: np.ndarray, value_map: object) -> int:
    """Pixels with data valued 255 where no value map says what they are: read as IGNORE,
    they are a 0/255 mask's objects (refuse_0_255_mask); 0 with a value map."""
    return 0 if value_map is not None else int((valid & (values == IGNORE)).sum())


def refuse_0_255_mask(
    pixels_255: int,
    has_objects: bool,
    name: str,
    remedy: str = "give a value map (e.g. 0:0,255:1)",
) -> None:
    """A mask of 0 and 255 read without a value map: 255 means "not labelled / not
    scored", so its objects would drop out and a training, a score or polygons would
    see background alone without a word. An error that says what to do (``remedy``),
    where ``name`` holds ``pixels_255`` such pixels and no pixel of any class but 0."""
    if pixels_255 and not has_objects:
        raise MapRefinerError(
            f"{name} holds no pixel of any class but 0, and {pixels_255} pixels of 255, which "
            f"are read as 'not labelled'; if 255 marks the objects (a 0/255 mask), {remedy}."
        )


def to_labels(
    values: np.ndarray, valid: np.ndarray, value_map: Mapping[object, int] | None, name: str
) -> np.ndarray:
    """``uint8`` labels from raster values, IGNORE where not ``valid``."""
    if value_map is not None:
        labels = map_values(values, value_map)
    elif values.dtype == np.uint8:
        labels = values.copy()
    else:
        bad = valid & ((values < 0) | (values > IGNORE) | (values != np.floor(values)))
        if bad.any():
            raise MapRefinerError(
                f"{name} holds values that are not class indices "
                f"(e.g. {values[bad][0]}); give a value map."
            )
        labels = np.where(valid, values, IGNORE).astype(np.uint8)
    labels[~valid] = IGNORE
    return labels


def read_on_grid(path: PathLike, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Band 1 of a raster on ``grid`` (nearest neighbour) and the mask of pixels with data."""
    return read_block(open_raster(path), grid, (0, 0, grid.width, grid.height))


def read_block(
    ds: gdal.Dataset, grid: GridSpec, block: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`read_on_grid` for the ``(x0, y0, width, height)`` pixels of ``grid``
    only, so that a large raster is read a block at a time."""
    try:
        return _read_block(ds, grid, block)
    except RuntimeError as exc:  # a damaged or truncated file fails while its pixels are read
        raise MapRefinerError(
            f"Cannot read the pixels of {Path(ds.GetDescription()).name}: the file is "
            "damaged or truncated; use a complete copy.",
            details=str(exc),
        ) from exc


def _read_block(
    ds: gdal.Dataset, grid: GridSpec, block: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    band = ds.GetRasterBand(1)
    georeferenced = ds.GetGeoTransform(can_return_null=True) is not None or bool(ds.GetProjection())
    if not georeferenced:
        if (ds.RasterXSize, ds.RasterYSize) != (grid.width, grid.height):
            raise MapRefinerError(
                f"{Path(ds.GetDescription()).name} has no georeferencing and is "
                f"{ds.RasterXSize}x{ds.RasterYSize} pixels, not {grid.width}x{grid.height} "
                "like the image; georeference it or use a mask of the image's size."
            )
        values = band.ReadAsArray(*block)
    elif same_grid(grid_of(ds), grid):
        values = band.ReadAsArray(*block)
    else:
        values, covered = _warp_band1(ds, window(grid, *block))
        return values, covered & _has_data(values, band.GetNoDataValue())
    return values, _has_data(values, band.GetNoDataValue())


def map_values(values: np.ndarray, value_map: Mapping[object, int]) -> np.ndarray:
    """``uint8`` labels from raster values; values missing from the map become IGNORE."""
    pairs = [
        (float(value_key(v)), check_class_index(c, IGNORE, f"Raster value {v!r}"))
        for v, c in value_map.items()
    ]
    if values.dtype in (np.uint8, np.uint16):
        lut = np.full(np.iinfo(values.dtype).max + 1, IGNORE, dtype=np.uint8)
        for v, c in pairs:
            if v.is_integer() and 0 <= v < lut.size:
                lut[int(v)] = c
        return lut[values]
    labels = np.full(values.shape, IGNORE, dtype=np.uint8)
    for v, c in pairs:
        labels[values == v] = c
    return labels


def _has_data(values: np.ndarray, nodata: float | None) -> np.ndarray:
    valid = np.ones(values.shape, dtype=bool)
    if values.dtype.kind == "f":
        valid &= ~np.isnan(values)
    if nodata is not None and not math.isnan(nodata):
        valid &= values != nodata
    return valid


_CARRIERS = {
    gdal.GDT_Byte: (gdal.GDT_UInt16, 65535),
    gdal.GDT_UInt16: (gdal.GDT_Int32, -1),
    gdal.GDT_Int16: (gdal.GDT_Int32, -(2**31)),
}


def _warp_band1(ds: gdal.Dataset, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour warp of band 1 and the mask of pixels the source covers.

    Uncovered pixels are told apart by a fill value the source type cannot hold.
    """
    dtype, fill = _CARRIERS.get(ds.GetRasterBand(1).DataType, (gdal.GDT_Float64, math.nan))
    dst = mem_dataset(grid, dtype, fill)
    dst.GetRasterBand(1).SetNoDataValue(fill)
    src = gdal.Translate("", ds, format="VRT", bandList=[1])
    src_wkt = ds.GetProjection() or grid.projection_wkt
    if src_wkt and not grid.projection_wkt:
        dst.SetProjection(src_wkt)
    try:
        gdal.Warp(
            dst,
            src,
            resampleAlg="near",
            srcSRS=src_wkt or None,
            dstNodata=fill,
            warpOptions=["INIT_DEST=NO_DATA"],
        )
    except RuntimeError as exc:
        raise MapRefinerError(
            f"Cannot bring {Path(ds.GetDescription()).name} onto the image grid; check both CRSs.",
            details=str(exc),
        ) from exc
    values = dst.GetRasterBand(1).ReadAsArray()
    covered = ~np.isnan(values) if math.isnan(fill) else values != fill
    return values, covered


def downsample_labels(labels: np.ndarray, out_width: int, out_height: int) -> np.ndarray:
    """Labels on a grid of ``out_width`` x ``out_height`` pixels over the same extent.

    Each input pixel votes for the output pixel holding its centre; an output
    pixel takes the most frequent class (the lowest index on ties), ignoring
    IGNORE; with no vote it is IGNORE. Along an axis where the output has more
    pixels than the input, the nearest input pixel is taken.
    """
    if labels.ndim != 2 or out_width < 1 or out_height < 1:
        raise MapRefinerError(
            f"Cannot resample labels of shape {labels.shape} to {out_width}x{out_height}."
        )
    return _vote(labels, _Axis(labels.shape[0], out_height), _Axis(labels.shape[1], out_width))


def cells_of_pixels(n_in: int, n_out: int, i0: int, i1: int) -> tuple[int, int]:
    """The output cells ``[j0, j1)`` that input pixels ``[i0, i1)`` vote in, along an axis
    of ``n_in`` input and ``n_out`` output pixels."""
    axis = _Axis(n_in, n_out)
    hit = np.flatnonzero((axis.starts < i1) & (axis.ends > i0))
    return (int(hit[0]), int(hit[-1]) + 1) if len(hit) else (0, 0)


def pixels_of_cells(n_in: int, n_out: int, j0: int, j1: int) -> tuple[int, int]:
    """The input pixels ``[i0, i1)`` that vote in output cells ``[j0, j1)``."""
    axis = _Axis(n_in, n_out)
    return int(axis.starts[j0]), int(axis.ends[j0:j1].max())


def downsample_window(
    labels: np.ndarray, in_size: tuple[int, int], out_size: tuple[int, int], cells: tuple[int, ...]
) -> np.ndarray:
    """The cells ``(x0, y0, x1, y1)`` of :func:`downsample_labels` of a ``in_size``
    (width, height) grid to ``out_size``, from ``labels``: only the input pixels that vote
    in them (:func:`pixels_of_cells`). Equal to the whole grid's result cropped, at the
    cost of the window alone."""
    x0, y0, x1, y1 = cells
    rows = _Axis(in_size[1], out_size[1]).crop(y0, y1)
    cols = _Axis(in_size[0], out_size[0]).crop(x0, x1)
    if labels.shape != (rows.n_in, cols.n_in):
        raise ValueError(f"labels of shape {labels.shape} for {rows.n_in}x{cols.n_in} pixels")
    return _vote(labels, rows, cols)


def _vote(labels: np.ndarray, rows: _Axis, cols: _Axis) -> np.ndarray:
    present = np.zeros(IGNORE + 1, dtype=bool)
    present[labels.ravel()] = True
    present[IGNORE] = False
    dtype = np.uint16 if rows.most * cols.most <= np.iinfo(np.uint16).max else np.int32
    # work transposed after the row pass: whole-row gathers are numpy's fast path
    out_t = np.full((len(cols.starts), len(rows.starts)), IGNORE, dtype=np.uint8)
    best = np.zeros(out_t.shape, dtype=dtype)
    for c in np.flatnonzero(present):
        by_rows = np.ascontiguousarray(rows.sum(labels == c, dtype).T)
        votes = cols.sum(by_rows, dtype)
        better = votes > best
        out_t[better] = c
        best[better] = votes[better]
    return np.ascontiguousarray(out_t.T)


class _Axis:
    """How input indices fall into output cells along one axis (by pixel centre)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        j = np.arange(n_out, dtype=np.int64)
        if n_out > n_in:  # finer output: the nearest input pixel
            self.starts = np.minimum(n_in - 1, ((2 * j + 1) * n_in) // (2 * n_out))
            self.ends = self.starts + 1
        else:  # first input i with (2i+1) * n_out >= 2j * n_in
            self.starts = np.maximum(0, -((n_out - 2 * j * n_in) // (2 * n_out)))
            self.ends = np.append(self.starts[1:], n_in)
        self.n_in = n_in
        self.most = int((self.ends - self.starts).max())

    def crop(self, j0: int, j1: int) -> _Axis:
        """Output cells ``[j0, j1)`` only, over the input pixels that vote in them."""
        out = copy.copy(self)
        first = int(self.starts[j0])
        out.starts, out.ends = self.starts[j0:j1] - first, self.ends[j0:j1] - first
        out.n_in = int(out.ends.max())
        out.most = int((out.ends - out.starts).max())
        return out

    def sum(self, a: np.ndarray, dtype: type) -> np.ndarray:
        """Sums of the rows of ``a`` over each output cell."""
        out: np.ndarray = np.zeros((len(self.starts), a.shape[1]), dtype=dtype)
        for k in range(self.most):
            idx = self.starts + k
            inside = idx < self.ends
            if inside.all():
                out += a[idx]
            else:
                out[inside] += a[idx[inside]]
        return out


#: A class raster is sampled on at most this many pixels a side (sampled_values).
VALUE_SAMPLE_SIDE = 1024
_INTEGER_TYPES = (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32)


def sampled_values(ds: gdal.Dataset) -> np.ndarray:
    """Band 1 of ``ds`` on a sample of at most VALUE_SAMPLE_SIDE pixels a side (nearest), its
    nodata and non-finite values left out: what a class raster prior's values are judged
    on (refine/prior.py)."""
    band = ds.GetRasterBand(1)
    w, h = ds.RasterXSize, ds.RasterYSize
    f = max(1, -(-max(w, h) // VALUE_SAMPLE_SIDE))
    sample = band.ReadAsArray(buf_xsize=max(1, w // f), buf_ysize=max(1, h // f))
    data = sample.astype(np.float64).ravel()
    data = data[np.isfinite(data)]
    nodata = band.GetNoDataValue()
    return data if nodata is None else data[data != nodata]


def mask_value_map(values: np.ndarray, num_classes: int) -> str | None:
    """The value map a two-class model needs for a mask of two values that are not both
    classes already (0/255: ``"0:0,255:1"``), else None."""
    seen = np.unique(values)
    if num_classes != 2 or seen.size != 2 or seen[1] <= 1 or seen[0] < 0:
        return None
    if not all(v == np.floor(v) for v in seen):
        return None
    return f"{seen[0]:g}:0,{seen[1]:g}:1"


def suggested_value_map(path: PathLike, num_classes: int = 2) -> str | None:
    """For a dialog: the value map a raster prior at ``path`` needs, when it is a mask of
    two values such as 0 and 255 (None: its values can be read as classes, or it is
    not such a mask, or it cannot be read)."""
    try:
        ds = open_raster(path)
    except MapRefinerError:
        return None
    if ds.RasterCount != 1 or ds.GetRasterBand(1).DataType not in _INTEGER_TYPES:
        return None
    return mask_value_map(sampled_values(ds), num_classes)
