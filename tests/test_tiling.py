"""Tiles stitch to the one-piece result, and the resampling they rely on is exact.

The central property of the engine: a raster refined in many small tiles gives
the same logits and class map as the raster refined in one tile, whatever its
size, its resolution relative to the model's, its CRS and the iteration count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import random_model, scene, write_image
from hypothesis import given, settings
from hypothesis import strategies as st
from osgeo import gdal
from torch.nn import functional as F

from map_refiner.engine.refine.pipeline import RefineParams, refine_array, refine_raster
from map_refiner.engine.refine.resample import (
    axis_band,
    axis_weights,
    resample_window,
    source_range,
)
from map_refiner.engine.refine.tiling import count_tiles, make_grids, plan_tiles

ONE_TILE = 1 << 20


def assert_same_result(tiled: np.ndarray, whole: np.ndarray, atol: float = 1e-4) -> None:
    """Logits within ``atol``; class maps equal except where the top two are tied."""
    assert tiled.shape == whole.shape
    diff = np.abs(tiled - whole).max()
    assert diff <= atol, f"tiled logits differ by {diff}"
    cls_t, cls_w = tiled.argmax(axis=-3), whole.argmax(axis=-3)
    top2 = np.sort(whole, axis=-3)
    margin = top2[..., -1, :, :] - top2[..., -2, :, :]
    differ = cls_t != cls_w
    assert not (differ & (margin > atol)).any(), f"{differ.sum()} class changes beyond ties"


def raster(
    h: int, w: int, res: float, seed: int, epsg: int = 32633, origin=(500000.0, 4000000.0)
) -> gdal.Dataset:
    gt = (origin[0], res, 0.0, origin[1], 0.0, -res)
    return write_image("", scene(h, w, seed=seed), gt, epsg, driver="MEM")


CASES = [
    # (height, width, input m, model m, iterations, tile model px)
    (203, 157, 0.3, 0.6, 5, 40),
    (97, 83, 1.0, 0.6, 1, 56),
    (157, 203, 0.5, 0.5, 0, 56),
    (101, 87, 0.5, 0.5, 12, 64),
    (96, 64, 1.0, 0.6, 12, 64),
    (130, 97, 0.3, 0.6, 0, 44),
    (37, 43, 3.0, 0.6, 5, 56),  # model 5x finer than the input
    (23, 29, 4.0, 0.5, 1, 56),  # model 8x finer than the input
    (12, 14, 4.0, 0.5, 0, 40),  # ... with the smallest halo
    (7, 9, 8.0, 0.5, 0, 40),  # model 16x finer: the way back is a 33-tap kernel
]


@pytest.mark.parametrize("h,w,res_in,res_model,iterations,tile", CASES)
def test_tiles_equal_one_piece(h, w, res_in, res_model, iterations, tile) -> None:
    net, cfg = random_model(("background", "building", "road"), resolution_m=res_model, seed=h + w)
    ds = raster(h, w, res_in, seed=h * w)
    grids = make_grids(w, h, res_in, res_in, res_model)
    assert count_tiles(grids, tile) >= 4
    tiled, valid_t = refine_array(net, cfg, ds, iterations, tile_size=tile)
    whole, valid_w = refine_array(net, cfg, ds, iterations, tile_size=ONE_TILE)
    assert tiled.shape == (3, h, w)
    assert valid_t.all() and valid_w.all()
    assert len(np.unique(whole.argmax(0))) >= 2  # a non-trivial map
    assert_same_result(tiled, whole)


def test_tiles_equal_one_piece_in_geographic_crs() -> None:
    step = 2e-5  # about 1.84 m x 2.22 m at 34 S: different scales along x and y
    ds = write_image(
        "", scene(61, 70, seed=5), (20.0, step, 0.0, -34.0, 0.0, -step), 4326, driver="MEM"
    )
    net, cfg = random_model(("background", "building"), resolution_m=1.0, seed=6)
    tiled, _ = refine_array(net, cfg, ds, 5, tile_size=48)
    whole, _ = refine_array(net, cfg, ds, 5, tile_size=ONE_TILE)
    assert_same_result(tiled, whole)


def test_trajectory_tiles_equal_one_piece() -> None:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=7)
    ds = raster(50, 61, 1.0, seed=8)
    tiled, _ = refine_array(net, cfg, ds, 4, tile_size=48, trajectory=True)
    whole, _ = refine_array(net, cfg, ds, 4, tile_size=ONE_TILE, trajectory=True)
    assert tiled.shape == (5, 2, 50, 61)
    assert_same_result(tiled, whole)
    last, _ = refine_array(net, cfg, ds, 4, tile_size=ONE_TILE)
    np.testing.assert_allclose(whole[-1], last, atol=1e-5)


def test_nodata_regions_tile_like_one_piece() -> None:
    arr = scene(80, 100, seed=9)
    arr[:, 20:45, 30:70] = 255  # scene() stays below 255
    ds = write_image(
        "", arr, (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5), 32633, nodata=255, driver="MEM"
    )
    net, cfg = random_model(resolution_m=0.6, seed=10)
    tiled, valid_t = refine_array(net, cfg, ds, 5, tile_size=40)
    whole, valid_w = refine_array(net, cfg, ds, 5, tile_size=ONE_TILE)
    np.testing.assert_array_equal(valid_t, valid_w)
    assert not valid_w[20:45, 30:70].any() and valid_w.sum() == 80 * 100 - 25 * 40
    assert_same_result(tiled, whole)


def test_refine_raster_small_tiles_write_the_same_files(tmp_path: Path) -> None:
    image = tmp_path / "in.tif"
    write_image(image, scene(123, 77, seed=11), (500000.0, 0.4, 0.0, 4000000.0, 0.0, -0.4))
    model = random_model(("background", "building", "road"), resolution_m=0.6, seed=12)
    outs = {}
    for tile in (40, ONE_TILE):
        p = RefineParams(
            image=image,
            out=tmp_path / f"c{tile}.tif",
            scores=tmp_path / f"s{tile}.tif",
            iterations=5,
            device="cpu",
            tile_size=tile,
        )
        res = refine_raster(p, model=model)
        outs[tile] = [gdal.Open(str(f)).ReadAsArray() for f in (p.out, p.scores)]
        assert res.tiles == (count_tiles(make_grids(77, 123, 0.4, 0.4, 0.6), tile))
    (cls_t, probs_t), (cls_w, probs_w) = outs[40], outs[ONE_TILE]
    assert len(np.unique(cls_w)) >= 2
    np.testing.assert_allclose(probs_t, probs_w, atol=2e-5)
    close = np.sort(probs_w, axis=0)
    tie = close[-1] - close[-2] < 1e-4
    assert ((cls_t == cls_w) | tie).all()


@pytest.mark.parametrize("w,h,tile", [(157, 203, 40), (1, 1, 40), (5000, 3, 512)])
def test_plan_covers_every_pixel_once(w: int, h: int, tile: int) -> None:
    grids = make_grids(w, h, 1.0, 0.7, 0.6)
    cover = np.zeros((h, w), np.int32)
    tiles = list(plan_tiles(grids, 5, tile))
    for t in tiles:
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.mx0 % 4 == 0 and t.my0 % 4 == 0
        assert 0 <= t.mx0 < t.mx1 <= grids.model_width
        assert 0 <= t.my0 < t.my1 <= grids.model_height
    assert (cover == 1).all()
    assert len(tiles) == count_tiles(grids, tile)


# --- resampling --------------------------------------------------------------------------

scales = st.floats(min_value=0.02, max_value=12.0, allow_nan=False)


@st.composite
def windows(draw):
    n_src = draw(st.integers(1, 400))
    scale = draw(scales)
    n_out = max(1, round(n_src * scale))
    start = draw(st.integers(0, n_out - 1))
    stop = draw(st.integers(start + 1, n_out))
    return n_src, scale, n_out, start, stop


@settings(max_examples=300, deadline=None)
@given(windows())
def test_axis_weights_are_a_partition_of_unity(win) -> None:
    n_src, scale, _, start, stop = win
    s0, s1 = source_range(start, stop, scale, n_src)
    assert 0 <= s0 < s1 <= n_src
    m = axis_weights(start, stop, scale, s0, s1, n_src)
    assert m.shape == (stop - start, s1 - s0)
    assert (m >= 0).all()
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(windows(), st.integers(0, 50))
def test_source_range_never_raises_even_beyond_the_grid(win, beyond) -> None:
    n_src, scale, n_out, start, stop = win
    start, stop = start + beyond, stop + beyond  # windows past the end clamp to the edge
    s0, s1 = source_range(start, stop, scale, n_src)
    m = axis_weights(start, stop, scale, s0, s1, n_src)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(windows())
def test_window_weights_are_rows_of_the_whole_matrix(win) -> None:
    n_src, scale, n_out, start, stop = win
    whole = axis_weights(0, n_out, scale, 0, n_src, n_src)
    s0, s1 = source_range(start, stop, scale, n_src)
    part = axis_weights(start, stop, scale, s0, s1, n_src)
    np.testing.assert_allclose(part, whole[start:stop, s0:s1], atol=1e-7)
    outside = np.delete(whole[start:stop], np.arange(s0, s1), axis=1)
    assert not outside.any()


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 60), st.integers(1, 60), scales, scales, st.floats(-1000, 1000, allow_nan=False)
)
def test_constant_image_stays_constant(h, w, sy, sx, value) -> None:
    oh, ow = max(1, round(h * sy)), max(1, round(w * sx))
    rows = axis_band(0, oh, sy, 0, h, h)
    cols = axis_band(0, ow, sx, 0, w, w)
    out = resample_window(torch.full((2, h, w), value), rows, cols)
    assert out.shape == (2, oh, ow)
    torch.testing.assert_close(
        out, torch.full_like(out, value), atol=1e-3 + 1e-5 * abs(value), rtol=0
    )


@settings(max_examples=100, deadline=None)
@given(windows(), windows(), st.integers(0, 10_000))
def test_banded_resampling_equals_the_dense_matrix_product(wy, wx, seed) -> None:
    (ny, sy, _, y0, y1), (nx, sx, _, x0, x1) = wy, wx
    sy0, sy1 = source_range(y0, y1, sy, ny)
    sx0, sx1 = source_range(x0, x1, sx, nx)
    data = torch.from_numpy(
        np.random.default_rng(seed).normal(size=(2, 3, sy1 - sy0, sx1 - sx0))
    ).float()
    rows, cols = axis_band(y0, y1, sy, sy0, sy1, ny), axis_band(x0, x1, sx, sx0, sx1, nx)
    dense = torch.from_numpy(rows.dense()) @ data @ torch.from_numpy(cols.dense()).T
    out = resample_window(data, rows, cols)
    assert out.shape == (2, 3, y1 - y0, x1 - x0)
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)


def test_resampling_refuses_a_window_of_the_wrong_size() -> None:
    rows = axis_band(0, 10, 1.0, 0, 10, 10)
    with pytest.raises(ValueError, match="weights expect 10"):
        resample_window(torch.zeros(1, 12, 10), rows, rows)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 30), st.integers(2, 30), st.integers(1, 6), st.integers(0, 10_000))
def test_integer_upsampling_equals_torch_bilinear(h, w, factor, seed) -> None:
    img = torch.from_numpy(np.random.default_rng(seed).normal(size=(1, 2, h, w))).float()
    rows = axis_band(0, h * factor, float(factor), 0, h, h)
    cols = axis_band(0, w * factor, float(factor), 0, w, w)
    ours = resample_window(img, rows, cols)
    ref = F.interpolate(img, scale_factor=factor, mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        ours[..., factor:-factor, factor:-factor],
        ref[..., factor:-factor, factor:-factor],
        atol=1e-5,
        rtol=1e-5,
    )
    # Both clamp at the edges, so they agree there too.
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_downsampling_is_area_aware() -> None:
    # Halving a 1-pixel checkerboard must not alias into stripes.
    board = torch.from_numpy(np.indices((40, 40)).sum(0) % 2).float()[None]
    rows = axis_band(0, 20, 0.5, 0, 40, 40)
    cols = axis_band(0, 20, 0.5, 0, 40, 40)
    out = resample_window(board, rows, cols)[0, 2:-2, 2:-2]
    torch.testing.assert_close(out, torch.full_like(out, 0.5), atol=1e-5, rtol=0)


@pytest.mark.realdata
def test_bundled_model_tiles_equal_one_piece_on_real_imagery() -> None:
    from helpers_data import real_data

    from map_refiner.engine.modelfile.io import DEFAULT_MODEL_PATH, load_model
    from map_refiner.engine.rasters.read import open_raster

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("the bundled default model is not in this checkout")
    src = open_raster(real_data("austin", "austin_dev_rgb.tif"))
    ds = gdal.Translate("", src, format="MEM", srcWin=[100, 150, 203, 157])  # 0.3 m, UTM
    net, cfg = load_model()
    tiled, _ = refine_array(net, cfg, ds, 5, tile_size=48)
    whole, _ = refine_array(net, cfg, ds, 5, tile_size=ONE_TILE)
    assert_same_result(tiled, whole)
    assert 0.02 < (whole.argmax(0) == 1).mean() < 0.98  # buildings and background both found
