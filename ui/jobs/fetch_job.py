"""Online imagery as input: an XYZ, WMTS or WMS layer's image over the map view, fetched
into a GeoTIFF beside the project (reused for the same view), added as a layer and then
refined."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ...engine.rasters.fetch import (
    FetchRequest,
    FetchResult,
    cached_fetch,
    check_tile_budget,
    fetch_key,
    fetch_xyz,
    size_text,
    zoom_text,
)
from ...engine.rasters.tiles import XyzSource, xyz_tile_size
from ...engine.rasters.wms import WmsSource
from ...engine.rasters.wmts import WmtsSource
from ..paths import writable_folder
from ..sources import project_dir

View = tuple[QgsRectangle, QgsCoordinateReferenceSystem]


@dataclass(frozen=True)
class FetchJob:
    request: FetchRequest
    layer_name: str


def is_online(layer: QgsMapLayer | None) -> bool:
    """An XYZ, WMS or WMTS layer (QGIS's "wms" provider serves them all)."""
    return isinstance(layer, QgsRasterLayer) and layer.providerType() == "wms"


def online_source(layer: QgsRasterLayer) -> XyzSource | WmsSource | WmtsSource:
    """The service behind an XYZ, WMTS or WMS layer, as QGIS records it in the source."""
    uri = QgsDataSourceUri()
    uri.setEncodedUri(layer.source())
    referer = uri.param("http-header:referer") or uri.param("referer")
    if uri.param("type") == "xyz":
        url = uri.param("url")
        zmin = int(uri.param("zmin") or 0)
        zmax = int(uri.param("zmax") or 19)
        size = xyz_tile_size(url, float(uri.param("tilePixelRatio") or 0))
        return XyzSource(url, zmin, zmax, referer, size)
    if uri.param("type") == "wmts" or uri.hasParam("tileMatrixSet"):
        return WmtsSource(
            uri.param("url"),
            uri.param("layers"),
            uri.param("tileMatrixSet"),
            uri.param("styles"),
            uri.param("format"),
            referer,
        )
    return WmsSource(
        uri.param("url"),
        ",".join(uri.params("layers")),
        uri.param("crs") or layer.crs().authid(),
        ",".join(uri.params("styles")),
        uri.param("format") or "image/png",
        referer,
    )


def online_name(layer: QgsRasterLayer) -> str:
    """The layer's name; for a layer without one (Processing loads ``wms://…`` strings
    so, as qgis_process passes them), its service's host."""
    if layer.name():
        return layer.name()
    url = QgsDataSourceUri()
    url.setEncodedUri(layer.source())
    return urlsplit(url.param("url")).hostname or "online imagery"


def safe_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_.") or "imagery"


def online_folder(project: QgsProject, fallback_dir: Path | None) -> Path:
    """Where fetched images go: beside the saved project, else the last output folder."""
    return writable_folder([project_dir(project), fallback_dir])


def build_fetch_job(
    layer: QgsRasterLayer,
    view: View | None,
    resolution_m: float,
    project: QgsProject,
    fallback_dir: Path | None = None,
) -> FetchJob:
    """The view's extent at ``resolution_m`` into ``<layer>_<fetch key>.tif`` beside the
    project (the same file for the same view, so it is fetched once; never another
    file's name)."""
    if view is None or view[0].isEmpty():
        raise MapRefinerError(
            f"Zoom the map to the area of “{layer.name()}” to refine; its view is fetched."
        )
    return fetch_job_in(layer, view, resolution_m, online_folder(project, fallback_dir))


def fetch_job_in(
    layer: QgsRasterLayer,
    view: View,
    resolution_m: float,
    folder: Path,
    avoid: frozenset[Path] = frozenset(),
) -> FetchJob:
    """``view``'s extent (in its CRS, else the layer's) at ``resolution_m`` into
    ``folder/<layer>_<fetch key>.tif``: the file that already holds this fetch, else a
    name no file and none of ``avoid`` (the caller's inputs and outputs) has."""
    extent, crs = view
    if not crs.isValid():
        crs = layer.crs()
    bbox = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
    source = online_source(layer)
    probe = FetchRequest(source, bbox, crs.toWkt(), resolution_m, folder / "probe.tif")
    if probe.plans_offline:  # a WMTS plan reads the service: its task checks the budget
        check_tile_budget(probe.plan(), probe.max_tiles)
    else:
        source.check()
    key = fetch_key(probe)
    name = online_name(layer)
    out = folder / f"{safe_stem(name)}_{key[:8]}.tif"
    taken = {p.resolve() for p in avoid}
    n = 1
    while out.resolve() in taken or (out.exists() and not cached_fetch(out, key)):
        n += 1
        out = folder / f"{safe_stem(name)}_{key[:8]}_{n}.tif"
    return FetchJob(
        FetchRequest(source, bbox, crs.toWkt(), resolution_m, out, probe.max_tiles), name
    )


def run_fetch(job: FetchJob, progress: ProgressFn, is_cancelled: CancelFn) -> FetchResult:
    """Runs in the task's worker thread."""
    return fetch_xyz(job.request, progress, is_cancelled)


def add_fetched_layer(result: FetchResult, project: QgsProject) -> QgsRasterLayer:
    """Main thread: the fetched GeoTIFF as a layer (the one refined next)."""
    layer = QgsRasterLayer(str(result.path), result.path.stem)
    if not layer.isValid():
        raise MapRefinerError(f"QGIS cannot open the fetched image {result.path}.")
    project.addMapLayer(layer)
    return layer


def fetched_message(job: FetchJob, result: FetchResult) -> str:
    if result.cached:
        return f"Reused {result.path} (fetched from {job.layer_name} before)"
    return (
        f"Fetched {result.tiles} tiles ({size_text(result.bytes)}{zoom_text(result.zoom)}, "
        f"{result.ground_m:.2f} m) from {job.layer_name} → {result.path}"
    )
