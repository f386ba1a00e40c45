"""The shared scenes with an accurate building reference, as georeferenced rasters.

ISPRS and LoveDA tiles come as PNGs without georeference: the study writes
GeoTIFF copies on a local UTM grid at their documented pixel size (the
engine needs metres), with the building reference as a 0/255 mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()


@dataclass(frozen=True)
class Scene:
    name: str
    kind: str  # aerial / drone / satellite, and where
    image: Path
    reference: Path  # building mask: > 0 is building


def _png_copy(src: Path, out: Path, res_m: float, building_value: int = 0) -> Path:
    """``src`` as a GeoTIFF on EPSG:32632 at ``res_m``; with ``building_value``, the
    class raster turned into a 0/255 building mask."""
    if out.exists():
        return out
    arr = gdal.Open(str(src)).ReadAsArray()
    if building_value:
        arr = np.where(arr == building_value, 255, 0).astype(np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.tif")
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp), arr.shape[2], arr.shape[1], arr.shape[0])
    ds.SetGeoTransform((500000.0, res_m, 0.0, 5000000.0, 0.0, -res_m))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    tmp.rename(out)
    return out


def scenes(data: Path, work: Path) -> dict[str, Scene]:
    """Every shared scene with an accurate building reference, by name."""
    out: list[Scene] = [
        Scene(
            "austin_dev",
            "aerial, USA, 0.3 m",
            data / "austin/austin_dev_rgb.tif",
            data / "austin/austin_dev_gt.tif",
        ),
        Scene(
            "austin_enh",
            "aerial, USA, 0.3 m (the bundled RNN's training tile)",
            data / "austin/austin_enh_rgb.tif",
            data / "austin/austin_enh_gt.tif",
        ),
        Scene(
            "kampala_drone",
            "drone, Uganda, 7.5 cm",
            data / "kampala_drone/kampala_rgb.tif",
            data / "kampala_drone/kampala_buildings_mask.tif",
        ),
        Scene(
            "nepal_drone",
            "drone, Nepal, 6.6 cm",
            data / "nepal_drone/nepal_rgb.tif",
            data / "nepal_drone/nepal_buildings_mask.tif",
        ),
        Scene(
            "rio_wv2",
            "satellite (WorldView-2), Brazil, 0.5 m",
            data / "rio_wv2/rio_rgb.tif",
            data / "rio_wv2/rio_buildings_mask.tif",
        ),
    ]
    for name, img, gt, res in (
        ("potsdam", "potsdam_rgb.png", "potsdam_gt.png", 0.05),
        ("vaihingen", "vaihingen_irrg.png", "vaihingen_gt.png", 0.09),
    ):
        out.append(
            Scene(
                f"isprs_{name}",
                f"aerial, Germany, {res} m (ISPRS; tiny)",
                _png_copy(data / "isprs" / img, work / f"{name}_rgb.tif", res),
                _png_copy(data / "isprs" / gt, work / f"{name}_gt.tif", res, 2),
            )
        )
    for i in (0, 1):
        out.append(
            Scene(
                f"loveda_{i}",
                "aerial, China, 0.3 m (LoveDA, rural)",
                _png_copy(
                    data / "loveda" / f"loveda_{i}_rgb.png", work / f"loveda_{i}_rgb.tif", 0.3
                ),
                _png_copy(
                    data / "loveda" / f"loveda_{i}_gt.png", work / f"loveda_{i}_gt.tif", 0.3, 2
                ),
            )
        )
    return {s.name: s for s in out}
