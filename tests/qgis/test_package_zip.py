"""dist/map_refiner.zip holds the plugin and nothing else."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from map_refiner.dev.package_zip import ROOT, build_zip


def test_zip_has_the_plugin_and_no_dev_files(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "map_refiner.zip"
    names = build_zip(out)
    assert names == zipfile.ZipFile(out).namelist()
    assert all(n.startswith("map_refiner/") for n in names)
    for needed in (
        "__init__.py",
        "plugin.py",
        "metadata.txt",
        "requirements.txt",
        "ui/dialog/dialog.py",
        "ui/processing/provider.py",
        "engine/refine/pipeline.py",
        "resources/icons/map_refiner.svg",
    ):
        assert f"map_refiner/{needed}" in names
    for banned in (
        "/tests/",
        "/.venv/",
        "/docs/",
        "/dev/",
        "__pycache__",
        ".pyc",
        "/.git",
        "Makefile",
        "pyproject.toml",
    ):
        assert not any(banned in n for n in names), banned
    for model in ("default", "general"):  # both bundled models, with their cards' JSON
        if (ROOT / "resources" / "models" / f"{model}.safetensors").exists():
            assert f"map_refiner/resources/models/{model}.safetensors" in names
            assert f"map_refiner/resources/models/{model}.json" in names
    meta = configparser.ConfigParser()
    meta.read_string(zipfile.ZipFile(out).read("map_refiner/metadata.txt").decode())
    assert f"map_refiner/{meta['general']['icon']}" in names
    assert meta["general"]["hasProcessingProvider"] == "yes"


def test_zip_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_zip(first), build_zip(second)
    assert first.read_bytes() == second.read_bytes()


def test_unzipped_plugin_refines_on_its_own(tmp_path: Path) -> None:
    """What the zip holds is enough to refine: the CLI of the unzipped copy (not this
    checkout) refines a small raster with the bundled model into a named class map."""
    archive = tmp_path / "map_refiner.zip"
    build_zip(archive)
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(archive).extractall(plugins)
    image, out = tmp_path / "image.tif", tmp_path / "refined.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(image), 96, 96, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 1.0, 0.0, 4000000.0, 0.0, -1.0))
    ds.SetProjection("EPSG:32633")
    rng = np.random.default_rng(0)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(0, 255, (96, 96), dtype=np.uint8))
    del ds
    script = (
        "import sys, map_refiner; "
        f"assert map_refiner.__file__.startswith({str(plugins)!r}), map_refiner.__file__; "
        "from map_refiner.cli import main; "
        f"sys.exit(main(['refine', {str(image)!r}, '--out', {str(out)!r}, '--device', 'cpu']))"
    )
    env = {**os.environ, "PYTHONPATH": str(plugins), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = gdal.Open(str(out))
    band = result.GetRasterBand(1)
    result.GetGeoTransform()  # GDAL 3.6: category names appear once PAM is loaded
    assert (result.RasterXSize, result.RasterYSize) == (96, 96)
    assert [n.lower() for n in band.GetCategoryNames()][:2] == ["background", "building"]
