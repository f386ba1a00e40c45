"""Training: the paper's optimisers run, runs are seeded and resumable, and the
model a run starts from is never modified."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal, ogr

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.modelfile.io import load_model
from map_refiner.training.checkpoint import checkpoint_path
from map_refiner.training.coarse import CoarseParams, train_coarse
from map_refiner.training.rnn import RnnParams, finetune, train_rnn
from map_refiner.training.tile import LabelSource

from helpers_data import box_wkt, write_raster, write_vector, wkt_of

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
        mask[y:y + s, x:x + s] = 255
    img[:, mask > 0] += 80
    image = write_rgb(d / "img.tif", np.clip(img, 0, 255).astype(np.uint8))
    labels = write_raster(d / "gt.tif", mask, GT, epsg=32614)
    return {"dir": d, "image": image, "labels": labels}


def _coarse(scene: dict, out: Path, steps: int = 4, **kw) -> CoarseParams:
    return CoarseParams(image=scene["image"], labels=LabelSource(scene["labels"], {"0": 0, "255": 1}),
                        out=out, ground_resolution_m=0.6, steps=steps, batch_size=4,
                        out_size=16, context=8, device="cpu", **kw)


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
        train_coarse(_coarse(scene, out, steps=6, checkpoint_every=2), progress=progress,
                     is_cancelled=lambda: len(seen) >= 5)
    assert not out.exists(), "a cancelled run must not leave a model"
    assert checkpoint_path(out).exists(), "a cancelled run keeps its checkpoint to resume"
    res = train_coarse(_coarse(scene, out, steps=6, checkpoint_every=2))
    assert res.resumed_from in (2, 4)
    ws, wr = _weights(straight), _weights(res.model)
    for k in ws:
        assert torch.allclose(ws[k], wr[k], atol=1e-6), k
    assert not checkpoint_path(out).exists()


def test_rnn_training_keeps_cnn_and_base_file(scene: dict, coarse_model: Path, tmp_path: Path) -> None:
    before = _sha(coarse_model)
    out = tmp_path / "rnn.safetensors"
    res = train_rnn(RnnParams(image=scene["image"], labels=LabelSource(scene["labels"], {"0": 0, "255": 1}),
                              out=out, base_model=coarse_model, steps=3, batch_size=2,
                              patch_size=24, device="cpu"))
    assert _sha(coarse_model) == before, "the base model file must never be modified"
    base, new = _weights(coarse_model), _weights(res.model)
    for k in base:
        if k.startswith("coarse."):
            assert torch.equal(base[k], new[k]), f"the CNN must stay frozen ({k})"
    assert not torch.equal(base["rnn.mlp_out.weight"], new["rnn.mlp_out.weight"])
    _, cfg = load_model(res.model)
    assert cfg.default_iterations == 5 and cfg.training["rnn"]["steps"] == 3


def test_finetune_on_sparse_polygons_changes_only_the_rnn(scene: dict, coarse_model: Path,
                                                         tmp_path: Path) -> None:
    base_rnn = tmp_path / "base.safetensors"
    train_rnn(RnnParams(image=scene["image"], labels=LabelSource(scene["labels"], {"0": 0, "255": 1}),
                        out=base_rnn, base_model=coarse_model, steps=2, batch_size=2,
                        patch_size=24, device="cpu"))
    x0, y0 = GT[0], GT[3]
    polys = write_vector(tmp_path / "fix.gpkg", [
        (box_wkt(x0 + 30 * 0.6, y0 - 64 * 0.6, x0 + 34 * 0.6, y0 - 60 * 0.6), {"class": "building"}),
        (box_wkt(x0 + 2 * 0.6, y0 - 40 * 0.6, x0 + 6 * 0.6, y0 - 36 * 0.6), {"class": "background"}),
    ], epsg=32614, fields={"class": ogr.OFTString})
    out = tmp_path / "fixed.safetensors"
    res = finetune(scene["image"], LabelSource(polys, class_field="class", mode="sparse"), out,
                   base_model=base_rnn, steps=3, device="cpu")
    base, new = _weights(base_rnn), _weights(res.model)
    assert any(not torch.equal(base[k], new[k]) for k in base if k.startswith("rnn."))
    assert all(torch.equal(base[k], new[k]) for k in base if k.startswith("coarse."))
    _, cfg = load_model(out)
    assert len(cfg.training["finetune"]) == 1
    assert cfg.training["finetune"][0]["init"] == "base"


def test_labels_with_unknown_classes_are_refused(scene: dict, coarse_model: Path, tmp_path: Path) -> None:
    with pytest.raises(MapRefinerError, match="classes"):
        train_rnn(RnnParams(image=scene["image"], labels=LabelSource(scene["labels"], {"0": 0, "255": 7}),
                            out=tmp_path / "x.safetensors", base_model=coarse_model, steps=1,
                            device="cpu"))
    assert not (tmp_path / "x.safetensors").exists()


def test_anchored_labels_fill_only_unlabelled_pixels() -> None:
    """Fine-tuning anchors unlabelled pixels to the model's own map."""
    from map_refiner.engine.networks.models import RefinementRNN
    from map_refiner.training.rnn_fit import anchored
    from map_refiner.training.tile import IGNORE, TrainingTile

    torch.manual_seed(0)
    rnn = RefinementRNN(3, 2)
    image, heat = torch.randn(3, 20, 24), torch.randn(2, 20, 24) * 3
    labels = torch.full((20, 24), IGNORE, dtype=torch.uint8)
    labels[5:8, 5:9] = 1
    labels[12, 3] = 0
    tile = anchored(TrainingTile(image, labels), rnn, heat, 5, torch.device("cpu"))
    with torch.no_grad():
        current = rnn(image[None], heat[None], 5)[0].argmax(0).to(torch.uint8)
    assert (tile.labels != IGNORE).all()
    assert torch.equal(tile.labels[5:8, 5:9], labels[5:8, 5:9])
    assert int(tile.labels[12, 3]) == 0
    free = labels == IGNORE
    assert torch.equal(tile.labels[free], current[free])
