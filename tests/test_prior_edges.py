"""The image's own edges as a second opinion on a prior's move: a move that lays the
prior's outlines off the image's edges (a model misreading the imagery) is undone and
the note says why; a move onto them stays. And where the model's map agrees too little
with a prior to place it, a prior whose outlines the image's edges follow is kept, and
so is one the model's map would reshape onto weaker edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal
from scipy import ndimage
from test_prior import GT, write_mask
from test_prior_registration import blobs, drawn_east, model_sees, showing

from map_refiner.cli import main as cli_main
from map_refiner.engine.refine import refine_pass
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.refine.predict import WindowResult
from map_refiner.engine.refine.prior import PRIOR_KEEP, keep_prior
from map_refiner.engine.refine.registration import (
    EDGE_AGREEMENT,
    EDGE_MIRRORS,
    EDGE_MOVE,
    EDGE_STANDING,
    EDGE_SUPPORT,
    RESHAPE_AGREEMENT,
    edge_offset,
    edge_ratio,
    edge_strength,
    edge_sum,
    mirrored_surfaces,
    outline,
    outline_surface,
    peak_standing,
)


def square(h: int = 40, w: int = 40, at: int = 12, side: int = 14) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[at : at + side, at : at + side] = True
    return m


def test_outline_is_where_a_class_meets_another() -> None:
    cls = square().astype(np.int32)
    line = outline(cls)
    # the pixel before each boundary, to the right and below: 4 sides of 14, the
    # square's lower right pixel on two of them
    assert line.sum() == 4 * 14 - 1
    assert not line[20, 20] and not line[0, 0]
    cls[:, :5] = -1  # no prior there: no outline against it
    assert not outline(cls)[:, :5].any()


def test_edges_are_strongest_on_the_square_and_a_moved_outline_scores_less() -> None:
    truth = square()
    img = np.where(truth, 1.0, -1.0)[None].repeat(3, 0).astype(np.float32)
    strength = edge_strength(img)
    assert strength[12, 20] > 5 * strength[20, 20]  # on the border, not inside
    right = edge_sum(strength, truth.astype(np.int32))
    off = edge_sum(strength, np.roll(truth, 4, axis=1).astype(np.int32))
    ratio = edge_ratio(off, right)
    assert ratio is not None and ratio < 0.5
    assert edge_ratio(right, off) > 2
    assert edge_ratio((0.0, 0), right) is None  # nothing to compare


def test_a_move_off_the_images_edges_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The prior is right (the image shows its roofs) but the model's map is the truth
    moved 3 px west (a misreading model): registration would move the prior 1.8 m west;
    the image's edges say it lay better as drawn, so it stays, and the note says why;
    --no-prior-edge-check makes the move."""
    truth, params = drawn_east(tmp_path, 0)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(np.roll(truth, -3, axis=1)))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    note = res.prior_note
    assert note.startswith("left in place: the model's map would move it 1.8 m west"), note
    ratio = float(note.split("(")[1].split(" times")[0])
    assert ratio < EDGE_AGREEMENT
    assert "the model may misread this imagery" in note
    assert res.prior_misread  # the dialog and Processing warn
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99
    # told not to ask the edges, the refine makes the model's move
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_edges=False, **params)
    )
    assert res.prior_note.startswith("moved 1.8 m west"), res.prior_note
    assert res.prior_edge_ratio is None and not res.prior_misread
    assert ((gdal.Open(str(tmp_path / "b.tif")).ReadAsArray() == 1) == truth).mean() < 0.97
    cli_main(
        ["refine", str(params["image"]), "--out", str(tmp_path / "c.tif")]
        + ["--model", str(params["model_path"]), "--prior", str(params["prior"])]
        + ["--iterations", "0", "--no-prior-edge-check"]
    )
    assert "prior: moved 1.8 m west" in capsys.readouterr().out


