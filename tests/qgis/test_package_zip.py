"""dist/map_refiner.zip holds the plugin and nothing else."""

from __future__ import annotations

import configparser
import zipfile
from pathlib import Path

from map_refiner.dev.package_zip import build_zip


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
    meta = configparser.ConfigParser()
    meta.read_string(zipfile.ZipFile(out).read("map_refiner/metadata.txt").decode())
    assert f"map_refiner/{meta['general']['icon']}" in names
    assert meta["general"]["hasProcessingProvider"] == "yes"


def test_zip_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_zip(first), build_zip(second)
    assert first.read_bytes() == second.read_bytes()
