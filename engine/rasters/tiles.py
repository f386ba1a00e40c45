"""Web-map (XYZ) tiles over an extent: which zoom gives the model's resolution, which
tiles and which pixels of them cover the extent. Plain arithmetic and one CRS
transform; the fetch itself is in ``fetch.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from osgeo import osr

from ..errors import MapRefinerError

osr.UseExceptions()
WEB_MERCATOR_HALF = 20037508.342789244  # metres from the origin to the edge of the world
WEB_MERCATOR_MAX_LAT = 85.05112878
TILE_SIZE = 256
MAX_ZOOM = 22  # 256 * 2**22 pixels still fit a GDAL raster's int32 size
DEFAULT_MAX_TILES = 2000  # about 130 Mpx; more is a long download and a long refine
PLACEHOLDERS = ("{x}", "{y}", "{z}")


@dataclass(frozen=True)
class XyzSource:
    """A tile service: ``url`` with ``{x}``, ``{y}`` (or ``{-y}``, rows counted from the
    south as TMS does) and ``{z}``, QGIS's XYZ syntax."""

    url: str
    zmin: int = 0
    zmax: int = 19
    referer: str = ""  # some services answer only requests that name their site

    def check(self) -> None:
        """Refuse templates the fetch cannot follow, saying what to use instead."""
        for other in ("{q}", "{s}"):
            if other in self.url:
                raise MapRefinerError(
                    f"Tile URLs with {other} are not supported yet ({self.url}); use a service "
                    "with {x}/{y}/{z}, or save the view as a GeoTIFF and refine that."
                )
        url = self.url.replace("{-y}", "{y}")
        missing = [p for p in PLACEHOLDERS if p not in url]
        if missing:
            raise MapRefinerError(
                f"The tile URL {self.url} lacks {', '.join(missing)}; an XYZ layer's URL "
                "names the tile as {z}/{x}/{y}."
            )
        if not 0 <= self.zmin <= self.zmax:
            raise MapRefinerError(f"Zoom levels {self.zmin}..{self.zmax} are not a range.")


@dataclass(frozen=True)
class TilePlan:
    """Zoom ``zoom``; tiles ``tx0..tx1`` x ``ty0..ty1``; the extent as the pixel window
    ``(col, row, width, height)`` of the zoom's world mosaic; its pixel size in metres."""

    zoom: int
    tx0: int
    ty0: int
    tx1: int
    ty1: int
    window: tuple[int, int, int, int]
    pixel_m: float  # Web Mercator units
    ground_m: float  # on the ground at the extent's centre

    @property
    def tiles(self) -> int:
        return (self.tx1 - self.tx0 + 1) * (self.ty1 - self.ty0 + 1)

    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """The fetched image's grid: the window on the zoom's pixel lattice."""
        col, row = self.window[0], self.window[1]
        h, res = WEB_MERCATOR_HALF, self.pixel_m
        return (-h + col * res, res, 0.0, h - row * res, 0.0, -res)


def pixel_size(zoom: int) -> float:
    return 2 * WEB_MERCATOR_HALF / (TILE_SIZE * 2**zoom)


def to_web_mercator(
    bbox: tuple[float, float, float, float], crs: str
) -> tuple[float, float, float, float]:
    """``bbox`` (minx, miny, maxx, maxy in ``crs``: WKT, ``EPSG:n``, PROJ) in EPSG:3857,
    cut to the part of the world web maps cover."""
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy) or not all(math.isfinite(v) for v in bbox):
        raise MapRefinerError(f"The extent {bbox} is empty; zoom to the area to refine.")
    src = osr.SpatialReference()
    try:
        src.SetFromUserInput(crs)
    except RuntimeError as exc:
        raise MapRefinerError(f"Unknown CRS {crs!r}; give it as EPSG:code or WKT.") from exc
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(3857)
    for ref in (src, dst):
        ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if not src.IsSame(dst):
        if src.IsGeographic():  # web maps end at 85° north and south
            miny = max(miny, -WEB_MERCATOR_MAX_LAT)
            maxy = min(maxy, WEB_MERCATOR_MAX_LAT)
        try:
            ct = osr.CoordinateTransformation(src, dst)
            minx, miny, maxx, maxy = ct.TransformBounds(minx, miny, maxx, maxy, 21)
        except RuntimeError as exc:
            raise MapRefinerError(
                f"The extent cannot be carried from {crs[:40]} to Web Mercator; "
                "zoom to an area web maps cover."
            ) from exc
    h = WEB_MERCATOR_HALF
    out = (max(minx, -h), max(miny, -h), min(maxx, h), min(maxy, h))
    if not (out[0] < out[2] and out[1] < out[3]):
        raise MapRefinerError("The extent lies outside the web map's world; zoom to it.")
    return out


def choose_zoom(resolution_m: float, latitude: float, source: XyzSource) -> int:
    """The coarsest zoom whose pixels on the ground are no larger than ``resolution_m``
    (so the model never sees a blurred image), within the service's zoom levels."""
    scale = math.cos(math.radians(latitude))
    for zoom in range(source.zmin, min(source.zmax, MAX_ZOOM) + 1):
        if pixel_size(zoom) * scale <= resolution_m * (1 + 1e-9):
            return zoom
    return min(source.zmax, MAX_ZOOM)


def plan_tiles(
    bbox3857: tuple[float, float, float, float], resolution_m: float, source: XyzSource
) -> TilePlan:
    """The tiles and the pixel window covering ``bbox3857`` at the model's resolution."""
    if not (resolution_m > 0 and math.isfinite(resolution_m)):
        raise MapRefinerError(f"The model's resolution {resolution_m} m is not a size.")
    minx, miny, maxx, maxy = bbox3857
    lat = math.degrees(math.atan(math.sinh((miny + maxy) / 2 / WEB_MERCATOR_HALF * math.pi)))
    zoom = choose_zoom(resolution_m, lat, source)
    res = pixel_size(zoom)
    eps = 1e-6  # an edge on a pixel border stays there despite float error
    c0 = math.floor((minx + WEB_MERCATOR_HALF) / res + eps)
    c1 = math.ceil((maxx + WEB_MERCATOR_HALF) / res - eps)
    r0 = math.floor((WEB_MERCATOR_HALF - maxy) / res + eps)
    r1 = math.ceil((WEB_MERCATOR_HALF - miny) / res - eps)
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    tx0, ty0 = c0 // TILE_SIZE, r0 // TILE_SIZE
    tx1, ty1 = (c1 - 1) // TILE_SIZE, (r1 - 1) // TILE_SIZE
    window = (c0, r0, c1 - c0, r1 - r0)
    ground = res * math.cos(math.radians(lat))
    return TilePlan(zoom, tx0, ty0, tx1, ty1, window, res, ground)
