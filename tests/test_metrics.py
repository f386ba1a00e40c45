"""Scores: confusion matrix, accuracy and IoU, from arrays and from rasters on any grid."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers_data import real_data, write_raster
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.scoring.metrics import Scores, confusion_matrix, evaluate_rasters

NAMES = ["background", "building", "road"]
GT = (500000.0, 1.0, 0.0, 4000004.0, 0.0, -1.0)  # 4 x 4 m in UTM 33N
REF = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [255, 2, 0, 0]], np.uint8)
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [2, 0, 0, 0], [1, 2, 255, 0]], np.uint8)
# Worked by hand: 14 pixels scored (one 255 in each map); rows = reference.
CM = [[6, 1, 0], [1, 3, 0], [1, 0, 2]]
IOU = [6 / (7 + 8 - 6), 3 / (4 + 4 - 3), 2 / (3 + 2 - 2)]  # 0.667, 0.600, 0.667


def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix(PRED, REF, 3)
    assert cm.dtype == np.int64
    assert cm.tolist() == CM
    assert confusion_matrix(PRED, REF, 3, ignore=(255, 2)).tolist() == [
        [6, 1, 0],
        [1, 3, 0],
        [0, 0, 0],
    ]


def test_confusion_matrix_rejects_bad_input() -> None:
    with pytest.raises(MapRefinerError, match="class value 3"):
        confusion_matrix(PRED, np.where(REF == 2, 3, REF).astype(np.uint8), 3)
    with pytest.raises(MapRefinerError, match="differ in size"):
        confusion_matrix(PRED, REF[:3], 3)


def test_scores_by_hand() -> None:
    s = Scores.from_confusion(np.array(CM), NAMES)
    assert s.pixel_count == 14
    assert s.overall_accuracy == pytest.approx(11 / 14)
    assert s.iou == pytest.approx(IOU)
    assert s.mean_iou == pytest.approx(sum(IOU) / 3)


def test_absent_class_is_nan_and_json_friendly() -> None:
    cm = np.zeros((4, 4), np.int64)
    cm[:3, :3] = CM
    s = Scores.from_confusion(cm, NAMES + ["water"])
    assert math.isnan(s.iou[3])
    assert s.mean_iou == pytest.approx(sum(IOU) / 3)  # the absent class does not count
    d = json.loads(json.dumps(s.to_dict()))
    assert d["iou"]["water"] is None and d["iou"]["road"] == pytest.approx(2 / 3)
    assert d["confusion_matrix"][1] == [1, 3, 0, 0] and d["pixel_count"] == 14
    table = s.format_table()
    assert "building" in table and "60.00%" in table and "78.57%" in table
    assert "n/a" in table.splitlines()[4]


def test_evaluate_rasters_on_one_grid(tmp_path) -> None:
    ref = write_raster(tmp_path / "ref.tif", REF, GT, 32633)
    pred = write_raster(tmp_path / "pred.tif", PRED, GT, 32633)
    s = evaluate_rasters(pred, ref, NAMES)
    assert s.confusion.tolist() == CM and s.iou == pytest.approx(IOU)


def test_evaluate_rasters_with_value_maps_and_nodata(tmp_path) -> None:
    mask = np.where(REF == 1, 255, np.where(REF == 255, 9, 0)).astype(np.uint8)
    ref = write_raster(tmp_path / "gt.tif", mask, GT, 32633, nodata=9)
    pred_vals = np.where(PRED == 1, 10, np.where(PRED == 255, 77, 20)).astype(np.uint8)
    pred = write_raster(tmp_path / "p.tif", pred_vals, GT, 32633, nodata=77)
    s = evaluate_rasters(
        pred,
        ref,
        ["background", "building"],
        reference_value_map={0: 0, 255: 1},
        prediction_value_map={20: 0, 10: 1},
    )
    # background = reference classes 0 and 2 merged: [[6+0+1+2, 1], [1, 3]]
    assert s.confusion.tolist() == [[9, 1], [1, 3]]
    with pytest.raises(MapRefinerError, match="class value 20 but there are only 2"):
        evaluate_rasters(pred, ref, ["background", "building"], {0: 0, 255: 1})
    floats = write_raster(tmp_path / "f.tif", PRED.astype(np.float32) / 2, GT, 32633)
    with pytest.raises(MapRefinerError, match=r"not class indices \(e.g. 0.5\)"):
        evaluate_rasters(floats, ref, ["background", "building"], {0: 0, 255: 1})


def test_a_0_255_reference_without_a_value_map_is_an_error(tmp_path) -> None:
    """255 is 'not scored': a 0/255 building mask read as classes had scored building 0 %
    on the background pixels alone, without a word."""
    mask = np.where(REF == 1, 255, 0).astype(np.uint8)
    ref = write_raster(tmp_path / "gt.tif", mask, GT, 32633)
    pred = write_raster(tmp_path / "p.tif", np.where(PRED == 1, 1, 0).astype(np.uint8), GT, 32633)
    names = ["background", "building"]
    with pytest.raises(
        MapRefinerError, match=r"gt.tif holds no pixel of any class but 0, and \d+ pixels of 255"
    ):
        evaluate_rasters(pred, ref, names)
    mapped = evaluate_rasters(pred, ref, names, reference_value_map={0: 0, 255: 1})
    assert mapped.confusion[1].sum() == int((REF == 1).sum())
    labelled = np.where(REF == 1, 1, 0).astype(np.uint8)
    labelled[REF != 1] = np.where(np.arange(int((REF != 1).sum())) % 3 == 0, 255, 0)
    ignored = write_raster(tmp_path / "i.tif", labelled, GT, 32633)
    kept = evaluate_rasters(pred, ignored, names)  # 255 beside real classes: not scored
    assert kept.pixel_count == int((labelled != 255).sum())
    other_tool = write_raster(
        tmp_path / "o.tif", np.where(PRED == 1, 255, 0).astype(np.uint8), GT, 32633
    )
    with pytest.raises(MapRefinerError, match=r"The prediction o.tif holds no pixel of any class"):
        evaluate_rasters(other_tool, ref, names, reference_value_map={0: 0, 255: 1})
    both = evaluate_rasters(other_tool, ref, names, {0: 0, 255: 1}, {0: 0, 255: 1})
    assert (
        both.confusion.tolist()
        == evaluate_rasters(pred, ref, names, {0: 0, 255: 1}).confusion.tolist()
    )


def test_prediction_on_another_grid_and_crs_is_warped(tmp_path) -> None:
    ref = write_raster(tmp_path / "ref.tif", REF, GT, 32633)
    fine = np.kron(PRED, np.ones((4, 4), np.uint8))
    pred = write_raster(
        tmp_path / "fine.tif", fine, (GT[0], 0.25, 0, GT[3], 0, -0.25), 32633, nodata=255
    )
    assert evaluate_rasters(pred, ref, NAMES).confusion.tolist() == CM
    geo = tmp_path / "geo.tif"
    gdal.Warp(str(geo), str(pred), dstSRS="EPSG:4326", resampleAlg="near", xRes=2e-6, yRes=2e-6)
    assert evaluate_rasters(geo, ref, NAMES).confusion.tolist() == CM


def test_rasters_that_do_not_overlap(tmp_path) -> None:
    ref = write_raster(tmp_path / "ref.tif", REF, GT, 32633)
    away = write_raster(tmp_path / "away.tif", PRED, (0, 1.0, 0, 4, 0, -1.0), 32633)
    with pytest.raises(MapRefinerError, match="no data over the reference"):
        evaluate_rasters(away, ref, NAMES)


def test_austin_reference_against_itself() -> None:
    gt = real_data("austin", "austin_enh_gt.tif")
    s = evaluate_rasters(gt, gt, ["background", "building"], {0: 0, 255: 1}, {0: 0, 255: 1})
    assert s.overall_accuracy == 1.0 and s.iou == [1.0, 1.0] and s.pixel_count == 250000


def test_austin_reference_through_wgs84_and_back(tmp_path) -> None:
    """The mask warped to EPSG:4326 at about 0.3 m and scored back on its own grid.
    Measured: OA 99.93 %, building IoU 0.9936 on 249964 pixels (edges move a pixel)."""
    gt = real_data("austin", "austin_enh_gt.tif")
    geo = tmp_path / "geo.tif"
    gdal.Warp(str(geo), str(gt), dstSRS="EPSG:4326", resampleAlg="near", dstNodata=9)
    s = evaluate_rasters(geo, gt, ["background", "building"], {0: 0, 255: 1}, {0: 0, 255: 1})
    assert s.overall_accuracy > 0.995 and s.iou[1] > 0.98
    assert 0.999 * 250000 < s.pixel_count < 250000


def test_the_cli_scores_another_tools_0_255_map(tmp_path, capsys) -> None:  # noqa: ANN001
    from map_refiner import cli

    mask = np.where(REF == 1, 255, 0).astype(np.uint8)
    ref = write_raster(tmp_path / "gt.tif", mask, GT, 32633)
    other = np.where(PRED == 1, 255, 0).astype(np.uint8)
    pred = write_raster(tmp_path / "theirs.tif", other, GT, 32633)
    args = ["evaluate", str(pred), str(ref), "--reference-map", "0:0,255:1", "--json"]
    assert cli.main(args) == 2  # 'theirs' read as classes: refused, with the way out
    assert "theirs.tif holds no pixel of any class but 0" in capsys.readouterr().err
    assert cli.main([*args, "--prediction-map", "0:0,255:1"]) == 0
    scored = json.loads(capsys.readouterr().out)
    expected = evaluate_rasters(
        write_raster(tmp_path / "p.tif", (PRED == 1).astype(np.uint8), GT, 32633),
        ref,
        ["background", "building"],
        {0: 0, 255: 1},
    )
    assert scored["confusion_matrix"] == expected.confusion.tolist()
