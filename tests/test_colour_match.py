"""Colours matched to the training imagery for an image that looks like none of it
(engine/modelfile/colour_match.py, engine/modelfile/colour_fit.py, predict.for_image): an image
near a training area is read exactly as before; one far from all of them is read as its
colours taken onto the training imagery's, by every caller of for_image alike."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile import colour_fit
from map_refiner.engine.modelfile.bundled_choice import look_features, look_pixels
from map_refiner.engine.modelfile.colour_fit import (
    band_percentiles,
    fit_gains,
    match_image,
    matched_normalisation,
)
from map_refiner.engine.modelfile.colour_match import PERCENTILES, ColourMatch
from map_refiner.engine.modelfile.config import ModelConfig
from map_refiner.engine.modelfile.header import BUNDLED_MODELS
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.refine.pipeline import refine_array
from map_refiner.engine.refine.predict import for_image
from map_refiner.training.data import model_grids

GT = (500000.0, 1.0, 0.0, 4000000.0, 0.0, -1.0)  # 96 x 128 m: over a hectare
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def mem(array: np.ndarray) -> gdal.Dataset:
    return write_image(Path(""), array, GT, driver="MEM")


def entry_for(arr: np.ndarray, far: float = 2.4) -> ColourMatch:
    """An entry whose one training area is ``arr`` itself."""
    rgb, valid = look_pixels(mem(arr), [1, 2, 3], 1.0)
    look = look_features(rgb[:, :, None], valid[:, None])
    return ColourMatch(PERCENTILES, band_percentiles(rgb, valid, PERCENTILES), {"home": look}, far)


@pytest.fixture(scope="module")
def home() -> np.ndarray:
    return scene(96, 128, seed=11).astype(np.float32)


@pytest.fixture(scope="module")
def model(home):
    net, cfg = random_model(resolution_m=1.0, seed=7)
    return net, dataclasses.replace(cfg, colour_match=entry_for(home).to_config())


def darker(arr: np.ndarray) -> np.ndarray:
    return np.clip(0.5 * arr, 0, 255)  # under-exposed: integral 8-bit values stay exact


def test_the_gains_and_offsets_undo_a_linear_change_of_each_band() -> None:
    rng = np.random.default_rng(1)
    dst = np.sort(rng.uniform(10, 240, size=(3, 7)), axis=1)
    g, c = np.array([0.5, 1.3, 2.0]), np.array([10.0, -20.0, 5.0])
    src = (dst - c[:, None]) / g[:, None]
    gains, offsets = fit_gains(src, dst)
    assert np.allclose(gains, g) and np.allclose(offsets, c)


def test_the_matched_normalisation_reads_raw_values_as_the_model_reads_matched_ones() -> None:
    from map_refiner.engine.modelfile.colour_fit import Matched

    m = Matched(np.array([1.8, 0.7, 1.1]), np.array([5.0, -12.0, 30.0]), 4.0, "home")
    mean, std = [90.0, 85.0, 80.0], [40.0, 42.0, 38.0]
    for scale in (1.0, 255.0 / 2047.0):
        new_mean, new_std = matched_normalisation(mean, std, m, scale)
        raw = np.array([17.0, 600.0, 1400.0])
        matched = m.gains * raw * scale + m.offsets
        assert np.allclose(
            (raw - np.array(new_mean)) / np.array(new_std),
            (matched - np.array(mean)) / np.array(std),
        )


def test_an_image_near_its_training_area_is_read_exactly_as_before(model, home) -> None:
    _, cfg = model
    ds = mem(home)
    assert for_image(cfg, ds, [1, 2, 3], model_grids(ds, cfg, None)) is cfg


def test_an_under_exposed_image_is_read_as_the_image_it_came_from(model, home) -> None:
    net, cfg = model
    dark = darker(home)
    ds = mem(dark)
    fed = for_image(cfg, ds, [1, 2, 3], model_grids(ds, cfg, None))
    assert fed is not cfg
    assert np.allclose(fed.std, np.array(cfg.std) / 2, rtol=0.05)  # the gains are about 2
    as_read, _ = refine_array(net, cfg, mem(home), 3, tile_size=32)
    matched, _ = refine_array(net, cfg, ds, 3, tile_size=32)
    plain = dataclasses.replace(cfg, colour_match={})  # the same networks, never matching
    unmatched, _ = refine_array(net, plain, ds, 3, tile_size=32)
    scale = float(np.abs(as_read).max())
    assert np.abs(matched - as_read).max() < 0.05 * scale
    assert np.abs(unmatched - as_read).max() > 5 * np.abs(matched - as_read).max()


def test_a_model_without_the_entry_never_matches(home) -> None:
    _, cfg = random_model(resolution_m=1.0, seed=7)
    ds = mem(darker(home))
    assert for_image(cfg, ds, [1, 2, 3], model_grids(ds, cfg, None)) is cfg


def test_an_image_a_linear_stretch_cannot_bring_back_is_read_as_it_is(model) -> None:
    _, cfg = model
    flat = np.full((3, 96, 128), 40.0, dtype=np.float32)
    flat[:, :, :64] = 41.0  # almost no spread: the gains would be huge
    ds = mem(flat)
    match = ColourMatch.from_config(cfg.colour_match)
    assert match is not None
    assert match_image(match, ds, [1, 2, 3], 1.0) is None
    assert for_image(cfg, ds, [1, 2, 3], model_grids(ds, cfg, None)) is cfg


def test_the_entry_travels_with_the_model_file(model, tmp_path) -> None:
    net, cfg = model
    path = save_model(net, cfg, tmp_path / "m.safetensors")
    _, loaded = load_model(path)
    assert loaded.colour_match == cfg.colour_match
    assert loaded.format_version == 5  # an older Map Refiner refuses it instead of
    # reading far-off imagery unmatched


TWO = [[1, 2]] * 3  # a well-formed target for two percentiles


@pytest.mark.parametrize(
    "broken",
    [
        {"percentiles": [2, 50, 98]},  # no target, homes or distance
        {"percentiles": [2, 50], "target": TWO, "homes": {"a": [1.0]}, "far": 0},
        {"percentiles": [2, 50], "target": [[1, 2]] * 2, "homes": {"a": [1.0]}, "far": 2},
        {"percentiles": [2, 50], "target": [[1, math.nan]] * 3, "homes": {"a": [1.0]}, "far": 2},
        {"percentiles": [2, 50], "target": TWO, "homes": {}, "far": 2},
        {"percentiles": [2, 50], "target": TWO, "homes": {"a": [1], "b": [1, 2]}, "far": 3},
    ],
)
def test_a_malformed_entry_is_refused_with_a_clear_error(broken) -> None:
    _, cfg = random_model(seed=1)
    d = cfg.to_dict()
    d["colour_match"] = broken
    with pytest.raises(MapRefinerError, match="colour matching"):
        ModelConfig.from_dict(d)


def test_the_bundled_models_carry_the_same_entry() -> None:
    entries = [load_model(p)[1].colour_match for p in BUNDLED_MODELS.values()]
    assert entries[0] and all(e == entries[0] for e in entries)
    match = ColourMatch.from_config(entries[0])
    assert match is not None and len(match.homes) == 8


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (see its README)")
def test_the_shared_scenes_are_read_as_they_are_and_a_darkened_one_is_matched(tmp_path) -> None:
    match = ColourMatch.from_config(load_model(BUNDLED_MODELS["default"])[1].colour_match)
    assert match is not None
    images = [
        SHARED / "austin/austin_dev_rgb.tif",
        SHARED / "kampala_drone/kampala_rgb.tif",
        SHARED / "nepal_drone/nepal_rgb.tif",
        SHARED / "rio_wv2/rio_rgb.tif",
    ]
    for image in images:  # each lies near its training area: never matched
        ds = gdal.Open(str(image))
        assert match_image(match, ds, [1, 2, 3], abs(ds.GetGeoTransform()[1])) is None, image
    src = gdal.Open(str(images[2]))
    dark = np.clip(np.rint(0.5 * src.ReadAsArray()[:3].astype(np.float32)), 0, 255)
    ds = write_image(Path(""), dark.astype(np.uint8), src.GetGeoTransform(), driver="MEM")
    m = match_image(match, ds, [1, 2, 3], abs(src.GetGeoTransform()[1]))
    assert m is not None and m.distance > match.far
    assert np.all((m.gains > 1.5) & (m.gains < 2.5))  # about twice as bright again


def test_without_colour_match_strips_the_entry_from_the_model_and_its_gate_parents(model) -> None:
    _, cfg = model
    d = cfg.to_dict()
    d["gate_parent"] = {**cfg.to_dict(), "gate_parent": cfg.to_dict()}
    d["change_gate"] = 0.7
    chained = ModelConfig.from_dict(d)
    plain = chained.without_colour_match()
    assert plain.colour_match == {} and plain.format_version == 3
    parent = plain.parent_config()
    assert parent is not None and parent.colour_match == {}
    assert parent.parent_config() is not None
    assert parent.parent_config().colour_match == {}  # type: ignore[union-attr]
    assert chained.colour_match  # the original is left as it was


def test_a_refine_says_it_matched_and_reads_as_is_when_told_not_to(model, home, tmp_path) -> None:
    from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

    net, cfg = model
    path = save_model(net, cfg, tmp_path / "m.safetensors")
    plain_path = save_model(
        net, dataclasses.replace(cfg, colour_match={}), tmp_path / "p.safetensors"
    )
    image = tmp_path / "dark.tif"
    write_image(image, darker(home).astype(np.uint8), GT).FlushCache()

    def refine(model_path: Path, name: str, **kw):
        res = refine_raster(
            RefineParams(
                image=image, out=tmp_path / name, model_path=model_path, device="cpu", **kw
            )
        )
        return res, gdal.Open(str(res.out)).ReadAsArray()

    matched, a = refine(path, "a.tif")
    as_is, b = refine(path, "b.tif", match_colours=False)
    plain, c = refine(plain_path, "c.tif")
    assert matched.colour_note.startswith("the image's colours were matched")
    assert as_is.colour_note == "" and plain.colour_note == ""
    assert np.array_equal(b, c)  # told not to match: as a model without the entry reads it


def test_a_fine_tune_told_not_to_match_saves_a_model_that_never_matches(model, home, tmp_path):
    from helpers_data import two_corrections

    from map_refiner.training.corrections.finetune import finetune
    from map_refiner.training.corrections.fit import FitParams
    from map_refiner.training.tile import LabelSource

    net, cfg = model
    base = save_model(net, cfg, tmp_path / "base.safetensors")
    image = tmp_path / "dark.tif"
    write_image(image, darker(home).astype(np.uint8), GT).FlushCache()
    polygons = two_corrections(tmp_path / "c.gpkg", GT)
    labels = LabelSource(path=polygons, class_field="class", mode="sparse")
    for match, name in ((True, "kept"), (False, "none")):
        res = finetune(
            image,
            labels,
            tmp_path / f"{name}.safetensors",
            base,
            FitParams(steps=2, anchor_partner=""),
            device="cpu",
            match_colours=match,
        )
        saved = load_model(res.model)[1]
        assert bool(saved.colour_match) == match
        # the matched normalisation is the image's, never baked into the saved model
        assert np.allclose(saved.mean, cfg.mean) and np.allclose(saved.std, cfg.std)
        parent = saved.parent_config()
        assert parent is None or bool(parent.colour_match) == match


def test_imagery_too_coarse_for_the_model_is_read_as_it_is(model, home) -> None:
    """Three times the model's grid or coarser (limits.COARSE_NOTE): never matched, as
    session 46's 2.8 m orthophoto, whose forest the match turned into buildings."""
    from map_refiner.engine.refine.predict import colours_matched

    _, cfg = model  # a 1 m model
    dark = darker(home)
    for pixel_m, matched in ((1.0, True), (2.9, True), (3.0, False), (6.0, False)):
        gt = (GT[0], pixel_m, 0.0, GT[3], 0.0, -pixel_m)
        ds = write_image(Path(""), dark, gt, driver="MEM")
        grids = model_grids(ds, cfg, None)
        assert (colours_matched(cfg, ds, [1, 2, 3], grids) is not None) == matched, pixel_m


