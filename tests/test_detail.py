"""Detail iterations (``refine --detail-iterations``): the RNN's last iterations again
on a grid finer than the model's; the default refine untouched, tiles equal to one
piece, the output on the image's grid, and refusals and cancels like other options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal
from test_tiling import ONE_TILE, assert_same_result, raster

from map_refiner import cli
from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.limits import detail_grid_range
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.refine.params import KeepIterations
from map_refiner.engine.refine.pipeline import RefineParams, refine_array, refine_raster
from map_refiner.engine.refine.tiling import make_detail, make_grids, plan_tiles
from map_refiner.engine.refine.trajectory import compute_trajectory
from map_refiner.engine.refine.trajectory_io import write_iteration

gdal.UseExceptions()
GT = (600000.0, 0.1, 0.0, 5000000.0, 0.0, -0.1)  # 0.1 m pixels, the model 0.6 m


@pytest.fixture(scope="module")
def model():
    return random_model(("background", "building"), resolution_m=0.6, seed=41)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    write_image(tmp_path / "in.tif", scene(150, 170, seed=42), GT)
    return tmp_path / "in.tif"


def params(image: Path, out: Path, **kw) -> RefineParams:
    kw.setdefault("device", "cpu")
    kw.setdefault("tile_size", 16)
    kw.setdefault("iterations", 2)
    return RefineParams(image=image, out=out, **kw)


def read(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def description(path: Path) -> str:
    ds = gdal.Open(str(path))  # kept alive while its band is read
    return ds.GetRasterBand(1).GetDescription()


def test_the_detail_grid_is_the_image_s_own_but_no_finer_than_a_quarter() -> None:
    grids = make_grids(170, 150, 0.1, 0.1, 0.6)
    d = make_detail(grids, 0.1, 0.1, 0.6, 2)
    assert d is not None and (d.width, d.height, d.resolution_m) == (113, 100, (0.15, 0.15))
    d = make_detail(make_grids(170, 150, 0.3, 0.3, 0.6), 0.3, 0.3, 0.6, 1)
    assert d is not None and (d.width, d.height) == (170, 150)  # the image's own grid
    d = make_detail(grids, 0.1, 0.1, 0.6, 1, resolution_m=0.3)
    assert d is not None and (d.width, d.height) == (57, 50)
    assert make_detail(grids, 0.1, 0.1, 0.6, 0) is None


def test_the_grid_a_user_may_choose_starts_at_the_engine_s_own() -> None:
    """The dialog's fine-grid range (finest, default, coarsest): the default is the grid
    the engine takes without --detail-resolution, the finest the image's own pixels."""
    for image_m, sizes in ((0.075, (0.075, 0.15, 0.3)), (0.2, (0.2, 0.2, 0.3))):
        assert detail_grid_range(image_m, 0.6) == pytest.approx(sizes)
        d = make_detail(make_grids(170, 150, image_m, image_m, 0.6), image_m, image_m, 0.6, 1)
        assert d is not None and d.resolution_m == pytest.approx((sizes[1], sizes[1]))
    assert detail_grid_range(0.31, 0.6) == pytest.approx((0.3, 0.3, 0.3))  # 2x, within 5 %


def test_without_detail_the_tile_plan_is_unchanged() -> None:
    grids = make_grids(170, 150, 0.1, 0.1, 0.6)
    plain = list(plan_tiles(grids, 2, 16))
    assert list(plan_tiles(grids, 2, 16, None)) == plain
    detail = make_detail(grids, 0.1, 0.1, 0.6, 3)
    wide = list(plan_tiles(grids, 2, 16, detail))
    assert [(t.x0, t.y0, t.x1, t.y1) for t in wide] == [(t.x0, t.y0, t.x1, t.y1) for t in plain]
    for a, b in zip(wide, plain):  # model windows only widen, for the fine context
        assert a.mx0 <= b.mx0 and a.my0 <= b.my0 and a.mx1 >= b.mx1 and a.my1 >= b.my1


def test_a_refine_without_detail_is_byte_identical(tmp_path: Path, image: Path, model) -> None:
    refine_raster(params(image, tmp_path / "a.tif", scores=tmp_path / "sa.tif"), model=model)
    refine_raster(
        params(image, tmp_path / "b.tif", scores=tmp_path / "sb.tif", detail_iterations=0),
        model=model,
    )
    for a, b in (("a.tif", "b.tif"), ("sa.tif", "sb.tif")):
        assert (tmp_path / a).read_bytes() == (tmp_path / b).read_bytes()


