"""Training: the paper's optimisers run, runs are seeded and resumable, and the
model a run starts from is never modified."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_data import wkt_of, write_raster
from osgeo import gdal

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.modelfile.io import load_model
from map_refiner.training.checkpoint import checkpoint_path
from map_refiner.training.coarse import CoarseParams, train_coarse
from map_refiner.training.rnn import RnnParams, train_rnn
from map_refiner.training.tile import LabelSource

GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


def write_rgb(path: Path, arr: np.ndarray) -> Path:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), arr.shape[2], arr.shape[1], arr.shape[0])
    ds.SetGeoTransform(GT)
    ds.SetProjection(wkt_of(32614))
    for i in range(arr.shape[0]):
        ds.GetRasterBand(i + 1).WriteArray(arr[i])
    ds = None
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 96x96 UTM image with bright 'roofs' and its 0/255 building mask."""
    d = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(0)
    img = rng.normal(90, 12, (3, 96, 96))
    mask = np.zeros((96, 96), dtype=np.uint8)
    for y, x, s in [(10, 12, 14), (50, 60, 20), (70, 8, 12), (20, 70, 10)]:
        mask[y : y + s, x : x + s] = 255
    img[:, mask > 0] += 80
    image = write_rgb(d / "img.tif", np.clip(img, 0, 255).astype(np.uint8))
    labels = write_raster(d / "gt.tif", mask, GT, epsg=32614)
    return {"dir": d, "image": image, "labels": labels}


def _coarse(scene: dict, out: Path, steps: int = 4, **kw) -> CoarseParams:
    return CoarseParams(
        image=scene["image"],
        labels=LabelSource(scene["labels"], {"0": 0, "255": 1}),
        out=out,
        ground_resolution_m=0.6,
        steps=steps,
        batch_size=4,
        out_size=16,
        context=8,
        device="cpu",
        **kw,
    )


def _weights(path: Path) -> dict:
    net, _ = load_model(path)
    return {k: v.clone() for k, v in net.state_dict().items()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def coarse_model(scene: dict) -> Path:
    res = train_coarse(_coarse(scene, scene["dir"] / "coarse.safetensors", steps=6))
    return res.model


def test_coarse_training_writes_identity_rnn_model(coarse_model: Path) -> None:
    net, cfg = load_model(coarse_model)
    assert cfg.default_iterations == 0
    assert cfg.training["coarse"]["steps"] == 6
    assert cfg.training["coarse"]["lr"] == 0.01 and cfg.training["coarse"]["momentum"] == 0.9
    x = torch.randn(1, 3, 32, 32)
    heat = torch.randn(1, 2, 32, 32)
    # Until an RNN is trained the refinement must not change the coarse map.
    assert torch.equal(net.rnn(x, heat, 5), heat)
    assert not checkpoint_path(coarse_model).exists()


def test_same_seed_same_weights(scene: dict, tmp_path: Path) -> None:
    a = train_coarse(_coarse(scene, tmp_path / "a.safetensors")).model
    b = train_coarse(_coarse(scene, tmp_path / "b.safetensors")).model
    c = train_coarse(_coarse(scene, tmp_path / "c.safetensors", seed=1)).model
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_cancelled_run_resumes_to_the_same_weights(scene: dict, tmp_path: Path) -> None:
    straight = train_coarse(_coarse(scene, tmp_path / "straight.safetensors", steps=6)).model
    out = tmp_path / "resumed.safetensors"
    seen = []

    def progress(f: float) -> None:
        seen.append(f)

    with pytest.raises(CancelledError):
        train_coarse(
            _coarse(scene, out, steps=6, checkpoint_every=2),
            progress=progress,
            is_cancelled=lambda: len(seen) >= 5,
        )
    assert not out.exists(), "a cancelled run must not leave a model"
    assert checkpoint_path(out).exists(), "a cancelled run keeps its checkpoint to resume"
    res = train_coarse(_coarse(scene, out, steps=6, checkpoint_every=2))
    assert res.resumed_from in (2, 4)
    ws, wr = _weights(straight), _weights(res.model)
    for k in ws:
        assert torch.allclose(ws[k], wr[k], atol=1e-6), k
    assert not checkpoint_path(out).exists()


def test_rnn_training_keeps_cnn_and_base_file(
    scene: dict, coarse_model: Path, tmp_path: Path
) -> None:
    before = _sha(coarse_model)
    out = tmp_path / "rnn.safetensors"
    res = train_rnn(
        RnnParams(
            image=scene["image"],
            labels=LabelSource(scene["labels"], {"0": 0, "255": 1}),
            out=out,
            base_model=coarse_model,
            steps=3,
            batch_size=2,
            patch_size=24,
            device="cpu",
        )
    )
    assert _sha(coarse_model) == before, "the base model file must never be modified"
    base, new = _weights(coarse_model), _weights(res.model)
    for k in base:
        if k.startswith("coarse."):
            assert torch.equal(base[k], new[k]), f"the CNN must stay frozen ({k})"
    assert not torch.equal(base["rnn.mlp_out.weight"], new["rnn.mlp_out.weight"])
    _, cfg = load_model(res.model)
    assert cfg.default_iterations == 5 and cfg.training["rnn"]["steps"] == 3


def test_labels_with_unknown_classes_are_refused(
    scene: dict, coarse_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(MapRefinerError, match="classes"):
        train_rnn(
            RnnParams(
                image=scene["image"],
                labels=LabelSource(scene["labels"], {"0": 0, "255": 7}),
                out=tmp_path / "x.safetensors",
                base_model=coarse_model,
                steps=1,
                device="cpu",
            )
        )
    assert not (tmp_path / "x.safetensors").exists()


def test_an_rnn_trained_on_bands_that_name_no_colours_says_which_it_read(
    scene: dict, coarse_model: Path, tmp_path: Path
) -> None:
    """A base of red, green and blue bands trained on a four-band image whose bands name no
    colours: its CNN read bands 1, 2, 3 as red, green, blue, and the result says so and how
    to choose 3, 2, 1 (session 49); with the bands chosen, nothing to say."""
    from map_refiner.engine.modelfile.io import save_model

    net, cfg = load_model(coarse_model)
    cfg.band_names = ["red", "green", "blue"]
    base = save_model(net, cfg, tmp_path / "rgb.safetensors")
    four = tmp_path / "bgrn.tif"
    gdal.Translate(
        str(four),
        str(scene["image"]),
        options="-b 3 -b 2 -b 1 -b 1 -colorinterp undefined,undefined,undefined,undefined",
    )

    def trained(bands: list[int] | None, name: str) -> str:
        params = RnnParams(
            image=four,
            labels=LabelSource(scene["labels"], {"0": 0, "255": 1}),
            out=tmp_path / name,
            base_model=base,
            steps=2,
            batch_size=2,
            patch_size=24,
            device="cpu",
            bands=bands,
        )
        return train_rnn(params).note

    assert "choose bands 3, 2, 1" in trained(None, "a.safetensors")
    assert trained([3, 2, 1], "b.safetensors") == ""
