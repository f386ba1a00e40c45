"""A prior off by different amounts in different places is moved by a shift varying
across the image; a prior off by one shift still gets that one shift; no evidence,
no field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal
from test_prior import GT, write_mask
from test_prior_registration import model_sees, probs_of, showing

from map_refiner.cli import main as cli_main
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.grid import grid_of
from map_refiner.engine.refine import refine_pass
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.refine.prior import Prior
from map_refiner.engine.refine.registration import (
    AT_THE_EDGE,
    REGION_REACH,
    ShiftField,
    agreement,
    best_offset,
    beyond_the_search,
    region_agreements,
    region_peak,
    region_shifts,
)

gdal.UseExceptions()
H, W = 120, 160


def buildings(h: int = H, w: int = W, n: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), bool)
    for _ in range(n):
        y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
        m[y : y + rng.integers(4, 10), x : x + rng.integers(4, 10)] = True
    return m


def two_halves(truth: np.ndarray, left: int, right: int) -> np.ndarray:
    """``truth`` drawn ``left`` px east on its left half and ``right`` px on its right."""
    half = truth.shape[1] // 2
    out = np.roll(truth, right, axis=1)
    out[:, :half] = np.roll(truth, left, axis=1)[:, :half]
    return out.astype(np.int32)


def decide(  # noqa: ANN201
    prior: np.ndarray, truth: np.ndarray, probs: np.ndarray | None = None, pixel_m: float = 0.6
):
    probs = probs_of(truth) if probs is None else probs
    valid = np.ones(truth.shape, bool)
    whole = best_offset([agreement(prior, probs, valid, 8)], pixel_m=pixel_m)
    return whole, region_shifts(region_agreements(prior, probs, valid, 8), pixel_m, whole)


def test_halves_drawn_apart_get_their_own_shifts() -> None:
    truth = buildings()
    whole, regions = decide(two_halves(truth, 3, -3), truth)
    assert regions is not None and len(regions) == 4
    for r in regions:
        assert r.own and abs(r.dy) < 0.5, r
        assert abs(r.dx - (-3 if r.x < W / 2 else 3)) < 0.5, r


def test_one_shift_for_a_prior_off_as_a_whole_and_none_without_evidence() -> None:
    truth = buildings(seed=1)
    whole, regions = decide(np.roll(truth, (2, -3), axis=(0, 1)).astype(np.int32), truth)
    assert regions is None and whole.applied
    assert abs(whole.dy + 2) < 0.5 and abs(whole.dx - 3) < 0.5
    whole, regions = decide(truth.astype(np.int32), truth)  # right: left alone
    assert regions is None and not whole.applied
    flat = np.stack([np.full(truth.shape, 0.5)] * 2).astype(np.float32)
    whole, regions = decide(two_halves(truth, 3, -3), truth, flat)  # no evidence
    assert regions is None and not whole.applied
    noise = np.random.default_rng(2).random(truth.shape) < 0.3
    whole, regions = decide(noise.astype(np.int32), truth)  # a prior unlike the image
    assert regions is None and not whole.applied


def test_on_coarse_pixels_regions_a_pixel_apart_get_one_shift() -> None:
    """On 2.4 m pixels a region's peak is found to about half a pixel, so halves one
    pixel (2.4 m) apart are one shift (they were a field under the 2 m rule alone);
    two pixels apart they are still a field, and on 0.3 m pixels 2.4 m apart too."""
    truth = buildings(seed=3)
    for pixel_m, (left, right), field in (
        (2.4, (2, 1), False),
        (2.4, (1, -1), True),
        (0.3, (4, -4), True),
        (0.3, (2, -1), False),
    ):
        whole, regions = decide(two_halves(truth, left, right), truth, pixel_m=pixel_m)
        assert (regions is not None) == field, (pixel_m, left, right, regions)
        if not field:
            assert whole.applied == (abs(whole.dx) * pixel_m >= 0.75), whole


def test_a_field_moves_each_part_of_the_prior_by_its_own_shift(tmp_path: Path) -> None:
    mask = np.zeros((40, 100), np.uint8)
    mask[10:20, 10:20] = 1
    mask[10:20, 80:90] = 1
    prior = Prior(write_mask(tmp_path / "p.tif", mask, GT), 2)
    write_image(tmp_path / "img.tif", scene(40, 100, seed=1), GT)
    grid = grid_of(gdal.Open(str(tmp_path / "img.tif")))
    x0, y0 = GT[0], GT[3]
    # 3 px (1.8 m) west on the left quarter, 2 px (1.2 m) east and 1 px south on the right
    prior.field = ShiftField.from_points(
        [
            (x0 + 15, y0 - 6, -1.8, 0.0),
            (x0 + 15, y0 - 18, -1.8, 0.0),
            (x0 + 51, y0 - 6, 1.2, -0.6),
            (x0 + 51, y0 - 18, 1.2, -0.6),
        ]
    )
    moved = prior.classes_at(grid)
    assert moved[10:20, 7:17].all() and moved[11:21, 82:92].all()
    assert (moved == 1).sum() == 200
    # a probability prior (one float band per class) is moved the same way
    ds = gdal.GetDriverByName("GTiff").Create(
        str(tmp_path / "probs.tif"), 100, 40, 2, gdal.GDT_Float32
    )
    ds.SetGeoTransform(GT)
    ds.SetProjection(gdal.Open(str(tmp_path / "p.tif")).GetProjection())
    ds.GetRasterBand(1).WriteArray(1.0 - mask)
    ds.GetRasterBand(2).WriteArray(mask.astype(np.float32))
    ds = None
    soft = Prior(tmp_path / "probs.tif", 2)
    soft.field = prior.field
    assert soft.is_probability
    np.testing.assert_array_equal(soft.classes_at(grid), moved)


def test_a_refine_puts_back_both_halves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With a model whose map is the truth, a prior drawn 3 px east on its left half and
    3 px west on its right is moved back in both halves; one shift cannot do that."""
    net, cfg = random_model(resolution_m=0.6, seed=2)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    truth = buildings(seed=3)
    image = tmp_path / "img.tif"
    write_image(image, showing(truth), GT)
    prior = write_mask(tmp_path / "prior.tif", two_halves(truth, 3, -3).astype(np.uint8), GT)

    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(truth))
    params = {"image": image, "model_path": model, "device": "cpu", "prior": prior}
    half = W // 2
    margin = np.s_[:, 8 : W - 8]  # where the halves' own content stays on the raster

    def agree(path: Path) -> tuple[float, float]:
        same = ((gdal.Open(str(path)).ReadAsArray() == 1) == truth)[margin]
        return same[:, : half - 8].mean(), same[:, half - 8 :].mean()

    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert res.prior_note == "moved by 1.8 m, varying across the image (4 regions)"
    left, right = agree(tmp_path / "a.tif")
    assert left > 0.97 and right > 0.97, (left, right)
    one = RefineParams(out=tmp_path / "b.tif", iterations=0, prior_regions=False, **params)
    assert not refine_raster(one).prior_note.startswith("moved by")
    assert min(agree(tmp_path / "b.tif")) < 0.95
    cli_main(
        ["refine", str(image), "--out", str(tmp_path / "c.tif"), "--model", str(model)]
        + ["--prior", str(prior), "--iterations", "0", "--one-prior-shift"]
    )
    assert "varying" not in capsys.readouterr().out
    assert (
        gdal.Open(str(tmp_path / "c.tif")).ReadAsArray()
        == gdal.Open(str(tmp_path / "b.tif")).ReadAsArray()
    ).all()


def test_a_small_regions_surface_reaches_an_eighth_of_its_side() -> None:
    """Regions much smaller than the search look only REGION_REACH of their side away
    (shifted further, their prior overlaps too little of themselves to measure), and a
    peak at that cut edge is not reported as the search's edge."""
    truth = buildings(seed=5)
    valid = np.ones(truth.shape, bool)
    regions = region_agreements(truth.astype(np.int32), probs_of(truth), valid, 40)
    reach = int(REGION_REACH * min(H // 2, W // 2))  # quarters of 60 x 80 px: 7
    assert all(c.shape == (2 * reach + 1, 2 * reach + 1) for _, _, c in regions)
    assert [
        c.shape for _, _, c in region_agreements(truth.astype(np.int32), probs_of(truth), valid, 5)
    ] == [(11, 11)] * 4
    far = np.roll(truth, 9, axis=1).astype(np.int32)  # beyond a quarter's reach (7)
    cut = region_agreements(far, probs_of(truth), valid, 40)
    assert any(region_peak(c) == AT_THE_EDGE for _, _, c in cut)
    assert beyond_the_search("left in place", cut, 20.0, radius=40) == "left in place"
