"""What a run's outputs do when something fails or someone else holds them: a refine's
class map and coarse map are written both or neither (or the message names each), and a
GeoPackage another program is writing to is never replaced under it."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal

from map_refiner import cli
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters import write as raster_write

gdal.UseExceptions()
GT = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)
BAR = re.compile(r"^\w[\w-]* \[[#-]+\]")


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path]:
    net, cfg = random_model(resolution_m=0.6, seed=1, iterations=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    image = tmp_path / "img.tif"
    write_image(image, scene(40, 40), GT)
    return image, model


def run_cli(args: Sequence[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli.main([str(a) for a in args])
    return rc, capsys.readouterr().err


def error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if not BAR.match(ln)]
    assert len(lines) == 1 and lines[0].startswith("map-refiner: error: "), err
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- --coarse: both files or neither ----------------------------------------------------------


def disk_full_on_closing(monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """The disk fills as the refined writer closes the output named ``failing`` (GDAL
    flushes it then): the file is finished, then the error comes."""
    close = raster_write.RefinedWriter._close

    def full(self: raster_write.RefinedWriter) -> None:
        close(self)
        if self.targets[0][1].name == failing:
            raise RuntimeError(f"{self.targets[0][0]}: No space left on device")

    monkeypatch.setattr(raster_write.RefinedWriter, "_close", full)


@pytest.mark.parametrize("failing", ["c.tif", "coarse.tif"])
def test_a_full_disk_on_either_map_writes_neither(
    job: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """The disk fills while one of the two maps is finished (GDAL flushes it): the other,
    finished first, was moved into place while the message said nothing was written."""
    image, model = job
    out = tmp_path / "out"
    out.mkdir()
    disk_full_on_closing(monkeypatch, failing)
    rc, err = run_cli(
        ["refine", image, "--out", out / "c.tif", "--coarse", out / "coarse.tif", "--model"]
        + [model],
        capsys,
    )
    line = error_line(err)
    assert rc == 2 and f"Writing {failing} failed: the disk is full; nothing was written" in line
    assert listing(out) == []


def test_a_move_that_fails_after_the_first_names_what_was_written(
    job: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both maps are complete; moving the second into place fails (ENOSPC growing the
    folder): the message names the file written and the one not written."""
    image, model = job
    out = tmp_path / "out"
    out.mkdir()
    place = raster_write.place

    def second_fails(tmp: Path, final: Path, overwrite: bool) -> None:
        if final.name == "coarse.tif":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        place(tmp, final, overwrite)

    monkeypatch.setattr(raster_write, "place", second_fails)
    rc, err = run_cli(
        ["refine", image, "--out", out / "c.tif", "--coarse", out / "coarse.tif", "--model"]
        + [model],
        capsys,
    )
    line = error_line(err)
    assert rc == 2
    assert "Wrote c.tif but not coarse.tif: the disk is full. Free some space" in line
    assert "nothing was written" not in line
    assert listing(out) == ["c.tif", "c.tif.aux.xml"]  # no temporary of coarse.tif left


def test_both_maps_are_written_when_nothing_fails(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, model = job
    rc, _ = run_cli(
        ["refine", image, "--out", tmp_path / "c.tif", "--coarse", tmp_path / "k.tif"]
        + ["--scores", tmp_path / "s.tif", "--model", model],
        capsys,
    )
    assert rc == 0
    for name in ("c.tif", "k.tif", "s.tif"):
        assert gdal.Open(str(tmp_path / name)).RasterXSize == 40
    assert not [n for n in listing(tmp_path) if "partial" in n]


# --- a GeoPackage held open by another program ------------------------------------------------


@pytest.fixture
def class_map(job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    image, model = job
    out = tmp_path / "classes.tif"
    assert run_cli(["refine", image, "--out", out, "--model", model], capsys)[0] == 0
    return out


def _features(gpkg: Path) -> int:
    ds = gdal.OpenEx(str(gpkg), gdal.OF_VECTOR)
    return int(ds.GetLayer(0).GetFeatureCount())


def _integrity(gpkg: Path) -> str:
    con = sqlite3.connect(str(gpkg))
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_geopackage_another_program_is_writing_is_not_replaced(
    class_map: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], journal: str
) -> None:
    """Another connection has a write transaction open on the old file: the overwrite is
    refused and leaves it as it is; that program's commit then lands in a sound file."""
    gpkg = tmp_path / "v.gpkg"
    assert run_cli(["vectorize", class_map, "--out", gpkg], capsys)[0] == 0
    other = sqlite3.connect(str(gpkg), isolation_level=None)
    other.execute(f"PRAGMA journal_mode={journal}")
    other.execute("CREATE TABLE notes(t TEXT)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes VALUES ('an edit being saved')")
    rc, err = run_cli(["vectorize", class_map, "--out", gpkg, "--overwrite"], capsys)
    assert rc == 2 and "v.gpkg is being written by another program" in error_line(err)
    other.execute("COMMIT")
    other.close()
    assert _integrity(gpkg) == "ok"
    con = sqlite3.connect(str(gpkg))
    assert con.execute("SELECT t FROM notes").fetchall() == [("an edit being saved",)]
    con.close()
    assert not [n for n in listing(tmp_path) if "partial" in n]


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_geopackage_open_in_another_program_is_replaced_whole(
    class_map: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], journal: str
) -> None:
    """Another connection holds the old file open (idle, as a layer shown in QGIS): the
    overwrite replaces it atomically; that program's later write fails or goes to the old
    file, never into the new one, which stays sound with the new features."""
    gpkg = tmp_path / "v.gpkg"
    assert run_cli(["vectorize", class_map, "--out", gpkg, "--min-area", "5"], capsys)[0] == 0
    fewer = _features(gpkg)
    other = sqlite3.connect(str(gpkg), isolation_level=None)
    other.execute(f"PRAGMA journal_mode={journal}")
    other.execute("CREATE TABLE notes(t TEXT)")
    rc, _ = run_cli(["vectorize", class_map, "--out", gpkg, "--overwrite"], capsys)
    assert rc == 0
    try:  # the other program writes on
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO notes VALUES ('late')")
        other.execute("COMMIT")
    except sqlite3.Error:
        pass  # rollback-journal mode: SQLite sees that the file moved and refuses
    other.close()
    assert _integrity(gpkg) == "ok"
    assert _features(gpkg) > fewer
    con = sqlite3.connect(str(gpkg))
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    assert "notes" not in names


