"""A survey model (engine/modelfile/survey.py, `map-refiner survey-model`): the model and
its colour match judged once over a survey's tiles, so every tile is read alike where each
tile's own judgement would fall either side of the thresholds (session 47)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import write_image
from test_colour_match import GT, darker, home, linear, model  # noqa: F401  (fixtures)

from map_refiner.cli import main
from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.colour_match import ColourMatch
from map_refiner.engine.modelfile.config import ModelConfig
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.modelfile.survey import survey_model
from map_refiner.engine.refine.predict import colours_matched
from map_refiner.training.data import model_grids


def tiles(tmp_path: Path, arrays: dict[str, np.ndarray]) -> list[Path]:
    paths = []
    for name, arr in arrays.items():
        path = tmp_path / f"{name}.tif"
        write_image(path, arr.astype(np.uint8), GT).FlushCache()
        paths.append(path)
    return paths


def matched_for(cfg: ModelConfig, path: Path):
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return colours_matched(cfg, ds, [1, 2, 3], model_grids(ds, cfg, None))


def test_every_tile_takes_the_match_judged_over_all_of_them(model, home, tmp_path) -> None:  # noqa: F811
    """A dark tile is matched on its own and a near one is not; read with the survey
    model, both take one match (judged on the two together), and the file says so."""
    net, cfg = model
    base = save_model(net, cfg, tmp_path / "base.safetensors")
    dark, near = tiles(tmp_path, {"dark": darker(home), "near": home})
    assert matched_for(cfg, dark) is not None and matched_for(cfg, near) is None
    darkest = tiles(tmp_path, {"darkest": 0.4 * home})[0]
    reading = survey_model([dark, darkest], tmp_path / "s.safetensors", model=base)
    assert reading.matched is not None and reading.images == 2
    _, survey = load_model(reading.path)
    assert survey.format_version == 6  # an older Map Refiner refuses it
    fixed = ColourMatch.from_config(survey.colour_match).fixed  # type: ignore[union-attr]
    assert fixed is not None and fixed.images == 2
    found = [matched_for(survey, p) for p in (dark, darkest, near)]
    assert all(f is not None for f in found)
    for f in found:
        assert np.array_equal(f.gains, fixed.gains) and np.array_equal(f.offsets, fixed.offsets)
        assert "survey model" in f.note()
    # judged on both, the gains lie between what each tile alone would get
    alone = [matched_for(cfg, p).gains for p in (dark, darkest)]  # type: ignore[union-attr]
    assert (np.minimum(*alone) <= fixed.gains + 1e-9).all()
    assert (fixed.gains <= np.maximum(*alone) + 1e-9).all()
    assert "2 images" in reading.describe() and "band gains" in reading.describe()


def test_a_survey_near_the_training_imagery_reads_every_tile_as_it_is(model, home, tmp_path):  # noqa: F811
    net, cfg = model
    base = save_model(net, cfg, tmp_path / "base.safetensors")
    near, dark = tiles(tmp_path, {"near": home, "dark": darker(home)})
    reading = survey_model([near, near], tmp_path / "s.safetensors", model=base)
    assert reading.matched is None and "as it is" in reading.describe()
    _, survey = load_model(reading.path)
    assert survey.colour_match == {}
    assert matched_for(survey, dark) is None  # a dark tile too: the survey reads as is
    told = survey_model([dark], tmp_path / "t.safetensors", model=base, match_colours=False)
    assert told.matched is None and load_model(told.path)[1].colour_match == {}


def test_the_fixed_match_reaches_the_gate_parents_and_is_validated(model, tmp_path) -> None:  # noqa: F811
    _, cfg = model
    entry = dict(cfg.colour_match)
    entry["fixed"] = {
        "gains": [2.0, 2.0, 2.0],
        "offsets": [0.0, 1.0, 2.0],
        "distance": 3.1,
        "nearest": "home",
        "images": 4,
    }
    d = cfg.to_dict()
    d["gate_parent"] = cfg.to_dict()
    d["change_gate"] = 0.7
    fixed = ModelConfig.from_dict(d).with_colour_match(entry)
    parent = fixed.parent_config()
    assert parent is not None and parent.colour_match == fixed.colour_match == entry
    for bad, what in (
        ({**entry["fixed"], "gains": [2.0, 0.0, 2.0]}, "positive gains"),
        ({**entry["fixed"], "offsets": [1.0]}, "three offsets"),
        ({k: v for k, v in entry["fixed"].items() if k != "images"}, "incomplete"),
    ):
        with pytest.raises(MapRefinerError, match=what):
            ColourMatch.from_config({**entry, "fixed": bad})


def test_a_model_that_matches_nothing_is_refused_with_what_to_do(model, home, tmp_path) -> None:  # noqa: F811
    net, cfg = model
    plain = save_model(net, cfg.without_colour_match(), tmp_path / "plain.safetensors")
    (near,) = tiles(tmp_path, {"near": home})
    with pytest.raises(MapRefinerError, match="reads every tile alike already"):
        survey_model([near], tmp_path / "s.safetensors", model=plain)
    (grey,) = tiles(tmp_path, {"grey": home[:1]})
    with pytest.raises(MapRefinerError, match="three colour bands"):
        survey_model([grey], tmp_path / "s.safetensors", model=plain)
    assert not (tmp_path / "s.safetensors").exists()


def test_the_command_chooses_the_bundled_model_and_a_round_keeps_the_fixed_match(
    model,  # noqa: F811
    home,  # noqa: F811
    tmp_path,
    capsys,
) -> None:
    """Without --model the images together choose the bundled model; a fine-tune of the
    survey model inherits the fixed match, so every round reads the tiles alike too."""
    from helpers_data import two_corrections

    from map_refiner.training.corrections.finetune import finetune
    from map_refiner.training.corrections.fit import FitParams
    from map_refiner.training.tile import LabelSource

    a, b = tiles(tmp_path, {"a": darker(home), "b": 0.4 * home})
    out = tmp_path / "survey.safetensors"
    assert main(["survey-model", str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a survey model for 2 images" in printed and "model: the bundled" in printed
    _, cfg = load_model(out)
    assert json.loads(json.dumps(cfg.training))["survey"]["images"] == ["a.tif", "b.tif"]
    assert main(["survey-model", str(a), "--out", str(out)]) == 2  # never overwritten
    net, small = model
    base = save_model(net, small, tmp_path / "base.safetensors")
    fixed = survey_model([a, b], tmp_path / "fixed.safetensors", model=base)
    res = finetune(
        a,
        LabelSource(two_corrections(tmp_path / "c.gpkg", GT), class_field="class", mode="sparse"),
        tmp_path / "round.safetensors",
        fixed.path,
        FitParams(steps=2, anchor_partner=""),
        device="cpu",
    )
    saved = load_model(res.model)[1]
    assert saved.colour_match == load_model(fixed.path)[1].colour_match
    assert matched_for(saved, b).gains.tolist() == fixed.matched.gains.tolist()  # type: ignore[union-attr]


def test_a_survey_of_linear_tiles_fixes_one_power_curve_too(model, home, tmp_path) -> None:  # noqa: F811
    """Tiles stored beyond 8 bits share one power curve as they share the gains; the file
    says so with format 7, and a power out of range is refused."""
    net, cfg = model
    base = save_model(net, cfg, tmp_path / "base.safetensors")
    paths = []
    for name, arr in {"a": home, "b": 0.9 * home}.items():
        path = tmp_path / f"{name}.tif"
        write_image(path, linear(arr), GT).FlushCache()
        paths.append(path)
    reading = survey_model(paths, tmp_path / "s.safetensors", model=base)
    assert reading.matched is not None and reading.matched.power < 1.0
    _, survey = load_model(reading.path)
    assert survey.format_version == 7
    found = matched_for(survey, paths[1])
    assert found is not None and found.power == reading.matched.power
    assert "power curve" in found.note() and "after a power curve of" in reading.describe()
    # an 8-bit tile among them: the survey fixes no curve
    eight = tiles(tmp_path, {"c": darker(home)})[0]
    mixed = survey_model([*paths, eight], tmp_path / "m.safetensors", model=base)
    assert mixed.matched is not None and mixed.matched.power == 1.0
    assert load_model(mixed.path)[1].format_version == 6
    entry = survey.colour_match
    with pytest.raises(MapRefinerError, match="power in"):
        ColourMatch.from_config({**entry, "fixed": {**entry["fixed"], "power": 5.0}})
