"""Per-image input normalisation (engine/refine/predict.py): a model whose config
says ``normalisation: "image"`` sees each raster through the raster's own band
statistics, the same for every tile, block and fine-tune window of that raster."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import random_model, scene, write_image
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.config import ModelConfig
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.refine import predict as normalisation
from map_refiner.engine.refine.pipeline import refine_array
from map_refiner.engine.refine.predict import for_image, image_statistics
from map_refiner.training.data import model_grids, read_model_window

GT = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)


def mem(array: np.ndarray, nodata: float | None = None) -> gdal.Dataset:
    return write_image(Path(""), array, GT, driver="MEM", nodata=nodata)


@pytest.fixture(scope="module")
def model():
    net, cfg = random_model(resolution_m=1.0, seed=5)
    return net, dataclasses.replace(cfg, normalisation="image")


def test_a_global_change_of_brightness_and_contrast_changes_nothing(model) -> None:
    net, cfg = model
    arr = scene(96, 120, seed=3).astype(np.float32)
    brighter = 1.7 * arr + 30.0  # another sensor's gain and offset
    a, _ = refine_array(net, cfg, mem(arr), 3, tile_size=32)
    b, _ = refine_array(net, cfg, mem(brighter), 3, tile_size=32)
    scale = float(np.abs(a).max())
    assert np.abs(a - b).max() < 1e-4 * scale
    # The same model with its fixed statistics does see the change.
    fixed = dataclasses.replace(cfg, normalisation="model")
    c, _ = refine_array(net, fixed, mem(arr), 3, tile_size=32)
    d, _ = refine_array(net, fixed, mem(brighter), 3, tile_size=32)
    assert np.abs(c - d).max() > 0.05 * scale


def test_statistics_are_measured_on_valid_pixels_only(model) -> None:
    _, cfg = model
    arr = scene(64, 64, seed=4).astype(np.float32)
    holed = arr.copy()
    holed[:, :, :20] = -9999.0  # nodata must not drag the mean down
    grids = model_grids(mem(arr), cfg, None)
    whole = image_statistics(
        mem(arr[:, :, 24:]), [1, 2, 3], model_grids(mem(arr[:, :, 24:]), cfg, None)
    )
    with_hole = image_statistics(mem(holed, nodata=-9999.0), [1, 2, 3], grids)
    assert np.allclose(with_hole[0], whole[0], rtol=0.05)
    assert np.allclose(with_hole[1], whole[1], rtol=0.1)
    assert min(with_hole[0]) > 50  # the -9999 pixels would have made it negative


def test_every_tile_and_tile_size_uses_the_same_statistics(model, monkeypatch) -> None:
    net, cfg = model
    # Make the lattice path run on a small raster: a model grid over 16 px is sampled.
    monkeypatch.setattr(normalisation, "WHOLE_SIDE", 16)
    monkeypatch.setattr(normalisation, "WINDOW", 8)
    ds = mem(scene(100, 140, seed=6).astype(np.float32))
    a, _ = refine_array(net, cfg, ds, 3, tile_size=24)
    b, _ = refine_array(net, cfg, ds, 3, tile_size=1024)
    assert np.abs(a - b).max() < 1e-4 * float(np.abs(a).max())


def test_the_lattice_sample_agrees_with_the_whole_image(model, monkeypatch) -> None:
    _, cfg = model
    rng = np.random.default_rng(8)
    arr = rng.normal([[[90.0]], [[120.0]], [[60.0]]], 20.0, size=(3, 400, 400)).astype(np.float32)
    ds = mem(arr)
    grids = model_grids(ds, cfg, None)
    mean, std = image_statistics(ds, [1, 2, 3], grids)
    monkeypatch.setattr(normalisation, "WHOLE_SIDE", 16)
    monkeypatch.setattr(normalisation, "WINDOW", 16)
    lmean, lstd = image_statistics(ds, [1, 2, 3], grids)
    assert np.allclose(lmean, mean, atol=1.0)
    assert np.allclose(lstd, std, rtol=0.05)
    assert np.allclose(mean, [90, 120, 60], atol=1.0)


def test_a_training_window_is_normalised_like_the_whole_raster(model) -> None:
    """The fine-tune reads only the window around the drawn polygons: it must see the
    pixels as a refine of the whole raster does."""
    _, cfg = model
    ds = mem(scene(80, 100, seed=9).astype(np.float32))
    grids = model_grids(ds, cfg, None)
    full = read_model_window(
        ds, [1, 2, 3], grids, cfg, (0, 0, grids.model_width, grids.model_height)
    )
    part = read_model_window(ds, [1, 2, 3], grids, cfg, (10, 5, 30, 25))
    assert torch.allclose(part, full[:, 5:25, 10:30], atol=1e-5)


def test_a_fixed_model_is_fed_its_own_statistics(model) -> None:
    _, cfg = model
    fixed = dataclasses.replace(cfg, normalisation="model")
    ds = mem(scene(40, 40, seed=1).astype(np.float32))
    assert for_image(fixed, ds, [1, 2, 3], model_grids(ds, fixed, None)) is fixed


def test_an_image_with_almost_no_valid_pixel_is_a_clear_error(model) -> None:
    net, cfg = model
    arr = np.full((3, 64, 64), -1.0, dtype=np.float32)
    arr[:, :4, :4] = 100.0
    with pytest.raises(MapRefinerError, match="too few valid pixels"):
        refine_array(net, cfg, mem(arr, nodata=-1.0), 3)


def test_the_setting_is_saved_and_an_unknown_one_refused(model, tmp_path: Path) -> None:
    net, cfg = model
    save_model(net, cfg, tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors", "cpu")[1].normalisation == "image"
    d = cfg.to_dict()
    assert (
        ModelConfig.from_dict({k: v for k, v in d.items() if k != "normalisation"}).normalisation
        == "model"
    )
    d["normalisation"] = "percentile"
    with pytest.raises(MapRefinerError, match="normalisation 'percentile'"):
        ModelConfig.from_dict(d)
