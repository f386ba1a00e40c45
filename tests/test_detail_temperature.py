"""The score temperature a fine-tuned model hands its detail pass
(ModelConfig.detail_temperature, training/corrections/temperature.py): the model grid's
scores are divided by it before the detail iterations; an adopted fine-tune on a model
with a detail RNN sets it so that its map is as often sure as its parent's."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_corrections_detail import corrections, with_detail, write_rgb
from test_detail_rnn import image_at, refine

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.config import ModelConfig
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.training.corrections import finetune as finetune_module
from map_refiner.training.corrections.fit import FitParams
from map_refiner.training.corrections.temperature import (
    margin_temperature,
    matched_temperature,
    sure_share,
)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("temperature")
    net, cfg = with_detail()
    return {
        "fine": write_rgb(d / "fine.tif", 0.15, 384),
        "model": save_model(net, cfg, d / "base.safetensors"),
    }


def test_a_map_made_surer_gets_the_temperature_that_undoes_it() -> None:
    torch.manual_seed(0)
    parent = torch.randn(2, 64, 64) * 2.5
    assert matched_temperature(parent, 3 * parent) == pytest.approx(3.0, rel=0.02)
    assert matched_temperature(parent, parent * 0.5) == 1.0  # less sure: left alone
    assert matched_temperature(parent, parent, 2.0) == pytest.approx(2.0, rel=0.02)
    # a parent trusted at 2 (the bundled models): a fit no surer keeps the parent's 2
    assert matched_temperature(parent, parent * 0.5, 2.0) == 2.0
    assert matched_temperature(parent, 3 * parent, 2.0) == pytest.approx(6.0, rel=0.02)
    t = matched_temperature(parent, 3 * parent)
    assert sure_share(3 * parent, t) == pytest.approx(sure_share(parent, 1.0), abs=0.01)


def test_the_temperature_changes_only_the_detail_pass(tmp_path: Path) -> None:
    net, cfg = with_detail()
    hot = copy.deepcopy(cfg)
    hot.detail_temperature = 4.0
    fine_img = image_at(tmp_path / "fine.tif", 0.15)
    coarse_img = image_at(tmp_path / "coarse.tif", 0.6)
    fa = refine(fine_img, tmp_path / "fa.tif", (net, cfg))[0]
    fb = refine(fine_img, tmp_path / "fb.tif", (net, hot))[0]
    assert not (fa == fb).all(), "the detail pass starts from cooler scores"
    ca = refine(coarse_img, tmp_path / "ca.tif", (net, cfg))[0]
    cb = refine(coarse_img, tmp_path / "cb.tif", (net, hot))[0]
    assert (ca == cb).all(), "no detail pass, no change"
    b = save_model(net, hot, tmp_path / "b.safetensors")
    assert load_model(b)[1].detail_temperature == 4.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1e9])
def test_a_temperature_out_of_range_is_refused(bad: float) -> None:
    _, cfg = with_detail()
    d = cfg.to_dict()
    d["detail_temperature"] = bad
    with pytest.raises(MapRefinerError, match="detail temperature"):
        ModelConfig.from_dict(d)


def test_a_file_without_one_reads_as_1() -> None:
    _, cfg = with_detail()
    d = cfg.to_dict()
    del d["detail_temperature"]
    assert ModelConfig.from_dict(d).detail_temperature == 1.0


@pytest.mark.parametrize("adopt", [True, False])
def test_an_adopted_fit_records_its_temperature(
    scene: dict, tmp_path: Path, monkeypatch, adopt: bool
) -> None:
    monkeypatch.setattr(finetune_module, "should_adopt", lambda base, tuned: adopt)
    res = finetune_module.finetune(
        scene["fine"],
        corrections(tmp_path / "c.gpkg"),
        tmp_path / "new.safetensors",
        scene["model"],
        FitParams(steps=6, eval_every=2, flip_per_score=float("inf")),
        device="cpu",
    )
    cfg = load_model(res.model)[1]
    assert res.adopted == adopt
    assert cfg.training["finetune"][-1]["detail_temperature"] == cfg.detail_temperature
    if adopt:
        assert 1.0 <= cfg.detail_temperature <= 16.0
    else:
        assert cfg.detail_temperature == 1.0  # the parent's


def test_the_held_out_polygons_scored_by_temperature_only_when_asked(
    scene: dict, tmp_path: Path, monkeypatch
) -> None:
    """FitParams.record_detail_held_out (a study's diagnostic): an adopted fit of a model
    with a detail pass scores the held-out polygons through it at each temperature."""
    monkeypatch.setattr(finetune_module, "should_adopt", lambda base, tuned: True)
    params = FitParams(steps=6, eval_every=2, flip_per_score=float("inf"))
    args = (scene["fine"], corrections(tmp_path / "c.gpkg"))
    plain = finetune_module.finetune(
        *args, tmp_path / "a.safetensors", scene["model"], params, device="cpu"
    )
    assert plain.adopted and plain.detail_held_out is None
    asked = finetune_module.finetune(
        *args,
        tmp_path / "b.safetensors",
        scene["model"],
        FitParams(steps=6, eval_every=2, flip_per_score=float("inf"), record_detail_held_out=True),
        device="cpu",
    )
    scores = asked.detail_held_out
    assert scores is not None
    assert set(scores) == {"start", "1", "1.5", "2", "3", "matched"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # the diagnostic changes nothing the round keeps
    assert (
        load_model(asked.model)[1].detail_temperature
        == load_model(plain.model)[1].detail_temperature
    )


def test_the_margin_match_scales_with_the_fit_and_keeps_the_parents_floor() -> None:
    """temperature.margin_temperature (FitParams.detail_temperature_by "margin"): the
    parent's temperature times how much the fit scaled the median score margin."""
    torch.manual_seed(0)
    parent = torch.randn(2, 64, 64) * 2.5
    assert margin_temperature(parent, 3 * parent) == pytest.approx(3.0, rel=0.01)
    assert margin_temperature(parent, 3 * parent, 2.0) == pytest.approx(6.0, rel=0.01)
    assert margin_temperature(parent, 0.5 * parent, 2.0) == 2.0  # less sure: the parent's
    with pytest.raises(MapRefinerError, match="detail temperature match"):
        FitParams(detail_temperature_by="entropy").check()