# --- a cluster refine's assembly: both files or neither ---------------------------------------


@pytest.fixture
def cluster_parts(job: tuple[Path, Path], tmp_path: Path):  # noqa: ANN201
    """A cluster job with --scores and --coarse whose parts are all finished (its blocks
    refined in this process, as a worker would), ready to be assembled."""
    from map_refiner.engine.cluster import parts
    from map_refiner.engine.cluster.block import refine_block
    from map_refiner.engine.cluster.driver import plan_job
    from map_refiner.engine.refine.params import RefineParams

    def planned(out: Path, coarse: Path, scores: Path):  # noqa: ANN202
        image, model = job
        params = RefineParams(image=image, out=out, model_path=model, device="cpu", tile_size=16)
        params = dataclasses.replace(params, scores=scores, coarse=coarse)
        cluster_job, p = plan_job(params, 1)
        assert len(cluster_job.blocks) > 1
        parts.start(cluster_job, False, False)
        for b in cluster_job.blocks:
            refine_block(cluster_job, b.index)
        return cluster_job, p

    return planned


@pytest.mark.parametrize("failing", ["c.tif", "coarse.tif"])
def test_a_cluster_assembly_that_fails_on_either_map_writes_neither(
    cluster_parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The disk fills while the class map or the coarse map is finished: before, the
    class map (and scores) were in place when the coarse map failed."""
    from map_refiner.engine.cluster import assemble
    from map_refiner.engine.errors import MapRefinerError

    out = tmp_path / "out"
    out.mkdir()
    job, p = cluster_parts(out / "c.tif", out / "coarse.tif", out / "s.tif")
    disk_full_on_closing(monkeypatch, failing)
    with pytest.raises(MapRefinerError, match=f"Writing {failing} failed: the disk is full"):
        assemble.assemble_geotiff(job, p.info, p.config)
    assert listing(out) == ["c.parts"]
    monkeypatch.undo()
    assemble.assemble_geotiff(job, p.info, p.config)  # the parts are still there
    assert listing(out) == [
        "c.parts",
        "c.tif",
        "c.tif.aux.xml",
        "coarse.tif",
        "coarse.tif.aux.xml",
        "s.tif",
    ]


def test_a_cluster_vrt_that_fails_writes_none(
    cluster_parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coarse map's VRT cannot be written (GDAL raises): the class map's and the
    scores' VRTs, written before it, are not left in place either."""
    from map_refiner.engine.cluster import assemble
    from map_refiner.engine.errors import MapRefinerError

    out = tmp_path / "out"
    out.mkdir()
    job, p = cluster_parts(out / "c.vrt", out / "coarse.vrt", out / "s.vrt")
    vrt = assemble._vrt

    def fails_on_coarse(*args: object) -> None:
        if args[5] == "coarse":
            raise RuntimeError(f"{args[3]}: No space left on device")
        vrt(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(assemble, "_vrt", fails_on_coarse)
    with pytest.raises(MapRefinerError, match="Writing coarse.vrt failed: the disk is full"):
        assemble.assemble_vrts(job, p.info, p.config)
    assert listing(out) == ["c.parts"]
    monkeypatch.undo()
    assemble.assemble_vrts(job, p.info, p.config)
    assert listing(out) == ["c.parts", "c.vrt", "coarse.vrt", "s.vrt"]
    assert gdal.Open(str(out / "c.vrt")).ReadAsArray().shape == (40, 40)
