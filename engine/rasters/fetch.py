"""Online imagery as input: the tiles of an XYZ service or a WMTS layer (or a WMS layer's
image) over an extent, at the model's resolution, fetched through GDAL's WMS and WMTS
drivers into a GeoTIFF that is written atomically, and that a later fetch of the same
extent reuses."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal

from ..errors import CancelledError, MapRefinerError
from ..progress import CancelFn, ProgressFn, Reporter
from .files import atomic_path, check_geotiff_name, check_output_path
from .tiles import (
    DEFAULT_MAX_TILES,
    TILE_SIZE,
    TilePlan,
    XyzSource,
    plan_tiles,
    to_web_mercator,
    xyz_service_xml,
)
from .wms import WmsPlan, WmsSource, plan_wms, wms_service_xml
from .wmts import WmtsPlan, WmtsSource, plan_wmts, wmts_service_xml

gdal.UseExceptions()
log = logging.getLogger(__name__)
KEY = "MAP_REFINER_FETCH"  # GeoTIFF metadata: what was fetched, so a cache is reused only for it
Source = XyzSource | WmsSource | WmtsSource
Plan = TilePlan | WmsPlan | WmtsPlan


@dataclass(frozen=True)
class FetchRequest:
    source: Source
    bbox: tuple[float, float, float, float]  # minx, miny, maxx, maxy in ``crs``
    crs: str  # EPSG:n or WKT
    resolution_m: float  # the model's ground resolution
    out: Path
    max_tiles: int = DEFAULT_MAX_TILES

    @property
    def plans_offline(self) -> bool:
        """XYZ and WMS plans are arithmetic; a WMTS plan reads the service's capabilities."""
        return not isinstance(self.source, WmtsSource)

    def plan(self) -> Plan:
        self.source.check()
        if isinstance(self.source, WmsSource):
            return plan_wms(self.bbox, self.crs, self.resolution_m, self.source)
        if isinstance(self.source, WmtsSource):
            return plan_wmts(self.bbox, self.crs, self.resolution_m, self.source)
        return plan_tiles(to_web_mercator(self.bbox, self.crs), self.resolution_m, self.source)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    zoom: int | None  # None for a WMS layer; a WMTS layer's tile matrix index
    tiles: int  # fetched from the service (0 when the cached GeoTIFF was reused)
    bytes: int  # downloaded
    width: int
    height: int
    ground_m: float
    cached: bool = False

    def describe(self) -> str:
        size = f"{self.width} x {self.height} px at {self.ground_m:.2f} m{zoom_text(self.zoom)}"
        if self.cached:
            return f"Reused the fetched image {self.path.name} ({size})"
        return f"Fetched {self.tiles} tiles ({size_text(self.bytes)}, {size}) → {self.path}"


def zoom_text(zoom: int | None) -> str:
    return "" if zoom is None else f", zoom {zoom}"


def at_zoom(zoom: int | None) -> str:
    return "" if zoom is None else f" at zoom {zoom}"


def size_text(n_bytes: int) -> str:
    """Bytes as MB (kB under 0.1 MB, so a small fetch does not read "0.0 MB")."""
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes / 1e3:.0f} kB"


def check_tile_budget(plan: Plan, max_tiles: int) -> None:
    """Refuse a fetch larger than ``max_tiles``, saying how to make it fit."""
    if plan.tiles > max_tiles:
        w, h = plan.window[2], plan.window[3]
        raise MapRefinerError(
            f"The extent needs {plan.tiles} tiles{at_zoom(plan.zoom)} ({w} x {h} pixels at "
            f"{plan.ground_m:.2f} m); the limit is {max_tiles}. Zoom in or draw a smaller "
            "extent, or raise the limit (map-refiner fetch --max-tiles)."
        )


def fetch_key(request: FetchRequest, plan: Plan | None = None) -> str:
    """Identifies a fetch: the service and the pixels asked for (``plan``, made when not
    given); for a WMTS layer, whose plan needs the service, the service and the extent."""
    source = request.source
    if isinstance(source, WmtsSource):
        text = f"{source}|{request.bbox}|{request.crs}|{request.resolution_m!r}"
    else:
        plan = plan or request.plan()
        if isinstance(plan, WmsPlan):
            text = f"{source}|{plan.bounds}|{plan.width}x{plan.height}"
        else:
            text = f"{source}|{plan.zoom}|{plan.window}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def service_xml(source: Source, plan: Plan, cache: Path) -> str:
    if isinstance(source, WmsSource) and isinstance(plan, WmsPlan):
        return wms_service_xml(source, plan, str(cache))
    if isinstance(source, WmtsSource) and isinstance(plan, WmtsPlan):
        return wmts_service_xml(source, plan.zoom, cache)
    if isinstance(source, XyzSource) and isinstance(plan, TilePlan):
        return xyz_service_xml(source, plan, cache)
    raise TypeError(f"a plan {type(plan).__name__} for a source {type(source).__name__}")


def cached_fetch(path: Path, key: str) -> bool:
    """``path`` holds this very fetch (same service, zoom and pixels)."""
    if not path.is_file():
        return False
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY)
        return ds is not None and ds.GetMetadataItem(KEY) == key
    except RuntimeError:
        return False
    finally:
        gdal.PopErrorHandler()


