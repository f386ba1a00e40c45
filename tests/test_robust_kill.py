"""SIGKILL at a random point: a refine leaves the complete old output or the complete new
one, never a partial file under the target's name; training resumes from its last
checkpoint to the weights of an uninterrupted run and never touches its base model.

The kill times are drawn from a seeded generator, inside the window where the job is
writing (after its hidden temporary file or first checkpoint appears).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_data import write_raster
from helpers_engine import random_model, scene, write_image
from osgeo import gdal

from map_refiner.engine.errors import CancelledError
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.training.checkpoint import checkpoint_for, checkpoint_path, is_checkpoint
from map_refiner.training.coarse import train_coarse
from map_refiner.training.coarse_fit import fingerprint
from map_refiner.training.rnn import RnnParams, train_rnn
from map_refiner.training.tile import LabelSource

gdal.UseExceptions()
GT = (600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4)
PARTIAL = re.compile(r"^\.[cs]\.[0-9a-f]{8}\.partial\.tif(\.aux\.xml)?$")
SEED = 20240613


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Poll until ``predicate()``; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("kill")
    rng = np.random.default_rng(91)
    write_image(d / "in.tif", rng.integers(0, 250, (3, 240, 240)).astype(np.uint8), GT)
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=92, iterations=5)
    model = save_model(net, cfg, d / "m.safetensors")
    old = d / "old.tif"
    refine_raster(
        RefineParams(image=d / "in.tif", out=old, device="cpu", iterations=0), model=(net, cfg)
    )
    return {"dir": d, "image": d / "in.tif", "model": model, "old": old}


def test_sigkill_during_refine_leaves_old_or_new_never_partial(
    tmp_path: Path, job: dict[str, Path]
) -> None:
    out, scores = tmp_path / "c.tif", tmp_path / "s.tif"
    old_bytes = job["old"].read_bytes()
    out.write_bytes(old_bytes)
    cmd = [
        sys.executable,
        "-m",
        "map_refiner",
        "refine",
        str(job["image"]),
        "--out",
        str(out),
        "--scores",
        str(scores),
        "--model",
        str(job["model"]),
        "--tile-size",
        "32",
        "--device",
        "cpu",
        "--overwrite",
    ]
    rng = np.random.default_rng(SEED)
    states: list[np.ndarray | None] = []
    kills = 0
    for delay in rng.uniform(0.0, 2.5, size=4):  # one lands near the end of the run
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        writing = wait_for(lambda: any(PARTIAL.match(n) for n in os.listdir(tmp_path)), proc)
        if writing:
            time.sleep(float(delay))
            kills += proc.poll() is None
        kill(proc)
        stray = [
            n
            for n in os.listdir(tmp_path)
            if n not in ("c.tif", "s.tif", "c.tif.aux.xml") and not PARTIAL.match(n)
        ]
        assert stray == [], "only hidden temporaries may be left beside the target"
        if out.read_bytes() == old_bytes:
            states.append(None)  # the complete old state
        else:
            states.append(gdal.Open(str(out)).ReadAsArray())  # must be complete to read
    assert kills >= 1, "no kill landed while the refine was writing"
    done = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["c.tif", "c.tif.aux.xml", "s.tif"], (
        "the next run removes the temporaries the killed runs left"
    )
    new = gdal.Open(str(out)).ReadAsArray()
    assert new.shape == (240, 240) and set(np.unique(new)) <= {0, 1}
    for state in states:
        if state is not None:
            np.testing.assert_array_equal(state, new)
    probs = gdal.Open(str(scores)).ReadAsArray()
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from map_refiner.training.rnn import RnnParams, train_rnn
    from map_refiner.training.tile import LabelSource
    image, labels, base, out = map(Path, sys.argv[1:5])
    params = RnnParams(image=image, labels=LabelSource(labels, {"0": 0, "255": 1}), out=out,
                       base_model=base, steps=14, batch_size=2, patch_size=24, device="cpu",
                       seed=5, checkpoint_every=2)
    train_rnn(params, progress=lambda f: time.sleep(0.12))
""")


def _params(scene_files: dict[str, Path], out: Path, **kw) -> RnnParams:
    return RnnParams(
        image=scene_files["image"],
        labels=LabelSource(scene_files["labels"], {"0": 0, "255": 1}),
        out=out,
        base_model=scene_files["base"],
        steps=14,
        batch_size=2,
        patch_size=24,
        device="cpu",
        seed=5,
        **kw,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_during_training_resumes_to_the_same_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same arithmetic as the subprocess
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _kill_and_resume(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _kill_and_resume(tmp_path: Path) -> None:
    img = scene(64, 64, seed=93)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 12:40] = 255
    img[:, mask > 0] = 220
    files = {"image": tmp_path / "img.tif", "labels": tmp_path / "gt.tif"}
    write_image(files["image"], img, (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6))
    write_raster(files["labels"], mask, (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6), epsg=32633)
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=94)
    files["base"] = save_model(net, cfg, tmp_path / "base.safetensors")
    base_sha = _sha(files["base"])
    straight = train_rnn(_params(files, tmp_path / "straight.safetensors", checkpoint_every=0))

    out = tmp_path / "resumed.safetensors"
    ckpt = checkpoint_path(out)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            TRAIN_SCRIPT,
            str(files["image"]),
            str(files["labels"]),
            str(files["base"]),
            str(out),
        ],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert wait_for(ckpt.exists, proc), proc.stderr.read().decode() if proc.stderr else ""
    time.sleep(float(np.random.default_rng(SEED).uniform(0.0, 0.8)))
    kill(proc)
    assert _sha(files["base"]) == base_sha, "the base model is never modified"
    assert not out.exists(), "killed before the end: no model under the target's name"
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".")]
    assert all(".partial." in n for n in leftovers)

    res = train_rnn(_params(files, out, checkpoint_every=2))
    assert 2 <= res.resumed_from < 14, "resumed from the last checkpoint"
    a, b = load_model(straight.model)[0].state_dict(), load_model(res.model)[0].state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert _sha(files["base"]) == base_sha
    assert not ckpt.exists()
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


