"""A fine-tuned model keeps the polygons it was taught with, and a refine of their
image carries them: what the user drew is what the map shows."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import UTM33N, random_model, scene, wkt, write_image
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.labels.burn import Shape
from map_refiner.engine.labels.classes import IGNORE
from map_refiner.engine.labels.kept import KeptCorrections, left_out, merged, window_grid
from map_refiner.engine.modelfile.config import ModelConfig
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.rasters.grid import GridSpec
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

gdal.UseExceptions()
GT = (600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4)
GRID = GridSpec(110, 90, GT, wkt(UTM33N))


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    """A rectangle in pixel units of GRID, as WKT in its CRS."""

    def at(px: float, py: float) -> str:
        return f"{GT[0] + px * GT[1]} {GT[3] + py * GT[5]}"

    return f"POLYGON(({at(x0, y0)},{at(x1, y0)},{at(x1, y1)},{at(x0, y1)},{at(x0, y0)}))"


def kept(shapes=((1, 0, (10, 10, 30, 25)), (0, 1, (60, 40, 90, 70)))) -> KeptCorrections:
    return KeptCorrections(GRID, [Shape(c, f, box(*b)) for c, f, b in shapes], "in.tif")


def test_round_trip_through_the_config() -> None:
    k = kept()
    cfg = ModelConfig.from_dict({**random_model()[1].to_dict(), "corrections": k.to_dict()})
    back = KeptCorrections.from_dict(cfg.corrections)
    assert back.shapes == k.shapes and back.grid == k.grid and back.image == "in.tif"


def test_malformed_corrections_are_a_user_error() -> None:
    with pytest.raises(MapRefinerError, match="fine-tune the model again"):
        KeptCorrections.from_dict({"width": 3, "shapes": []})


def test_window_labels_equal_the_whole_grid_cut() -> None:
    k = kept()
    whole = k.labels_on(GRID)
    assert (whole[10:25, 10:30] == 1).all() and (whole[40:70, 60:90] == 0).all()
    assert (whole[:10] == IGNORE).all()
    part = k.labels_on(window_grid(GRID, 20, 15, 75, 60))
    np.testing.assert_array_equal(part, whole[15:60, 20:75])


def test_later_rounds_add_their_polygons_after_the_earlier_ones() -> None:
    first = kept(((1, 0, (10, 10, 30, 25)),))
    second = kept(((0, 0, (20, 10, 40, 25)),))
    both = merged(first, second)
    assert [s.feature for s in both.shapes] == [0, 1] and both.features == 2
    labels = both.labels_on(GRID)
    assert (labels[12, 12] == 1) and (labels[12, 25] == 0)  # the later polygon wins
    elsewhere = KeptCorrections(GridSpec(50, 50, GT, GRID.projection_wkt), second.shapes)
    assert merged(first, elsewhere) is elsewhere  # another image: only the new round


def test_a_polygon_drawn_again_in_the_next_round_is_kept_once() -> None:
    """A user keeps drawing in one correction layer: round 2 reads round 1's polygons
    again; they were counted (and learnt) twice (5 + 9 = "14 corrections")."""
    round1 = kept(((1, 0, (10, 10, 30, 25)), (0, 1, (60, 40, 90, 70))))
    layer_now = kept(((1, 0, (10, 10, 30, 25)), (0, 1, (60, 40, 90, 70)), (1, 2, (35, 50, 50, 65))))
    both = merged(round1, layer_now)
    assert both.features == 3 and len(both.shapes) == 3
    assert sorted(s.feature for s in both.shapes) == [0, 1, 2]
    fresh = kept(((0, 0, (12, 40, 30, 55)),))  # a new layer for the next round: added
    assert merged(round1, fresh).features == 3 and left_out(round1, fresh) == 0


def test_a_polygon_deleted_reshaped_or_reclassed_in_the_layer_goes() -> None:
    """The user draws on in round 1's layer, deleting a wrong polygon, reshaping one and
    turning one to the other class: the layer is the whole set (session 52; it was merged
    with round 1's, so a deleted polygon stayed in every later map)."""
    round1 = kept(
        (
            (1, 0, (10, 10, 30, 25)),
            (0, 1, (60, 40, 90, 70)),
            (1, 2, (35, 50, 50, 65)),
            (1, 3, (70, 5, 90, 20)),
        )
    )
    layer_now = kept(
        (
            (1, 0, (10, 10, 30, 25)),  # as it was
            (0, 1, (60, 40, 80, 70)),  # reshaped
            (0, 2, (35, 50, 50, 65)),  # now background
            (1, 3, (5, 70, 20, 85)),  # new; (70, 5, 90, 20) deleted
        )
    )
    both = merged(round1, layer_now)
    assert both.shapes == layer_now.shapes and left_out(round1, layer_now) == 3
    labels = both.labels_on(GRID)
    assert (labels[10:20, 75:85] == IGNORE).all()  # the deleted building is gone
    assert (labels[45:60, 82:88] == IGNORE).all()  # so is the reshaped one's cut part
    assert (labels[55, 40] == 0) and (labels[15, 15] == 1)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    write_image(tmp_path / "in.tif", scene(90, 110, seed=3), GT)
    return tmp_path / "in.tif"


def model_with(tmp_path: Path, k: KeptCorrections) -> Path:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=4)
    cfg = copy.deepcopy(cfg)
    cfg.corrections = k.to_dict()
    return save_model(net, cfg, tmp_path / "m.safetensors")


