"""A correction round's refine reads its parent's map from the refine before it instead of
running its gate chain (engine/networks/map_cache.py), and its maps are those a refine
without the cache makes, pixel for pixel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal

from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.networks import map_cache
from map_refiner.engine.refine import refine_pass
from map_refiner.engine.refine.params import KeepIterations
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.training.corrections.finetune import with_gate

gdal.UseExceptions()
GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


@pytest.fixture
def chain(tmp_path: Path) -> dict[str, Path]:
    """An image and a chain of models: the base, round 1 (gated against it), round 2
    (gated against round 1)."""
    write_image(tmp_path / "img.tif", scene(96, 96, seed=3), GT, epsg=32633)
    base = random_model(resolution_m=0.6, seed=1, iterations=2)
    paths = {
        "image": tmp_path / "img.tif",
        "base": save_model(*base, tmp_path / "base.safetensors"),
    }
    r1 = with_gate(*random_model(resolution_m=0.6, seed=2, iterations=2), base, 0.6)
    paths["r1"] = save_model(*r1, tmp_path / "r1.safetensors")
    r2 = with_gate(
        *random_model(resolution_m=0.6, seed=3, iterations=2), load_model(paths["r1"]), 0.6
    )
    paths["r2"] = save_model(*r2, tmp_path / "r2.safetensors")
    return paths


@pytest.fixture
def passes(monkeypatch) -> list[int]:  # noqa: ANN001
    """How many times the networks ran on a tile (refine_pass.predict_tile's calls)."""
    calls: list[int] = []
    real = refine_pass.predict_tile

    def counted(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(refine_pass, "predict_tile", counted)
    return calls


def refined(paths: dict[str, Path], model: str, out: Path, **kw) -> tuple[np.ndarray, np.ndarray]:
    res = refine_raster(
        RefineParams(
            image=paths["image"],
            out=out,
            model_path=paths[model],
            device="cpu",
            tile_size=16,
            scores=out.with_suffix(".scores.tif"),
            overwrite=True,
            **kw,
        )
    )
    ds, sc = gdal.Open(str(out)), gdal.Open(str(res.scores))
    return ds.GetRasterBand(1).ReadAsArray(), sc.ReadAsArray()


def tiles_of(paths: dict[str, Path], tmp_path: Path, passes: list[int]) -> int:
    passes.clear()
    refined(paths, "base", tmp_path / "count.tif")
    n = len(passes)
    passes.clear()
    return n


def test_a_rounds_refine_reads_its_parents_map_and_makes_the_same_map(
    chain: dict[str, Path], tmp_path: Path, monkeypatch, passes: list[int]
) -> None:  # noqa: ANN001
    plain = {m: refined(chain, m, tmp_path / f"plain_{m}.tif") for m in ("base", "r1", "r2")}
    monkeypatch.setenv(map_cache.ENV, str(tmp_path / "maps"))
    tiles = tiles_of(chain, tmp_path, passes)
    assert tiles >= 4
    for model, runs in (("base", 1), ("r1", 1), ("r2", 1)):  # each round reads the last
        passes.clear()
        cls, scores = refined(chain, model, tmp_path / f"cached_{model}.tif")
        assert len(passes) == runs * tiles, model
        np.testing.assert_array_equal(cls, plain[model][0])
        np.testing.assert_array_equal(scores, plain[model][1])
    # without the parent's map kept (another folder), round 2 runs its chain: three passes
    monkeypatch.setenv(map_cache.ENV, str(tmp_path / "other"))
    passes.clear()
    cls, _ = refined(chain, "r2", tmp_path / "again_r2.tif")
    assert len(passes) == 3 * tiles
    np.testing.assert_array_equal(cls, plain["r2"][0])


def test_another_image_or_setting_is_a_miss(
    chain: dict[str, Path], tmp_path: Path, monkeypatch, passes: list[int]
) -> None:  # noqa: ANN001
    monkeypatch.setenv(map_cache.ENV, str(tmp_path / "maps"))
    tiles = tiles_of(chain, tmp_path, passes)
    refined(chain, "r1", tmp_path / "r1.tif", iterations=1)  # other iterations: a miss
    assert len(passes) == 2 * tiles
    passes.clear()
    write_image(chain["image"], scene(96, 96, seed=4), GT, epsg=32633)  # the image rewritten
    os.utime(chain["image"], ns=(1, 1))
    refined(chain, "r1", tmp_path / "r1b.tif")
    assert len(passes) == 2 * tiles


def test_a_vrt_whose_source_changed_is_a_miss(
    chain: dict[str, Path], tmp_path: Path, monkeypatch, passes: list[int]
) -> None:  # noqa: ANN001
    """The key holds every file GDAL reads for the image (a VRT's sources too)."""
    monkeypatch.setenv(map_cache.ENV, str(tmp_path / "maps"))
    tiles = tiles_of(chain, tmp_path, passes)
    vrt = tmp_path / "mosaic.vrt"
    gdal.BuildVRT(str(vrt), [str(chain["image"])]).FlushCache()
    via = {**chain, "image": vrt}
    refined(via, "base", tmp_path / "base_vrt.tif")
    passes.clear()
    refined(via, "r1", tmp_path / "r1_vrt.tif")
    assert len(passes) == tiles  # read through the VRT: a hit
    write_image(chain["image"], scene(96, 96, seed=5), GT, epsg=32633)  # the source anew
    os.utime(chain["image"], ns=(2, 2))
    passes.clear()
    refined(via, "r1", tmp_path / "r1_vrt2.tif")
    assert len(passes) == 2 * tiles


def test_a_damaged_map_is_computed_again(
    chain: dict[str, Path], tmp_path: Path, monkeypatch, passes: list[int]
) -> None:  # noqa: ANN001
    plain = refined(chain, "r1", tmp_path / "plain.tif")
    monkeypatch.setenv(map_cache.ENV, str(tmp_path / "maps"))
    tiles = tiles_of(chain, tmp_path, passes)
    for f in (tmp_path / "maps").rglob("*.npy"):
        f.write_bytes(b"not a map")
    cls, scores = refined(chain, "r1", tmp_path / "r1.tif")
    assert len(passes) == 2 * tiles
    np.testing.assert_array_equal(cls, plain[0])
    np.testing.assert_array_equal(scores, plain[1])


def test_the_sliders_iterations_are_kept_and_read(
    chain: dict[str, Path], tmp_path: Path, monkeypatch, passes: list[int]
) -> None:  # noqa: ANN001
    def traj(model: str, out: str):  # noqa: ANN202
        res = refine_raster(
            RefineParams(
                image=chain["image"],
                out=tmp_path / out,
                model_path=chain[model],
                device="cpu",
                tile_size=16,
                overwrite=True,
                keep_iterations=KeepIterations(),
            )
        )
        return res.trajectory

    plain = traj("r1", "plain.tif")
    monkeypatch.setenv(map_cache.ENV, str(tmp_path / "maps"))
    tiles = tiles_of(chain, tmp_path, passes)  # the base's final maps only
    traj("base", "base.tif")  # and its iterations, as the plugin's refine keeps them
    passes.clear()
    got = traj("r1", "r1.tif")
    assert len(passes) == tiles
    np.testing.assert_array_equal(got.classes, plain.classes)
    np.testing.assert_array_equal(got.uncertainty, plain.uncertainty)


def test_off_large_images_and_a_full_folder(
    chain: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    refined(chain, "base", tmp_path / "off.tif")  # the suite's default: off
    assert map_cache.cache_folder() is None
    folder = tmp_path / "maps"
    monkeypatch.setenv(map_cache.ENV, str(folder))
    monkeypatch.setattr(map_cache, "MAX_IMAGE_PIXELS", 96 * 96 - 1)
    refined(chain, "base", tmp_path / "large.tif")
    assert not folder.exists()
    monkeypatch.setattr(map_cache, "MAX_IMAGE_PIXELS", 96 * 96)
    refined(chain, "base", tmp_path / "kept.tif")
    (kept,) = [p for p in folder.iterdir()]
    for i in range(3):  # older passes, 1000 bytes each
        old = folder / f"old{i}"
        old.mkdir()
        (old / "m.npy").write_bytes(b"x" * 1000)
        os.utime(old, ns=(i, i))
    monkeypatch.setattr(map_cache, "MAX_BYTES", 1500)
    refined(chain, "r1", tmp_path / "r1.tif")  # a pass opened: the oldest go first
    assert sorted(p.name for p in folder.iterdir()) == sorted(["old2", kept.name])
    assert any(kept.iterdir())  # never the pass being opened, whatever its size
