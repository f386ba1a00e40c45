"""A prior shifted as a whole is moved back onto the image before the RNN starts from
it, and its own pixels stay where the refined map does not contradict them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import random_model, scene, write_image
from osgeo import gdal
from test_prior import GT, write_mask

from map_refiner.cli import main as cli_main
from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.grid import grid_of
from map_refiner.engine.refine import refine_pass
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.refine.predict import WindowResult
from map_refiner.engine.refine.prior import Prior, keep_prior
from map_refiner.engine.refine.registration import (
    MIN_SHIFT_M,
    PLACE_CORRELATION,
    agreement,
    agreement_and_norms,
    best_offset,
    peak_correlation,
    peak_gain,
    unplaceable,
)

gdal.UseExceptions()


def blobs(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), bool)
    for _ in range(12):
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        m[y : y + rng.integers(4, 12), x : x + rng.integers(4, 12)] = True
    return m


def showing(truth: np.ndarray, seed: int = 7) -> np.ndarray:
    """An image whose roofs are ``truth``: bright blocks on a darker blocky ground, so
    that the prior's outlines sit on the image's edges where the truth lies (the edge
    check of a prior's move, registration.edge_ratio, reads them)."""
    ground = scene(*truth.shape, seed=seed).astype(np.int32) // 2
    roofs = 200 + np.random.default_rng(seed).integers(0, 30, size=ground.shape)
    return np.where(truth[None], roofs, ground).astype(np.uint8)


def probs_of(mask: np.ndarray) -> np.ndarray:
    p = np.where(mask, 0.85, 0.15)
    return np.stack([1 - p, p]).astype(np.float32)


def model_sees(truth: np.ndarray):  # noqa: ANN201
    """A stand-in for predict_tile whose refined map is ``truth`` (a building mask on the
    image grid), sure of it: registration then measures the prior against the truth."""

    def predict(net, config, ds, bands, grids, tile, *args, **kw) -> WindowResult:  # noqa: ANN001
        win = truth[tile.y0 : tile.y1, tile.x0 : tile.x1]
        p = torch.from_numpy(probs_of(win))
        return WindowResult(torch.log(p), np.ones(win.shape, bool))

    return predict


def test_the_shift_that_fits_is_found_to_a_fraction_of_a_pixel() -> None:
    truth = blobs(120, 140)
    prior = np.roll(truth, (4, -3), axis=(0, 1)).astype(np.int32)  # drawn 4 down, 3 left
    surface = agreement(prior, probs_of(truth), np.ones(truth.shape, bool), radius=8)
    off = best_offset([surface], pixel_m=0.5)
    assert off.applied, off.why
    assert abs(off.dy - -4) < 0.5 and abs(off.dx - 3) < 0.5, off
    assert off.metres == pytest.approx(2.5, abs=0.3)


def test_a_right_prior_small_shifts_and_no_evidence_are_left_alone() -> None:
    truth = blobs(120, 140, seed=1)
    valid = np.ones(truth.shape, bool)
    right = agreement(truth.astype(np.int32), probs_of(truth), valid, radius=8)
    assert not best_offset([right], pixel_m=0.5).applied
    one = agreement(np.roll(truth, 1, axis=1).astype(np.int32), probs_of(truth), valid, 8)
    small = best_offset([one], pixel_m=0.5)  # 0.5 m: under MIN_SHIFT_M
    assert not small.applied and small.metres < MIN_SHIFT_M and "within" in small.why
    assert small.why.startswith("left in place")
    flat = np.stack([np.full(truth.shape, 0.5)] * 2).astype(np.float32)
    assert not best_offset([agreement(truth.astype(np.int32), flat, valid, 8)], 0.5).applied
    far = agreement(np.roll(truth, 20, axis=1).astype(np.int32), probs_of(truth), valid, 8)
    assert not best_offset([far], pixel_m=0.5).applied  # beyond the search: no clear peak
    assert not best_offset([], pixel_m=0.5).applied


def test_a_shifted_prior_is_read_where_it_belongs(tmp_path: Path) -> None:
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 1
    path = write_mask(tmp_path / "p.tif", mask, GT)
    write_image(tmp_path / "img.tif", scene(40, 50, seed=1), GT)
    grid = grid_of(gdal.Open(str(tmp_path / "img.tif")))
    prior = Prior(path, 2)
    here = prior.classes_at(grid)
    prior.shift = (1.2, -0.6)  # 2 pixels east, 1 south
    moved = prior.classes_at(grid)
    np.testing.assert_array_equal(moved[11:21, 12:32], here[10:20, 10:30])
    assert (moved == 1).sum() == (here == 1).sum()


def test_the_prior_stays_where_the_map_allows_it() -> None:
    prior = np.array([[1, 1, 0, -1]], np.int32)
    cls = np.array([[0, 0, 1, 0]], np.uint8)
    # probability of class 1 per pixel: 0.3, 0.05, 0.95, 0.5
    p1 = np.array([[0.3, 0.05, 0.95, 0.5]])
    logits = torch.from_numpy(np.log(np.stack([1 - p1, p1]))).float()
    valid = np.array([[True, True, True, True]])
    changed = keep_prior(prior, logits, cls, valid, at_least=0.1)
    # pixel 0: the prior's building has 0.3 >= 0.1: kept; pixel 1: 0.05, the map wins;
    # pixel 2: the prior's background has 0.05 < 0.1: the map wins; pixel 3: no prior
    assert cls.tolist() == [[1, 0, 1, 0]] and changed == 1
    # session 25: the prior's objects (every class but background) kept down to 0.02:
    # pixel 1's building (0.05) now stays; its background (pixel 2, 0.05) still gives way
    cls = np.array([[0, 0, 1, 0]], np.uint8)
    changed = keep_prior(prior, logits, cls, valid, 0.1, objects=0.02, background=0)
    assert cls.tolist() == [[1, 1, 1, 0]] and changed == 2
    # without a background class every class keeps at_least
    cls = np.array([[0, 0, 1, 0]], np.uint8)
    keep_prior(prior, logits, cls, valid, 0.1, objects=0.02, background=None)
    assert cls.tolist() == [[1, 0, 1, 0]]


def drawn_east(tmp_path: Path, px: int, shown: bool = True) -> tuple[np.ndarray, dict]:
    """The registration tests' job: buildings ``truth`` on an 80 x 100 px image at
    0.6 m that shows them, a random model, and the truth drawn ``px`` pixels east as
    the prior; returns the truth and the refine's parameters. ``shown`` False: an image
    unrelated to the truth, where a random model's map means nothing."""
    net, cfg = random_model(resolution_m=0.6, seed=2)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    truth = blobs(80, 100, seed=3)
    image = tmp_path / "img.tif"
    write_image(image, showing(truth) if shown else scene(80, 100, seed=7), GT)
    prior = write_mask(tmp_path / "prior.tif", np.roll(truth, px, axis=1).astype(np.uint8), GT)
    return truth, {"image": image, "model_path": model, "device": "cpu", "prior": prior}


def test_a_refine_moves_a_shifted_prior_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """With a model whose map is the truth, a prior drawn 3 px east (1.8 m) is moved
    1.8 m west, and the refined map is the truth; --no-prior-shift leaves it."""
    truth, params = drawn_east(tmp_path, 3)
    image, model, prior = params["image"], params["model_path"], params["prior"]
    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(truth))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert "moved 1.8 m west and 0.0 m" in res.prior_note, res.prior_note
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_register=False, **params)
    )
    assert res.prior_note == "left in place (not registered)"
    assert ((gdal.Open(str(tmp_path / "b.tif")).ReadAsArray() == 1) == truth).mean() < 0.97
    cli_main(
        ["refine", str(image), "--out", str(tmp_path / "c.tif"), "--model", str(model)]
        + ["--prior", str(prior), "--iterations", "0"]
    )
    assert "prior: moved 1.8 m west" in capsys.readouterr().out


