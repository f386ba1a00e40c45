"""Jobs at once do not interfere: two refines (threads, as QGIS tasks run, and processes),
a refine and a fine-tune that rewrites a model others read, two trainings."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from helpers_data import box_wkt, write_raster, write_vector
from helpers_engine import random_model, scene, write_image
from osgeo import gdal, ogr

from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.training.corrections.finetune import finetune
from map_refiner.training.corrections.fit import FitParams
from map_refiner.training.rnn import RnnParams, train_rnn
from map_refiner.training.tile import LabelSource

gdal.UseExceptions()
GT = (500000.0, 0.4, 0.0, 4000000.0, 0.0, -0.4)
GT_TRAIN = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch) -> None:
    """The same intra-op thread count in every job, so results can be compared bit for bit."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("concurrency")
    write_image(d / "a.tif", scene(120, 110, seed=111), GT)
    write_image(d / "b.tif", scene(100, 130, seed=112), GT)
    img = scene(64, 64, seed=113)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:30, 10:40] = 255
    img[:, mask > 0] = 230
    write_image(d / "train.tif", img, GT_TRAIN)
    write_raster(d / "gt.tif", mask, GT_TRAIN, epsg=32633)
    x0, y0 = GT_TRAIN[0], GT_TRAIN[3]
    write_vector(
        d / "fix.gpkg",
        [
            (
                box_wkt(x0 + 11 * 0.6, y0 - 28 * 0.6, x0 + 38 * 0.6, y0 - 10 * 0.6),
                {"c": "building"},
            ),
            (
                box_wkt(x0 + 2 * 0.6, y0 - 60 * 0.6, x0 + 30 * 0.6, y0 - 40 * 0.6),
                {"c": "background"},
            ),
        ],
        32633,
        fields={"c": ogr.OFTString},
    )
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=114, iterations=3)
    return {
        "dir": d,
        "a": d / "a.tif",
        "b": d / "b.tif",
        "train": d / "train.tif",
        "gt": d / "gt.tif",
        "fix": d / "fix.gpkg",
        "model": save_model(net, cfg, d / "m.safetensors"),
    }


def refine(image: Path, out: Path, model: Path) -> np.ndarray:
    refine_raster(
        RefineParams(
            image=image,
            out=out,
            model_path=model,
            device="cpu",
            scores=out.with_name(out.stem + "_s.tif"),
            tile_size=32,
        )
    )
    return gdal.Open(str(out)).ReadAsArray()


def run_threads(*jobs: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def guarded(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(j)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]


def test_two_refines_in_threads_equal_each_alone(tmp_path: Path, files) -> None:
    alone = {k: refine(files[k], tmp_path / f"alone_{k}.tif", files["model"]) for k in "ab"}
    together: dict[str, np.ndarray] = {}
    run_threads(
        *[
            lambda k=k: together.__setitem__(
                k, refine(files[k], tmp_path / f"both_{k}.tif", files["model"])
            )
            for k in "ab"
        ]
    )
    for k in "ab":
        np.testing.assert_array_equal(together[k], alone[k])
        assert (tmp_path / f"both_{k}_s.tif").read_bytes() == (
            tmp_path / f"alone_{k}_s.tif"
        ).read_bytes()


def test_two_refine_processes_at_once(tmp_path: Path, files) -> None:
    alone = refine(files["a"], tmp_path / "alone.tif", files["model"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "map_refiner",
                "refine",
                str(files[k]),
                "--out",
                str(tmp_path / f"p_{k}.tif"),
                "--model",
                str(files["model"]),
                "--tile-size",
                "32",
                "--device",
                "cpu",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for k in "ab"
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "p_a.tif")).ReadAsArray(), alone)
    assert gdal.Open(str(tmp_path / "p_b.tif")).RasterXSize == 130


def _tensor_hash(path: Path) -> str:
    sd = load_model(path)[0].state_dict()
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(sd[k].numpy().tobytes())
    return h.hexdigest()


def test_refine_while_a_finetune_rewrites_the_model_it_reads(tmp_path: Path, files) -> None:
    """The fine-tune replaces ``live.safetensors`` three times (atomically); a reader loads
    it meanwhile and always gets one complete version; a refine with another model gives
    the same map as alone; that model is never modified."""
    live = save_model(*load_model(files["model"]), tmp_path / "live.safetensors")
    written: set[str] = {_tensor_hash(live)}
    read: list[str] = []
    base_bytes = files["model"].read_bytes()
    alone = refine(files["a"], tmp_path / "alone.tif", files["model"])
    stop = threading.Event()

    # Three bases, so that the three models written differ whether or not the fit is
    # adopted (two polygons, one per class: nothing to hold out, the base networks stay).
    bases = [
        save_model(
            *random_model(("background", "building"), resolution_m=0.6, seed=200 + i),
            tmp_path / f"base{i}.safetensors",
        )
        for i in range(3)
    ]

    def tuner() -> None:
        try:
            for seed in range(3):
                finetune(
                    files["train"],
                    LabelSource(files["fix"], class_field="c", mode="sparse"),
                    live,
                    base_model=bases[seed],
                    params=FitParams(steps=1, seed=seed),
                    device="cpu",
                    overwrite=True,
                )
                written.add(_tensor_hash(live))
        finally:
            stop.set()

    def reader() -> None:
        while not stop.is_set():
            read.append(_tensor_hash(live))

    refined: dict[str, np.ndarray] = {}
    run_threads(
        tuner,
        reader,
        lambda: refined.__setitem__(
            "a", refine(files["a"], tmp_path / "during.tif", files["model"])
        ),
    )
    assert len(read) >= 3 and set(read) <= written, "a reader saw a model nobody wrote"
    assert len(written) == 4
    np.testing.assert_array_equal(refined["a"], alone)
    assert files["model"].read_bytes() == base_bytes
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_two_trainings_in_threads_equal_each_alone(tmp_path: Path, files) -> None:
    """Fresh RNN weights come from the seed even when another job seeds and draws at once."""

    def params(name: str, seed: int) -> RnnParams:
        return RnnParams(
            image=files["train"],
            labels=LabelSource(files["gt"], {"0": 0, "255": 1}),
            out=tmp_path / f"{name}.safetensors",
            base_model=files["model"],
            steps=1,
            batch_size=2,
            patch_size=24,
            device="cpu",
            seed=seed,
            checkpoint_every=0,
        )

    alone = {s: train_rnn(params(f"alone{s}", s)).model for s in (1, 2)}
    together: dict[int, Path] = {}
    run_threads(
        *[
            lambda s=s: together.__setitem__(s, train_rnn(params(f"both{s}", s)).model)
            for s in (1, 2)
        ]
    )
    for s in (1, 2):
        assert _tensor_hash(together[s]) == _tensor_hash(alone[s])
