"""An input or an output is several files: none of an input's files (world file,
statistics, overviews) may be replaced, an output that is not a regular file is refused,
and a refine writes GeoTIFF only under a GeoTIFF name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model
from osgeo import gdal, osr

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.files import check_output_path, input_files
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

gdal.UseExceptions()


@pytest.fixture
def with_world_file(tmp_path: Path) -> Path:
    """A GeoTIFF without georeferencing and a ``.tfw`` world file beside it."""
    path = tmp_path / "in.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 32, 32, 3, gdal.GDT_Byte)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(np.full((32, 32), 90 + 20 * b, np.uint8))
    ds = None
    path.with_suffix(".tfw").write_text("0.6\n0\n0\n-0.6\n500000.3\n3999999.7\n")
    return path


def test_gdal_lists_the_world_file_as_part_of_the_input(with_world_file: Path) -> None:
    files = input_files(with_world_file)
    assert with_world_file.with_suffix(".tfw") in files


def test_an_inputs_world_file_is_never_an_output(with_world_file: Path) -> None:
    """``--out in.wld --overwrite`` wiped the input's georeferencing."""
    tfw = with_world_file.with_suffix(".tfw")
    before = tfw.read_text()
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        check_output_path(tfw, [with_world_file], overwrite=True)
    assert tfw.read_text() == before


def test_a_pipe_as_output_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    fifo = tmp_path / "out.tif"
    os.mkfifo(fifo)
    with pytest.raises(MapRefinerError, match="not a regular file"):
        check_output_path(fifo, [], overwrite=True)


@pytest.mark.parametrize("name", ["x.shp", "x.gpkg", "x.png", "x"])
def test_refine_writes_geotiff_only_under_a_geotiff_name(tmp_path: Path, name: str) -> None:
    """``--out x.shp`` used to write a GeoTIFF under that name."""
    net, cfg = random_model(resolution_m=0.6, seed=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    image = tmp_path / "i.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(image), 24, 24, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6))
    ds = None
    with pytest.raises(MapRefinerError, match=r"\.tif name"):
        refine_raster(RefineParams(image=image, out=tmp_path / name, model_path=model))
    assert not (tmp_path / name).exists()


@pytest.fixture
def small_job(tmp_path: Path) -> tuple[Path, Path]:
    net, cfg = random_model(resolution_m=0.6, seed=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    image = tmp_path / "img.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(image), 40, 40, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(np.random.default_rng(b).integers(0, 255, (40, 40)))
    ds = None
    return image, model


def test_of_two_runs_racing_to_a_new_name_the_second_fails(
    tmp_path: Path, small_job: tuple[Path, Path]
) -> None:
    """The second used to replace the first silently."""
    image, model = small_job
    out = tmp_path / "new.tif"

    def other_run_finishes_first(_fraction: float) -> None:
        if not out.exists():
            out.write_bytes(b"the other run's map")

    with pytest.raises(MapRefinerError, match="appeared while this run"):
        refine_raster(
            RefineParams(image=image, out=out, model_path=model, device="cpu"),
            progress=other_run_finishes_first,
        )
    assert out.read_bytes() == b"the other run's map"
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []


def test_overwriting_a_map_removes_its_stale_overviews_and_statistics(
    tmp_path: Path, small_job: tuple[Path, Path]
) -> None:
    """QGIS showed the old map at small scales from the old .ovr."""
    image, model = small_job
    out = tmp_path / "map.tif"
    refine_raster(RefineParams(image=image, out=out, model_path=model, device="cpu"))
    ovr = Path(str(out) + ".ovr")
    ovr.write_bytes(b"old overviews")
    refine_raster(
        RefineParams(image=image, out=out, model_path=model, device="cpu", overwrite=True)
    )
    assert not ovr.exists()
    ds = gdal.Open(str(out))
    ds.GetGeoTransform()  # GDAL 3.6 reads the category names with the georeferencing
    assert ds.GetRasterBand(1).GetCategoryNames()  # the new sidecar, not the old one


def test_overwriting_a_geopackage_drops_the_old_files_journal(
    tmp_path: Path, small_job: tuple[Path, Path]
) -> None:
    from map_refiner.engine.vectors.vectorize import vectorize

    image, model = small_job
    classes = tmp_path / "c.tif"
    refine_raster(RefineParams(image=image, out=classes, model_path=model, device="cpu"))
    out = tmp_path / "p.gpkg"
    vectorize(classes, out)
    wal = Path(str(out) + "-wal")
    wal.write_bytes(b"an old journal")
    vectorize(classes, out, overwrite=True)
    assert not wal.exists()
    ds = gdal.OpenEx(str(out), gdal.OF_VECTOR)
    assert ds.GetLayer(0).GetFeatureCount() > 0


def test_an_absolute_vsizip_path_survives_being_a_path(
    tmp_path: Path, small_job: tuple[Path, Path]
) -> None:
    """``/vsizip//abs/a.zip/x.tif`` became ``/vsizip/abs/...`` (relative) in a ``Path``."""
    import zipfile

    image, model = small_job
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(image, "x.tif")
    spelled = f"/vsizip/{archive}/x.tif"  # archive is absolute: /vsizip//tmp/...
    assert "//" in spelled and "//" not in str(Path(spelled))
    out = tmp_path / "from_zip.tif"
    refine_raster(RefineParams(image=Path(spelled), out=out, model_path=model, device="cpu"))
    direct = tmp_path / "direct.tif"
    refine_raster(RefineParams(image=image, out=direct, model_path=model, device="cpu"))
    np.testing.assert_array_equal(
        gdal.Open(str(out)).ReadAsArray(), gdal.Open(str(direct)).ReadAsArray()
    )