def test_too_little_ground_is_read_as_it_is(model, home) -> None:
    """Under a hectare with data (colour_fit.MIN_MATCH_AREA_M2) the percentiles describe a
    few objects, not the sensor: the ISPRS crops, matched, lost under every look (session
    47). The same darkened image is matched at 1 m pixels (1.2 ha) and read as it is at
    0.8 m (0.79 ha), or where most of it is nodata."""
    from map_refiner.engine.modelfile.colour_fit import MIN_MATCH_AREA_M2
    from map_refiner.engine.refine.predict import colours_matched

    _, cfg = model
    dark = darker(home)
    assert dark.shape[1] * dark.shape[2] * 0.8**2 < MIN_MATCH_AREA_M2 < dark[0].size
    for pixel_m, matched in ((1.0, True), (0.8, False)):
        gt = (GT[0], pixel_m, 0.0, GT[3], 0.0, -pixel_m)
        ds = write_image(Path(""), dark, gt, driver="MEM")
        found = colours_matched(cfg, ds, [1, 2, 3], model_grids(ds, cfg, None))
        assert (found is not None) == matched, pixel_m
    sparse = write_image(Path(""), dark.astype(np.uint8), GT, driver="MEM", nodata=0)
    assert colours_matched(cfg, sparse, [1, 2, 3], model_grids(sparse, cfg, None)) is not None
    for b in range(1, 4):  # two thirds of the rows without data: 0.4 ha left
        band = sparse.GetRasterBand(b)
        arr = band.ReadAsArray()
        arr[: 2 * arr.shape[0] // 3] = 0
        band.WriteArray(arr)
    assert colours_matched(cfg, sparse, [1, 2, 3], model_grids(sparse, cfg, None)) is None


def linear(arr: np.ndarray) -> np.ndarray:
    """A display image's values taken back to a sensor's linear 11-bit ones."""
    return np.round((arr / 255.0) ** 2.2 * 2047).astype(np.uint16)


def test_linear_values_stored_beyond_8_bits_are_read_through_a_power_curve(model, home) -> None:
    """11-bit linear values are the home image to the power 2.2: no gain and offset undo
    that, a power curve fitted with them does (session 49)."""
    net, cfg = model
    lin = mem(linear(home))
    match = ColourMatch.from_config(cfg.colour_match)
    assert match is not None
    found = match_image(match, lin, [1, 2, 3], 1.0)
    assert found is not None and abs(found.power - 1 / 2.2) < 0.03, found
    assert "power curve of 0.45" in found.note()
    fed = for_image(cfg, lin, [1, 2, 3], model_grids(lin, cfg, None))
    assert fed.input_curve == [1 / 8, found.power]  # 11 bits onto 8 (value_scale)
    as_read, _ = refine_array(net, cfg, mem(home), 3, tile_size=32)
    curved, _ = refine_array(net, cfg, lin, 3, tile_size=32)
    with mock.patch.object(colour_fit, "beyond_8_bits", lambda ds, bands: False):
        assert match_image(match, lin, [1, 2, 3], 1.0).power == 1.0  # type: ignore[union-attr]
        gains_only, _ = refine_array(net, cfg, lin, 3, tile_size=32)
    scale = float(np.abs(as_read).max())
    assert np.abs(curved - as_read).max() < 0.1 * scale
    assert np.abs(gains_only - as_read).max() > 3 * np.abs(curved - as_read).max()


def test_8_bit_imagery_and_linear_changes_get_no_curve(model, home) -> None:
    """8-bit imagery is display-ready: never curved, read exactly as before; display-ready
    values stored at 16 bits whose change is linear keep the power at 1 (the curves tried
    never darken: none above 1)."""
    _, cfg = model
    match = ColourMatch.from_config(cfg.colour_match)
    assert match is not None
    dark8 = mem(darker(home).astype(np.uint8))
    assert not colour_fit.beyond_8_bits(dark8, [1, 2, 3])
    found = match_image(match, dark8, [1, 2, 3], 1.0)
    assert found is not None and found.power == 1.0 and "power" not in found.note()
    assert for_image(cfg, dark8, [1, 2, 3], model_grids(dark8, cfg, None)).input_curve == []
    gains = np.array([0.6, 1.0, 0.8])[:, None, None]  # a cast with haze: per band linear
    cast16 = mem((np.clip(home * gains + 40, 0, 255) * 256).astype(np.uint16))
    assert colour_fit.beyond_8_bits(cast16, [1, 2, 3])
    found16 = match_image(match, cast16, [1, 2, 3], 1.0)
    assert found16 is not None and found16.power == 1.0
    assert max(colour_fit.CURVE_POWERS) == 1.0


def test_the_input_curve_is_never_saved_nor_read_from_a_file(model) -> None:
    """How one raster is fed is not part of the model: a file cannot set a curve."""
    _, cfg = model
    fed = dataclasses.replace(cfg, input_curve=[0.125, 0.45])
    assert "input_curve" not in fed.to_dict()
    assert ModelConfig.from_dict({**cfg.to_dict(), "input_curve": [1.0, 0.3]}).input_curve == []
