"""Opening vector layers (GeoPackage, Shapefile, GeoJSON, ...) with clear errors."""

from __future__ import annotations

from pathlib import Path

from osgeo import gdal, ogr

from ..errors import MapRefinerError
from ..rasters.read import refuse_special_file

ogr.UseExceptions()


def open_layer(
    path: str | Path, layer: str | int | None = None, option: str = "--layer"
) -> tuple[gdal.Dataset, ogr.Layer]:
    """The dataset and one of its layers; ``layer`` may be omitted when there is only one
    (else the error lists the layers and names ``option``, the setting that chooses one).

    Keep the dataset referenced while using the layer.
    """
    p = str(path)
    if not Path(p).exists() and not p.startswith("/vsi"):
        raise MapRefinerError(f"Vector file not found: {p}. Check the path.")
    refuse_special_file(p, "vector layer")
    try:
        ds = gdal.OpenEx(p, gdal.OF_VECTOR | gdal.OF_READONLY)
    except RuntimeError as exc:
        raise MapRefinerError(
            f"GDAL cannot read {Path(p).name} as a vector layer (is it a "
            "GeoPackage, Shapefile or GeoJSON, and complete?).",
            details=str(exc),
        ) from exc
    if ds is None or ds.GetLayerCount() == 0:
        raise MapRefinerError(f"{Path(p).name} holds no vector layer; choose a vector file.")
    names = [ds.GetLayerByIndex(i).GetName() for i in range(ds.GetLayerCount())]
    if layer is None:
        if len(names) > 1:
            raise MapRefinerError(
                f"{Path(p).name} has several layers ({', '.join(names)}); "
                f"choose one with {option}, e.g. {option} {names[0]}."
            )
        layer = 0
    if isinstance(layer, int):
        lyr = ds.GetLayerByIndex(layer) if 0 <= layer < len(names) else None
    else:
        lyr = ds.GetLayerByName(layer) if layer in names else None
    if lyr is None:
        raise MapRefinerError(
            f"{Path(p).name} has no layer {layer!r}; choose one of: {', '.join(names)}."
        )
    return ds, lyr
