"""Uncertainty maps, ranked regions and the per-iteration trajectory (no QGIS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_data import real_data
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.config import ModelConfig, make_classes
from map_refiner.engine.modelfile.io import build_model, save_model
from map_refiner.engine.refine.params import KeepIterations, RefineParams
from map_refiner.engine.refine.pipeline import refine_raster
from map_refiner.engine.refine.trajectory import clip_window, compute_trajectory
from map_refiner.engine.refine.trajectory_io import write_trajectory
from map_refiner.engine.refine.uncertainty import (
    cell_scores,
    entropy,
    margin,
    rank_regions,
    softmax,
    uncertainty,
)


def test_entropy_and_margin_span_zero_to_one() -> None:
    probs = np.array([[1.0, 0.5, 0.9], [0.0, 0.5, 0.1]])
    np.testing.assert_allclose(entropy(probs), [0.0, 1.0, 0.4690], atol=1e-4)
    np.testing.assert_allclose(margin(probs), [0.0, 1.0, 0.2], atol=1e-6)
    three = np.full((3, 2), 1 / 3)
    np.testing.assert_allclose(entropy(three), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(margin(np.array([[0.5], [0.3], [0.2]])), [0.8], atol=1e-6)
    with pytest.raises(MapRefinerError):
        uncertainty(probs, "variance")


def test_softmax_along_an_axis_sums_to_one() -> None:
    logits = np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype(np.float32)
    probs = softmax(logits, axis=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert entropy(probs, axis=1).shape == (4, 5, 5)


def test_cell_scores_average_valid_pixels_only() -> None:
    unc = np.zeros((8, 8), dtype=np.float32)
    unc[:4, :4] = 1.0
    valid = np.ones((8, 8), dtype=bool)
    valid[:4, :2] = False  # half of the first cell: still scored
    valid[4:, 4:] = False  # a whole cell without data: NaN
    scores = cell_scores(unc, valid, 4)
    assert scores[0, 0] == pytest.approx(1.0) and scores[0, 1] == 0.0
    assert np.isnan(scores[1, 1])


def test_regions_rank_planted_uncertain_blocks_first() -> None:
    rng = np.random.default_rng(1)
    unc = rng.uniform(0, 0.1, (100, 120)).astype(np.float32)
    unc[10:20, 80:100] = 0.9  # two cells wide: one region of two cells
    unc[60:70, 20:30] = 0.6
    regions = rank_regions(unc, cell=10, top=5)
    assert [r.rank for r in regions] == [1, 2, 3, 4, 5]
    first, second = regions[0], regions[1]
    assert (first.x0, first.y0, first.x1, first.y1, first.cells) == (80, 10, 100, 20, 2)
    assert (second.x0, second.y0, second.x1, second.y1) == (20, 60, 30, 70)
    assert first.score == pytest.approx(0.9) and second.score == pytest.approx(0.6)
    assert all(a.score >= b.score for a, b in zip(regions, regions[1:]))
    assert first.centre == (90.0, 15.0)
    everything = rank_regions(unc, cell=10, top=None, max_cells=1)
    assert len(everything) == 10 * 12  # every cell once, none twice


def test_regions_skip_invalid_pixels_and_partial_edges() -> None:
    unc = np.full((25, 25), 0.5, dtype=np.float32)
    unc[:10, :10] = 1.0
    valid = np.ones_like(unc, dtype=bool)
    valid[:10, :10] = False
    regions = rank_regions(unc, valid, cell=10, top=None, max_cells=1)
    assert all((r.x0, r.y0) != (0, 0) for r in regions)
    assert max(r.x1 for r in regions) == 25  # the edge cells end at the raster's edge


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A seeded RGB raster at 0.3 m and a seeded two-class model at 0.6 m (2 iterations)."""
    folder = tmp_path_factory.mktemp("trajectory")
    rng = np.random.default_rng(3)
    image = folder / "scene.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(image), 150, 110, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((620000.0, 0.3, 0.0, 3350000.0, 0.0, -0.3))
    ds.SetProjection(_utm14())
    base = rng.integers(40, 200, (110, 150))
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(
            np.clip(base + rng.integers(-30, 30, (110, 150)), 0, 255).astype(np.uint8)
        )
    ds = None
    torch.manual_seed(0)
    cfg = ModelConfig(
        classes=make_classes(["background", "building"]),
        ground_resolution_m=0.6,
        default_iterations=2,
        name="seeded",
    )
    model = save_model(build_model(cfg), cfg, folder / "seeded.safetensors")
    return image, model, folder