def test_the_map_lands_on_the_image_grid(tmp_path: Path, image: Path, model) -> None:
    plain = refine_raster(params(image, tmp_path / "plain.tif"), model=model)
    res = refine_raster(
        params(image, tmp_path / "fine.tif", detail_iterations=2, scores=tmp_path / "s.tif"),
        model=model,
    )
    assert res.tiles == plain.tiles > 1
    ds = gdal.Open(str(res.out))
    assert (ds.RasterXSize, ds.RasterYSize) == (170, 150)
    assert ds.GetGeoTransform() == pytest.approx(GT)
    assert "then 2 at 0.15 m" in ds.GetRasterBand(1).GetDescription()
    fine, coarse = read(res.out), read(plain.out)
    assert set(np.unique(fine)) <= {0, 1}
    assert 0 < np.mean(fine != coarse) < 0.5  # the same map, redrawn
    probs = read(tmp_path / "s.tif")
    assert probs.shape == (2, 150, 170)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "h,w,res_in,iterations,detail,detail_m,tile",
    [
        (150, 170, 0.1, 2, 2, None, 16),
        (97, 83, 0.3, 0, 3, None, 16),  # the detail grid is the image's own
        (120, 131, 0.05, 5, 1, 0.2, 20),
    ],
)
def test_tiles_equal_one_piece(h, w, res_in, iterations, detail, detail_m, tile) -> None:
    net, cfg = random_model(("background", "building", "road"), resolution_m=0.6, seed=h)
    ds = raster(h, w, res_in, seed=w)
    kw = dict(detail_iterations=detail, detail_resolution_m=detail_m)
    tiled, _ = refine_array(net, cfg, ds, iterations, tile_size=tile, **kw)
    whole, _ = refine_array(net, cfg, ds, iterations, tile_size=ONE_TILE, **kw)
    plain, _ = refine_array(net, cfg, ds, iterations, tile_size=ONE_TILE)
    assert len(np.unique(whole.argmax(0))) >= 2
    assert not np.allclose(whole, plain, atol=1e-3)
    assert_same_result(tiled, whole)


def test_the_coarse_map_and_a_trajectory_keep_their_model_grid_steps() -> None:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=5)
    ds = raster(90, 100, 0.1, seed=6)
    traj, _ = refine_array(net, cfg, ds, 3, tile_size=16, trajectory=True, detail_iterations=2)
    plain, _ = refine_array(net, cfg, ds, 3, tile_size=16, trajectory=True)
    last, _ = refine_array(net, cfg, ds, 3, tile_size=ONE_TILE, detail_iterations=2)
    np.testing.assert_allclose(traj[:-1], plain[:-1], atol=1e-4)  # iterations 0..T-1
    assert_same_result(traj[-1], last)  # the last one through the detail iterations


def test_the_iterations_view_ends_with_the_detail_iterations(
    tmp_path: Path, image: Path, model
) -> None:
    """The views Recompute shows for a detail refine: iterations 0..T-1 those of the
    model grid, the last one through the detail iterations, the refine's own map (and
    the one a refine that keeps its iterations holds); without detail, as before."""
    model_file = save_model(*model, tmp_path / "m.safetensors")
    kw = dict(device="cpu", tile_size=16)
    plain = compute_trajectory(image, 2, model_file, **kw)
    off = compute_trajectory(image, 2, model_file, detail_iterations=0, **kw)
    assert np.array_equal(off.classes, plain.classes) and off.detail_iterations == 0
    assert np.array_equal(off.uncertainty, plain.uncertainty)
    for detail_m, grid_m in ((None, 0.15), (0.3, 0.3)):
        detail = dict(detail_iterations=2, detail_resolution_m=detail_m)
        traj = compute_trajectory(image, 2, model_file, **detail, **kw)
        assert traj.iterations == 2 and traj.detail_iterations == 2
        assert traj.detail_resolution_m == pytest.approx(grid_m)
        out = tmp_path / f"fine_{grid_m}.tif"
        done = refine_raster(
            params(image, out, model_path=model_file, keep_iterations=KeepIterations(), **detail)
        )
        assert np.array_equal(traj.classes[-1], read(out))
        assert done.trajectory is not None
        assert np.array_equal(traj.classes, done.trajectory.classes)
        assert np.array_equal(traj.classes[:-1], plain.classes[:-1])
        assert not np.array_equal(traj.classes[-1], plain.classes[-1])
        kept = write_iteration(traj, 2, tmp_path / f"kept_{grid_m}.tif").out
        assert description(kept) == description(out)
        assert description(out).endswith(f"then 2 at {grid_m:.2g} m")
    earlier = write_iteration(traj, 1, tmp_path / "kept_1.tif").out
    assert description(earlier).endswith(": 1 RNN iterations")


def test_cancel_and_errors_leave_nothing(tmp_path: Path, image: Path, model, monkeypatch) -> None:
    calls: list[float] = []
    p = params(image, tmp_path / "out.tif", detail_iterations=2, scores=tmp_path / "s.tif")
    with pytest.raises(CancelledError):
        refine_raster(p, progress=calls.append, is_cancelled=lambda: len(calls) >= 1, model=model)
    assert calls and calls[0] < 1.0
    assert sorted(q.name for q in tmp_path.iterdir()) == ["in.tif"]

    from map_refiner.engine.refine import predict

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure in the detail iterations")

    monkeypatch.setattr(predict, "detail_scores", boom)
    with pytest.raises(RuntimeError):
        refine_raster(p, model=model)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["in.tif"]


