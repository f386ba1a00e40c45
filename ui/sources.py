"""From QGIS layers to the files the engine reads, and default output names."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayer, QgsProject, QgsProviderRegistry, QgsRasterLayer

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