def _utm14() -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    return srs.ExportToWkt()


def _refined(scene, iterations: int, name: str) -> np.ndarray:  # noqa: ANN001
    image, model, folder = scene
    out = folder / name
    refine_raster(
        RefineParams(
            image=image,
            out=out,
            model_path=model,
            iterations=iterations,
            device="cpu",
            overwrite=True,
        )
    )
    return gdal.Open(str(out)).ReadAsArray()


def test_trajectory_iterations_equal_refine_raster(scene) -> None:  # noqa: ANN001
    image, model, _ = scene
    traj = compute_trajectory(image, 7, model, device="cpu", tile_size=32)
    assert traj.classes.shape == (8, 110, 150) and traj.iterations == 7  # past the trained 2
    for t in (0, 2, 7):
        np.testing.assert_array_equal(traj.classes[t], _refined(scene, t, f"r{t}.tif"))
    assert traj.uncertainty.dtype == np.float16
    assert 0.0 <= float(traj.uncertainty.min()) and float(traj.uncertainty.max()) <= 1.0
    assert traj.pixel_size_m == pytest.approx(0.3, rel=1e-3)


def test_trajectory_of_a_window_is_the_same_crop(scene) -> None:  # noqa: ANN001
    image, model, _ = scene
    whole = compute_trajectory(image, 3, model, device="cpu", tile_size=32)
    part = compute_trajectory(image, 3, model, window=(37, 21, 101, 90), device="cpu", tile_size=32)
    assert part.window == (37, 21, 101, 90) and not part.shrunk
    np.testing.assert_array_equal(part.classes, whole.classes[:, 21:90, 37:101])
    np.testing.assert_allclose(
        part.uncertainty.astype(np.float32),
        whole.uncertainty[:, 21:90, 37:101].astype(np.float32),
        atol=2e-3,
    )
    gt = part.window_geotransform
    assert gt[0] == pytest.approx(620000.0 + 37 * 0.3) and gt[3] == pytest.approx(
        3350000.0 - 21 * 0.3
    )
    xmin, ymin, xmax, ymax = part.box_to_map(0, 0, 10, 20)
    assert (xmin, xmax) == pytest.approx((gt[0], gt[0] + 3.0))
    assert (ymin, ymax) == pytest.approx((gt[3] - 6.0, gt[3]))


def test_window_is_clipped_and_shrunk_around_its_centre() -> None:
    assert clip_window((-5, -5, 50, 40), 30, 20) == ((0, 0, 30, 20), False)
    (x0, y0, x1, y1), shrunk = clip_window(None, 1000, 800, max_pixels=10000)
    assert shrunk and (x1 - x0) * (y1 - y0) <= 10000
    assert abs((x0 + x1) / 2 - 500) <= 1 and abs((y0 + y1) / 2 - 400) <= 1
    with pytest.raises(MapRefinerError, match="does not overlap"):
        clip_window((40, 40, 60, 60), 30, 20)


