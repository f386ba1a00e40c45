"""A training run writes, reads and deletes only its own checkpoint: a user's file that
happens to sit at ``<out>.ckpt.safetensors`` (their base model, anything else) survives
the run; and a resume does not depend on how a path was spelled."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers_data import write_raster
from helpers_engine import random_model, scene, write_image

from map_refiner.engine.modelfile.io import save_model
from map_refiner.training.checkpoint import checkpoint_for, checkpoint_path, is_checkpoint
from map_refiner.training.coarse import CoarseParams, train_coarse
from map_refiner.training.coarse_fit import fingerprint
from map_refiner.training.rnn import RnnParams, train_rnn
from map_refiner.training.tile import LabelSource

GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    mask = np.zeros((48, 48), np.uint8)
    mask[8:24, 10:30] = 255
    write_image(tmp_path / "img.tif", scene(48, 48, seed=95), GT)
    write_raster(tmp_path / "gt.tif", mask, GT, epsg=32633)
    return {"image": tmp_path / "img.tif", "labels": tmp_path / "gt.tif"}


def _coarse(files: dict[str, Path], out: Path) -> CoarseParams:
    return CoarseParams(
        image=files["image"],
        labels=LabelSource(files["labels"], {"0": 0, "255": 1}),
        out=out,
        ground_resolution_m=0.6,
        steps=4,
        batch_size=2,
        out_size=16,
        context=8,
        device="cpu",
        checkpoint_every=2,
    )


def test_a_base_model_named_like_the_checkpoint_survives_the_run(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """``--model mine.ckpt.safetensors --out mine.safetensors`` used to delete the user's
    input model when the run ended."""
    net, cfg = random_model(resolution_m=0.6, seed=3)
    out = tmp_path / "mine.safetensors"
    base = save_model(net, cfg, checkpoint_path(out))
    before = _sha(base)
    res = train_rnn(
        RnnParams(
            image=files["image"],
            labels=LabelSource(files["labels"], {"0": 0, "255": 1}),
            out=out,
            base_model=base,
            steps=4,
            batch_size=2,
            patch_size=24,
            device="cpu",
            checkpoint_every=2,
        )
    )
    assert res.model == out and out.exists()
    assert base.exists() and _sha(base) == before


def test_a_foreign_file_at_the_checkpoint_path_is_never_written_or_deleted(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "coarse.safetensors"
    foreign = checkpoint_path(out)
    foreign.write_bytes(b"someone's notes, not a checkpoint")
    assert checkpoint_for(out) is None
    train_coarse(_coarse(files, out))
    assert foreign.read_bytes() == b"someone's notes, not a checkpoint"


def test_a_run_still_removes_its_own_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "coarse.safetensors"
    assert checkpoint_for(out) == checkpoint_path(out)  # nothing there yet: a run may make one
    seen = []
    train_coarse(
        _coarse(files, out), progress=lambda f: seen.append(is_checkpoint(checkpoint_path(out)))
    )
    assert any(seen), "the run checkpointed"
    assert not checkpoint_path(out).exists()


def test_the_resume_fingerprint_does_not_depend_on_path_spelling(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = _coarse(files, tmp_path / "m.safetensors")
    monkeypatch.chdir(tmp_path)
    relative = replace(
        absolute,
        image=Path("img.tif"),
        labels=LabelSource(Path("./gt.tif"), {"0": 0, "255": 1}),
        out=Path("m.safetensors"),
    )
    assert fingerprint(relative) == fingerprint(absolute)
    assert fingerprint(replace(absolute, lr=0.5)) != fingerprint(absolute)
    os.symlink(files["image"], tmp_path / "link.tif")
    assert fingerprint(replace(absolute, image=tmp_path / "link.tif")) == fingerprint(absolute)
