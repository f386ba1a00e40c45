"""dev/corrections/three_class.py: the three-class (background / building / road)
correction loop on LoveDA: the extended network, the simulated user's regions and the
scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from osgeo import gdal, ogr, osr

from map_refiner.dev.corrections.three_class import (
    IGNORE,
    error_regions,
    halves,
    scores,
    table,
    three_class_net,
    write_corrections,
)
from map_refiner.engine.networks.models import MapRefinerNet


def test_a_third_class_leaves_the_two_old_classes_maps_as_they_were() -> None:
    torch.manual_seed(0)
    base = MapRefinerNet(3, 2)
    with torch.no_grad():  # a base whose layers differ per class, like a trained one
        for p in base.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net = three_class_net(base)
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        old_coarse, new_coarse = base.coarse(image), net.coarse(image)
        assert new_coarse.shape[1] == 3
        assert torch.allclose(new_coarse[:, :2], old_coarse, atol=1e-5)
        # road starts as background's map, lower: it is nowhere the likeliest class
        gap = old_coarse[:, 0] - new_coarse[:, 2]
        assert gap.min() > 0.5 and gap.max() < 3.0  # less at the edges (fewer taps)
        old, new = base(image), net(image)
        assert torch.allclose(new[:, :2], old, atol=1e-4)  # each class's own MLP


def test_the_user_draws_each_class_it_missed_and_traces_a_missed_building_whole() -> None:
    ref = np.zeros((40, 40), np.int16)
    ref[5:15, 2:30] = 1  # a building crossing the middle (half = 20)
    ref[25:28, :] = 2  # a road
    ref[35:, :] = IGNORE  # no data
    pred = np.zeros_like(ref)
    pred[5:15, 2:8] = 1  # the building's west end found
    pred[25:28, 10:40] = 2  # the road's west part missed
    pred[30:34, 2:10] = 1  # a false building
    drawn, scored = halves(ref.shape, "left")
    assert drawn[:, :20].all() and not drawn[:, 20:].any() and (scored == ~drawn).all()
    regions = error_regions(pred, ref, drawn)
    by_class = {c: (size, mask) for size, mask, c in regions}
    assert set(by_class) == {0, 1, 2}
    size, mask = by_class[1]
    assert size == 10 * 12  # the missed part on the left half
    assert mask.sum() == 10 * 18 and mask[5:15, 2:20].all()  # traced whole, left half only
    assert by_class[2][1].sum() == 3 * 10  # the missed road stretch
    assert by_class[0][1].sum() == 4 * 8  # the false building, drawn as background
    assert [r[0] for r in regions] == sorted((r[0] for r in regions), reverse=True)


def test_scores_leave_no_data_out_and_average_the_three_classes() -> None:
    ref = np.array([[0, 0, 1, 2], [IGNORE, IGNORE, 1, 2]], np.int16)
    pred = np.array([[0, 1, 1, 2], [2, 2, 1, 0]], np.int16)
    s = scores(pred, ref)
    assert s["background"] == round(100 / 3, 2) and s["building"] == round(100 * 2 / 3, 2)
    assert s["road"] == 50.0  # the IGNORE pixels called road do not count
    assert s["mean"] == round((100 / 3 + 100 * 2 / 3 + 50.0) / 3, 2)
    assert s["accuracy"] == round(100 * 4 / 6, 2)
    top, bottom = halves(ref.shape, "top")
    assert top[0].all() and not top[1].any()
    assert scores(pred, ref, bottom) == {  # the bottom row's two labelled pixels
        "background": 0.0,  # the road pixel called background
        "building": 100.0,
        "road": 0.0,
        "mean": round(100 / 3, 2),
        "accuracy": 50.0,
    }


def test_the_table_shows_every_seed_against_the_start() -> None:
    start = {"background": 99.0, "building": 40.0, "road": 30.0, "mean": 56.33, "accuracy": 98.0}
    rows = [
        {
            "scene": "loveda_1",
            "k": 4,
            "variant": "head+rnn",
            "seed": seed,
            "classes": ["road", "background", "road", "building"],
            "before": start,
            "after": {**start, "mean": mean, "road": road},
            "adopted": seed == 0,
            "honoured": 100.0,
        }
        for seed, mean, road in ((1, 56.33, 30.0), (0, 60.0, 41.0))
    ]
    line = table(rows).splitlines()[-1]
    assert "1 background, 1 building, 2 road" in line
    assert "60.0 (+3.7) / 56.3 (+0.0)" in line  # seed 0 first
    assert "41.0 (+11.0) / 30.0 (+0.0)" in line and "1 of 2" in line


def test_the_corrections_layer_holds_the_models_class_names(tmp_path: Path) -> None:
    like = gdal.GetDriverByName("MEM").Create("", 40, 30, 1)
    like.SetGeoTransform((500000.0, 0.3, 0.0, 5000000.0, 0.0, -0.3))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    like.SetProjection(srs.ExportToWkt())
    roof, track = np.zeros((30, 40), bool), np.zeros((30, 40), bool)
    roof[2:8, 2:8] = True
    track[20:23, 5:35] = True
    path = write_corrections([(roof, 1), (track, 2)], like, tmp_path / "c.gpkg")
    ds = ogr.Open(str(path))  # held while its layer is read (GDAL frees it with ds)
    got = sorted(
        (f.GetField("class"), round(f.GetGeometryRef().GetArea() / 0.09)) for f in ds.GetLayer()
    )
    assert got == [("building", 36), ("road", 90)]
