"""The same seed, data and settings give the same bytes and the same weights on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_data import box_wkt, write_raster, write_vector
from helpers_engine import random_model, scene, write_image
from osgeo import ogr

from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.training.corrections.finetune import finetune
from map_refiner.training.corrections.fit import FitParams
from map_refiner.training.rnn import RnnParams, train_rnn
from map_refiner.training.tile import LabelSource

GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("determinism")
    img = scene(72, 80, seed=101)
    mask = np.zeros((72, 80), np.uint8)
    mask[10:30, 12:40] = mask[45:60, 50:70] = 255
    img[:, mask > 0] = 230
    write_image(d / "img.tif", img, GT)
    write_raster(d / "gt.tif", mask, GT, epsg=32633)
    x0, y0 = GT[0], GT[3]
    write_vector(
        d / "fix.gpkg",
        [
            (
                box_wkt(x0 + 13 * 0.6, y0 - 28 * 0.6, x0 + 38 * 0.6, y0 - 12 * 0.6),
                {"c": "building"},
            ),
            (
                box_wkt(x0 + 2 * 0.6, y0 - 70 * 0.6, x0 + 20 * 0.6, y0 - 50 * 0.6),
                {"c": "background"},
            ),
        ],
        32633,
        fields={"c": ogr.OFTString},
    )
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=102, iterations=2)
    return {
        "dir": d,
        "image": d / "img.tif",
        "labels": d / "gt.tif",
        "fix": d / "fix.gpkg",
        "base": save_model(net, cfg, d / "base.safetensors"),
    }


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def same(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_refine_output_is_byte_identical_across_runs(tmp_path: Path, files) -> None:
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run / "c.tif"
        out.parent.mkdir()
        refine_raster(
            RefineParams(
                image=files["image"],
                out=out,
                model_path=files["base"],
                scores=out.with_name("s.tif"),
                device="cpu",
                tile_size=32,
            )
        )
        outs.append(out)
    for name in ("c.tif", "s.tif", "c.tif.aux.xml"):
        assert (outs[0].parent / name).read_bytes() == (outs[1].parent / name).read_bytes(), name


def _rnn(files, out: Path, seed: int) -> Path:
    return train_rnn(
        RnnParams(
            image=files["image"],
            labels=LabelSource(files["labels"], {"0": 0, "255": 1}),
            out=out,
            base_model=files["base"],
            steps=3,
            batch_size=2,
            patch_size=24,
            device="cpu",
            seed=seed,
            checkpoint_every=0,
        )
    ).model


def test_rnn_training_same_seed_same_weights(tmp_path: Path, files) -> None:
    a, b, c = (
        _rnn(files, tmp_path / f"{n}.safetensors", s) for n, s in (("a", 3), ("b", 3), ("c", 4))
    )
    assert same(a, b)
    assert not same(a, c)


def _fit(files, seed: int) -> dict[str, torch.Tensor]:
    """The corrections fit's weights after a few steps (what a fine-tune adopts)."""
    from map_refiner.engine.progress import make_reporter
    from map_refiner.training.corrections.data import load_corrections
    from map_refiner.training.corrections.fit import CorrectionFit

    net, cfg = load_model(files["base"])
    corr = load_corrections(
        files["image"], LabelSource(files["fix"], class_field="c", mode="sparse"), cfg
    )
    fit = CorrectionFit(net, corr.tile, FitParams(steps=2, seed=seed), torch.device("cpu"))
    fit.fit(fit.labels, 2, make_reporter())
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_finetune_same_seed_same_weights(tmp_path: Path, files) -> None:
    a, b, c = (_fit(files, s) for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    base = load_model(files["base"])[0].state_dict()
    assert not all(torch.equal(a[k], base[k]) for k in a)
    # and the whole fine-tune writes the same model twice
    runs = [
        finetune(
            files["image"],
            LabelSource(files["fix"], class_field="c", mode="sparse"),
            tmp_path / f"{n}.safetensors",
            base_model=files["base"],
            params=FitParams(steps=2, seed=0),
            device="cpu",
        ).model
        for n in ("a", "b")
    ]
    assert same(*runs)