def test_a_prior_further_off_than_the_search_is_left_and_the_note_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A prior drawn 20 px east (12 m): the default 10 m search leaves it in place and
    says a wider search looks further; --prior-search 15 moves it back; 7.2 m off, the
    default finds it and a 5 m search (the default before session 15) does not."""
    truth, params = drawn_east(tmp_path, 20)
    image, model, prior = params["image"], params["model_path"], params["prior"]
    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(truth))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert res.prior_note.startswith("left in place"), res.prior_note
    assert "at the edge of the search (10 m)" in res.prior_note
    assert "a wider prior search" in res.prior_note
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_search_m=15, **params)
    )
    assert "moved 12.0 m west and 0.0 m" in res.prior_note, res.prior_note
    assert "edge" not in res.prior_note
    out = gdal.Open(str(tmp_path / "b.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99
    with pytest.raises(MapRefinerError, match="prior search"):
        refine_raster(RefineParams(out=tmp_path / "c.tif", prior_search_m=0, **params))
    assert not (tmp_path / "c.tif").exists()
    cli_main(
        ["refine", str(image), "--out", str(tmp_path / "d.tif"), "--model", str(model)]
        + ["--prior", str(prior), "--iterations", "0", "--prior-search", "15"]
    )
    assert "prior: moved 12.0 m west" in capsys.readouterr().out
    rc = cli_main(["refine", str(image), "--out", str(tmp_path / "e.tif"), "--prior-search", "60"])
    assert rc == 2 and "--prior-search must be between" in capsys.readouterr().err
    near = write_mask(tmp_path / "near.tif", np.roll(truth, 12, axis=1).astype(np.uint8), GT)
    near_params = {**params, "prior": near}
    res = refine_raster(RefineParams(out=tmp_path / "f.tif", iterations=0, **near_params))
    assert "moved 7.2 m west and 0.0 m" in res.prior_note, res.prior_note
    res = refine_raster(
        RefineParams(out=tmp_path / "g.tif", iterations=0, prior_search_m=5, **near_params)
    )
    assert "at the edge of the search (5 m)" in res.prior_note, res.prior_note


def test_a_map_that_means_nothing_places_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose map has nothing to do with the prior (another scene's buildings, or
    a random model's map) leaves the prior where it is drawn and says why; the same
    prior 3 px off over a map that is the truth is still moved back. The result carries
    the correlation the note quotes."""
    truth, params = drawn_east(tmp_path, 3, shown=False)
    res = refine_raster(RefineParams(out=tmp_path / "r.tif", iterations=0, **params))
    assert res.prior_note.startswith("left in place: the model's map agrees too little")
    assert f"under {PLACE_CORRELATION:g}" in res.prior_note
    assert res.prior_correlation is not None and res.prior_correlation < PLACE_CORRELATION
    assert f"correlation {res.prior_correlation:.2f} at its best fit" in res.prior_note
    with monkeypatch.context() as m:
        m.setattr(refine_pass, "predict_tile", model_sees(blobs(80, 100, seed=9)))
        res = refine_raster(RefineParams(out=tmp_path / "o.tif", iterations=0, **params))
        assert "agrees too little" in res.prior_note, res.prior_note
    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(truth))
    write_image(tmp_path / "shown.tif", showing(truth), GT)  # closed as it is dropped
    params["image"] = tmp_path / "shown.tif"
    res = refine_raster(RefineParams(out=tmp_path / "t.tif", iterations=0, **params))
    assert "moved 1.8 m west" in res.prior_note, res.prior_note
    assert res.prior_correlation is not None and res.prior_correlation > 0.9
    res = refine_raster(
        RefineParams(out=tmp_path / "u.tif", iterations=0, prior_register=False, **params)
    )
    assert res.prior_correlation is None


