"""A refine on a Dask cluster gives the single process's map, survives a killed worker
and a killed driver (--resume), and never takes another job's or a half-written part.

One small raster (420 x 300 px, 35 tiles of 64 model px, 12 blocks of 2 x 2 tiles),
refined once by ``refine_raster`` with one torch thread (as each worker runs), and a
cluster of two single-threaded worker processes shared by the module's tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import io
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch
from helpers_engine import make_tif, scene, write_image
from osgeo import gdal

from map_refiner.cli import main as cli_main
from map_refiner.engine.cluster import parts
from map_refiner.engine.cluster.block import refine_block
from map_refiner.engine.cluster.driver import ClusterOptions, plan_job, refine_on_cluster
from map_refiner.engine.cluster.job import ClusterJob, plan_blocks
from map_refiner.engine.cluster.scheduler import check_scheduler
from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.refine.params import KeepIterations, RefineParams
from map_refiner.engine.refine.pipeline import refine_raster
from map_refiner.engine.refine.refine_pass import open_pass

distributed = pytest.importorskip("distributed")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the tasks below, to workers

GT_06 = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)
TILE, BLOCK = 64, 2


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tif(tmp_path_factory.mktemp("scene") / "scene.tif", 300, 420, geotransform=GT_06)


def params(image: Path, out: Path, **kw) -> RefineParams:
    return RefineParams(image=image, out=out, device="cpu", tile_size=TILE, **kw)


@pytest.fixture(scope="module")
def reference(image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The single process's class map, scores and coarse map, with one torch thread."""
    d = tmp_path_factory.mktemp("reference")
    with one_torch_thread():
        refine_raster(params(image, d / "map.tif", scores=d / "s.tif", coarse=d / "c.tif"))
    return {k: read(d / f"{k}.tif") for k in ("map", "s", "c")}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """As each worker runs: float sums in the same order, so scores equal bit for bit."""
    threads = torch.get_num_threads()
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")  # engine.device.configure_threads then keeps 1
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        mp.undo()


@pytest.fixture(scope="module")
def scheduler() -> str:
    """A scheduler's address, with two single-threaded worker processes."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def read(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def options(scheduler: str, **kw) -> ClusterOptions:
    return ClusterOptions(scheduler, block_tiles=BLOCK, **kw)


def test_blocks_are_whole_tiles_covering_the_raster_once(image: Path) -> None:
    p = open_pass(image, device="cpu", tile_size=TILE)
    tiles = list(p.tiles())
    blocks = plan_blocks(tiles, BLOCK)
    assert len(tiles) == 35 and len(blocks) == 12  # 7 x 5 tiles -> 4 x 3 blocks
    assert [b.index for b in blocks] == list(range(12))
    assert all(sum(b.holds(t) for b in blocks) == 1 for t in tiles)
    for b in blocks:
        inside = [t for t in tiles if b.holds(t)]
        assert all(t.x1 <= b.x1 and t.y1 <= b.y1 for t in inside)
        area = sum((t.x1 - t.x0) * (t.y1 - t.y0) for t in inside)
        assert area == (b.x1 - b.x0) * (b.y1 - b.y0)
    assert sum((b.x1 - b.x0) * (b.y1 - b.y0) for b in blocks) == 420 * 300


def test_a_local_cluster_gives_the_single_process_maps(image, reference, tmp_path) -> None:
    out = tmp_path / "map.tif"
    run = refine_on_cluster(
        params(image, out, scores=tmp_path / "s.tif", coarse=tmp_path / "c.tif"),
        options("local:2"),
    )
    assert (run.blocks, run.computed) == (12, list(range(12)))
    assert sorted(r["block"] for r in run.records) == list(range(12))
    assert sum(r["tiles"] for r in run.records) == 35
    assert all(r["pid"] != os.getpid() and r["peak_rss_mb"] > 0 for r in run.records)
    assert np.array_equal(read(out), reference["map"])
    assert np.array_equal(read(tmp_path / "s.tif"), reference["s"])  # bit for bit
    assert np.array_equal(read(tmp_path / "c.tif"), reference["c"])
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == GT_06  # read first: GDAL 3.6 then finds the categories
    band = ds.GetRasterBand(1)
    assert band.GetCategoryNames()[:2] == ["background", "building"]
    assert band.GetColorTable() is not None and band.GetNoDataValue() == 255
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "c.tif",
        "c.tif.aux.xml",
        "map.tif",
        "map.tif.aux.xml",
        "s.tif",
    ]  # the parts folder is gone once assembled


def test_vrt_over_the_parts(image, reference, scheduler, tmp_path) -> None:
    out = tmp_path / "map.vrt"
    refine_on_cluster(
        params(image, out, scores=tmp_path / "s.vrt"), options(scheduler, out_format="vrt")
    )
    assert np.array_equal(read(out), reference["map"])
    assert np.array_equal(read(tmp_path / "s.vrt"), reference["s"])
    assert (tmp_path / "map.parts" / "part_00011.tif").is_file()
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == GT_06
    band = ds.GetRasterBand(1)
    assert band.GetCategoryNames()[:2] == ["background", "building"]
    assert band.GetColorTable().GetColorEntry(1) == reference_colour(image)


def reference_colour(image: Path) -> tuple[int, int, int, int]:
    r, g, b = open_pass(image, device="cpu").config.colours[1]
    return (r, g, b, 255)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves byte ranges, as /vsicurl/ asks (http.server alone does not)."""

    def send_head(self):  # noqa: ANN201 - http.server's own signature
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m is None:
            return super().send_head()
        data = Path(self.translate_path(self.path)).read_bytes()
        end = min(int(m.group(2) or len(data) - 1), len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {m.group(1)}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - int(m.group(1)) + 1))
        self.end_headers()
        return io.BytesIO(data[int(m.group(1)) : end + 1])

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


