"""Web-map (XYZ) tiles over an extent: which zoom gives the model's resolution, which
tiles and which pixels of them cover the extent, and GDAL's description of the service.
Plain arithmetic and one CRS transform; the fetch itself is in ``fetch.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from osgeo import osr

from ..errors import MapRefinerError
from ..vocabulary import XYZ_TILE_SIZES

osr.UseExceptions()
WEB_MERCATOR_HALF = 20037508.342789244  # metres from the origin to the edge of the world
WEB_MERCATOR_MAX_LAT = 85.05112878
TILE_SIZE = 256  # the web-map standard; high-DPI services send 512 px for the same tile
MAX_RASTER_SIDE = 2**30  # the zoom's world mosaic is one GDAL raster: its size is an int32
DEFAULT_MAX_TILES = 2000  # about 130 Mpx; more is a long download and a long refine
XY_PLACEHOLDERS = ("{x}", "{y}", "{-y}")
# QGIS leaves {s} as it is (a QGIS layer with {s} asks a host named "{s}...") and GDAL's TMS
# mini-driver has no subdomain placeholder, so one subdomain serves the whole fetch: "a",
# the first of Leaflet's default subdomains a, b, c, the one a service written for {s}
# URLs is surest to answer on.
SUBDOMAIN = "a"


@dataclass(frozen=True)
class XyzSource:
    """A tile service: ``url`` with ``{x}``, ``{y}`` (or ``{-y}``, rows counted from the
    south as TMS does) and ``{z}``, or a Bing quadkey ``{q}``, QGIS's XYZ syntax; ``{s}``
    becomes ``SUBDOMAIN``. Tiles are ``tile_size`` pixels wide (512 for high-DPI tiles,
    which cover the same ground as 256 px ones with twice the pixels)."""

    url: str
    zmin: int = 0
    zmax: int = 19
    referer: str = ""  # some services answer only requests that name their site
    tile_size: int = TILE_SIZE

    @property
    def quadkey(self) -> bool:
        return "{q}" in self.url

    @property
    def max_zoom(self) -> int:
        """The finest zoom whose world mosaic is still one GDAL raster."""
        return int(math.log2(MAX_RASTER_SIDE // self.tile_size))

    def check(self) -> None:
        """Refuse templates the fetch cannot follow, saying what to use instead."""
        if self.tile_size not in XYZ_TILE_SIZES:
            raise MapRefinerError(
                f"Tiles of {self.tile_size} px are not supported; web-map tiles are 256 or 512 px."
            )
        if self.quadkey and any(p in self.url for p in XY_PLACEHOLDERS):
            raise MapRefinerError(
                f"The tile URL {self.url} names the tile twice, by {{q}} and by {{x}}/{{y}}; "
                "keep one of them."
            )
        if not self.quadkey:
            url = self.url.replace("{-y}", "{y}")
            missing = [p for p in ("{x}", "{y}", "{z}") if p not in url]
            if missing:
                raise MapRefinerError(
                    f"The tile URL {self.url} lacks {', '.join(missing)}; an XYZ layer's URL "
                    "names the tile as {z}/{x}/{y} or by a quadkey {q}."
                )
        if not 0 <= self.zmin <= self.zmax:
            raise MapRefinerError(f"Zoom levels {self.zmin}..{self.zmax} are not a range.")


def xyz_tile_size(url: str, pixel_ratio: float = 0.0) -> int:
    """A service's tile size as QGIS records it: an XYZ connection's Tile resolution is
    ``tilePixelRatio`` 1 (standard, 256 px) or 2 (high, 512 px), 0 when unknown; unknown
    tiles named ``@2x`` (the usual name of high-DPI tiles) are 512 px."""
    if pixel_ratio > 0:
        return round(TILE_SIZE * pixel_ratio)
    return 2 * TILE_SIZE if "@2x" in url else TILE_SIZE


@dataclass(frozen=True)
class TilePlan:
    """Zoom ``zoom``; tiles ``tx0..tx1`` x ``ty0..ty1`` of ``tile_size`` pixels; the extent
    as the pixel window ``(col, row, width, height)`` of the zoom's world mosaic; its pixel
    size in metres."""

    zoom: int
    tx0: int
    ty0: int
    tx1: int
    ty1: int
    window: tuple[int, int, int, int]
    pixel_m: float  # Web Mercator units
    ground_m: float  # on the ground at the extent's centre
    tile_size: int = TILE_SIZE

    @property
    def tiles(self) -> int:
        return (self.tx1 - self.tx0 + 1) * (self.ty1 - self.ty0 + 1)

    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """The fetched image's grid: the window on the zoom's pixel lattice."""
        col, row = self.window[0], self.window[1]
        h, res = WEB_MERCATOR_HALF, self.pixel_m
        return (-h + col * res, res, 0.0, h - row * res, 0.0, -res)


def pixel_size(zoom: int, tile_size: int = TILE_SIZE) -> float:
    return 2 * WEB_MERCATOR_HALF / (tile_size * 2**zoom)


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
    top = min(source.zmax, source.max_zoom)
    for zoom in range(source.zmin, top + 1):
        if pixel_size(zoom, source.tile_size) * scale <= resolution_m * (1 + 1e-9):
            return zoom
    return top


def plan_tiles(
    bbox3857: tuple[float, float, float, float], resolution_m: float, source: XyzSource
) -> TilePlan:
    """The tiles and the pixel window covering ``bbox3857`` at the model's resolution."""
    if not (resolution_m > 0 and math.isfinite(resolution_m)):
        raise MapRefinerError(f"The model's resolution {resolution_m} m is not a size.")
    minx, miny, maxx, maxy = bbox3857
    lat = math.degrees(math.atan(math.sinh((miny + maxy) / 2 / WEB_MERCATOR_HALF * math.pi)))
    zoom = choose_zoom(resolution_m, lat, source)
    size = source.tile_size
    res = pixel_size(zoom, size)
    eps = 1e-6  # an edge on a pixel border stays there despite float error
    c0 = math.floor((minx + WEB_MERCATOR_HALF) / res + eps)
    c1 = math.ceil((maxx + WEB_MERCATOR_HALF) / res - eps)
    r0 = math.floor((WEB_MERCATOR_HALF - maxy) / res + eps)
    r1 = math.ceil((WEB_MERCATOR_HALF - miny) / res - eps)
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    tx0, ty0 = c0 // size, r0 // size
    tx1, ty1 = (c1 - 1) // size, (r1 - 1) // size
    window = (c0, r0, c1 - c0, r1 - r0)
    ground = res * math.cos(math.radians(lat))
    return TilePlan(zoom, tx0, ty0, tx1, ty1, window, res, ground, size)