# --- checkpoints that do not belong to this run ----------------------------------------------


def _coarse_params(files: dict[str, Path], out: Path, **kw):
    from map_refiner.training.coarse import CoarseParams

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
        **kw,
    )


@pytest.fixture
def coarse_scene(tmp_path: Path) -> dict[str, Path]:
    img = scene(48, 48, seed=95)
    mask = np.zeros((48, 48), np.uint8)
    mask[8:24, 10:30] = 255
    gt = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)
    write_image(tmp_path / "img.tif", img, gt)
    write_raster(tmp_path / "gt.tif", mask, gt, epsg=32633)
    return {"image": tmp_path / "img.tif", "labels": tmp_path / "gt.tif"}


def test_a_checkpoint_of_other_settings_is_not_loaded(tmp_path: Path, coarse_scene, caplog) -> None:
    """It used to be loaded into the model before its fingerprint was compared, so the
    'fresh' run started from the other run's weights."""
    from map_refiner.training.coarse import train_coarse

    straight = train_coarse(_coarse_params(coarse_scene, tmp_path / "a.safetensors"))
    out = tmp_path / "b.safetensors"
    other = _coarse_params(coarse_scene, out, lr=0.5)  # another fingerprint
    with pytest.raises(CancelledError):
        train_coarse(other, is_cancelled=lambda: checkpoint_path(out).exists())
    assert checkpoint_path(out).exists()
    with caplog.at_level("WARNING"):
        res = train_coarse(_coarse_params(coarse_scene, out))
    assert "other settings" in caplog.text and res.resumed_from == 0
    a, b = load_model(straight.model)[0].state_dict(), load_model(res.model)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path: Path, coarse_scene) -> None:
    from safetensors.torch import save_file

    from map_refiner.engine.errors import MapRefinerError
    from map_refiner.training.checkpoint import META_KEY
    from map_refiner.training.coarse import train_coarse
    from map_refiner.training.coarse_fit import fingerprint

    params = _coarse_params(coarse_scene, tmp_path / "c.safetensors")
    save_file(
        {"model.conv1.weight": torch.zeros(1)},
        str(checkpoint_path(params.out)),
        metadata={
            META_KEY: __import__("json").dumps({"step": 2, "fingerprint": fingerprint(params)})
        },
    )
    with pytest.raises(MapRefinerError, match="does not fit this model; delete it"):
        train_coarse(params)
    assert not params.out.exists()


# A run writes, reads and deletes only its own checkpoint: a user's file at
# <out>.ckpt.safetensors (their base model, anything else) survives; a resume does not
# depend on how a path was spelled.


def test_a_base_model_named_like_the_checkpoint_survives_the_run(
    coarse_scene: dict[str, Path], tmp_path: Path
) -> None:
    """``--model mine.ckpt.safetensors --out mine.safetensors`` used to delete the user's
    input model when the run ended."""
    net, cfg = random_model(resolution_m=0.6, seed=3)
    out = tmp_path / "mine.safetensors"
    base = save_model(net, cfg, checkpoint_path(out))
    before = _sha(base)
    res = train_rnn(
        RnnParams(
            image=coarse_scene["image"],
            labels=LabelSource(coarse_scene["labels"], {"0": 0, "255": 1}),
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
    coarse_scene: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "coarse.safetensors"
    foreign = checkpoint_path(out)
    foreign.write_bytes(b"someone's notes, not a checkpoint")
    assert checkpoint_for(out) is None
    train_coarse(_coarse_params(coarse_scene, out))
    assert foreign.read_bytes() == b"someone's notes, not a checkpoint"


def test_a_run_still_removes_its_own_checkpoint(
    coarse_scene: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "coarse.safetensors"
    assert checkpoint_for(out) == checkpoint_path(out)  # nothing there yet: a run may make one
    seen = []
    train_coarse(
        _coarse_params(coarse_scene, out),
        progress=lambda f: seen.append(is_checkpoint(checkpoint_path(out))),
    )
    assert any(seen), "the run checkpointed"
    assert not checkpoint_path(out).exists()


def test_the_resume_fingerprint_does_not_depend_on_path_spelling(
    coarse_scene: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = _coarse_params(coarse_scene, tmp_path / "m.safetensors")
    monkeypatch.chdir(tmp_path)
    relative = replace(
        absolute,
        image=Path("img.tif"),
        labels=LabelSource(Path("./gt.tif"), {"0": 0, "255": 1}),
        out=Path("m.safetensors"),
    )
    assert fingerprint(relative) == fingerprint(absolute)
    assert fingerprint(replace(absolute, lr=0.5)) != fingerprint(absolute)
    os.symlink(coarse_scene["image"], tmp_path / "link.tif")
    assert fingerprint(replace(absolute, image=tmp_path / "link.tif")) == fingerprint(absolute)