def test_workers_read_the_image_over_http(image, reference, scheduler, tmp_path) -> None:
    """No worker gets a copy of the input: each reads its window through /vsicurl/."""
    handler = functools.partial(RangeHandler, directory=str(image.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = Path(f"/vsicurl/http://127.0.0.1:{server.server_port}/{image.name}")
        refine_on_cluster(params(url, tmp_path / "map.tif"), options(scheduler))
    finally:
        server.shutdown()
    assert np.array_equal(read(tmp_path / "map.tif"), reference["map"])


def dies_once(job: ClusterJob, index: int) -> dict:
    """Block 5's first run kills its worker process in the middle of the block."""
    flag = job.parts.parent / "killed"
    if index == 5:
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return refine_block(job, index)
        threading.Timer(0.05, os._exit, (1,)).start()  # mid-task, whatever it is doing
        refine_block(job, index)
        os._exit(1)
    return refine_block(job, index)


def test_a_killed_worker_still_gives_the_same_map(image, reference, scheduler, tmp_path):
    out = tmp_path / "map.tif"
    run = refine_on_cluster(
        params(image, out, scores=tmp_path / "s.tif"), options(scheduler), task=dies_once
    )
    assert (tmp_path / "killed").exists()  # a worker did die
    assert run.computed == list(range(12))
    assert np.array_equal(read(out), reference["map"])
    assert np.array_equal(read(tmp_path / "s.tif"), reference["s"])


def counted(job: ClusterJob, index: int) -> dict:
    """refine_block, leaving a file per block it computed."""
    (job.parts.parent / "computed").mkdir(exist_ok=True)
    (job.parts.parent / "computed" / str(index)).touch()
    return refine_block(job, index)


def computed(folder: Path) -> set[int]:
    return {int(f.name) for f in (folder / "computed").iterdir()}


def in_this_process(job: ClusterJob, blocks: list[int]) -> None:
    threads = torch.get_num_threads()
    try:
        for i in blocks:
            refine_block(job, i)
    finally:
        torch.set_num_threads(threads)


def test_resume_computes_only_the_missing_blocks(image, reference, scheduler, tmp_path):
    """A driver killed after blocks 0, 3 and 7 finished, while block 8 was being
    written (its temporary file stays) and block 9's file was renamed but not marked."""
    out = tmp_path / "map.tif"
    job, _ = plan_job(params(image, out), BLOCK)
    parts.start(job, resume=False, overwrite=False)
    in_this_process(job, [0, 3, 7, 9])
    parts.marker_path(job.parts, 9).unlink()
    stale = job.parts / ".part_00008.0badc0de.partial.tif"
    stale.write_bytes(b"II*\x00 half a GeoTIFF")
    with pytest.raises(MapRefinerError, match="--resume"):
        refine_on_cluster(params(image, out), options(scheduler))  # not without --resume
    run = refine_on_cluster(params(image, out), options(scheduler, resume=True), task=counted)
    assert sorted(run.computed) == [1, 2, 4, 5, 6, 8, 9, 10, 11]
    assert computed(tmp_path) == set(run.computed)
    assert np.array_equal(read(out), reference["map"])
    assert not job.parts.exists() and not stale.exists()


def test_parts_of_another_refine_are_not_reused(image, reference, scheduler, tmp_path):
    out = tmp_path / "map.tif"
    other, _ = plan_job(params(image, out, iterations=1), BLOCK)
    parts.start(other, resume=False, overwrite=False)
    in_this_process(other, [0, 1, 2])
    run = refine_on_cluster(params(image, out), options(scheduler, resume=True), task=counted)
    assert run.computed == list(range(12)) and computed(tmp_path) == set(range(12))
    assert np.array_equal(read(out), reference["map"])


def test_a_models_drawn_corrections_are_burned_in_as_in_one_process(scheduler, tmp_path):
    from test_kept_corrections import GRID, GT, kept, model_with

    from map_refiner.engine.labels.classes import IGNORE

    image = tmp_path / "in.tif"
    write_image(image, scene(90, 110, seed=3), GT)  # closed as it is dropped
    model = model_with(tmp_path, kept())
    maps = {}
    for name in ("one", "cluster"):
        p = RefineParams(
            image=image,
            out=tmp_path / f"{name}.tif",
            model_path=model,
            device="cpu",
            tile_size=32,
            scores=tmp_path / f"{name}_s.tif",
        )
        if name == "one":
            with one_torch_thread():
                refine_raster(p)
        else:
            run = refine_on_cluster(p, options(scheduler))
            assert run.result.corrections == 2 and run.blocks == 2
        maps[name] = read(tmp_path / f"{name}.tif"), read(tmp_path / f"{name}_s.tif")
    assert np.array_equal(maps["one"][0], maps["cluster"][0])
    assert np.array_equal(maps["one"][1], maps["cluster"][1])
    drawn = kept().labels_on(GRID)
    assert (maps["cluster"][0][drawn != IGNORE] == drawn[drawn != IGNORE]).all()


def test_a_worker_whose_model_file_differs_refuses_the_block(image, tmp_path) -> None:
    job, _ = plan_job(params(image, tmp_path / "map.tif"), BLOCK)
    parts.start(job, resume=False, overwrite=False)
    job = dataclasses.replace(job, model_sha256="0" * 64)
    with pytest.raises(MapRefinerError, match="not the driver's"):
        in_this_process(job, [0])
    assert not parts.marker_path(job.parts, 0).exists()


def test_an_existing_output_is_kept_unless_overwriting(image, scheduler, tmp_path) -> None:
    out = tmp_path / "map.tif"
    out.write_bytes(b"precious")
    with pytest.raises(MapRefinerError, match="already exists"):
        refine_on_cluster(params(image, out), options(scheduler))
    assert out.read_bytes() == b"precious" and not (tmp_path / "map.parts").exists()


def test_what_a_cluster_does_not_do_is_refused(image, tmp_path) -> None:
    for kw, said in (
        ({"prior": image}, "--prior"),
        ({"keep_iterations": KeepIterations()}, "iteration"),
    ):
        with pytest.raises(MapRefinerError, match=said):
            refine_on_cluster(params(image, tmp_path / "m.tif", **kw), options("local:2"))
    with pytest.raises(MapRefinerError, match=r"\.vrt name"):
        refine_on_cluster(params(image, tmp_path / "m.tif"), options("local:2", out_format="vrt"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["localhost:8786", "local:0", "local:x", "8786", ""])
def test_bad_scheduler_addresses_say_what_is_wanted(text: str) -> None:
    with pytest.raises(MapRefinerError, match="local:"):
        check_scheduler(text)


def test_an_unreachable_scheduler_is_one_clear_error(image, tmp_path) -> None:
    with pytest.raises(MapRefinerError, match="No Dask scheduler answered at tcp://"):
        refine_on_cluster(
            params(image, tmp_path / "m.tif"),
            ClusterOptions("tcp://127.0.0.1:9", connect_timeout_s=1),
        )
    assert list(tmp_path.iterdir()) == []  # no parts folder to trip a second try


def test_without_dask_the_error_says_what_to_install(image, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(MapRefinerError, match="pip install -r requirements-cluster.txt"):
        refine_on_cluster(params(image, tmp_path / "m.tif"), options("local:2"))
    assert list(tmp_path.iterdir()) == []


def test_the_command_line(image, reference, scheduler, tmp_path, capsys, monkeypatch) -> None:
    """No --model: the driver chooses the bundled model for the image (here told to take
    the default, which made the reference) and the workers refine with the file chosen."""
    from map_refiner.engine.modelfile.bundled_choice import ModelChoice
    from map_refiner.engine.modelfile.header import DEFAULT_MODEL_PATH

    chose = ModelChoice(DEFAULT_MODEL_PATH, 0.5, "here", "the default, for the test")
    monkeypatch.setattr("map_refiner.engine.refine.pipeline.choose_bundled", lambda *a: chose)
    out = tmp_path / "map.tif"
    argv = ["refine", str(image), "--out", str(out), "--device", "cpu", "--tile-size", "64"]
    assert cli_main([*argv, "--scheduler", scheduler, "--block-tiles", "2"]) == 0
    said = capsys.readouterr().out
    assert "12 blocks, 12 computed, 0 resumed" in said
    assert "model: the default, for the test" in said
    assert np.array_equal(read(out), reference["map"])
    assert cli_main([*argv, "--resume", "--overwrite"]) == 2
    assert "add --scheduler" in capsys.readouterr().err
