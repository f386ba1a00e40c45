"""Reading rasters with GDAL: opening with clear errors, ground resolution, windows."""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal, osr

from ..errors import MapRefinerError
from .files import atomic_path

gdal.UseExceptions()
osr.UseExceptions()
PathLike = Union[str, Path]
EARTH_RADIUS_M = 6371008.8
_COMPLEX = {gdal.GDT_CInt16, gdal.GDT_CInt32, gdal.GDT_CFloat32, gdal.GDT_CFloat64}


@dataclass
class RasterInfo:
    """What the engine needs to know about an input raster."""

    path: str
    width: int
    height: int
    band_count: int
    geotransform: tuple[float, ...]
    projection: str
    nodata: list[float | None]
    band_types: tuple[int, ...] = ()
    paletted: tuple[bool, ...] = ()  # each band: colour-table indices (a PNG-8, a GIF)

    @property
    def has_crs(self) -> bool:
        return bool(self.projection)


def vsi_path(path: PathLike) -> str:
    """``path`` as GDAL must see it. A ``Path`` collapses ``/vsizip//abs/a.zip/x.tif``
    (an absolute archive path) to ``/vsizip/abs/a.zip/x.tif``, which GDAL reads as
    relative: when the archive is absolute on this machine, the double slash comes back;
    and ``/vsicurl/https://host/x.tif`` to ``/vsicurl/https:/host/x.tif``, repaired."""
    p = str(path)
    url = re.match(r"^(/vsicurl(?:_streaming)?/)(https?|ftps?):/(?!/)(.*)$", p)
    if url:  # a URL's "//" collapsed the same way
        return f"{url.group(1)}{url.group(2)}://{url.group(3)}"
    m = re.match(r"^/(vsi(?:zip|tar|gzip|7z|rar))/(?!/)(.*)$", p)
    if m and not Path(m.group(2).split("/", 1)[0]).exists():
        parts = m.group(2).split("/")
        for i in range(1, len(parts) + 1):  # the archive: the first prefix that is a file
            if Path("/" + "/".join(parts[:i])).is_file():
                return f"/{m.group(1)}//{m.group(2)}"
    return p


def refuse_special_file(path: str, what: str) -> None:
    """Refuse an input that is neither a file nor a folder (a FIFO, socket or device)
    before GDAL opens it: reading one blocks until a writer comes, or never ends."""
    if path.startswith("/vsi"):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing: the caller says so
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise MapRefinerError(
            f"{Path(path).name} is not a regular file (a pipe, socket or device); save the "
            f"{what} as a file and choose that."
        )


