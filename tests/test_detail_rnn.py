"""A model's own detail RNN (ModelConfig.detail_iterations): the RNN trained for the
finer grid runs the detail iterations, by default on imagery at least 1.8x finer than
the model's grid; files with one round-trip as format 2, files without stay format 1;
and its fit (training/detail_fit.py) learns on the fine grid without touching its base."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import random_model, scene, write_image
from osgeo import gdal
from safetensors import safe_open

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.header import CONFIG_KEY
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.progress import make_reporter
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.refine.tiling import DETAIL_AUTO_FINER, auto_detail_iterations
from map_refiner.training.detail_fit import DetailFitParams, DetailTile, fit_detail_rnn

gdal.UseExceptions()


def with_detail(seed: int = 41, iterations: int = 2):
    """A random model with a detail RNN: a copy of its RNN, its update's output layer
    scaled so that it differs from the model-grid RNN."""
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=seed)
    cfg = copy.deepcopy(cfg)
    cfg.detail_iterations = iterations
    cfg.validate()
    net.detail_rnn = copy.deepcopy(net.rnn)
    with torch.no_grad():
        net.detail_rnn.mlp_out.weight.mul_(-3.0)
    return net, cfg


def image_at(path: Path, pixel_m: float, size: int = 120) -> Path:
    write_image(path, scene(size, size, seed=42), (600000.0, pixel_m, 0.0, 5e6, 0.0, -pixel_m))
    return path


def refine(image: Path, out: Path, model, **kw) -> tuple[np.ndarray, str]:
    kw.setdefault("device", "cpu")
    kw.setdefault("iterations", 2)
    refine_raster(RefineParams(image=image, out=out, **kw), model=model)
    ds = gdal.Open(str(out))
    return ds.ReadAsArray(), ds.GetRasterBand(1).GetDescription()


def test_a_file_with_a_detail_rnn_round_trips_as_format_2(tmp_path: Path) -> None:
    net, cfg = with_detail()
    path = save_model(net, cfg, tmp_path / "d.safetensors")
    with safe_open(str(path), framework="pt") as f:
        names = set(f.keys())
    assert {n for n in names if n.startswith("detail_rnn.")} == {
        "detail_rnn." + k for k in net.rnn.state_dict()
    }
    loaded, cfg2 = load_model(path)
    assert cfg2.detail_iterations == 2 and cfg2.format_version == 2
    assert loaded.detail_rnn is not None
    for k, v in net.detail_rnn.state_dict().items():
        assert torch.equal(loaded.detail_rnn.state_dict()[k], v)
    plain, pcfg = random_model(("background", "building"), resolution_m=0.6, seed=41)
    path = save_model(plain, pcfg, tmp_path / "p.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert not any(k.startswith("detail_rnn.") for k in f.keys())
        assert json.loads(f.metadata()[CONFIG_KEY])["format_version"] == 1
    loaded, cfg3 = load_model(path)
    assert loaded.detail_rnn is None and cfg3.format_version == 1


def test_the_detail_iterations_run_the_detail_rnn(tmp_path: Path) -> None:
    """The same refine with the detail RNN replaced by the model's own RNN gives the map of
    a model without one; with the detail RNN it differs."""
    image = image_at(tmp_path / "drone.tif", 0.15)
    net, cfg = with_detail()
    own = copy.deepcopy(net)
    own.detail_rnn = copy.deepcopy(net.rnn)
    bare = copy.deepcopy(net)
    bare.detail_rnn = None
    kw = dict(detail_iterations=2)
    same_a, _ = refine(image, tmp_path / "own.tif", (own, cfg), **kw)
    same_b, _ = refine(image, tmp_path / "bare.tif", (bare, cfg), **kw)
    other, _ = refine(image, tmp_path / "detail.tif", (net, cfg), **kw)
    assert np.array_equal(same_a, same_b)
    assert not np.array_equal(same_a, other)


@pytest.mark.parametrize(
    "pixel_m,expected",
    [(0.15, 2), (0.3, 2), (0.33, 2), (0.34, 0), (0.5, 0)],  # 0.6 / 0.34 < 1.8
)
def test_by_default_the_model_s_own_run_on_imagery_1_8x_finer(
    tmp_path: Path, pixel_m: float, expected: int
) -> None:
    assert auto_detail_iterations(2, pixel_m, pixel_m, 0.6) == expected
    image = image_at(tmp_path / "im.tif", pixel_m, size=80)
    _, text = refine(image, tmp_path / "auto.tif", with_detail())
    assert ("then 2 at" in text) == bool(expected), text


def test_asked_for_none_or_for_the_cnn_s_map_no_detail_runs(tmp_path: Path) -> None:
    image = image_at(tmp_path / "drone.tif", 0.15)
    model = with_detail()
    _, off = refine(image, tmp_path / "off.tif", model, detail_iterations=0)
    _, cnn = refine(image, tmp_path / "cnn.tif", model, iterations=0)
    assert "then" not in off and "then" not in cnn
    _, three = refine(image, tmp_path / "three.tif", model, detail_iterations=3)
    assert "then 3 at" in three  # a number asked for wins over the model's own
    # A model without a detail RNN runs none by default.
    plain = random_model(("background", "building"), resolution_m=0.6, seed=41)
    _, none = refine(image, tmp_path / "plain.tif", plain)
    assert "then" not in none
    assert auto_detail_iterations(0, 0.15, 0.15, 0.6) == 0 and DETAIL_AUTO_FINER == 1.8


def test_a_detail_grid_without_detail_iterations_is_refused(tmp_path: Path) -> None:
    image = image_at(tmp_path / "im.tif", 0.5, size=60)
    with pytest.raises(MapRefinerError, match="not 1.8x finer than the model's grid"):
        refine(image, tmp_path / "o.tif", with_detail(), detail_resolution_m=0.2)
    assert not (tmp_path / "o.tif").exists()


def _square_tile(seed: int) -> DetailTile:
    """A bright square on a dark image, its start a blurred, shifted guess of it."""
    g = torch.Generator().manual_seed(seed)
    h = w = 160
    labels = torch.zeros(h, w, dtype=torch.long)
    labels[40:120, 50:110] = 1
    image = torch.full((3, h, w), -1.0) + 0.1 * torch.randn(3, h, w, generator=g)
    image[:, 40:120, 50:110] += 2.0
    guess = torch.zeros(h, w)
    guess[44:124, 54:114] = 1.0  # shifted by 4 fine pixels
    guess = torch.nn.functional.avg_pool2d(guess[None, None], 9, 1, 4)[0, 0]
    start = torch.stack([1.0 - 2.0 * guess, 2.0 * guess - 1.0])
    return DetailTile("square", image, start, labels)


def test_a_detail_fit_learns_on_the_fine_grid_and_leaves_its_base_alone() -> None:
    net, _ = random_model(("background", "building"), resolution_m=0.6, seed=3)
    before = {k: v.clone() for k, v in net.rnn.state_dict().items()}
    tile = _square_tile(0)
    params = DetailFitParams(steps=80, lr=3e-3, patch_size=64, batch_size=4)
    rnn, losses = fit_detail_rnn(net.rnn, [tile], params, make_reporter(None, None))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    assert all(torch.equal(before[k], v) for k, v in net.rnn.state_dict().items())
    assert not any(p.requires_grad for p in rnn.parameters())
    with pytest.raises(MapRefinerError, match="larger accurately labelled areas"):
        fit_detail_rnn(net.rnn, [tile], DetailFitParams(patch_size=160), make_reporter(None, None))


def test_the_detail_pass_keeps_the_model_grid_s_sure_pixels() -> None:
    """keep_sure: where the model grid's map is at least 0.9 sure its scores stay, the
    detail iterations' elsewhere (outlines are redrawn, confident interiors are not)."""
    from map_refiner.engine.refine.predict import DETAIL_KEEPS_SURE, keep_sure

    start = torch.tensor([[[3.0, 0.5, -3.0]], [[-3.0, 0.0, 3.0]]])  # sure, unsure, sure
    out = torch.tensor([[[-5.0, -5.0, 5.0]], [[5.0, 5.0, -5.0]]])  # flips all three
    kept = keep_sure(start, out, DETAIL_KEEPS_SURE)
    assert torch.equal(kept[:, 0, 0], start[:, 0, 0]) and torch.equal(kept[:, 0, 2], start[:, 0, 2])
    assert torch.equal(kept[:, 0, 1], out[:, 0, 1])
    assert torch.equal(keep_sure(start, out, 1.01), out)  # nothing is that sure
