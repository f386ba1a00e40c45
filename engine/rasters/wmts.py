"""A WMTS layer's tiles over an extent: GDAL's WMTS driver reads the service's capabilities
and its tile matrices; the plan is the coarsest tile matrix whose pixels are as fine as the
model's, and the extent's pixel window in it. The fetch itself is in ``fetch.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from osgeo import gdal, osr

from ..errors import MapRefinerError
from .tiles import TILE_SIZE, referer_xml
from .wms import ground_per_unit

gdal.UseExceptions()
osr.UseExceptions()
TOLERANCE = 1e-3  # a tile matrix within 0.1 % of the model's resolution is as fine as it


@dataclass(frozen=True)
class WmtsSource:
    """A WMTS layer as QGIS holds it: the capabilities URL, the layer, its tile matrix set,
    style and tile format."""

    url: str
    layer: str
    tile_matrix_set: str
    style: str = ""
    image_format: str = ""
    referer: str = ""

    def check(self) -> None:
        if not (self.url and self.layer and self.tile_matrix_set):
            raise MapRefinerError(
                f"The WMTS layer lacks a URL, a layer or a tile matrix set ({self.url!r}, "
                f"{self.layer!r}, {self.tile_matrix_set!r}); add it again from the Browser's "
                "WMTS connection (map-refiner fetch: --wmts LAYER --tile-matrix-set ID)."
            )

    @property
    def capabilities_url(self) -> str:
        """The GetCapabilities document: QGIS keeps a RESTful one's URL, or a KVP endpoint
        (to which, as QGIS does, the request is added; SERVICE only when not there)."""
        lower = self.url.lower()
        if lower.endswith(".xml") or "request=getcapabilities" in lower:
            return self.url
        asked = "REQUEST=GetCapabilities"
        if "service=wmts" not in lower:
            asked = f"SERVICE=WMTS&{asked}"
        joiner = "" if self.url.endswith(("?", "&")) else ("&" if "?" in self.url else "?")
        return f"{self.url}{joiner}{asked}"


@dataclass(frozen=True)
class WmtsPlan:
    """Tile matrix ``zoom`` (its index in the set) and the extent as the pixel window
    ``(col, row, width, height)`` of GDAL's raster of that matrix."""

    zoom: int
    window: tuple[int, int, int, int]
    ground_m: float

    @property
    def tiles(self) -> int:
        """At most this many tiles of 256 px (GDAL does not say the matrix's tile size)."""
        w, h = self.window[2], self.window[3]
        return (math.ceil(w / TILE_SIZE) + 1) * (math.ceil(h / TILE_SIZE) + 1)


def wmts_service_xml(source: WmtsSource, zoom: int | None, cache: Path | None) -> str:
    """A GDAL_WMTS description: the layer at tile matrix ``zoom`` (the finest when None),
    RGB, its tiles kept in ``cache``."""
    parts = [
        f"<GetCapabilitiesUrl>{escape(source.capabilities_url)}</GetCapabilitiesUrl>",
        f"<Layer>{escape(source.layer)}</Layer>",
        f"<TileMatrixSet>{escape(source.tile_matrix_set)}</TileMatrixSet>",
        f"<Style>{escape(source.style)}</Style>" if source.style else "",
        f"<Format>{escape(source.image_format)}</Format>" if source.image_format else "",
        f"<ZoomLevel>{zoom}</ZoomLevel>" if zoom is not None else "",
        "<BandsCount>3</BandsCount>",
        "<ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes>",  # a tile not served: blank
        f"<Cache><Path>{escape(str(cache))}</Path></Cache>" if cache else "",
    ]
    body = "\n  ".join(p for p in parts if p)
    return f"<GDAL_WMTS>\n  {body}{referer_xml(source.referer)}\n</GDAL_WMTS>"