def refined(image: Path, out: Path, model: Path, **kw):
    res = refine_raster(
        RefineParams(
            image=image,
            out=out,
            model_path=model,
            device="cpu",
            tile_size=32,
            scores=out.with_suffix(".scores.tif"),
            **kw,
        )
    )
    ds = gdal.Open(str(out))
    cls = ds.GetRasterBand(1).ReadAsArray()
    scores = gdal.Open(str(res.scores)).ReadAsArray()
    return cls, scores, res


def test_a_refine_of_the_same_image_shows_every_drawn_pixel(image: Path, tmp_path: Path) -> None:
    k = kept()
    model = model_with(tmp_path, k)
    cls, scores, res = refined(image, tmp_path / "out.tif", model)
    drawn = k.labels_on(GRID)
    assert res.corrections == 2
    assert (cls[drawn != IGNORE] == drawn[drawn != IGNORE]).all()
    assert (scores[1][drawn == 1] == 1.0).all() and (scores[0][drawn == 0] == 1.0).all()
    plain, _, res0 = refined(image, tmp_path / "plain.tif", model, keep_corrections=False)
    assert res0.corrections == 0
    assert (plain[drawn != IGNORE] != drawn[drawn != IGNORE]).any()  # the networks alone differ
    np.testing.assert_array_equal(cls[drawn == IGNORE], plain[drawn == IGNORE])


def test_the_iterations_kept_carry_them_too(image: Path, tmp_path: Path) -> None:
    """The slider's maps (every iteration, from the refine's pass or a pass of
    their own) show the drawn classes, as a refine with that many iterations does."""
    from map_refiner.engine.refine.params import KeepIterations
    from map_refiner.engine.refine.trajectory import compute_trajectory

    k = kept()
    model = model_with(tmp_path, k)
    cls, _, res = refined(image, tmp_path / "out.tif", model, keep_iterations=KeepIterations())
    drawn = k.labels_on(GRID) != IGNORE
    traj = res.trajectory
    assert traj is not None
    np.testing.assert_array_equal(traj.classes[-1], cls)
    for t in range(traj.iterations + 1):
        assert (traj.classes[t][drawn] == k.labels_on(GRID)[drawn]).all()
        assert (traj.uncertainty[t][drawn] == 0).all()
    zero, _, _ = refined(image, tmp_path / "zero.tif", model, iterations=0)
    np.testing.assert_array_equal(traj.classes[0], zero)
    alone = compute_trajectory(image, traj.iterations, model, device="cpu", tile_size=32)
    np.testing.assert_array_equal(alone.classes, traj.classes)


def test_another_image_is_refined_without_them(tmp_path: Path) -> None:
    other = tmp_path / "other.tif"
    write_image(other, scene(90, 110, seed=3), (600004.0, 0.4, 0.0, 5000000.0, 0.0, -0.4))
    model = model_with(tmp_path, kept())
    _, _, res = refined(other, tmp_path / "out.tif", model)
    assert res.corrections == 0


def test_a_model_without_corrections_loads_as_before(tmp_path: Path) -> None:
    net, cfg = random_model()
    path = save_model(net, cfg, tmp_path / "plain.safetensors")
    assert load_model(path, "cpu")[1].corrections == {}


def test_feature_numbers_on_a_coarser_grid() -> None:
    from map_refiner.engine.rasters.grid import scaled

    ids = kept().features_on(scaled(GRID, 55, 45))
    assert ids.dtype == np.int32 and set(np.unique(ids)) == {-1, 0, 1}
    assert (ids[6:11, 6:14] == 0).all() and (ids[21:34, 31:44] == 1).all()
