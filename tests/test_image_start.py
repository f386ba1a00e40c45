"""Round after round on one image, each round fits the networks the image's first round
started from, on every polygon drawn there so far (training/corrections/image_start.py):
its gate holds that one model, a round not adopted keeps the last round's networks, and a
round on another image fits the model it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_data import box_wkt, write_vector
from helpers_engine import make_tif, random_model
from osgeo import ogr

from map_refiner.engine.modelfile.config import ModelConfig
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.networks.models import MapRefinerNet
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.training.corrections import finetune as ft
from map_refiner.training.corrections.fit import CHANGE_GATE, FitParams
from map_refiner.training.corrections.image_start import image_start
from map_refiner.training.tile import LabelSource

GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)
SQUARES = [(5, 5, 20, 20), (60, 60, 80, 80), (30, 30, 45, 45), (5, 60, 15, 75)]
CLASSES = ("building", "building", "background", "background")


def same_tensors(a: MapRefinerNet, b: MapRefinerNet) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def own_networks(net: MapRefinerNet) -> dict[str, torch.Tensor]:
    return {k: v for k, v in net.state_dict().items() if not k.startswith("gate_parent.")}


def layer(tmp_path: Path, name: str, squares: list[tuple[int, int, int, int]]) -> LabelSource:
    feats = [
        (
            box_wkt(GT[0] + x0 * 0.6, GT[3] - y1 * 0.6, GT[0] + x1 * 0.6, GT[3] - y0 * 0.6),
            {"class": c},
        )
        for (x0, y0, x1, y1), c in zip(squares, CLASSES * 2)
    ]
    path = tmp_path / f"{name}.gpkg"
    write_vector(path, feats, epsg=32633, fields={"class": ogr.OFTString})
    return LabelSource(path, class_field="class", mode="sparse")


@pytest.fixture
def rounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """An image, a base model and a function running a forced round (adopted or not)."""
    image = make_tif(tmp_path / "img.tif", 96, 96, seed=2, geotransform=GT, epsg=32633)
    base = save_model(*random_model(resolution_m=0.6, seed=5), tmp_path / "base.safetensors")
    adopt: list[bool] = [True]
    monkeypatch.setattr(ft, "should_adopt", lambda base, tuned: adopt[0])
    monkeypatch.setattr(ft, "flip_cap", lambda score, per_score: float("inf"))

    def run(model: Path, out: str, adopted: bool, on: Path = image, **params: object):
        adopt[0] = adopted
        fit = FitParams(steps=4, eval_every=2, flip_sure_ratio=float("inf"), **params)  # type: ignore[arg-type]
        return ft.finetune(
            on,
            layer(tmp_path, out, SQUARES),
            tmp_path / f"{out}.safetensors",
            model,
            fit,
            device="cpu",
        )

    return image, base, run


def test_a_second_round_on_the_image_fits_and_gates_against_the_image_s_start(rounds) -> None:  # noqa: ANN001
    image, base, run = rounds
    first = run(base, "r1", True)
    second = run(first.model, "r2", True)
    net, cfg = load_model(second.model)
    base_net, base_cfg = load_model(base)
    r1_net, _ = load_model(first.model)
    # one gate, against the base: not round 1 with the base inside
    assert same_tensors(net.gate_parent, base_net) and net.gate_parent.gate_parent is None
    assert cfg.parent_config().name == base_cfg.name and not cfg.parent_config().gate_parent
    # fitted from the base's networks on the same polygons, seed and steps as round 1: the
    # same networks as round 1's (the old way, from round 1's networks, learns on from them)
    mine, r1_own = own_networks(net), own_networks(r1_net)
    assert mine.keys() == r1_own.keys() and all(torch.equal(v, r1_own[k]) for k, v in mine.items())
    on_from_r1 = own_networks(
        load_model(run(first.model, "old", True, from_image_start=False).model)[0]
    )
    assert not all(torch.equal(v, on_from_r1[k]) for k, v in mine.items())
    rounds_done = [(r["image"], r["round"], r["adopted"]) for r in cfg.training["finetune"]]
    assert rounds_done == [("img.tif", 1, True), ("img.tif", 2, True)]
    assert "round 2" in cfg.name and "first round started from" in second.message
    assert cfg.training["finetune"][-1]["fitted_from"] == base_cfg.name
    assert second.fitted_from == base_cfg.name and first.fitted_from is None
    assert "fitted_from" not in load_model(first.model)[1].training["finetune"][-1]
    assert cfg.corrections and cfg.change_gate == CHANGE_GATE
    out = image.parent / "map.tif"
    refine_raster(RefineParams(image=image, out=out, model_path=second.model))
    assert out.is_file()


def test_a_round_not_adopted_keeps_the_last_round_s_networks(rounds) -> None:  # noqa: ANN001
    _, base, run = rounds
    first = run(base, "r1", True)
    second = run(first.model, "r2", False)
    net, cfg = load_model(second.model)
    r1_net, r1_cfg = load_model(first.model)
    assert not second.adopted and same_tensors(net, r1_net)  # its gate parent too
    assert cfg.change_gate == r1_cfg.change_gate and cfg.gate_parent == r1_cfg.gate_parent
    assert cfg.detail_temperature == r1_cfg.detail_temperature
    assert "round 2" in cfg.name and cfg.training["finetune"][-1]["adopted"] is False
    assert "the last round's networks are kept" in second.message
    # a third round walks past the round not adopted to the same start, the base
    third = run(second.model, "r3", True)
    t_net, t_cfg = load_model(third.model)
    assert same_tensors(t_net.gate_parent, load_model(base)[0])
    assert [r["round"] for r in t_cfg.training["finetune"]] == [1, 2, 3]


def test_rounds_made_before_walk_to_the_start_and_the_old_way_stays_an_option(rounds) -> None:  # noqa: ANN001
    _, base, run = rounds
    first = run(base, "r1", True)
    old = run(first.model, "r2", True, from_image_start=False)
    old_net, _ = load_model(old.model)
    assert same_tensors(old_net.gate_parent, load_model(first.model)[0])  # nested, as before
    third = run(old.model, "r3", True)
    net, _ = load_model(third.model)
    assert same_tensors(net.gate_parent, load_model(base)[0])


def test_a_round_on_another_image_fits_the_model_it_is_given(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    _, base, run = rounds
    first = run(base, "r1", True)
    other_gt = (GT[0] + 1000.0, *GT[1:])
    other = make_tif(tmp_path / "other.tif", 96, 96, seed=4, geotransform=other_gt, epsg=32633)
    # the same polygons' shapes, moved onto the other image
    feats = [
        (
            box_wkt(
                other_gt[0] + x0 * 0.6, GT[3] - y1 * 0.6, other_gt[0] + x1 * 0.6, GT[3] - y0 * 0.6
            ),
            {"class": c},
        )
        for (x0, y0, x1, y1), c in zip(SQUARES, CLASSES)
    ]
    write_vector(tmp_path / "o.gpkg", feats, epsg=32633, fields={"class": ogr.OFTString})

    def on_other(model: Path, out: str):  # noqa: ANN202
        return ft.finetune(
            other,
            LabelSource(tmp_path / "o.gpkg", class_field="class", mode="sparse"),
            tmp_path / f"{out}.safetensors",
            model,
            FitParams(steps=4, eval_every=2, flip_sure_ratio=float("inf")),
            device="cpu",
        )

    r1_net = load_model(first.model)[0]
    net, _ = load_model(on_other(first.model, "o1").model)
    assert same_tensors(net.gate_parent, r1_net)
    # the other image's second round starts where that image started, round 1 of the
    # first image (its own gate inside), not where the first image started
    net2, cfg2 = load_model(on_other(tmp_path / "o1.safetensors", "o2").model)
    assert same_tensors(net2.gate_parent, r1_net) and net2.gate_parent.gate_parent is not None
    assert [(r["image"], r["round"]) for r in cfg2.training["finetune"]] == [
        ("img.tif", 1),
        ("other.tif", 1),
        ("other.tif", 2),
    ]


def _with_rounds(config: ModelConfig, *rounds: tuple[str, bool]) -> ModelConfig:
    config.training = {
        "finetune": [{"image": i, "round": n + 1, "adopted": a} for n, (i, a) in enumerate(rounds)]
    }
    return config


def test_the_start_is_found_only_for_a_round_on_this_image(rounds, tmp_path: Path) -> None:  # noqa: ANN001
    import copy
    import shutil

    from map_refiner.engine.rasters.read import open_raster

    image, base, run = rounds
    net, cfg = load_model(run(base, "r1", True).model)
    found = image_start(net, cfg, image, open_raster(image))
    assert found is not None and same_tensors(found[0], load_model(base)[0])
    # a copy under another name: the same grid and look, the same image
    renamed = Path(shutil.copy(image, tmp_path / "renamed.tif"))
    assert image_start(net, cfg, renamed, open_raster(renamed)) is not None
    # a model whose last adopted round was on another image starts here
    moved = _with_rounds(cfg.parent_config(), ("img.tif", True), ("b.tif", True))
    moved.corrections = cfg.corrections
    assert image_start(net, moved, image, open_raster(image)) is None
    # rounds recorded before session 52 (no image_grid) are told by the image's name
    old = copy.deepcopy(cfg)
    for r in old.training["finetune"]:
        r.pop("image_grid")
    assert image_start(net, old, image, open_raster(image)) is not None
    assert image_start(net, old, renamed, open_raster(renamed)) is None
    # an image of the same name on another grid, or another year's image on this grid
    # (none of the polygons shows what it showed when drawn): not this image
    (tmp_path / "east").mkdir()
    (tmp_path / "2024").mkdir()
    east = make_tif(
        tmp_path / "east" / "img.tif",
        96,
        96,
        seed=2,
        geotransform=(GT[0] + 5000.0, *GT[1:]),
        epsg=32633,
    )
    assert image_start(net, cfg, east, open_raster(east)) is None
    later = make_tif(tmp_path / "2024" / "img.tif", 96, 96, seed=9, geotransform=GT, epsg=32633)
    assert image_start(net, cfg, later, open_raster(later)) is None
    # a model never fine-tuned starts here
    assert image_start(*load_model(base), image, open_raster(image)) is None


def test_info_says_what_a_round_was_fitted_from(rounds, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    import json

    from map_refiner import cli

    _, base, run = rounds
    second = run(run(base, "r1", True).model, "r2", True)
    capsys.readouterr()
    assert cli.main(["info", str(second.model)]) == 0
    shown = json.loads(capsys.readouterr().out)["round"]
    assert shown["round"] == 2 and shown["parent"] == "r1.safetensors"
    assert shown["fitted_from"] == load_model(base)[1].name


def test_a_polygon_deleted_from_the_layer_is_gone_from_the_next_round_s_map(
    rounds, tmp_path: Path
) -> None:  # noqa: ANN001
    """Round 1 learnt a wrong polygon; the user deletes it from the layer and runs round 2:
    the map no longer shows it (it was kept and burned in every later map before session
    52), and the round says so."""
    from osgeo import gdal

    image, base, run = rounds
    wrong = (40, 5, 55, 20)
    source = layer(tmp_path, "with_wrong", [*SQUARES, wrong])  # the fifth is a building
    first = ft.finetune(
        image,
        source,
        tmp_path / "w1.safetensors",
        base,
        FitParams(steps=4, eval_every=2, flip_sure_ratio=float("inf")),
        device="cpu",
    )
    shown = tmp_path / "w1.tif"
    refine_raster(RefineParams(image=image, out=shown, model_path=first.model))
    assert (gdal.Open(str(shown)).ReadAsArray()[5:20, 40:55] == 1).all()
    second = run(first.model, "without_wrong", True)  # the four squares only
    assert "1 polygon is no longer in your layer" in second.message
    out = tmp_path / "w2.tif"
    refine_raster(RefineParams(image=image, out=out, model_path=second.model))
    assert not (gdal.Open(str(out)).ReadAsArray()[5:20, 40:55] == 1).all()
    assert load_model(second.model)[1].training["finetune"][-1]["polygons"] == 4