def test_trajectory_written_one_band_per_iteration(scene) -> None:  # noqa: ANN001
    image, model, folder = scene
    traj = compute_trajectory(image, 4, model, window=(10, 10, 60, 50), device="cpu")
    classes, unc = write_trajectory(traj, folder / "stack", "scene")
    ds = gdal.Open(str(classes))
    assert (ds.RasterCount, ds.RasterXSize, ds.RasterYSize) == (5, 50, 40)
    for t in range(5):
        np.testing.assert_array_equal(ds.GetRasterBand(t + 1).ReadAsArray(), traj.classes[t])
    assert ds.GetGeoTransform() == pytest.approx(traj.window_geotransform)
    u = gdal.Open(str(unc))
    assert u.RasterCount == 5 and u.GetRasterBand(3).GetDescription() == "entropy at iteration 2"


def test_more_iterations_settle_the_bundled_model_on_real_data() -> None:
    """On the Austin dev tile the bundled model's uncertainty falls with every iteration
    after the first (the retrained RNN's first step moves the coarse map the most and
    raises it: 0.53 -> 0.65 -> 0.55 -> 0.40 ... when committed), and ends far below the
    coarse map's."""
    image = real_data("austin", "austin_dev_rgb.tif")
    traj = compute_trajectory(image, 6, device="cpu")
    means = [float(traj.uncertainty[t][traj.valid].astype(np.float32).mean()) for t in range(7)]
    assert all(a > b for a, b in zip(means[1:], means[2:])), means
    assert means[-1] < 0.5 * means[0], means
    regions = rank_regions(traj.uncertainty[5].astype(np.float32), traj.valid, cell=40)
    assert len(regions) == 10 and regions[0].score > 2 * means[5]


def test_a_refine_keeps_its_iterations_from_the_same_pass(scene) -> None:  # noqa: ANN001
    """Asked to, a refine keeps every iteration over a window: the written map is
    unchanged, its last iteration is that map, and the maps are the trajectory's."""
    image, model, folder = scene
    plain = refine_raster(
        RefineParams(
            image=image, out=folder / "a.tif", model_path=model, iterations=3, device="cpu"
        )
    )
    assert plain.trajectory is None
    res = refine_raster(
        RefineParams(
            image=image,
            out=folder / "b.tif",
            model_path=model,
            iterations=3,
            device="cpu",
            tile_size=32,
            keep_iterations=KeepIterations(kind="margin"),
        )
    )
    written = gdal.Open(str(folder / "b.tif")).ReadAsArray()
    np.testing.assert_array_equal(written, gdal.Open(str(folder / "a.tif")).ReadAsArray())
    traj = res.trajectory
    assert traj is not None and traj.iterations == 3 and traj.kind == "margin"
    assert traj.window == (0, 0, 150, 110) and traj.device == res.device
    np.testing.assert_array_equal(traj.classes[3], written)
    alone = compute_trajectory(image, 3, model, kind="margin", device="cpu", tile_size=32)
    np.testing.assert_array_equal(traj.classes, alone.classes)
    np.testing.assert_array_equal(traj.uncertainty, alone.uncertainty)
    np.testing.assert_array_equal(traj.valid, alone.valid)
    part = refine_raster(
        RefineParams(
            image=image,
            out=folder / "c.tif",
            model_path=model,
            iterations=3,
            device="cpu",
            tile_size=32,
            keep_iterations=KeepIterations(window=(37, 21, 101, 90)),
        )
    ).trajectory
    assert part is not None and part.window == (37, 21, 101, 90)
    np.testing.assert_array_equal(part.classes, traj.classes[:, 21:90, 37:101])


@pytest.mark.parametrize("seed", range(5))
def test_region_rectangles_never_overlap(seed: int) -> None:
    """Grown regions of several cells used to give rectangles drawn over each other."""
    gen = np.random.default_rng(seed)
    unc = gen.random((200, 260)).astype(np.float32)
    regions = rank_regions(unc, cell=10, top=None, max_cells=4)
    assert len(regions) > 5
    for i, a in enumerate(regions):
        for b in regions[i + 1 :]:
            apart = a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
            assert apart, (a, b)
