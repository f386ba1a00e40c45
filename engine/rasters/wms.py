"""A WMS layer's image over an extent: a grid in the layer's CRS whose pixels are the
model's resolution on the ground, requested in 256-pixel blocks by GDAL's WMS driver."""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

from osgeo import osr

from ..errors import MapRefinerError
from .tiles import TILE_SIZE, referer_xml

osr.UseExceptions()
EARTH_RADIUS_M = 6371008.8


@dataclass(frozen=True)
class WmsSource:
    """A WMS layer as QGIS holds it: the service URL, layers, styles, format, CRS."""

    url: str
    layers: str
    crs: str = "EPSG:3857"
    styles: str = ""
    image_format: str = "image/png"
    referer: str = ""

    def check(self) -> None:
        if not self.url or not self.layers:
            raise MapRefinerError(
                f"The WMS layer lacks a URL or a layer name ({self.url!r}, {self.layers!r}); "
                "add it again from the Browser's WMS connection."
            )


@dataclass(frozen=True)
class WmsPlan:
    """The fetched image's grid in the source's CRS: ``bounds`` cut into ``width`` x
    ``height`` pixels of ``ground_m`` metres, requested in blocks of 256."""

    bounds: tuple[float, float, float, float]
    width: int
    height: int
    ground_m: float
    zoom: int | None = None

    @property
    def tiles(self) -> int:
        return math.ceil(self.width / TILE_SIZE) * math.ceil(self.height / TILE_SIZE)

    @property
    def window(self) -> tuple[int, int, int, int]:
        return (0, 0, self.width, self.height)


def _refs(crs: str) -> osr.SpatialReference:
    ref = osr.SpatialReference()
    try:
        ref.SetFromUserInput(crs)
    except RuntimeError as exc:
        raise MapRefinerError(f"Unknown CRS {crs[:60]!r}; give it as EPSG:code or WKT.") from exc
    ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return ref


def ground_per_unit(ref: osr.SpatialReference, x: float, y: float) -> tuple[float, float]:
    """Metres on the ground of one CRS unit along x and along y at (x, y)."""
    wgs = _refs("EPSG:4326")
    to_wgs = osr.CoordinateTransformation(ref, wgs)
    step = 1e-6 if ref.IsGeographic() else 1.0
    lon0, lat0, _ = to_wgs.TransformPoint(x, y)

    def metres(dx: float, dy: float) -> float:
        lon, lat, _ = to_wgs.TransformPoint(x + dx, y + dy)
        p1, p2 = math.radians(lat0), math.radians(lat)
        dp, dl = p2 - p1, math.radians(lon - lon0)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a))) / step

    return metres(step, 0.0), metres(0.0, step)


def plan_wms(
    bbox: tuple[float, float, float, float], crs: str, resolution_m: float, source: WmsSource
) -> WmsPlan:
    """``bbox`` (in ``crs``) on a grid of the source's CRS at ``resolution_m`` metres,
    anchored at the CRS origin so that the same view gives the same grid."""
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy) or not all(math.isfinite(v) for v in bbox):
        raise MapRefinerError(f"The extent {bbox} is empty; zoom to the area to refine.")
    src, dst = _refs(crs), _refs(source.crs)
    try:
        if not src.IsSame(dst):
            ct = osr.CoordinateTransformation(src, dst)
            minx, miny, maxx, maxy = ct.TransformBounds(minx, miny, maxx, maxy, 21)
        gx, gy = ground_per_unit(dst, (minx + maxx) / 2, (miny + maxy) / 2)
    except RuntimeError as exc:
        raise MapRefinerError(
            f"The extent cannot be carried into the WMS layer's CRS {source.crs}; "
            "zoom to an area the service covers."
        ) from exc
    px, py = resolution_m / gx, resolution_m / gy
    if abs(gx / gy - 1) < 1e-3:  # a conformal CRS: square pixels, on the CRS's own lattice
        py = px
    x0, x1 = math.floor(minx / px) * px, math.ceil(maxx / px) * px
    y0, y1 = math.floor(miny / py) * py, math.ceil(maxy / py) * py
    width, height = max(1, round((x1 - x0) / px)), max(1, round((y1 - y0) / py))
    return WmsPlan((x0, y0, x1, y1), width, height, resolution_m)


def wms_service_xml(source: WmsSource, plan: WmsPlan, cache: str) -> str:
    """A GDAL_WMS description of the plan's grid (WMS 1.1.1: x,y axis order everywhere)."""
    x0, y0, x1, y1 = plan.bounds
    return f"""<GDAL_WMS>
  <Service name="WMS">
    <Version>1.1.1</Version>
    <ServerUrl>{escape(source.url)}</ServerUrl>
    <SRS>{escape(source.crs)}</SRS>
    <ImageFormat>{escape(source.image_format)}</ImageFormat>
    <Layers>{escape(source.layers)}</Layers>
    <Styles>{escape(source.styles)}</Styles>
  </Service>
  <DataWindow>
    <UpperLeftX>{x0!r}</UpperLeftX><UpperLeftY>{y1!r}</UpperLeftY>
    <LowerRightX>{x1!r}</LowerRightX><LowerRightY>{y0!r}</LowerRightY>
    <SizeX>{plan.width}</SizeX><SizeY>{plan.height}</SizeY>
  </DataWindow>
  <Projection>{escape(source.crs)}</Projection>
  <BlockSizeX>{TILE_SIZE}</BlockSizeX><BlockSizeY>{TILE_SIZE}</BlockSizeY>
  <BandsCount>3</BandsCount>
  <MaxConnections>4</MaxConnections>
  <Timeout>60</Timeout>{referer_xml(source.referer)}
  <Cache><Path>{escape(cache)}</Path></Cache>
</GDAL_WMS>"""
