"""A cartographer correcting tile after tile: each round's model keeps the polygons drawn
on every earlier tile too (kept.OTHER_IMAGES), so a refine of any of them with the
latest model still shows what was drawn there (session 51; until then a round on the
next tile dropped the earlier tile's polygons from the model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_data import write_vector
from helpers_engine import random_model, scene, write_image
from osgeo import gdal, ogr

from map_refiner import cli
from map_refiner.engine.labels.burn import Shape
from map_refiner.engine.labels.kept import (
    OTHER_IMAGES,
    KeptCorrections,
    from_config,
    kept_images,
    to_config,
)
from map_refiner.engine.modelfile.header import read_model_config
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.grid import GridSpec

gdal.UseExceptions()
PX = 0.6
NAMES = ("background", "building")


def gt(x0: float) -> tuple[float, ...]:
    return (x0, PX, 0.0, 4000000.0, 0.0, -PX)


def rect(g: tuple[float, ...], c0: int, r0: int, c1: int, r1: int) -> str:
    def at(c: int, r: int) -> str:
        return f"{g[0] + c * g[1]} {g[3] + r * g[5]}"

    return f"POLYGON(({at(c0, r0)},{at(c1, r0)},{at(c1, r1)},{at(c0, r1)},{at(c0, r0)}))"


def test_the_config_keeps_each_images_polygons_and_finds_them_by_grid() -> None:
    wkt = GridSpec(1, 1, gt(0), "").projection_wkt
    a = KeptCorrections(GridSpec(64, 64, gt(500000.0), wkt), [Shape(1, 0, "POINT(0 0)")], "a.tif")
    b = KeptCorrections(GridSpec(64, 64, gt(600000.0), wkt), [Shape(0, 0, "POINT(1 1)")], "b.tif")
    first = to_config(a, None)
    assert OTHER_IMAGES not in first
    second = to_config(b, first)
    assert [e["image"] for e in second[OTHER_IMAGES]] == ["a.tif"]
    assert kept_images(second) == ["b.tif", "a.tif"]
    assert from_config(second, 2, a.grid).image == "a.tif"  # type: ignore[union-attr]
    assert from_config(second, 2, b.grid).image == "b.tif"  # type: ignore[union-attr]
    assert from_config(second, 2).image == "b.tif"  # type: ignore[union-attr]
    # a third round on a again replaces a's entry (its polygons are merged into the round)
    third = to_config(a, second)
    assert kept_images(third) == ["a.tif", "b.tif"]


@pytest.fixture
def tiles(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, x0, seed in (("a", 500000.0, 5), ("b", 500000.0 + 64 * PX, 6)):
        write_image(tmp_path / f"{name}.tif", scene(64, 64, seed=seed), gt(x0), epsg=32633)
        g = gt(x0)
        out[name] = tmp_path / f"{name}.tif"
        out[f"{name}_layer"] = write_vector(
            tmp_path / f"{name}.gpkg",
            [
                (rect(g, 4, 4, 20, 20), {"class": "building"}),
                (rect(g, 30, 30, 50, 50), {"class": "background"}),
            ],
            32633,
            fields={"class": ogr.OFTString},
        )
    net, cfg = random_model(NAMES, resolution_m=PX, seed=7, iterations=2)
    out["model"] = save_model(net, cfg, tmp_path / "base.safetensors")
    return out


def finetune(image: Path, layer: Path, model: Path, out: Path) -> None:
    args = [image, layer, "--class-field", "class", "--model", model, "--out", out]
    rc = cli.main([str(a) for a in ["finetune", *args, "--steps", "1", "--device", "cpu"]])
    assert rc == 0 and out.is_file()


def refined(image: Path, model: Path, out: Path) -> np.ndarray:
    rc = cli.main([str(a) for a in ["refine", image, "--model", model, "--out", out]])
    assert rc == 0
    ds = gdal.Open(str(out))  # kept: a band dies with its dataset
    return ds.GetRasterBand(1).ReadAsArray()


def test_a_round_on_the_next_tile_keeps_the_first_tiles_polygons(
    tiles: dict[str, Path], tmp_path: Path, capsys
) -> None:
    m1, m2, m3 = (tmp_path / f"m{i}.safetensors" for i in (1, 2, 3))
    finetune(tiles["a"], tiles["a_layer"], tiles["model"], m1)
    finetune(tiles["b"], tiles["b_layer"], m1, m2)
    cfg = read_model_config(m2)
    assert kept_images(cfg.corrections) == ["b.tif", "a.tif"]
    for name in ("a", "b"):  # the latest model shows each tile's polygons on that tile
        cls = refined(tiles[name], m2, tmp_path / f"{name}_m2.tif")
        assert (cls[4:20, 4:20] == 1).all() and (cls[30:50, 30:50] == 0).all()
    out = capsys.readouterr().out
    assert out.count("2 drawn corrections kept") == 2
    rc = cli.main(["info", str(m2)])
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and info["round"]["drawn_on"] == {"b.tif": 2, "a.tif": 2}
    assert "block means" in info["corrections"]["looks"]
    # back on tile a: its earlier polygons are learnt again with the new one, b's kept
    more = write_vector(
        tmp_path / "a_more.gpkg",
        [(rect(gt(500000.0), 40, 4, 56, 20), {"class": "building"})],
        32633,
        fields={"class": ogr.OFTString},
    )
    finetune(tiles["a"], more, m2, m3)
    cfg = read_model_config(m3)
    assert kept_images(cfg.corrections) == ["a.tif", "b.tif"]
    assert from_config(cfg.corrections, 2).features == 3  # type: ignore[union-attr]
    cls = refined(tiles["b"], m3, tmp_path / "b_m3.tif")
    assert (cls[4:20, 4:20] == 1).all() and (cls[30:50, 30:50] == 0).all()