def gdal_url(source: XyzSource, zoom: int) -> str:
    """The template in GDAL's syntax: ``${x}``/``${y}``/``${z}`` for its TMS mini-driver,
    ``${quadkey}`` for its VirtualEarth one (which knows no ``{z}``: the plan's zoom is
    written in)."""
    url = source.url.replace("{s}", SUBDOMAIN).replace("{-y}", "{y}")
    if source.quadkey:
        return url.replace("{q}", "${quadkey}").replace("{z}", str(zoom))
    for name in ("x", "y", "z"):
        url = url.replace("{" + name + "}", "${" + name + "}")
    return url


def referer_xml(referer: str) -> str:
    return f"\n  <Referer>{escape(referer)}</Referer>" if referer else ""


def xyz_service_xml(source: XyzSource, plan: TilePlan, cache: Path) -> str:
    """A GDAL_WMS description of the service at the plan's zoom: one raster, the world
    mosaic of that zoom's tiles, of which a fetch reads one window. Tiles land in ``cache``."""
    service = "VirtualEarth" if source.quadkey else "TMS"
    flipped = "{-y}" in source.url
    h, size = repr(WEB_MERCATOR_HALF), plan.tile_size
    return f"""<GDAL_WMS>
  <Service name="{service}"><ServerUrl>{escape(gdal_url(source, plan.zoom))}</ServerUrl></Service>
  <DataWindow>
    <UpperLeftX>-{h}</UpperLeftX><UpperLeftY>{h}</UpperLeftY>
    <LowerRightX>{h}</LowerRightX><LowerRightY>-{h}</LowerRightY>
    <TileLevel>{plan.zoom}</TileLevel><TileCountX>1</TileCountX><TileCountY>1</TileCountY>
    <YOrigin>{"bottom" if flipped else "top"}</YOrigin>
  </DataWindow>
  <Projection>EPSG:3857</Projection>
  <BlockSizeX>{size}</BlockSizeX><BlockSizeY>{size}</BlockSizeY>
  <BandsCount>3</BandsCount>
  <MaxConnections>4</MaxConnections>
  <Timeout>60</Timeout>{referer_xml(source.referer)}
  <ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes>
  <Cache><Path>{escape(str(cache))}</Path></Cache>
</GDAL_WMS>"""
