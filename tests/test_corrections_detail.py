"""The fine-tune's detail stage (training/corrections/detail_stage.py, fine_data.py;
opt-in: FitParams.detail, finetune --detail-fit):
on imagery where a refine runs the model's detail RNN, the fine-tune fits that RNN to
the drawn polygons on the fine grid too, keeps it only when it beats the starting
detail RNN on the held-out polygons, and records what it did; elsewhere (coarser
imagery, a model without one, ``detail=False``, the default) the detail RNN is left
alone."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_data import box_wkt, wkt_of, write_vector
from helpers_engine import random_model
from osgeo import gdal, ogr

from map_refiner.engine.labels.classes import IGNORE
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.progress import make_reporter
from map_refiner.engine.refine.resample import axis_band
from map_refiner.engine.refine.tiling import Detail
from map_refiner.training.corrections import detail_stage
from map_refiner.training.corrections.data import load_corrections
from map_refiner.training.corrections.detail_stage import DetailFit, held_out_phase
from map_refiner.training.corrections.fine_data import (
    FineCorrections,
    FineCrop,
    load_fine_corrections,
)
from map_refiner.training.corrections.finetune import finetune
from map_refiner.training.corrections.fit import FitParams
from map_refiner.training.tile import LabelSource

gdal.UseExceptions()
EPSG = 32614
X0, Y0 = 600000.0, 3340000.0


def with_detail(seed: int = 5):
    """A random 0.6 m model with a detail RNN (a copy of its RNN) run for 2 iterations."""
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=seed)
    cfg = copy.deepcopy(cfg)
    cfg.detail_iterations = 2
    cfg.validate()
    net.detail_rnn = copy.deepcopy(net.rnn)
    return net, cfg


def write_rgb(path: Path, pixel_m: float, size: int) -> Path:
    """Bright square roofs on noisy ground, ``size`` pixels of ``pixel_m`` a side."""
    rng = np.random.default_rng(0)
    img = rng.normal(90, 12, (3, size, size))
    k = size / 96
    for y, x, s in [(10, 12, 14), (50, 60, 20), (70, 8, 12), (20, 70, 10)]:
        img[:, int(y * k) : int((y + s) * k), int(x * k) : int((x + s) * k)] += 80
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 3)
    ds.SetGeoTransform((X0, pixel_m, 0.0, Y0, 0.0, -pixel_m))
    ds.SetProjection(wkt_of(EPSG))
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(np.clip(img[i], 0, 255).astype(np.uint8))
    ds = None
    return path


#: Boxes in metres from the image's corner (x0, y0, x1, y1; y down) and their classes:
#: two of each class, so one of each can be held out.
FOUR = [
    ((7.2, 6.0, 15.6, 14.4), "building"),
    ((36.0, 30.0, 48.0, 42.0), "building"),
    ((18.0, 18.0, 27.0, 27.0), "background"),
    ((1.2, 30.0, 6.0, 36.0), "background"),
]


def corrections(path: Path) -> LabelSource:
    feats = [
        (box_wkt(X0 + x0, Y0 - y1, X0 + x1, Y0 - y0), {"class": c}) for (x0, y0, x1, y1), c in FOUR
    ]
    write_vector(path, feats, epsg=EPSG, fields={"class": ogr.OFTString})
    return LabelSource(path, class_field="class", mode="sparse")


@pytest.fixture(scope="module")
def fine(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("fine")
    net, cfg = with_detail()
    return {
        "dir": d,
        "fine": write_rgb(d / "fine.tif", 0.15, 384),  # 4x the model's grid: detail runs
        "coarse": write_rgb(d / "coarse.tif", 0.6, 96),  # the model's grid: none runs
        "model": save_model(net, cfg, d / "base.safetensors"),
    }


def _detail_weights(path: Path) -> dict[str, torch.Tensor]:
    net = load_model(path)[0]
    return {k: v.clone() for k, v in net.detail_rnn.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_polygons_are_read_on_the_refine_s_detail_grid(fine: dict, tmp_path: Path) -> None:
    _, cfg = load_model(fine["model"])
    corr = load_corrections(fine["fine"], corrections(tmp_path / "c.gpkg"), cfg)
    got = load_fine_corrections(fine["fine"], corr, cfg, list(cfg.bands))
    assert got is not None and got.detail.iterations == 2
    # the image's own 0.15 m pixels (measured on the ground: within a pixel of 384)
    assert abs(got.detail.width - 384) <= 1 and abs(got.detail.height - 384) <= 1
    assert len(got.crops) == 4
    for i, (crop, ((x0, y0, x1, y1), cls)) in enumerate(zip(got.crops, FOUR)):
        assert crop.image.shape[0] == 3 and crop.image.shape[1:] == crop.labels.shape
        own = crop.features == i  # a crop also holds its neighbours within the margin
        area = (x1 - x0) * (y1 - y0) / 0.15**2  # the polygon's pixels on the fine grid
        assert abs(int(own.sum()) - area) <= 0.05 * area
        assert bool((crop.labels[own] == cfg.class_names.index(cls)).all())
        assert bool((crop.labels[crop.features < 0] == IGNORE).all())


def test_on_fine_imagery_the_detail_rnn_is_fitted_and_checked(fine: dict, tmp_path: Path) -> None:
    before = _detail_weights(fine["model"])
    res = finetune(
        fine["fine"],
        corrections(tmp_path / "c.gpkg"),
        tmp_path / "new.safetensors",
        fine["model"],
        FitParams(steps=6, eval_every=2, detail=True),
        device="cpu",
    )
    assert res.detail is not None and res.detail.base_score is not None
    rec = load_model(res.model)[1].training["finetune"][-1]["detail"]
    assert rec["adopted"] == res.detail.adopted
    after = _detail_weights(res.model)
    if res.detail.adopted:
        assert res.detail.tuned_score > res.detail.base_score
        assert not _same(before, after) and "detail pass was fitted" in res.message
    else:
        assert _same(before, after) and "kept as it was" in res.message


@pytest.mark.parametrize("image, detail", [("coarse", True), ("fine", False)])
def test_elsewhere_the_detail_rnn_is_left_alone(
    fine: dict, tmp_path: Path, image: str, detail: bool
) -> None:
    res = finetune(
        fine[image],
        corrections(tmp_path / "c.gpkg"),
        tmp_path / "new.safetensors",
        fine["model"],
        FitParams(steps=4, eval_every=2, detail=detail),
        device="cpu",
    )
    assert res.detail is None
    assert "detail" not in load_model(res.model)[1].training["finetune"][-1]
    assert _same(_detail_weights(fine["model"]), _detail_weights(res.model))


def _toy_stage(seed: int = 0) -> tuple[DetailFit, torch.Tensor]:
    """A 2-crop detail stage on synthetic data: crop 0 draws feature 0 (building) and
    feature 1 (background), crop 1 the held-out features 2 (building) and 3."""
    torch.manual_seed(seed)
    net, _ = with_detail(seed=seed)
    n, side = 40, 80  # model-grid window, fine crops
    window = torch.randn(2, n, n) * 0.3  # unsure everywhere: the fit may change it all
    crops = []
    for c in range(2):
        img = torch.randn(3, side, side)
        labels = torch.full((side, side), IGNORE, dtype=torch.long)
        feats = torch.full((side, side), -1, dtype=torch.long)
        img[:, 20:40, 20:40] += 2.0  # a bright roof, drawn as building
        labels[20:40, 20:40], feats[20:40, 20:40] = 1, 2 * c
        labels[50:70, 50:70], feats[50:70, 50:70] = 0, 2 * c + 1
        crops.append(
            FineCrop(
                img,
                labels,
                feats,
                axis_band(0, side, 2.0, 0, n, n),
                axis_band(0, side, 2.0, 0, n, n),
            )
        )
    fine = FineCorrections(Detail(2, 2 * n, 2 * n, (0.3, 0.3)), crops)
    params = FitParams(eval_every=5, detail_lr=3e-3, seed=seed)
    return DetailFit(net.detail_rnn, fine, window, params, 0.9, torch.device("cpu")), window


def test_the_detail_stage_learns_the_drawn_classes_on_the_fine_grid() -> None:
    stage, window = _toy_stage()
    stage.set_starts(window)
    before = stage.score(stage.rnn, [0, 1, 2, 3])
    stage.fit([], 60, make_reporter(), evaluate=False)
    assert stage.score(stage.rnn, [0, 1, 2, 3]) > max(before, 0.9)


def test_a_detail_fit_no_better_on_held_out_polygons_is_not_adopted(monkeypatch) -> None:
    stage, window = _toy_stage()
    start = {k: v.clone() for k, v in stage.base_rnn.state_dict().items()}

    def worse(held, steps, rep, evaluate=True):  # a fit that learnt nothing useful
        broken = {k: torch.zeros_like(v) for k, v in start.items()}
        return broken, 0.0, steps, []

    monkeypatch.setattr(stage, "fit", worse)
    out = held_out_phase(stage, window, [2, 3], 10, make_reporter())
    assert not out.adopted and out.tuned_score == 0.0
    assert _same(start, stage.rnn.state_dict())
    assert detail_stage.ADOPT_AT_LEAST > 0.5


@pytest.mark.parametrize("flag", [True, False])
def test_the_cli_fits_the_detail_rnn_only_when_asked(
    fine: dict, tmp_path: Path, capsys, flag: bool
) -> None:
    from map_refiner import cli

    out = tmp_path / "new.safetensors"
    args = ["finetune", fine["fine"], corrections(tmp_path / "c.gpkg").path]
    args += ["--class-field", "class"]
    args += ["--mode", "sparse", "--out", out, "--model", fine["model"], "--steps", "4"]
    args += ["--device", "cpu"] + (["--detail-fit"] if flag else [])
    assert cli.main([str(a) for a in args]) == 0
    printed = capsys.readouterr().out
    record = load_model(out)[1].training["finetune"][-1]
    assert ("detail" in record) == flag
    assert ("outline detail pass" in printed) == flag
