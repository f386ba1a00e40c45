"""Outputs on real read-only and full filesystems (small tmpfs mounts), and the temporary
files a killed run leaves: a clear message, the old file intact, nothing partial.

The tmpfs tests need permission to mount (root in a container that allows it); where
mounting is refused they skip, and the simulated variants below still run everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model, write_image
from osgeo import gdal

from map_refiner import cli
from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters import files
from map_refiner.engine.rasters.files import claim_temp, release, remove_stale_partials
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.vectors.vectorize import vectorize

gdal.UseExceptions()
GT = (600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4)


@pytest.fixture(scope="module")
def model():
    return random_model(("background", "building"), resolution_m=0.6, seed=81, iterations=1)


@pytest.fixture(scope="module")
def noisy_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Incompressible pixels, so outputs (scores especially) are big for their size."""
    path = tmp_path_factory.mktemp("disk") / "in.tif"
    rng = np.random.default_rng(82)
    write_image(path, rng.integers(0, 250, (3, 160, 160)).astype(np.uint8), GT)
    return path


@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
            "the simulated tests cover the messages"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def refine(image: Path, out: Path, model, progress=None, **kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("tile_size", 48)
    return refine_raster(RefineParams(image=image, out=out, **kw), progress=progress, model=model)


# --- a read-only folder, for real -------------------------------------------------------------


def test_read_only_filesystem_is_refused_before_any_work(
    tmp_path: Path, noisy_image: Path, model, capsys
) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        with pytest.raises(MapRefinerError, match="is not writable; choose another one"):
            refine(noisy_image, ro / "o.tif", model)
        net, cfg = model
        with pytest.raises(MapRefinerError, match="not writable"):
            save_model(net, cfg, ro / "m.safetensors")
        with pytest.raises(MapRefinerError, match="not writable"):
            vectorize(noisy_image, ro / "v.gpkg")
        model_file = save_model(net, cfg, tmp_path / "m.safetensors")
        rc = cli.main(
            [
                "refine",
                str(noisy_image),
                "--out",
                str(ro / "o.tif"),
                "--model",
                str(model_file),
                "--device",
                "cpu",
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2 and err.strip().splitlines() == [
            f"map-refiner: error: The output folder {ro} is not writable; choose another one."
        ]
        assert names(ro) == []


def test_not_writable_folder_simulated(
    tmp_path: Path, noisy_image: Path, model, monkeypatch
) -> None:
    """Where no read-only mount is possible (root may write anywhere): os.access says no."""
    real = os.access
    monkeypatch.setattr(
        files.os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode)
    )
    with pytest.raises(MapRefinerError, match="not writable"):
        refine(noisy_image, tmp_path / "o.tif", model)
    assert not (tmp_path / "o.tif").exists()


# --- a disk that fills up mid-write, for real --------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, noisy_image: Path, model):
    d = tmp_path_factory.mktemp("ref")
    refine(noisy_image, d / "c.tif", model, scores=d / "s.tif")
    old_d = tmp_path_factory.mktemp("old")
    refine(noisy_image, old_d / "c.tif", model, iterations=0)
    return {
        "classes": gdal.Open(str(d / "c.tif")).ReadAsArray(),
        "scores": gdal.Open(str(d / "s.tif")).ReadAsArray(),
        "scores_bytes": os.path.getsize(d / "s.tif"),
        "old": (old_d / "c.tif").read_bytes(),
    }


def test_disk_filling_up_at_any_point_of_a_refine(
    tmp_path: Path, noisy_image: Path, model, reference
) -> None:
    """A filler file leaves less room each time: the run succeeds with complete files, or
    fails with 'the disk is full', the previous output untouched and nothing partial left."""
    size = 3 * reference["scores_bytes"] // 2
    outcomes = []
    with tmpfs(tmp_path / "small", str(size)) as fs:
        free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
        for filler in np.linspace(0, free - 8192, 7).astype(int):
            for p in fs.iterdir():
                p.unlink()
            (fs / "c.tif").write_bytes(reference["old"])  # the previous result, kept on failure
            if filler:
                (fs / "filler").write_bytes(b"\0" * int(filler))
            try:
                refine(noisy_image, fs / "c.tif", model, scores=fs / "s.tif", overwrite=True)
            except MapRefinerError as exc:
                assert "the disk is full" in str(exc) and "Free some space" in str(exc)
                assert (fs / "c.tif").read_bytes() == reference["old"]
                assert names(fs) == ["c.tif"] + (["filler"] if filler else [])
                outcomes.append("full")
                continue
            np.testing.assert_array_equal(
                gdal.Open(str(fs / "c.tif")).ReadAsArray(), reference["classes"]
            )
            np.testing.assert_array_equal(
                gdal.Open(str(fs / "s.tif")).ReadAsArray(), reference["scores"]
            )
            assert not [n for n in names(fs) if n.startswith(".")]
            outcomes.append("ok")
    assert "ok" in outcomes and "full" in outcomes, outcomes


def test_disk_full_while_saving_a_model_or_a_checkpoint(tmp_path: Path, model) -> None:
    net, cfg = model
    with tmpfs(tmp_path / "small", "256k") as fs:
        with pytest.raises(MapRefinerError, match="Writing m.safetensors failed: the disk is full"):
            save_model(net, cfg, fs / "m.safetensors")
        assert names(fs) == []
        from map_refiner.training.checkpoint import save_checkpoint

        opt = __import__("torch").optim.SGD(net.parameters(), lr=0.1)
        with pytest.raises(MapRefinerError, match="disk is full"):
            save_checkpoint(fs / "m.ckpt.safetensors", net, opt, 3, {"fingerprint": "x"})
        assert names(fs) == []


# GDAL raises again while the failed dataset closes; Python can only print that (the CLI
# sends it to the log).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_disk_full_while_vectorizing(tmp_path: Path, noisy_image: Path, model, suffix: str) -> None:
    refine(noisy_image, tmp_path / "c.tif", model)
    with tmpfs(tmp_path / "small", "48k") as fs:
        with pytest.raises(MapRefinerError, match="the disk is full"):
            vectorize(tmp_path / "c.tif", fs / f"v{suffix}")
        assert names(fs) == []


def test_disk_full_simulated(tmp_path: Path, model, monkeypatch) -> None:
    """The same messages without a mount: safetensors and GDAL report ENOSPC only as text."""
    from safetensors import SafetensorError

    from map_refiner.engine.modelfile import io as model_io

    def full(*_a, **_k):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr("safetensors.torch.save_file", full)
    net, cfg = model
    with pytest.raises(MapRefinerError, match="the disk is full"):
        model_io.save_model(net, cfg, tmp_path / "m.safetensors")
    assert names(tmp_path) == []
    err = files.write_error(tmp_path / "x.tif", OSError(errno.EROFS, os.strerror(errno.EROFS)))
    assert "read-only disk" in err.message and "Choose a writable folder" in err.message


# --- temporaries left by a killed run ----------------------------------------------------------


def test_stale_partials_of_a_killed_run_are_removed_by_the_next_write(
    tmp_path: Path, noisy_image: Path, model
) -> None:
    out = tmp_path / "c.tif"
    stale = [
        tmp_path / ".c.0badcafe.partial.tif",
        tmp_path / ".c.0badcafe.partial.tif.aux.xml",
        tmp_path / ".c.12345678.partial.tif.aux.xml",  # its raster is gone already
        tmp_path / ".s.deadbeef.partial.tif",
    ]
    others = [
        tmp_path / ".other.0badcafe.partial.tif",
        tmp_path / ".c.notahexx.partial.tif",
        tmp_path / "c.tif.partial",
    ]
    for p in stale + others:
        p.write_bytes(b"left by a killed run")
    refine(noisy_image, out, model, scores=tmp_path / "s.tif")
    assert all(not p.exists() for p in stale)
    assert all(p.exists() for p in others), "only this target's own temporaries are touched"


def test_a_live_writers_temporary_is_never_removed(tmp_path: Path) -> None:
    target = tmp_path / "m.safetensors"
    tmp, lock = claim_temp(target)  # as a running job holds it
    try:
        assert remove_stale_partials(target) == []
        assert tmp.exists()
    finally:
        release(lock)
    assert remove_stale_partials(target) == [tmp]  # once its writer is gone


def test_nothing_partial_is_left_under_the_targets_name(
    tmp_path: Path, noisy_image: Path, model
) -> None:
    """While a refine runs, the target does not exist yet; only a hidden temporary does."""
    out = tmp_path / "c.tif"
    seen: list[list[str]] = []
    refine(
        noisy_image,
        out,
        model,
        scores=tmp_path / "s.tif",
        progress=lambda f: seen.append(names(tmp_path)),
    )
    assert len(seen) > 3
    for listing in seen:
        assert "c.tif" not in listing and "s.tif" not in listing
        assert {n for n in listing if n.startswith(".")} and all(
            n.startswith((".c.", ".s.")) and ".partial.tif" in n
            for n in listing
            if n.startswith(".")
        )
    assert names(tmp_path) == ["c.tif", "c.tif.aux.xml", "s.tif"]


def test_cli_on_a_full_disk_is_one_line(tmp_path: Path, noisy_image: Path, model, capsys) -> None:
    """GDAL raises again while the failed Shapefile closes; the CLI logs that instead of
    letting Python print it as a traceback beside the error line."""
    refine(noisy_image, tmp_path / "c.tif", model)
    with tmpfs(tmp_path / "small", "48k") as fs:
        rc = cli.main(["vectorize", str(tmp_path / "c.tif"), "--out", str(fs / "v.shp")])
        err = capsys.readouterr().err
        assert rc == 2, err
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith("vectorize [")]
        assert len(lines) == 1 and "the disk is full" in lines[0], err
        assert names(fs) == []