def test_refused_where_there_is_no_finer_grid(tmp_path: Path, model) -> None:
    coarse = tmp_path / "coarse.tif"
    write_image(coarse, scene(60, 60, seed=1), (600000.0, 0.6, 0.0, 5000000.0, 0.0, -0.6))
    with pytest.raises(MapRefinerError, match="no finer"):
        refine_raster(params(coarse, tmp_path / "o.tif", detail_iterations=2), model=model)
    image = tmp_path / "fine.tif"
    write_image(image, scene(60, 60, seed=1), GT)
    with pytest.raises(MapRefinerError, match="finer than the model's grid"):
        refine_raster(
            params(image, tmp_path / "o.tif", detail_iterations=2, detail_resolution_m=0.6),
            model=model,
        )
    with pytest.raises(MapRefinerError, match="between 0 and"):
        refine_raster(params(image, tmp_path / "o.tif", detail_iterations=-1), model=model)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["coarse.tif", "fine.tif"]


def test_a_large_refine_counts_the_finer_grid(tmp_path: Path, image: Path, model, monkeypatch):
    """The size check sees the detail iterations' grid and says so."""
    from map_refiner.engine import limits

    monkeypatch.setattr(limits, "MAX_MODEL_PIXELS", 2000)  # the model grid's 700 pass
    refine_raster(params(image, tmp_path / "plain.tif"), model=model)
    with pytest.raises(MapRefinerError) as exc:  # and 113 x 100 fine pixels do not
        refine_raster(params(image, tmp_path / "fine.tif", detail_iterations=2), model=model)
    assert "on the finer grid of its 2 detail iterations" in exc.value.message
    assert not (tmp_path / "fine.tif").exists()


def test_the_command_line_flags(tmp_path: Path, image: Path, model, capsys) -> None:
    model_file = save_model(*model, tmp_path / "m.safetensors")
    base = ["refine", str(image), "--model", str(model_file), "--iterations", "2"]
    assert cli.main(base + ["--out", str(tmp_path / "a.tif"), "--detail-iterations", "2"]) == 0
    ds = gdal.Open(str(tmp_path / "a.tif"))
    assert "then 2 at 0.15 m" in ds.GetRasterBand(1).GetDescription()
    capsys.readouterr()
    rc = cli.main(base + ["--out", str(tmp_path / "b.tif"), "--detail-resolution", "0.2"])
    err = capsys.readouterr().err
    assert rc != 0 and "no detail iterations run: this model has none of its own" in err
    assert len(err.strip().splitlines()) == 1
    rc = cli.main(
        base
        + [
            "--out",
            str(tmp_path / "c.tif"),
            "--detail-resolution",
            "0.2",
            "--detail-iterations",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert rc != 0 and "--detail-resolution needs --detail-iterations" in err
    assert not (tmp_path / "b.tif").exists() and not (tmp_path / "c.tif").exists()


def test_a_cluster_gives_the_single_process_map(tmp_path: Path, image: Path, model) -> None:
    """Blocks of a cluster job run the same detail iterations; the fingerprint says so."""
    pytest.importorskip("distributed")
    from test_cluster import one_torch_thread

    from map_refiner.engine.cluster.driver import ClusterOptions, refine_on_cluster
    from map_refiner.engine.cluster.job import fingerprint
    from map_refiner.engine.refine.pipeline import open_refine_pass

    model_file = save_model(*model, tmp_path / "m.safetensors")
    kw = dict(model_path=model_file, detail_iterations=2, tile_size=32)
    with one_torch_thread():  # as each worker runs: the same sums, the same ties
        one = refine_raster(params(image, tmp_path / "one.tif", **kw))
    refine_on_cluster(
        params(image, tmp_path / "many.tif", **kw), ClusterOptions("local:2", block_tiles=2)
    )
    assert np.array_equal(read(tmp_path / "many.tif"), read(one.out))
    plain = params(image, tmp_path / "x.tif", model_path=model_file, tile_size=32)
    fine = params(image, tmp_path / "x.tif", **kw)
    prints = {fingerprint(q, open_refine_pass(q), 2, "sha") for q in (plain, fine)}
    assert len(prints) == 2


def test_bf16_detail_iterations_keep_the_map(tmp_path: Path, image: Path, model) -> None:
    """The path a CUDA refine takes (autocast, channels-last RNN), run on the CPU."""
    kw = dict(detail_iterations=2, scores=None)
    refine_raster(params(image, tmp_path / "a.tif", **kw), model=model)
    res = refine_raster(params(image, tmp_path / "b.tif", precision="bf16", **kw), model=model)
    assert res.device == "cpu (bf16 mixed precision)"
    a, b = read(tmp_path / "a.tif"), read(tmp_path / "b.tif")
    assert (a == b).mean() > 0.99
