"""engine/modelfile/bundled_choice.py: the bundled model chosen for an image by its look, and
the refine and fine-tune that use it when the user names no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_data import real_data
from helpers_engine import make_tif, random_model, scene, write_image
from osgeo import gdal

from map_refiner.engine.modelfile import bundled_choice
from map_refiner.engine.modelfile.bundled_choice import (
    HELD_OUT_MARGIN,
    HOME_DISTANCE,
    LOOK_FEATURES,
    ModelChoice,
    choose_bundled,
    held_out_scores,
    home_looks,
    image_look,
    look_distance,
    look_features,
    prefers_general,
)
from map_refiner.engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

gdal.UseExceptions()
GT = (500000.0, 0.3, 0.0, 4000000.0, 0.0, -0.3)  # 0.3 m pixels: 2 to a look's grid cell


def look_of(path: Path) -> np.ndarray:
    return image_look(gdal.Open(str(path)), [1, 2, 3], 0.3)


def test_a_look_is_colour_statistics_that_ignore_pixels_without_data() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.uniform(40, 200, size=(3, 50, 60)).astype(np.float32)
    valid = np.ones((50, 60), bool)
    look = look_features(rgb, valid)
    assert look.shape == (LOOK_FEATURES,)
    # luminance percentiles rise; chroma lies around zero for grey-ish noise
    assert np.all(np.diff(look[:7]) >= 0) and np.all(np.abs(look[7:]) < 80)
    # pixels outside ``valid`` do not count, whatever they hold
    spoiled = rgb.copy()
    spoiled[:, :, :10] = 255.0
    some = valid.copy()
    some[:, :10] = False
    assert np.allclose(look_features(spoiled, some), look_features(rgb[:, :, 10:], valid[:, 10:]))
    with pytest.raises(Exception, match="too few valid pixels"):
        look_features(rgb, np.zeros_like(valid))


def test_the_distance_is_to_the_nearest_home_in_percent_of_the_8_bit_range() -> None:
    look = np.zeros(LOOK_FEATURES)
    homes = {"far": np.full(LOOK_FEATURES, 51.0), "near": np.full(LOOK_FEATURES, 2.55)}
    assert look_distance(look, homes) == (1.0, "near")  # 2.55 of 255 = 1 %


def test_an_image_reads_the_same_look_whatever_its_nodata_border(tmp_path: Path) -> None:
    arr = scene(120, 160, seed=3)
    plain = write_image(tmp_path / "a.tif", arr, GT)
    plain = None  # noqa: F841
    bordered = np.zeros((3, 120, 200), np.uint8)
    bordered[:, :, :160] = arr  # black where a mosaic has no tile
    ds = write_image(tmp_path / "b.tif", bordered, GT)
    ds = None  # noqa: F841
    assert np.allclose(look_of(tmp_path / "a.tif"), look_of(tmp_path / "b.tif"), atol=1.0)


def test_a_large_image_is_read_on_a_lattice_of_windows(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A side longer than LOOK_WINDOWS windows of LOOK_SIDE is sampled by SAMPLE_WINDOWS
    windows of SAMPLE_SIDE from end to end, a shorter one read whole, and a uniform image
    reads the same either way."""
    arr = np.full((3, 200, 260), 90, np.uint8)
    arr[1] = 120
    write_image(tmp_path / "u.tif", arr, GT)
    write_image(tmp_path / "strip.tif", arr[:, :, :60], GT)
    whole = look_of(tmp_path / "u.tif")
    monkeypatch.setattr(bundled_choice, "LOOK_SIDE", 16)  # 32 px: the grid is 0.6 m, GT's 0.3
    monkeypatch.setattr(bundled_choice, "SAMPLE_SIDE", 4)  # 8 px
    monkeypatch.setattr(bundled_choice, "SAMPLE_WINDOWS", 5)
    reads: list[tuple[int, int, int, int]] = []
    original = bundled_choice._read_coarse
    monkeypatch.setattr(
        bundled_choice,
        "_read_coarse",
        lambda *a: reads.append(a[2:6]) or original(*a),  # (x, y, w, h)
    )
    assert np.allclose(look_of(tmp_path / "u.tif"), whole)
    assert len(reads) == 25 and all(w == 8 and h == 8 for _, _, w, h in reads)
    assert {x for x, _, _, _ in reads} == {0, 63, 126, 189, 252}  # spread over the 260 px
    assert {y for _, y, _, _ in reads} == {0, 48, 96, 144, 192}
    reads.clear()
    look_of(tmp_path / "strip.tif")  # 60 px across: read whole, 200 px down: sampled
    assert sorted({(x, w) for x, _, w, _ in reads}) == [(0, 32), (32, 28)]
    assert len(reads) == 10 and all(h == 8 for _, _, _, h in reads)


