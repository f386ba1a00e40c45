"""Every number has bounds, checked before work starts: iterations, a model's ground
resolution, the image's pixel size against the model's, and the size of a refine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model, write_image

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.limits import (
    MAX_COARSER,
    MAX_ITERATIONS,
    MAX_MODEL_PIXELS,
    check_iterations,
    check_model_resolution,
    check_scale,
    check_work,
    work_seconds,
)
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster


@pytest.mark.parametrize("bad", [-1, MAX_ITERATIONS + 1, 10**20, 1e9, "x", None])
def test_iterations_out_of_bounds_are_refused(bad) -> None:
    with pytest.raises(MapRefinerError, match="iterations"):
        check_iterations(bad)


def test_iterations_in_bounds_pass() -> None:
    assert [check_iterations(v) for v in (0, 5, MAX_ITERATIONS)] == [0, 5, MAX_ITERATIONS]


@pytest.mark.parametrize("bad", [1e-9, 1e-300, 0.0, -1.0, float("nan"), float("inf"), 1e6])
def test_a_model_resolution_out_of_bounds_is_refused(bad: float) -> None:
    with pytest.raises(MapRefinerError, match="ground resolution"):
        check_model_resolution(bad)


def test_a_model_file_claiming_a_nanometre_grid_is_refused_on_load(tmp_path: Path) -> None:
    """Such a file took 11 GB in 30 s; now loading it is a one-line error."""
    from map_refiner.engine.modelfile.io import load_model

    net, cfg = random_model(resolution_m=0.6, seed=1)
    cfg.ground_resolution_m = 1e-9
    path = tmp_path / "nano.safetensors"
    try:
        save_model(net, cfg, path)
    except MapRefinerError:
        return  # refused already when saving: as good
    with pytest.raises(MapRefinerError, match="ground resolution"):
        load_model(path)


def test_a_model_file_asking_for_a_billion_iterations_is_refused(tmp_path: Path) -> None:
    from map_refiner.engine.modelfile.io import load_model

    net, cfg = random_model(resolution_m=0.6, seed=1)
    cfg.default_iterations = 10**9
    path = tmp_path / "long.safetensors"
    try:
        save_model(net, cfg, path)
    except MapRefinerError:
        return
    with pytest.raises(MapRefinerError, match="iterations"):
        load_model(path)


def test_scale_between_image_and_model() -> None:
    check_scale(0.3, 0.3, 0.6)  # aerial
    check_scale(0.075, 0.075, 0.6)  # drone, 8x finer
    check_scale(2.8, 2.3, 0.6)  # Swellendam's 2.3-2.8 m
    check_scale(8.0, 8.0, 0.5)  # the tiling tests' 16x
    with pytest.raises(MapRefinerError, match="coarser than"):
        check_scale(1000.0, 1000.0, 0.6)
    with pytest.raises(MapRefinerError, match="finer"):
        check_scale(1e-4, 1e-4, 0.6)
    with pytest.raises(MapRefinerError, match="georeferencing"):
        check_scale(float("nan"), 1.0, 0.6)
    check_scale(MAX_COARSER * 0.6, 0.6, 0.6)


def test_a_raster_of_kilometre_pixels_is_refused_before_any_work(tmp_path: Path) -> None:
    """A 10 x 10 raster of 1 km pixels on a 0.6 m model ran for about 50 minutes."""
    net, cfg = random_model(resolution_m=0.6, seed=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    img = np.full((3, 10, 10), 100, np.uint8)
    image = tmp_path / "km.tif"
    write_image(image, img, (500000.0, 1000.0, 0.0, 4000000.0, 0.0, -1000.0))
    out = tmp_path / "out.tif"
    with pytest.raises(MapRefinerError, match="coarser than"):
        refine_raster(RefineParams(image=image, out=out, model_path=model, device="cpu"))
    assert not out.exists()


def test_a_refine_estimated_at_hours_needs_allow_large() -> None:
    check_work(MAX_MODEL_PIXELS, allow_large=False)
    with pytest.raises(MapRefinerError, match="allow-large"):
        check_work(MAX_MODEL_PIXELS + 1, allow_large=False)
    check_work(10 * MAX_MODEL_PIXELS, allow_large=True)


def test_the_detail_iterations_grid_counts_at_its_own_rate() -> None:
    """Detail iterations' finer grid is no model grid: its pixels cost less each (no CNN,
    fewer iterations), and they add to the model grid's in one estimate."""
    # 10 billion fine pixels of one iteration: under the hour a model grid's 5 billion take
    check_work(0, False, detail_pixels=2 * MAX_MODEL_PIXELS, detail_iterations=1)
    half = MAX_MODEL_PIXELS // 2
    with pytest.raises(MapRefinerError) as exc:
        check_work(half, False, detail_pixels=MAX_MODEL_PIXELS, detail_iterations=5)
    message = exc.value.message
    assert (
        "2.5 billion pixels on the model's grid and 5.0 billion on the finer grid of its 5 "
        "detail iterations" in message
    )
    hours = round(work_seconds(half, MAX_MODEL_PIXELS, 5) / 3600)
    assert f": about {hours} hour" in message and "fewer detail iterations" in message
    check_work(half, True, detail_pixels=MAX_MODEL_PIXELS, detail_iterations=5)
    with pytest.raises(MapRefinerError) as exc:  # no detail: the message as before
        check_work(MAX_MODEL_PIXELS + 1, False)
    assert "billion pixels on the model's grid: about 1 hour on" in exc.value.message