def open_raster(path: PathLike) -> gdal.Dataset:
    """Open any raster GDAL reads, or raise a message that says what to do."""
    p = vsi_path(path)
    if not Path(p).exists() and not p.startswith("/vsi"):
        raise MapRefinerError(f"Raster not found: {p}. Check the path.")
    refuse_special_file(p, "raster")
    if not p.startswith("/vsi") and Path(p).is_file() and Path(p).stat().st_size == 0:
        raise MapRefinerError(
            f"{Path(p).name} is an empty file (0 bytes); the copy or download "
            "is incomplete, so use a complete raster file."
        )
    try:
        ds = gdal.Open(p, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        if Path(p).is_dir():  # some formats are folders (e.g. Arc/Info grids); not this one
            raise MapRefinerError(
                f"{p} is a folder; choose a raster file.", details=str(exc)
            ) from exc
        raise MapRefinerError(
            f"GDAL cannot read {Path(p).name} as a raster ({_first_line(exc)}); is it a GeoTIFF "
            "or another raster format, and complete?",
            details=str(exc),
        ) from exc
    if ds is None:
        raise MapRefinerError(f"GDAL cannot read {Path(p).name} as a raster.")
    if ds.RasterXSize == 0 or ds.RasterYSize == 0 or ds.RasterCount == 0:
        raise MapRefinerError(f"{Path(p).name} has no pixels or no bands.")
    try:  # the last block is the first to go when a file is cut short
        ds.GetRasterBand(1).ReadRaster(ds.RasterXSize - 1, ds.RasterYSize - 1, 1, 1)
    except RuntimeError as exc:
        raise _damaged(Path(p).name, exc) from exc
    return ds


#: Where an expanded paletted image's VRT is made (in memory: never beside the user's file).
EXPANDED_IN = "/vsimem/map_refiner_expanded"


def open_image(path: PathLike) -> gdal.Dataset:
    """open_raster for an image the networks read. A paletted image (one band of
    colour-table indices: a PNG-8, a GIF, a paletted GeoTIFF) comes back as the colours
    its table gives, red, green and blue (and alpha where the table has transparent
    entries), so that the bands read as any colour image's; every other raster as
    open_raster gives it. Class rasters (priors, references, our own maps, paletted
    too) are opened with open_raster: their indices are classes."""
    return expanded(open_raster(path))


def expanded(ds: gdal.Dataset) -> gdal.Dataset:
    """``ds`` with a single paletted band expanded to its colours (open_image): a VRT over
    its file in memory, its description ending in the file's own name (the messages name it),
    whose XML is removed at once (the open dataset no longer needs it). Other rasters as
    they are."""
    if ds.RasterCount != 1:
        return ds
    band = ds.GetRasterBand(1)
    table = band.GetColorTable()
    if band.GetColorInterpretation() != gdal.GCI_PaletteIndex or table is None:
        return ds
    transparent = any(table.GetColorEntry(i)[3] < 255 for i in range(table.GetCount()))
    name = f"{EXPANDED_IN}/{uuid.uuid4().hex}/{Path(ds.GetDescription()).name or 'image'}"
    try:
        # from the file's name: the VRT opens its own source and does not depend on the
        # caller keeping ``ds`` open
        source = ds.GetDescription()
        out = gdal.Translate(name, source, format="VRT", rgbExpand="rgba" if transparent else "rgb")
    except RuntimeError as exc:
        raise MapRefinerError(
            f"Cannot expand the paletted image {Path(ds.GetDescription()).name} to its "
            f"colours ({_first_line(exc)}); expand it to red, green and blue first "
            "(gdal_translate -expand rgb, or in QGIS Raster ▸ Conversion ▸ PCT to RGB).",
            details=str(exc),
        ) from exc
    finally:
        if gdal.VSIStatL(name) is not None:
            gdal.Unlink(name)
    return out


def _damaged(name: str, exc: BaseException) -> MapRefinerError:
    return MapRefinerError(
        f"Cannot read the pixels of {name}: the file is damaged or truncated; use a complete copy.",
        details=str(exc),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def raster_info(ds: gdal.Dataset) -> RasterInfo:
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    return RasterInfo(
        ds.GetDescription(),
        ds.RasterXSize,
        ds.RasterYSize,
        ds.RasterCount,
        geotransform(ds),
        ds.GetProjection() or "",
        [b.GetNoDataValue() for b in bands],
        tuple(b.DataType for b in bands),
        tuple(b.GetColorInterpretation() == gdal.GCI_PaletteIndex for b in bands),
    )


#: Where an image without georeferencing lies: as QGIS places it (columns rightward from
#: x 0, rows downward from y 0, one unit a pixel). GDAL reports (0, 1, 0, 0, 0, 1) for it,
#: rows going *up* in y; written to an output so, QGIS showed the refined map flipped
#: below the image and the polygons drawn over the image fell off it (session 49).
UNREFERENCED_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def geotransform(ds: gdal.Dataset) -> tuple[float, float, float, float, float, float]:
    """The dataset's geotransform, finite, or a message about its georeferencing; for an
    image without any, UNREFERENCED_GEOTRANSFORM."""
    name = Path(ds.GetDescription()).name
    try:
        found = ds.GetGeoTransform(can_return_null=True)
        if found is None:
            return UNREFERENCED_GEOTRANSFORM
        x0, dx, rx, y0, ry, dy = (float(v) for v in found)
    except RuntimeError as exc:  # e.g. a binary file where the world file should be
        raise MapRefinerError(
            f"Cannot read the georeferencing of {name} ({_first_line(exc)}): its world file "
            "(.wld, .tfw) or .aux.xml beside it is damaged; fix or delete that file.",
            details=str(exc),
        ) from exc
    gt = (x0, dx, rx, y0, ry, dy)
    if not all(math.isfinite(v) for v in gt) or gt[1] * gt[5] - gt[2] * gt[4] == 0:
        raise MapRefinerError(
            f"The georeferencing of {name} is broken (geotransform {list(gt)}: not finite or "
            "of zero pixel size); fix it (its world file, or Raster ▸ Georeferencer in QGIS)."
        )
    return gt


def _haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def crs_assigned(path: Path, wkt: str, folder: Path) -> Path:
    """``path`` as read with the CRS ``wkt`` when its file holds none: QGIS keeps a CRS set
    on a layer (Set Layer CRS, or given on loading) in the project, not in the file the
    engine reads, which then had no pixel size on the ground. A VRT over the file (left as
    it is) in ``folder``, named by the file and the CRS, so a later round of the same layer
    reads the same path while the file is unchanged (its size and time are in the name: a
    file written anew gets a VRT of its own). ``path`` itself when its file has a CRS of
    its own, or no georeferencing (a CRS set on pixel coordinates says nothing of the
    ground), or ``wkt`` is not a CRS GDAL reads, or it is no plain file (/vsi paths)."""
    if not Path(path).is_file():
        return path
    ds = open_raster(path)
    info = raster_info(ds)
    ds = None
    if info.has_crs or info.geotransform == UNREFERENCED_GEOTRANSFORM or not wkt:
        return path
    try:
        if osr.SpatialReference().ImportFromWkt(wkt) != 0:
            return path
    except RuntimeError:  # osr raises where its exceptions are on
        return path
    st = Path(path).stat()
    stamp = f"{Path(path).resolve()}\n{st.st_size}\n{st.st_mtime_ns}\n{wkt}"
    key = hashlib.sha1(stamp.encode()).hexdigest()[:12]
    out = folder / f"{Path(path).stem}.crs-{key}.vrt"
    if not out.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            gdal.Translate(str(tmp), str(Path(path).resolve()), format="VRT", outputSRS=wkt)
    return out


def ground_resolution(info: RasterInfo, override_m: float | None = None) -> tuple[float, float]:
    """Ground size in metres of one pixel step along x and along y, at the centre.

    Measured on the ground (great-circle distance), so it is right for
    geographic CRSs, for Web Mercator's scale factor and for rotated grids.
    """
    if override_m:
        if not (override_m > 0 and math.isfinite(override_m)):
            raise MapRefinerError(
                f"The input resolution must be a positive number of metres; got {override_m}."
            )
        return float(override_m), float(override_m)
    if not info.has_crs:
        fix = (
            "georeference it (QGIS: Raster ▸ Georeferencer)"
            if info.geotransform == UNREFERENCED_GEOTRANSFORM
            else "give it a CRS (in QGIS: the layer's Set CRS, which Map Refiner's dialog and "
            "Processing read, or Raster ▸ Projections ▸ Assign Projection, which saves it in "
            "the file for map-refiner too)"
        )
        raise MapRefinerError(
            f"{Path(info.path).name} has no coordinate reference system, so its pixel size on the "
            f"ground is unknown; {fix}, or give its pixel size in metres (--input-resolution; "
            "Processing: Input pixel size on the ground)."
        )
    src = osr.SpatialReference()
    src.ImportFromWkt(info.projection)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    gt = info.geotransform
    cx, cy = info.width / 2.0, info.height / 2.0

    def lonlat(px: float, py: float) -> tuple[float, float]:
        x = gt[0] + px * gt[1] + py * gt[2]
        y = gt[3] + px * gt[4] + py * gt[5]
        lon, lat, _ = tr.TransformPoint(x, y)
        return lon, lat

    try:
        tr = osr.CoordinateTransformation(src, dst)
        c, px, py = lonlat(cx, cy), lonlat(cx + 1, cy), lonlat(cx, cy + 1)
    except RuntimeError as exc:  # e.g. a local engineering CRS: no way to the ellipsoid
        raise MapRefinerError(
            f"The CRS of {Path(info.path).name} cannot be related to positions on the Earth, so "
            "its pixel size on the ground is unknown; assign a proper CRS in QGIS or give the "
            "resolution in metres (--input-resolution).",
            details=str(exc),
        ) from exc
    rx, ry = _haversine(*c, *px), _haversine(*c, *py)
    if any(abs(p[1]) > 90 for p in (c, px, py)):
        rx = ry = float("nan")  # latitudes beyond the poles: broken georeferencing
    if not (rx > 0 and ry > 0 and math.isfinite(rx) and math.isfinite(ry)):
        raise MapRefinerError(
            f"Cannot measure the pixel size of {Path(info.path).name}; check its georeferencing."
        )
    return rx, ry


def read_window(
    ds: gdal.Dataset, bands: Sequence[int], x0: int, y0: int, w: int, h: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bands`` (1-based) of a window as float32 ``(C, h, w)`` and a valid mask.

    A pixel is invalid where every integer band that declares a nodata value holds it
    (a collar or a missing tile: one value in all bands; session 40: a pixel with one
    band at the value is real, a white roof saturating red in imagery declaring nodata
    255, as gdalwarp reads a source with one nodata value, UNIFIED_SRC_NODATA=PARTIAL),
    where any floating-point band holds its nodata value or any band is NaN, or where
    an alpha band (RGBA) or a per-dataset mask is 0; in a raster that declares none of
    these, where every band is 0 (a reprojected image's black collar, a mosaic's missing
    tile: session 39, a black collar read as data drew false buildings along it,
    austin_dev reprojected to EPSG:4326 46.6 building IoU against 54.8 with its collar as
    no data).
    """
    try:
        return _read_window(ds, bands, x0, y0, w, h)
    except RuntimeError as exc:
        raise _damaged(Path(ds.GetDescription()).name, exc) from exc


def _read_window(
    ds: gdal.Dataset, bands: Sequence[int], x0: int, y0: int, w: int, h: int
) -> tuple[np.ndarray, np.ndarray]:
    data = np.empty((len(bands), h, w), dtype=np.float32)
    valid = np.ones((h, w), dtype=bool)
    raws = []
    for i, b in enumerate(bands):
        band = ds.GetRasterBand(b)
        raw = band.ReadAsArray(x0, y0, w, h)
        raws.append(raw)  # compared in the band's own type: float32 would merge values
        arr = raw.astype(np.float32, copy=False)
        bad = ~np.isfinite(arr)
        if bad.any():
            valid &= ~bad
            arr = np.where(bad, 0, arr)
        data[i] = arr
    at_nodata = at_declared_nodata(raws, [ds.GetRasterBand(b) for b in bands])
    if at_nodata is not None:
        valid &= ~at_nodata
    alpha = alpha_band(ds)
    mask_flags = ds.GetRasterBand(bands[0]).GetMaskFlags()
    if alpha is not None:
        # Read directly: GDAL's mask ignores alpha when nodata is set, or for non-8/16-bit types.
        valid &= ds.GetRasterBand(alpha).ReadAsArray(x0, y0, w, h) > 0
    elif mask_flags & gdal.GMF_PER_DATASET and not mask_flags & gdal.GMF_ALL_VALID:
        m = ds.GetRasterBand(bands[0]).GetMaskBand().ReadAsArray(x0, y0, w, h)
        valid &= m > 0
    elif all(ds.GetRasterBand(b).GetNoDataValue() is None for b in bands):
        valid &= (data != 0).any(0)  # nothing declared: black in every band is no data
    return data, valid


def at_declared_nodata(
    arrays: Sequence[np.ndarray], bands: Sequence[gdal.Band]
) -> np.ndarray | None:
    """The no-data pixels of ``arrays`` read from ``bands`` (in any buffer type), or None
    when no band declares a nodata value: where every integer band holds its value (a
    collar, a missing tile; one integer band at it is a real pixel clipped at the range's
    end, a white roof saturating red where nodata is 255: session 40), or any
    floating-point band holds its own (-9999 is no reflectance). Integer or floating
    point is the band's own type, not the buffer's (the bundled model's look and the
    training statistics read integer bands into floats). Used by read_window, the look
    and the training statistics."""
    every, any_float = None, None
    for arr, band in zip(arrays, bands, strict=True):
        value = band.GetNoDataValue()
        if value is None or math.isnan(value):
            continue
        hit = arr == value
        if band.DataType not in _INTEGER:
            any_float = hit if any_float is None else any_float | hit
        else:
            every = hit if every is None else every & hit
    if every is None or any_float is None:
        return every if any_float is None else any_float
    return every | any_float


def alpha_band(ds: gdal.Dataset) -> int | None:
    """The 1-based index of ``ds``'s alpha band, the last one if several (None: none)."""
    for i in range(ds.RasterCount, 0, -1):
        if ds.GetRasterBand(i).GetColorInterpretation() == gdal.GCI_AlphaBand:
            return i
    return None


def check_bands(info: RasterInfo, bands: Sequence[int]) -> None:
    indexed = [b for b in bands if 1 <= b <= len(info.paletted) and info.paletted[b - 1]]
    if indexed:
        name = Path(info.path).name
        raise MapRefinerError(
            f"{name} is a paletted image (band {indexed[0]} holds colour-table indices, "
            "not brightness); expand it to red, green and blue first (gdal_translate "
            f"-expand rgb {name} {Path(name).stem}_rgb.tif, or in QGIS Raster ▸ Conversion ▸ "
            "PCT to RGB) and use that."
        )
    missing = [b for b in bands if b < 1 or b > info.band_count]
    if missing:
        grey = (
            f", for a grey or panchromatic image {','.join('1' * len(bands))} (a colour model "
            "then reads it as grey),"
            if info.band_count == 1
            else ""
        )
        raise MapRefinerError(
            f"{Path(info.path).name} has {info.band_count} band(s) but the model reads band(s) "
            f"{list(bands)}; choose the bands to use (--bands){grey} or a model made for "
            "this imagery."
        )
    complex_bands = [b for b in bands if info.band_types and info.band_types[b - 1] in _COMPLEX]
    if complex_bands:
        raise MapRefinerError(
            f"Band(s) {complex_bands} of {Path(info.path).name} hold complex numbers (e.g. SAR); "
            "the model reads real-valued imagery, so convert them (e.g. to amplitude) first."
        )


#: The values a model trained on 8-bit imagery expects lie in 0-255 (ModelConfig.mean).
EIGHT_BIT_MAX = 255.0
_INTEGER = {
    gdal.GDT_Byte,
    gdal.GDT_UInt16,
    gdal.GDT_Int16,
    gdal.GDT_UInt32,
    gdal.GDT_Int32,
}


def value_scale(ds: gdal.Dataset, bands: Sequence[int]) -> float:
    """What ``bands`` of ``ds`` are multiplied by to read them in the 8-bit range: 1 for
    8-bit imagery and for any whose values stay within 0-255; for integer values beyond
    it, a division by a power of two that brings the raster's bit depth to 8 bits (its
    NBITS, else the bits its largest value needs: 11-bit satellite values divided by 8,
    8-bit values stored in 16 bits times 256 divided by 256, exactly); for floating-point
    values within 0-1 (reflectance), 255 (session 39: a 16-bit copy of austin_dev read as
    is gave 5.8 building IoU instead of 56.6; docs/results_corrections.md)."""
    types = {ds.GetRasterBand(b).DataType for b in bands}
    if types == {gdal.GDT_Byte}:
        return 1.0
    top = 0.0
    for b in bands:
        try:
            top = max(top, float(ds.GetRasterBand(b).ComputeRasterMinMax(True)[1]))
        except RuntimeError:  # no valid pixel in the sample: nothing to scale by
            continue
    if not math.isfinite(top):
        return 1.0
    if not types <= _INTEGER and 0 < top <= 1.0:
        return EIGHT_BIT_MAX
    if top <= EIGHT_BIT_MAX:
        return 1.0
    nbits = [
        int(ds.GetRasterBand(b).GetMetadataItem("NBITS", "IMAGE_STRUCTURE") or 0) for b in bands
    ]
    bits = max(nbits) if min(nbits) > 8 else math.ceil(math.log2(top + 1))
    return 1.0 / 2 ** (bits - 8)


_COLOUR_INTERP = {gdal.GCI_RedBand: "red", gdal.GCI_GreenBand: "green", gdal.GCI_BlueBand: "blue"}


def colour_bands(ds: gdal.Dataset, names: Sequence[str]) -> list[int] | None:
    """The 1-based bands of ``ds`` whose colour interpretation is each of ``names`` (red,
    green, blue) in that order, or None when they are not all named exactly once (an image
    whose bands say nothing of their colours is read in the model's own order)."""
    found: dict[str, list[int]] = {}
    for i in range(1, ds.RasterCount + 1):
        name = _COLOUR_INTERP.get(ds.GetRasterBand(i).GetColorInterpretation())
        if name is not None:
            found.setdefault(name, []).append(i)
    if not names or any(len(found.get(n.lower(), [])) != 1 for n in names):
        return None
    return [found[n.lower()][0] for n in names]


def _rgb_names(band_names: object) -> list[str] | None:
    """A model's ``band_names`` (its config's; a hand-edited config may hold anything) in
    lower case where they are red, green and blue, in any order; else None."""
    names = [str(n).lower() for n in (band_names if isinstance(band_names, list) else [])]
    return names if sorted(names) == ["blue", "green", "red"] else None


#: Where a satellite product whose bands name no colours usually keeps red, green and
#: blue, by its band count: four bands blue, green, red, near-infrared (Planet, Maxar);
#: eight bands coastal, blue, green, yellow, red, red edge, two near-infrared (WorldView).
PRODUCT_ORDERS = {
    4: ({"red": 3, "green": 2, "blue": 1}, "blue, green, red, near-infrared"),
    8: (
        {"red": 5, "green": 3, "blue": 2},
        "coastal, blue, green, yellow, red, red edge and two near-infrared bands",
    ),
}


def names_no_colours(ds: gdal.Dataset) -> bool:
    """Whether no band of ``ds`` names a colour (red, green or blue)."""
    return not any(
        ds.GetRasterBand(i).GetColorInterpretation() in _COLOUR_INTERP
        for i in range(1, ds.RasterCount + 1)
    )


def product_order(ds: gdal.Dataset, names: Sequence[str]) -> list[int] | None:
    """The bands a satellite product of ``ds``'s band count usually holds as each of
    ``names`` (red, green, blue; PRODUCT_ORDERS), where its bands name no colours; else
    None."""
    order = PRODUCT_ORDERS.get(ds.RasterCount)
    rgb = _rgb_names(list(names))
    if order is None or rgb is None or not names_no_colours(ds):
        return None
    return [order[0][n] for n in rgb]


def unnamed_bands_note(
    ds: gdal.Dataset, chosen: Sequence[int] | None, band_names: object, read: Sequence[int]
) -> str:
    """What a refine says when a model of red, green and blue bands reads ``read`` of an
    image of four bands or more that name no colours, none chosen: such an image is often
    a satellite product stored blue, green, red, near-infrared, which read 1, 2, 3 gives
    the model blue for red (austin_dev stored so: 27.9 whole-image building IoU against
    56.6 with bands 3, 2, 1; session 49). "" otherwise."""
    if chosen or ds.RasterCount < 4 or _rgb_names(band_names) is None or not names_no_colours(ds):
        return ""
    shown = ", ".join(str(b) for b in read)
    said = (
        f"bands {shown} were read as red, green and blue: the image's {ds.RasterCount} "
        "bands name no colours. "
    )
    where = "(the dialog's Bands, --bands on the command line)"
    order = PRODUCT_ORDERS.get(ds.RasterCount)
    if order is None:
        return said + f"choose the image's red, green and blue bands {where}"
    bands = order[0]
    return (
        said + f"A satellite product of {ds.RasterCount} bands is often stored {order[1]}; "
        f"for such an image choose bands {bands['red']}, {bands['green']}, {bands['blue']} "
        f"{where}"
    )


def model_bands(
    ds: gdal.Dataset,
    chosen: Sequence[int] | None,
    band_names: object,
    own: Sequence[int],
) -> list[int]:
    """The bands of ``ds`` a model of ``band_names`` (its config's) and band numbers
    ``own`` reads: ``chosen`` when given; else, for a model of red, green and blue bands,
    those ``ds``'s bands say they are (colour_bands: an image stored blue-green-red with
    its colours named is read red-green-blue, session 39); else ``own``. Needs no torch:
    the dialog says which bands a refine will read before it runs."""
    if chosen:
        return list(chosen)
    names = _rgb_names(band_names)
    if names is not None:
        named = colour_bands(ds, names)
        if named is not None:
            return named
    return list(own)