def test_a_prior_the_edges_undo_a_move_of_goes_onto_the_images_edges_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prior is drawn 2 px (1.2 m) east of the roofs the image shows and the model's
    map is the truth 8 px east (a misreading model): its move (6 px east) lays the
    outlines on weaker edges and is undone, and the shift that lays them on the image's
    strongest edges (1.2 m west) moves the prior instead (registration.edge_offset,
    session 40); its classes are kept as drawn there, so the map is the truth."""
    truth, params = drawn_east(tmp_path, 2)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(np.roll(truth, 8, axis=1)))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    note = res.prior_note
    assert note.startswith("moved 1.2 m west and 0.0 m"), note
    assert "onto the image's edges" in note and "the model's map would move it 3.6 m east" in note
    assert res.prior_misread and note.endswith("its classes are kept as drawn")
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99


def test_the_strongest_edges_move_a_prior_only_when_clearly_stronger() -> None:
    surface = np.ones((9, 9))
    surface[4, 4] = 2.0  # as drawn
    surface[2, 6] = 2.0 * EDGE_MOVE + 0.1  # 2 px up, 2 px right
    unlike = [np.ones((9, 9))]  # its mirror images' surface: flat
    found = edge_offset([surface], 0.6, unlike)
    assert found == pytest.approx((-2.0, 2.0, EDGE_MOVE + 0.05), abs=0.01)
    surface[2, 6] = 2.0 * EDGE_MOVE - 0.1  # not clearly stronger: stays
    assert isinstance(edge_offset([surface], 0.6, unlike), str)
    surface[4, 4], surface[4, 5] = 2.0, 2.0 * EDGE_MOVE + 0.5  # one pixel: within a model pixel
    assert "within a model pixel" in edge_offset([surface], 0.6, unlike)
    surface[0, 0] = 100.0  # at the search's edge
    assert isinstance(edge_offset([surface], 0.6, unlike), str)
    assert isinstance(edge_offset([], 0.6, unlike), str)


def test_the_strongest_edges_must_stand_out_of_the_search_and_beyond_its_mirrors() -> None:
    """The best of many shifts of a prior that does not belong is high by chance: a peak
    that is just the largest of a noisy surface does not move the prior, one that stands
    EDGE_STANDING robust deviations above the rest does, unless the prior's mirror
    images find shifts nearly as strong (session 41)."""
    rng = np.random.default_rng(0)
    noise = 10 + rng.normal(0, 1, (35, 35))
    noise[17, 17] = 10.0  # as drawn: the median
    unlike = [10 + rng.normal(0, 1, (35, 35)) for _ in range(3)]
    assert peak_standing(noise) < EDGE_STANDING  # the largest of 1225 normal draws: ~3.4
    found = edge_offset([noise], 0.6, unlike)
    assert isinstance(found, str) and "does not stand out" in found, found
    peaked = noise.copy()
    peaked[14, 20] = 10 + 1.4826 * 0.6745 * (EDGE_STANDING + 1)  # 5+ deviations
    assert peak_standing(peaked) > EDGE_STANDING
    # ... but its mirrors reach nearly as high: chance, not the image following it
    found = edge_offset([peaked], 0.6, unlike)
    assert isinstance(found, str) and "mirror image" in found, found
    peaked[14, 20] = EDGE_MIRRORS * max(m.max() for m in unlike) + 0.1
    assert edge_offset([peaked], 0.6, unlike) == pytest.approx(
        (-3.0, 3.0, peaked[14, 20] / 10.0), abs=0.01
    )
    flat = np.ones((9, 9))
    assert peak_standing(flat) == 0.0
    flat[3, 3] = 2.0
    assert peak_standing(flat) == np.inf


def test_a_prior_s_mirror_images_are_its_outlines_where_the_image_has_no_reason_for_them() -> None:
    """mirrored_surfaces: the same outlines flipped, scored over the same edges; a prior
    that sits on its image's edges scores far above its mirrors at no shift."""
    truth = blobs(80, 100, seed=3)
    strength = edge_strength(showing(truth).astype(np.float32))
    classes = truth.astype(np.int32)
    own = outline_surface(classes, strength, 5)
    mirrors = mirrored_surfaces(classes, strength, 5)
    assert len(mirrors) == 3 and all(m.shape == own.shape for m in mirrors)
    assert own[5, 5] == own.max() > 2 * max(m.max() for m in mirrors)
    lr = outline_surface(np.ascontiguousarray(classes[:, ::-1]), strength, 5)
    np.testing.assert_allclose(mirrors[0], lr)


def test_a_move_onto_the_images_edges_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same image and a prior drawn 3 px east of its roofs: the move back lays its
    outlines on the roofs' edges, so it is made."""
    truth, params = drawn_east(tmp_path, 3)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sees(truth))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert "moved 1.8 m west" in res.prior_note, res.prior_note
    assert not res.prior_misread
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99
    # and the image alone says so: moved back, the outlines lie on stronger edges
    strength = edge_strength(showing(truth).astype(np.float32))
    moved_back = edge_sum(strength, truth.astype(np.int32))
    as_drawn = edge_sum(strength, np.roll(truth, 3, axis=1).astype(np.int32))
    assert edge_ratio(moved_back, as_drawn) > 1 / EDGE_AGREEMENT