def reused_result(path: Path, plan: Plan | None) -> FetchResult:
    """The fetch ``path`` holds, described by ``plan`` or, without one, by what the fetch
    wrote beside its key."""
    ds = gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY)
    if plan is not None:
        zoom, ground = plan.zoom, plan.ground_m
    else:
        said = ds.GetMetadataItem(f"{KEY}_ZOOM") or ""
        zoom = int(said) if said.isdigit() else None
        ground = float(ds.GetMetadataItem(f"{KEY}_GROUND_M") or "nan")
    return FetchResult(path, zoom, 0, 0, ds.RasterXSize, ds.RasterYSize, ground, True)


def fetch_xyz(
    request: FetchRequest,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> FetchResult:
    """Fetch the request's extent into ``request.out`` (reused when it already holds the
    same fetch); refuses more than ``max_tiles`` tiles. Nothing is left on failure."""
    check_geotiff_name(request.out, "fetched image")
    rep = Reporter(progress or (lambda _f: None), is_cancelled or (lambda: False))
    plan = request.plan() if request.plans_offline else None  # WMTS: reused offline too
    key = fetch_key(request, plan)
    if cached_fetch(request.out, key):
        log.info("reusing %s for %s", request.out, key)
        return reused_result(request.out, plan)
    plan = plan or request.plan()
    _, _, width, height = plan.window
    check_tile_budget(plan, request.max_tiles)
    out = check_output_path(request.out)
    cache = Path(tempfile.mkdtemp(prefix="map_refiner_tiles_"))
    try:
        with atomic_path(out, overwrite=False) as tmp:
            xml = service_xml(request.source, plan, cache)
            _translate(xml, plan, tmp, key, rep, request.source.url)
            tiles, size = _downloaded(cache)
            if tiles == 0:
                raise MapRefinerError(
                    f"The service gave no image for this extent{at_zoom(plan.zoom)} "
                    f"({request.source.url}); check the URL and that it covers the area."
                )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    log.info("fetched %d tiles, %d bytes -> %s", tiles, size, out)
    return FetchResult(out, plan.zoom, tiles, size, width, height, plan.ground_m)


def swath_bytes(plan: Plan) -> int:
    """One row of tiles of the window: GDAL copies (and so downloads) that much at a time,
    calling back (progress, cancel) after each row instead of once after the whole window
    when it fits GDAL's default swath. 256 px for WMS blocks and WMTS tiles (GDAL does not
    say a WMTS matrix's tile size)."""
    size = plan.tile_size if isinstance(plan, TilePlan) else TILE_SIZE
    return plan.window[2] * 3 * size


def _translate(xml: str, plan: Plan, tmp: Path, key: str, rep: Reporter, url: str) -> None:
    def callback(fraction: float, _msg: str, _data: object) -> int:
        if rep.is_cancelled():
            return 0
        rep.report(fraction)
        return 1

    col, row, width, height = plan.window
    swath = gdal.GetThreadLocalConfigOption("GDAL_SWATH_SIZE", None)
    gdal.SetThreadLocalConfigOption("GDAL_SWATH_SIZE", str(swath_bytes(plan)))
    # a missing tile (404) is a blank block, which GDAL also reports as an error line
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        src = gdal.Open(xml)
        gdal.Translate(
            str(tmp),
            src,
            format="GTiff",
            srcWin=[col, row, width, height],
            creationOptions=["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER"],
            metadataOptions=[
                f"{KEY}={key}",
                f"{KEY}_ZOOM={'' if plan.zoom is None else plan.zoom}",
                f"{KEY}_GROUND_M={plan.ground_m!r}",
            ],
            callback=callback,
        )
    except RuntimeError as exc:
        if rep.is_cancelled():
            raise CancelledError() from exc
        said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        said = said.split("GDALWMS: ")[-1].rstrip(".")  # GDAL's own words, not its prefixes
        raise MapRefinerError(download_error(url, plan, said), details=repr(exc)) from exc
    finally:
        src = None  # noqa: F841 - GDAL closes the service before the cache is read
        gdal.PopErrorHandler()
        gdal.SetThreadLocalConfigOption("GDAL_SWATH_SIZE", swath)
    if rep.is_cancelled():
        raise CancelledError()


def download_error(url: str, plan: Plan, said: str) -> str:
    """What went wrong, in GDAL's words, and what to do about it."""
    if isinstance(plan, TilePlan) and "ReadBlockFromFile" in said:  # a tile GDAL cannot decode
        other = 768 - plan.tile_size  # 256 <-> 512
        return (
            f"The tiles from {url} are not {plan.tile_size} px images ({said}); if the service "
            f"sends {other} px tiles, set its XYZ connection's Tile resolution to match "
            f"(map-refiner fetch --tile-size {other})."
        )
    return (
        f"Could not download the imagery from {url} ({said}); check the URL, the network "
        "and that the service answers, then try again."
    )


def _downloaded(cache: Path) -> tuple[int, int]:
    """Tiles and bytes GDAL's cache holds: what came from the service."""
    files = [f for f in cache.rglob("*") if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)
