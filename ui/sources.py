"""From QGIS layers to the files the engine reads, and default output names."""

from __future__ import annotations

import tempfile
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
)

from ..engine.errors import MapRefinerError
from .paths import output_beside


def layer_file(layer: QgsMapLayer) -> Path:
    """The file behind a layer (GDAL/OGR URIs may carry options after the path)."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    return Path(parts.get("path") or layer.source())


def layer_in_file(layer: QgsMapLayer) -> str | None:
    """The layer's name inside its file (a GeoPackage holds several), None when the
    source names none (a Shapefile)."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    return parts.get("layerName") or None


def raster_path(layer: QgsMapLayer | None) -> Path:
    """The GeoTIFF (or other GDAL file) behind a raster layer; raises MapRefinerError."""
    if not isinstance(layer, QgsRasterLayer):
        raise MapRefinerError("Choose a raster layer to refine.")
    if layer.providerType() == "wms":  # XYZ and WMS layers
        raise MapRefinerError(
            f"“{layer.name()}” is an online layer: refine it from the Map Refiner dialog "
            "(which fetches the map view first) or with Processing's Refine classification "
            "map (set its Area to fetch), or save the view as a GeoTIFF (right-click ▸ "
            "Export ▸ Save As…, or map-refiner fetch) and use that."
        )
    path = layer_file(layer)
    if layer.providerType() != "gdal" or not path.is_file():
        raise MapRefinerError(
            f"“{layer.name()}” is not a raster file on disk; save it as a GeoTIFF first "
            "(right-click ▸ Export ▸ Save As…) and refine that."
        )
    return path


#: Where the VRTs that give a file its layer's CRS are kept (image_path).
CRS_FOLDER = Path(tempfile.gettempdir()) / "map_refiner_crs"


def image_path(layer: QgsMapLayer | None) -> Path:
    """The file the engine reads for a raster layer (raster_path): where the file holds no
    CRS but QGIS has given the layer one (Set Layer CRS, or on loading), a VRT over the
    file with that CRS (engine/rasters/read.crs_assigned), so the image lies where QGIS
    shows it instead of being refused. Output names still come from raster_path."""
    path = raster_path(layer)
    crs = layer.crs() if layer is not None else None
    if crs is None or not crs.isValid():
        return path
    from ..engine.rasters.read import crs_assigned

    return crs_assigned(
        path, crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL), CRS_FOLDER
    )


def needs_pixel_size(layer: QgsMapLayer | None) -> bool:
    """Whether a raster file's layer gives the engine no pixel size on the ground: its file
    has no georeferencing (a CRS QGIS gave its pixel coordinates says nothing of the
    ground), or neither the file nor the layer has a CRS (image_path's VRT needs one)."""
    from .jobs.fetch_job import is_online

    if not isinstance(layer, QgsRasterLayer) or is_online(layer):
        return False
    from ..engine.rasters.read import UNREFERENCED_GEOTRANSFORM, open_raster, raster_info

    try:
        ds = open_raster(raster_path(layer))
        info = raster_info(ds)
    except (MapRefinerError, RuntimeError):
        return False  # the refine says what is wrong with the file
    if info.geotransform == UNREFERENCED_GEOTRANSFORM:
        return True
    return not info.has_crs and not layer.crs().isValid()


def ground_pixel_size(layer: QgsRasterLayer) -> float:
    """The layer's pixel size on the ground in metres, as the engine measures it (the
    geometric mean of x and y at the centre), from what QGIS knows of the layer: no file
    is opened. Raises MapRefinerError (no CRS, broken georeferencing)."""
    from ..engine.rasters.read import RasterInfo, ground_resolution

    extent, w, h = layer.extent(), max(layer.width(), 1), max(layer.height(), 1)
    gt = (extent.xMinimum(), extent.width() / w, 0.0, extent.yMaximum(), 0.0, -extent.height() / h)
    crs = layer.crs()
    wkt = crs.toWkt() if crs.isValid() else ""
    rx, ry = ground_resolution(RasterInfo(layer.name(), w, h, layer.bandCount(), gt, wkt, []))
    return float((rx * ry) ** 0.5)


def project_dir(project: QgsProject) -> Path | None:
    """The saved project's folder, or None while the project is unsaved."""
    folder = project.absolutePath()
    return Path(folder) if folder else None


def default_refined_path(
    source: Path, project: QgsProject, fallback_dir: Path | None = None
) -> Path:
    return output_beside(source, "_refined", ".tif", project_dir(project), fallback_dir)


def scores_path_for(out: Path) -> Path:
    return out.with_name(f"{out.stem}_scores.tif")


def coarse_path_for(out: Path) -> Path:
    return out.with_name(f"{out.stem}_coarse.tif")