def open_wmts(source: WmtsSource, zoom: int | None = None) -> gdal.Dataset:
    """GDAL's raster of the layer at tile matrix ``zoom``; one clear error when the service,
    the layer or the tile matrix set cannot be read."""
    source.check()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        return gdal.Open(wmts_service_xml(source, zoom, None))
    except RuntimeError as exc:
        said = str(exc).split("</GDAL_WMTS>")[-1].strip(": ").splitlines()[0] or "no answer"
        if said == "No such file or directory":  # GDAL's words when the layer is not listed
            said = "no such layer"
        raise MapRefinerError(
            f"Could not open the WMTS layer {source.layer} (tile matrix set "
            f"{source.tile_matrix_set}) from {source.url} ({said}); check the network and that "
            "the service lists that layer, or add it again from the Browser's WMTS connection.",
            details=repr(exc),
        ) from exc
    finally:
        gdal.PopErrorHandler()


def _ground_scale(ds: gdal.Dataset, x: float, y: float) -> float:
    """Metres on the ground of one CRS unit at (x, y), the coarser of the two axes."""
    return max(ground_per_unit(ds.GetSpatialRef(), x, y))


def _to_dataset_crs(
    ds: gdal.Dataset, bbox: tuple[float, float, float, float], crs: str
) -> tuple[float, float, float, float]:
    src, dst = osr.SpatialReference(), ds.GetSpatialRef().Clone()
    try:
        src.SetFromUserInput(crs)
    except RuntimeError as exc:
        raise MapRefinerError(f"Unknown CRS {crs[:60]!r}; give it as EPSG:code or WKT.") from exc
    for ref in (src, dst):
        ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if src.IsSame(dst):
        return bbox
    try:
        return osr.CoordinateTransformation(src, dst).TransformBounds(*bbox, 21)
    except RuntimeError as exc:
        raise MapRefinerError(
            "The extent cannot be carried into the WMTS layer's CRS; zoom to an area the "
            "service covers."
        ) from exc


def plan_wmts(
    bbox: tuple[float, float, float, float], crs: str, resolution_m: float, source: WmtsSource
) -> WmtsPlan:
    """The coarsest tile matrix whose pixels on the ground are no larger than
    ``resolution_m`` (the finest when none is), and ``bbox``'s (in ``crs``) window in it."""
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy) or not all(math.isfinite(v) for v in bbox):
        raise MapRefinerError(f"The extent {bbox} is empty; zoom to the area to refine.")
    finest = open_wmts(source)
    x0, y0, x1, y1 = _to_dataset_crs(finest, bbox, crs)
    scale = _ground_scale(finest, (x0 + x1) / 2, (y0 + y1) / 2)
    band = finest.GetRasterBand(1)
    width = finest.RasterXSize
    # GDAL's overviews of the finest matrix are the coarser matrices, coarsest last
    sizes = [width] + [band.GetOverview(i).XSize for i in range(band.GetOverviewCount())]
    res0 = finest.GetGeoTransform()[1]
    level = 0
    for i, size in enumerate(sizes):
        if res0 * width / size * scale <= resolution_m * (1 + TOLERANCE):
            level = i
    zoom = len(sizes) - 1 - level
    ds = finest if level == 0 else open_wmts(source, zoom)
    gt = ds.GetGeoTransform()
    if abs(gt[1] / (res0 * width / sizes[level]) - 1) > 0.01:  # GDAL skipped a matrix
        raise MapRefinerError(
            f"GDAL's zoom level {zoom} of the WMTS tile matrix set {source.tile_matrix_set} "
            "is not the matrix its overviews list; save the view as a GeoTIFF (right-click "
            "▸ Export ▸ Save As…) and refine that."
        )
    eps = 1e-6  # an edge on a pixel border stays there despite float error
    c0 = max(math.floor((x0 - gt[0]) / gt[1] + eps), 0)
    c1 = min(math.ceil((x1 - gt[0]) / gt[1] - eps), ds.RasterXSize)
    r0 = max(math.floor((gt[3] - y1) / -gt[5] + eps), 0)
    r1 = min(math.ceil((gt[3] - y0) / -gt[5] - eps), ds.RasterYSize)
    if c1 <= c0 or r1 <= r0:
        raise MapRefinerError(
            f"The extent lies outside the WMTS layer {source.layer}; zoom to the area it covers."
        )
    return WmtsPlan(zoom, (c0, r0, c1 - c0, r1 - r0), gt[1] * scale)