def test_a_long_image_is_sampled_in_proportion_to_what_it_holds(tmp_path: Path) -> None:
    """The look's sample holds each part of a long image in its share: a 3000 px strip
    (1.8 km at 0.6 m) whose last fifth is another ground. Nine windows of 512 px (the rule
    until session 48) gave that fifth a third of the sample; 24 small windows give it
    about its fifth."""
    strip = np.full((3, 100, 3000), 60, np.uint8)
    strip[:, :, 2400:] = 200
    write_image(tmp_path / "strip.tif", strip, (GT[0], 0.6, 0.0, GT[3], 0.0, -0.6))
    ds = gdal.Open(str(tmp_path / "strip.tif"))
    rgb, valid = bundled_choice.look_pixels(ds, [1, 2, 3], 0.6)
    share = float((rgb[0][valid] > 128).mean())
    assert 0.17 < share < 0.24, share


def _homes_like(path: Path, shift: float = 0.0) -> dict[str, np.ndarray]:
    return {"here": look_of(path) + shift}


def test_the_default_model_where_the_image_looks_like_a_training_area(tmp_path: Path) -> None:
    image = make_tif(tmp_path / "img.tif", 96, 96, seed=4, geotransform=GT)
    near = choose_bundled(image, homes=_homes_like(image, 0.5 * HOME_DISTANCE * 2.55), scores={})
    assert near.path == DEFAULT_MODEL_PATH and near.nearest == "here"
    assert near.distance is not None and near.distance <= HOME_DISTANCE
    assert "default model" in near.note and "here" in near.note
    far = choose_bundled(image, homes=_homes_like(image, 2 * HOME_DISTANCE * 2.55), scores={})
    assert far.path == GENERAL_MODEL_PATH and far.distance > HOME_DISTANCE
    assert "general model" in far.note and "unlike" in far.note
    assert "name the default model" in far.note  # how to have the default anyway


def test_satellite_like_pixels_get_the_general_model_near_a_default_area(tmp_path: Path) -> None:
    """At SATELLITE_M or coarser (Rio's 0.5 m strip, Xiamen's 0.54 m mosaic: both read
    better by the general model, session 47) an image near an area the default reads better
    gets the general model; the same pixels at 0.3 m keep the default."""
    from map_refiner.engine.modelfile.bundled_choice import SATELLITE_M

    arr = scene(96, 96, seed=4)
    chosen = {}
    for pixel_m in (0.3, SATELLITE_M, 0.6):
        gt = (GT[0], pixel_m, 0.0, GT[3], 0.0, -pixel_m)
        image = tmp_path / f"img_{pixel_m}.tif"
        write_image(image, arr, gt).FlushCache()
        scores = {"here": {"default": 50.0, "general": 45.0}}
        chosen[pixel_m] = choose_bundled(image, homes=_homes_like(image, 0.3), scores=scores)
    assert chosen[0.3].path == DEFAULT_MODEL_PATH
    for pixel_m in (SATELLITE_M, 0.6):
        assert chosen[pixel_m].path == GENERAL_MODEL_PATH, pixel_m
        assert "satellite-like" in chosen[pixel_m].note
        assert "name the default model" in chosen[pixel_m].note


def test_near_a_training_area_the_model_that_reads_its_held_out_half_better(
    tmp_path: Path,
) -> None:
    """Within HOME_DISTANCE of an area, the general model where it reads that area's
    held-out half better by HELD_OUT_MARGIN or more, else the default."""
    image = make_tif(tmp_path / "img.tif", 96, 96, seed=4, geotransform=GT)
    homes = _homes_like(image, 0.5)
    for scores, expected in (
        ({"default": 40.0, "general": 45.0}, GENERAL_MODEL_PATH),
        ({"default": 40.0, "general": 40.0 + HELD_OUT_MARGIN / 2}, DEFAULT_MODEL_PATH),
        ({"default": 50.0, "general": 45.0}, DEFAULT_MODEL_PATH),
        (None, DEFAULT_MODEL_PATH),
    ):
        chosen = choose_bundled(image, homes=homes, scores={"here": scores} if scores else {})
        assert chosen.path == expected and chosen.nearest == "here"
        if expected == GENERAL_MODEL_PATH:
            assert "reads better (45.0 building IoU against the default's 40.0)" in chosen.note
    assert prefers_general({"default": 1.0, "general": 1.0 + HELD_OUT_MARGIN})
    assert not prefers_general({"general": 99.0}) and not prefers_general(None)


def test_without_the_looks_or_three_bands_the_default_model_stays(tmp_path: Path) -> None:
    image = make_tif(tmp_path / "img.tif", 64, 64, geotransform=GT)
    assert choose_bundled(image, homes={}).path == DEFAULT_MODEL_PATH
    ds = write_image(tmp_path / "grey.tif", scene(64, 64, bands=1), GT)
    ds = None  # noqa: F841
    homes = _homes_like(image, 100.0)
    assert choose_bundled(tmp_path / "grey.tif", homes=homes).path == DEFAULT_MODEL_PATH
    # the refine's own bands are judged (here: other than the image's first three)
    ds = write_image(tmp_path / "four.tif", scene(64, 64, bands=4), GT)
    ds = None  # noqa: F841
    assert choose_bundled(tmp_path / "four.tif", [2, 3, 4], homes=homes).distance is not None