def test_the_whole_priors_correlation() -> None:
    """peak_correlation is 1 for a prior that is the model's sure map, near 0 for an
    unrelated one, and 0 without evidence; unplaceable draws the line."""
    truth = blobs(120, 140, seed=4)
    valid = np.ones(truth.shape, bool)
    sure = np.stack([~truth, truth]).astype(np.float32)

    def corr(prior: np.ndarray, probs: np.ndarray) -> float:
        surface, norms = agreement_and_norms(prior.astype(np.int32), probs, valid, 8)
        return peak_correlation([surface], [norms])

    assert corr(truth, sure) == pytest.approx(1.0)
    assert corr(np.roll(truth, 3, axis=1), sure) == pytest.approx(1.0, abs=0.01)  # rolled edges
    assert abs(corr(blobs(120, 140, seed=5), sure)) < 0.2
    assert corr(truth, np.full((2, 120, 140), 0.5, np.float32)) == 0.0
    assert peak_correlation([], []) == 0.0
    right = agreement(truth.astype(np.int32), sure, valid, 8)
    moved = agreement(np.roll(truth, 3, axis=1).astype(np.int32), sure, valid, 8)
    assert peak_gain([right]) == pytest.approx(0.0, abs=1e-9)
    assert peak_gain([moved]) > 0.2 and peak_gain([]) == 0.0
    assert unplaceable(PLACE_CORRELATION) is None
    assert unplaceable(PLACE_CORRELATION - 0.01).why.startswith("left in place")