def model_sure_of(mask: np.ndarray, p: float = 0.995):  # noqa: ANN201
    """A stand-in for predict_tile whose refined map is ``mask``, all but certain of it
    (the kept-prior rule's 0.1 then keeps nothing of a prior it contradicts)."""

    def predict(net, config, ds, bands, grids, tile, *args, **kw) -> WindowResult:  # noqa: ANN001
        win = mask[tile.y0 : tile.y1, tile.x0 : tile.x1]
        q = np.where(win, p, 1 - p)
        probs = torch.from_numpy(np.stack([1 - q, q]).astype(np.float32))
        return WindowResult(torch.log(probs), np.ones(win.shape, bool))

    return predict


def test_a_move_the_edges_undo_keeps_the_prior_where_a_sure_map_contradicts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 25: the prior is right and a misreading model is all but certain of the
    roofs 3 px west (a cool cast on Kampala: a map sure of what is not there). The edges
    undo registration's move, and that doubt alone (the reshape check finding nothing,
    as on Kampala) keeps the prior's classes as drawn: the refined map is the prior, not
    the map, however sure the map is (1e-5 for the prior's class, under the 0.001 of
    sessions 24-25). At the usual 0.1 the sure map would take the roofs' east edges."""
    truth, params = drawn_east(tmp_path, 0)
    wrong = np.roll(truth, -3, axis=1)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(wrong, 1 - 1e-5))
    monkeypatch.setattr(refine_pass.RefinePass, "prior_reshape_ratio", lambda self: 1.0)
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    note = res.prior_note
    assert note.startswith("left in place: the model's map would move it 1.8 m west"), note
    assert "reshape" not in note and res.prior_misread
    assert note.endswith("its classes are kept as drawn"), note
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).all()  # the prior to the pixel
    # a prior_keep the user sets is theirs: at 0.1 the sure map wins the edges
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_keep=PRIOR_KEEP, **params)
    )
    assert "kept as drawn" not in res.prior_note and res.prior_misread
    out = gdal.Open(str(tmp_path / "b.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() < 0.97


def test_a_right_prior_the_model_cannot_read_is_kept_where_the_image_follows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A right prior (the image shows its roofs) and a model whose map is other
    buildings (a misreading model: it agrees too little with the prior to place it):
    the image's edges follow the prior's outlines, so the prior's classes are kept as
    drawn, and the note says why."""
    truth, params = drawn_east(tmp_path, 0)
    elsewhere = blobs(80, 100, seed=11)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(elsewhere))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert "agrees too little" in res.prior_note, res.prior_note
    assert "the model may misread this imagery" in res.prior_note
    assert res.prior_edge_support is not None and res.prior_edge_support >= EDGE_SUPPORT
    assert "kept as drawn" in res.prior_note and res.prior_misread
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99  # the prior, not the model's map
    # told not to ask the edges, or given its own threshold, the refine keeps as before
    for i, extra in enumerate(({"prior_edges": False}, {"prior_keep": 0.1})):
        path = tmp_path / f"b{i}.tif"
        res = refine_raster(RefineParams(out=path, iterations=0, **extra, **params))
        assert "misread" not in res.prior_note and not res.prior_misread, res.prior_note
        out = gdal.Open(str(path)).ReadAsArray()
        assert ((out == 1) == elsewhere).mean() > 0.99  # the model's sure map wins


def test_a_prior_the_image_does_not_follow_is_not_kept_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model and a prior the image does not show (an unrelated image): its
    outlines lie on no particular edges, so nothing says the model misreads it."""
    truth, params = drawn_east(tmp_path, 0, shown=False)
    elsewhere = blobs(80, 100, seed=11)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(elsewhere))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert "agrees too little" in res.prior_note, res.prior_note
    assert res.prior_edge_support is not None and res.prior_edge_support < EDGE_SUPPORT
    assert "misread" not in res.prior_note and not res.prior_misread
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == elsewhere).mean() > 0.99


def test_a_shifted_prior_the_model_cannot_place_goes_onto_the_images_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prior drawn 3 px (1.8 m) east of the roofs the image shows, and a model whose map
    is other buildings (a misreading model: it agrees too little with the prior to place
    it): the image's edges do not follow the prior where drawn, but its outlines' best
    shift stands out of the search and lays them on the roofs' edges, so it is moved 1.8
    m west and its classes are kept there (session 41). Told not to ask the edges, it
    stays and the model's sure map wins."""
    truth, params = drawn_east(tmp_path, 3)
    elsewhere = blobs(80, 100, seed=11)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(elsewhere))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    note = res.prior_note
    assert note.startswith("moved 1.8 m west and 0.0 m"), note
    assert "onto the image's edges" in note and "agrees too little" in note
    assert res.prior_misread and "kept as drawn" in note
    assert res.prior_edge_support is not None and res.prior_edge_support >= EDGE_SUPPORT
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_edges=False, **params)
    )
    assert "onto the image's edges" not in res.prior_note and not res.prior_misread
    out = gdal.Open(str(tmp_path / "b.tif")).ReadAsArray()
    assert ((out == 1) == elsewhere).mean() > 0.99