def test_refine_refuses_iterations_past_the_bound(tmp_path: Path) -> None:
    net, cfg = random_model(resolution_m=0.6, seed=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    img = np.full((3, 32, 32), 100, np.uint8)
    image = tmp_path / "i.tif"
    write_image(image, img, (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6))
    with pytest.raises(MapRefinerError, match="iterations"):
        refine_raster(
            RefineParams(
                image=image,
                out=tmp_path / "o.tif",
                model_path=model,
                iterations=10**20,
                device="cpu",
            )
        )
    assert not (tmp_path / "o.tif").exists()


def test_a_model_with_nan_weights_is_refused_on_load(tmp_path: Path) -> None:
    """It gave an all-background map with exit 0."""
    import torch

    from map_refiner.engine.modelfile.io import load_model, write_safetensors

    net, cfg = random_model(resolution_m=0.6, seed=1)
    good = save_model(net, cfg, tmp_path / "good.safetensors")
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(good))
    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
    key = next(k for k in tensors if k.endswith("weight"))
    tensors[key][..., 0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    write_safetensors({k: v.contiguous() for k, v in tensors.items()}, bad, meta)
    with pytest.raises(MapRefinerError, match="not finite"):
        load_model(bad)
    assert torch.isnan(load_file(str(bad))[key]).any()  # the file really held a NaN


def test_a_diverged_model_is_never_saved(tmp_path: Path) -> None:
    """``--lr 1e30`` saved a NaN model."""
    import torch

    net, cfg = random_model(resolution_m=0.6, seed=1)
    with torch.no_grad():
        next(net.parameters()).fill_(float("inf"))
    out = tmp_path / "diverged.safetensors"
    with pytest.raises(MapRefinerError, match="diverged"):
        save_model(net, cfg, out)
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize("field, value", [("mean", float("nan")), ("std", float("inf"))])
def test_a_non_finite_normalisation_is_refused(field: str, value: float) -> None:
    _, cfg = random_model(resolution_m=0.6, seed=1)
    getattr(cfg, field)[0] = value
    with pytest.raises(MapRefinerError, match="not finite"):
        cfg.validate()


def test_more_classes_than_an_8_bit_map_holds_is_refused() -> None:
    """Class 255 would collide with the class map's nodata."""
    from map_refiner.engine.modelfile.config import ModelConfig, make_classes

    ModelConfig(classes=make_classes([f"c{i}" for i in range(255)])).validate()
    with pytest.raises(MapRefinerError, match="at most 255 classes"):
        ModelConfig(classes=make_classes([f"c{i}" for i in range(256)])).validate()