def test_an_image_with_almost_no_data_keeps_the_default_model(tmp_path: Path) -> None:
    """Black (no data) nearly everywhere: the refine goes on with the default model, and
    says why, rather than failing on the look."""
    arr = np.zeros((3, 64, 64), np.uint8)
    arr[:, :2, :2] = 100
    ds = write_image(tmp_path / "black.tif", arr, GT)
    ds = None  # noqa: F841
    chosen = choose_bundled(tmp_path / "black.tif", homes={"here": np.zeros(LOOK_FEATURES)})
    assert chosen.path == DEFAULT_MODEL_PATH and "too little data" in chosen.note


def test_the_bundled_looks_name_the_default_model_s_training_areas() -> None:
    homes = home_looks()
    assert set(homes) == {
        "austin_enh",
        "kampala_drone",
        "nepal_drone",
        "rio_wv2",
        "isprs_potsdam",
        "isprs_vaihingen",
        "loveda_0",
        "loveda_1",
    }
    assert all(v.shape == (LOOK_FEATURES,) for v in homes.values())
    held = held_out_scores()
    assert set(held) == set(homes)
    assert all(0 <= s["default"] <= 100 and 0 <= s["general"] <= 100 for s in held.values())
    assert not prefers_general(held["austin_enh"])  # Austin's imagery stays the default's
    made_by = json.loads(bundled_choice.HOME_LOOKS_PATH.read_text())["made_by"]
    assert "home_looks build" in made_by


def test_on_the_shared_scenes_austin_stays_with_the_default_and_a_cast_goes_general(
    tmp_path: Path,
) -> None:
    """austin_dev (no network trained on it) lies near austin_enh's look; the same tile
    with a warm colour cast (another sensor's balance) gets the general model."""
    austin = real_data("austin", "austin_dev_rgb.tif")
    assert choose_bundled(austin).path == DEFAULT_MODEL_PATH
    src = gdal.Open(str(austin))
    arr = src.ReadAsArray().astype(np.float32)
    arr = np.clip(arr * np.array([1.25, 1.0, 0.75])[:, None, None], 0, 255).astype(np.uint8)
    warm = tmp_path / "warm.tif"
    ds = write_image(warm, arr, src.GetGeoTransform(), epsg=26914)
    ds = None  # noqa: F841
    assert choose_bundled(warm).path == GENERAL_MODEL_PATH


def test_a_refine_asked_to_choose_uses_and_names_the_model_chosen(
    tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    image = make_tif(tmp_path / "img.tif", 64, 64, geotransform=GT)
    net, cfg = random_model(resolution_m=0.6, seed=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    asked = []

    def choose(path, bands, input_m):  # noqa: ANN001, ANN202
        asked.append((Path(path), bands, input_m))
        return ModelChoice(model, 3.0, "here", "the test's model, chosen")

    monkeypatch.setattr("map_refiner.engine.refine.pipeline.choose_bundled", choose)
    params = RefineParams(image=image, out=tmp_path / "o.tif", device="cpu", iterations=1)
    chosen = refine_raster(replace_(params, choose_model=True))
    assert asked == [(image, None, None)]
    assert chosen.model_path == model and chosen.model_note == "the test's model, chosen"
    # named models and priors are never second-guessed
    named = refine_raster(
        replace_(params, out=tmp_path / "n.tif", model_path=model, choose_model=True)
    )
    assert named.model_note == "" and named.model_path == model and len(asked) == 1


def replace_(params: RefineParams, **changes) -> RefineParams:
    from dataclasses import replace

    return replace(params, **changes)


def test_a_fine_tune_asked_to_choose_starts_from_the_model_chosen(
    tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    from helpers_data import two_corrections

    from map_refiner.training.corrections.finetune import finetune
    from map_refiner.training.corrections.fit import FitParams
    from map_refiner.training.tile import LabelSource

    image = make_tif(tmp_path / "img.tif", 96, 96, seed=2, geotransform=GT)
    net, cfg = random_model(resolution_m=0.6, seed=3)
    base = save_model(net, cfg, tmp_path / "base.safetensors")
    polygons = two_corrections(tmp_path / "c.gpkg", GT)
    monkeypatch.setattr(
        "map_refiner.training.corrections.finetune.choose_bundled",
        lambda path, bands, input_m: ModelChoice(base, 0.5, "here", "the test's base"),
    )
    res = finetune(
        image,
        LabelSource(path=polygons, class_field="class", mode="sparse"),
        tmp_path / "round1.safetensors",
        params=FitParams(steps=2, anchor_partner=""),
        device="cpu",
        choose_base=True,
    )
    assert res.base_model == base and res.base_note == "the test's base"
    assert res.message.startswith("Started from the test's base.")