def test_a_model_that_reshapes_a_prior_off_the_images_edges_leaves_it_as_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A right prior (the image shows its roofs) and a model whose map, from it, is each
    roof shrunk by two pixels, all but certain (a misreading model): in place, but the
    map's outlines would lie inside the roofs, on weaker edges than the prior's, so the
    prior's classes are kept; told not to ask the edges, the model's map wins."""
    truth, params = drawn_east(tmp_path, 0)
    shrunk = ndimage.binary_erosion(truth, iterations=2)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(shrunk))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert res.prior_reshape_ratio is not None and res.prior_reshape_ratio < RESHAPE_AGREEMENT
    assert "reshape it onto weaker edges" in res.prior_note and res.prior_misread
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_edges=False, **params)
    )
    assert res.prior_reshape_ratio is None and "reshape" not in res.prior_note
    assert not res.prior_misread
    out = gdal.Open(str(tmp_path / "b.tif")).ReadAsArray()
    assert ((out == 1) == shrunk).mean() > 0.99


def test_a_model_that_reshapes_a_prior_onto_the_images_edges_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prior drawn two pixels too wide all round and a model whose map is the roofs:
    its outlines lie on stronger edges than the prior's, so the map wins as before."""
    truth, params = drawn_east(tmp_path, 0)
    wide = ndimage.binary_dilation(truth, iterations=2).astype(np.uint8)
    params["prior"] = write_mask(tmp_path / "wide.tif", wide, GT)
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(truth))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert res.prior_reshape_ratio is not None and res.prior_reshape_ratio > 1 / RESHAPE_AGREEMENT
    assert "reshape" not in res.prior_note and not res.prior_misread, res.prior_note
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray()
    assert ((out == 1) == truth).mean() > 0.99


def test_a_drawn_object_stays_unless_the_map_all_but_excludes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 25: the prior's objects are kept down to PRIOR_KEEP_OBJECTS, its
    background to PRIOR_KEEP. A map 0.95 sure that one of the prior's buildings is not
    there leaves it (0.05 >= 0.02); a user's --prior-keep 0.1 is one value for every
    class, and the map wins."""
    truth, params = drawn_east(tmp_path, 0)
    lab, n = ndimage.label(truth)
    assert n >= 2
    gone = lab == 1
    monkeypatch.setattr(refine_pass, "predict_tile", model_sure_of(truth & ~gone, p=0.95))
    res = refine_raster(RefineParams(out=tmp_path / "a.tif", iterations=0, **params))
    assert not res.prior_misread, res.prior_note
    out = gdal.Open(str(tmp_path / "a.tif")).ReadAsArray() == 1
    assert out[gone].mean() > 0.99 and (out == truth).mean() > 0.99
    res = refine_raster(
        RefineParams(out=tmp_path / "b.tif", iterations=0, prior_keep=PRIOR_KEEP, **params)
    )
    out = gdal.Open(str(tmp_path / "b.tif")).ReadAsArray() == 1
    assert out[gone].mean() < 0.01


def test_a_prior_kept_as_drawn_leaves_the_map_only_where_it_has_no_class() -> None:
    """keep_prior at 0 (the prior as drawn, where the edges doubt the model): the prior's
    class wherever it has one on a valid pixel, however sure the map is of another; the
    map where the prior has none (-1: nodata, outside its extent) and on invalid pixels."""
    prior = np.array([[1, 1, -1], [0, 0, 1]], np.int64)
    cls = np.array([[0, 1, 0], [1, 1, 0]], np.uint8)
    valid = np.array([[True, True, True], [True, False, True]])
    sure = torch.from_numpy(cls == 1).float()[None] * 60 - 30  # the map all but certain
    logits = torch.cat([-sure, sure])
    assert keep_prior(prior, logits, cls, valid, 0.0) == 3
    assert cls.tolist() == [[1, 1, 0], [0, 1, 1]]
    # at the usual thresholds the sure map keeps its own classes
    cls = np.array([[0, 1, 0], [1, 1, 0]], np.uint8)
    assert keep_prior(prior, logits, cls, valid, PRIOR_KEEP, 0.02, 0) == 0
