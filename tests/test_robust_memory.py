"""Memory flat in the raster's size for evaluate, vectorize and compare: they read blocks
of rows (vectorize and compare keep their mask and regions on disk), with the same result
as one piece; a fine-tune reads and burns only around its polygons."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import UTM33N, wkt
from osgeo import gdal, ogr

from map_refiner.engine.scoring import metrics
from map_refiner.engine.scoring.metrics import evaluate_rasters
from map_refiner.engine.vectors import vectorize as vectorize_module
from map_refiner.engine.vectors.vectorize import vectorize

gdal.UseExceptions()
GT = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)


def blocky(path: Path, size: int, square: int, shift: int = 0, gt: tuple = GT) -> Path:
    """A tiled class map of ``square``-pixel squares of classes 0/1 and a nodata strip,
    written a band of rows at a time (so a large one is cheap to make)."""
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size, size, 1, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt(UTM33N))
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(255)
    x = np.arange(size)[None, :]
    step = max(1, (1 << 22) // size)
    for y0 in range(0, size, step):
        y = np.arange(y0, min(size, y0 + step))[:, None]
        rows = (((x + shift) // square + (y + shift) // square) % 2).astype(np.uint8)
        rows[(y % 97 == 5) & (x < size // 3)] = 255
        band.WriteArray(rows, 0, y0)
    ds = None
    return path


def scores_for(path: Path, classmap: Path) -> Path:
    """Probabilities on the class map's grid: P(class) varies from pixel to pixel."""
    src = gdal.Open(str(classmap))
    n = src.RasterXSize
    ds = gdal.GetDriverByName("GTiff").Create(str(path), n, n, 2, gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    p1 = (np.add.outer(np.arange(n), np.arange(n)) % 50 / 50.0).astype(np.float32)
    ds.GetRasterBand(1).WriteArray(1 - p1)
    ds.GetRasterBand(2).WriteArray(p1)
    ds = None
    return path


def test_evaluate_in_blocks_equals_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also for a prediction on another grid (warped block by block)."""
    ref = blocky(tmp_path / "ref.tif", 203, 17, shift=3)
    other = (GT[0] + 0.25, 0.4, 0.0, GT[3] - 0.35, 0.0, -0.4)
    pred = blocky(tmp_path / "pred.tif", 260, 21, gt=other)
    names = ["background", "building"]
    whole = evaluate_rasters(pred, ref, names)
    monkeypatch.setattr(metrics, "BLOCK_PIXELS", 1000)  # 4 rows a block
    blocks = evaluate_rasters(pred, ref, names)
    assert whole.pixel_count > 30000
    assert (blocks.confusion == whole.confusion).all()


def _features(path: Path) -> list[tuple]:
    ds = ogr.Open(str(path))
    return sorted(
        (f["class_id"], round(f["area_m2"], 3), f["mean_prob"], f.GetGeometryRef().ExportToWkt())
        for f in ds.GetLayer(0)
    )


def test_vectorize_in_blocks_equals_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classmap = blocky(tmp_path / "c.tif", 150, 23)
    scores = scores_for(tmp_path / "s.tif", classmap)
    vectorize(classmap, tmp_path / "whole.gpkg", scores_path=scores)
    monkeypatch.setattr(vectorize_module, "BLOCK_PIXELS", 600)  # 4 rows a block
    vectorize(classmap, tmp_path / "blocks.gpkg", scores_path=scores)
    whole = _features(tmp_path / "whole.gpkg")
    assert len(whole) > 40
    assert _features(tmp_path / "blocks.gpkg") == whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocks.gpkg",
        "c.tif",
        "s.tif",
        "whole.gpkg",
    ]  # no scratch folder left


def prior_squares(path: Path, size: int, square: int, shift: int) -> Path:
    """A prior layer of the class-1 squares of ``blocky(size, square)``, each shifted by
    ``shift`` pixels and a little smaller, every fifth one missing."""
    src = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = src.CreateLayer("b", srs=ogr.osr.SpatialReference(wkt(UTM33N)), geom_type=ogr.wkbPolygon)
    lyr.StartTransaction()
    n = 0
    for i in range(size // square):
        for j in range(size // square):
            n += (i + j) % 2
            if (i + j) % 2 == 0 or n % 5 == 0:
                continue
            x0, y0 = GT[0] + (j * square + shift) * GT[1], GT[3] + (i * square + shift) * GT[5]
            x1, y1 = x0 + (square - 2 * shift) * GT[1], y0 + (square - 2 * shift) * GT[5]
            feat = ogr.Feature(lyr.GetLayerDefn())
            feat.SetGeometry(
                ogr.CreateGeometryFromWkt(
                    f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
                )
            )
            lyr.CreateFeature(feat)
    lyr.CommitTransaction()
    src = None
    return path


def _flags(path: Path) -> list[tuple]:
    ds = ogr.Open(str(path))
    return [
        (f["status"], f["prior_fid"], f["iou"], f["shift_m"], f.GetGeometryRef().ExportToWkt())
        for f in ds.GetLayer(0)
    ]


def test_compare_in_blocks_equals_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refined objects are polygonized block by block, kept on disk in a scratch
    folder beside the output (removed after), and the flags written as they come: the
    same flags, in the same order, as one block."""
    from map_refiner.engine.vectors.compare import CompareParams, compare

    refined = blocky(tmp_path / "r.tif", 300, 23)
    prior = prior_squares(tmp_path / "p.gpkg", 300, 23, 2)
    params = CompareParams(class_name="class 1")
    whole = compare(prior, refined, tmp_path / "whole.gpkg", params)
    monkeypatch.setattr(vectorize_module, "BLOCK_PIXELS", 1200)  # 4 rows a block
    blocks = compare(prior, refined, tmp_path / "blocks.gpkg", params)
    assert blocks.counts == whole.counts and sum(whole.counts.values()) > 50
    assert {s for s, n in whole.counts.items() if n} >= {"moved", "new"}
    assert _flags(tmp_path / "blocks.gpkg") == _flags(tmp_path / "whole.gpkg")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocks.gpkg",
        "p.gpkg",
        "r.tif",
        "whole.gpkg",
    ]  # no scratch folder left


# VmHWM, not getrusage: a forked child's ru_maxrss starts at its parent's (pytest's) size.
PEAK = (
    "import re, sys\n"
    "from map_refiner import cli\n"
    "rc = cli.main(sys.argv[1:]) if len(sys.argv) > 1 else 0\n"
    "status = open('/proc/self/status').read()\n"
    "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024, rc)\n"
)


def _peak_mb(*args: object) -> int:
    """Peak resident memory (MB) of a fresh process that runs the command line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GDAL_CACHEMAX": "16"}  # MB: what is left
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    mb, rc = done.stdout.split()[-2:]
    assert rc == "0", done.stderr
    return int(mb)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_evaluate_and_vectorize_memory_does_not_grow_with_the_raster(tmp_path: Path) -> None:
    """An 8000 x 8000 map (64 million pixels), GDAL's cache at 16 MB: read whole, evaluate
    grew by 373 MB and vectorize by 390 MB (about 6 bytes a pixel); by blocks 115 and 97
    MB, whatever the size (docs/reliability.md has the 20000 x 20000 figures)."""
    pred = blocky(tmp_path / "pred.tif", 8000, 250)
    ref = blocky(tmp_path / "ref.tif", 8000, 250, shift=7)
    base = _peak_mb()
    grown = {
        "evaluate": _peak_mb("evaluate", pred, ref) - base,
        "vectorize": _peak_mb("vectorize", pred, "--out", tmp_path / "v.gpkg") - base,
    }
    assert all(mb < 200 for mb in grown.values()), grown


# --- finetune: the corrections and the image read around the polygons ------------------------


def _image(path: Path, size: int, written: tuple[int, int, int], gt: tuple = GT) -> Path:
    """A tiled RGB GeoTIFF of ``size`` x ``size`` pixels, textured only over the square
    ``written`` (x0, y0, side); the rest is left sparse, so a large one costs nothing."""
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), size, size, 3, gdal.GDT_Byte, ["TILED=YES", "SPARSE_OK=TRUE"]
    )
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt(UTM33N))
    x0, y0, side = written
    rng = np.random.default_rng(0)
    for b in range(3):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(40, 220, (side, side), np.uint8), x0, y0)
    ds = None
    return path


def _polygons(path: Path, boxes: list[tuple[float, float, float, float, str]], gt=GT) -> Path:
    """Correction polygons given in pixels (x0, y0, x1, y1, class) of a grid of ``gt``."""
    drv = ogr.GetDriverByName("GPKG")
    src = drv.CreateDataSource(str(path))
    srs = ogr.osr.SpatialReference(wkt(UTM33N))
    lyr = src.CreateLayer("c", srs=srs, geom_type=ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    for x0, y0, x1, y1, cls in boxes:
        a, b = gt[0] + x0 * gt[1], gt[3] + y0 * gt[5]
        c, d = gt[0] + x1 * gt[1], gt[3] + y1 * gt[5]
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetField("class", cls)
        feat.SetGeometry(
            ogr.CreateGeometryFromWkt(f"POLYGON(({a} {b},{c} {b},{c} {d},{a} {d},{a} {b}))")
        )
        lyr.CreateFeature(feat)
    src = None
    return path


FOUR = [
    (300.3, 310, 330, 331.7, "building"),
    (352, 300, 371.5, 322, "background"),
    (310, 352.2, 324, 370, "building"),
    (360.5, 355, 380, 377, "background"),
]


def test_a_window_of_the_label_vote_equals_the_whole_grids_cropped() -> None:
    """Any cells of a grid coarser or finer than the labels' (or the same), voted from the
    pixels under them alone, as the whole grid's vote gives them; and labels in a box of
    pixels label no cell outside the cells those pixels vote in."""
    from map_refiner.engine.labels.rasters import (
        cells_of_pixels,
        downsample_labels,
        downsample_window,
        pixels_of_cells,
    )

    rng = np.random.default_rng(7)
    for _ in range(200):
        h, w = rng.integers(1, 60, size=2)
        mh, mw = rng.integers(1, 80, size=2)
        labels = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(h, w))
        whole = downsample_labels(labels, int(mw), int(mh))
        x0, y0 = int(rng.integers(0, mw)), int(rng.integers(0, mh))
        x1, y1 = int(rng.integers(x0 + 1, mw + 1)), int(rng.integers(y0 + 1, mh + 1))
        px0, px1 = pixels_of_cells(int(w), int(mw), x0, x1)
        py0, py1 = pixels_of_cells(int(h), int(mh), y0, y1)
        part = downsample_window(
            labels[py0:py1, px0:px1], (int(w), int(h)), (int(mw), int(mh)), (x0, y0, x1, y1)
        )
        assert (part == whole[y0:y1, x0:x1]).all(), (h, w, mh, mw, x0, y0, x1, y1)
        i0, j0 = int(rng.integers(0, w)), int(rng.integers(0, h))  # labels in a box only
        i1, j1 = int(rng.integers(i0 + 1, w + 1)), int(rng.integers(j0 + 1, h + 1))
        boxed = np.full_like(labels, 255)
        boxed[j0:j1, i0:i1] = labels[j0:j1, i0:i1]
        cx0, cx1 = cells_of_pixels(int(w), int(mw), i0, i1)
        cy0, cy1 = cells_of_pixels(int(h), int(mh), j0, j1)
        outside = downsample_labels(boxed, int(mw), int(mh))
        outside[cy0:cy1, cx0:cx1] = 255
        assert (outside == 255).all()


@pytest.mark.parametrize(
    "model_m, whole",
    [(0.5, True), (0.7, True), (0.7, False), (0.35, False), (0.5, False)],
    ids=["same-whole", "coarser-whole", "coarser-window", "finer-window", "same-window"],
)
def test_corrections_read_around_the_polygons_equal_a_whole_grid_burn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_m: float, whole: bool
) -> None:
    """The fine-tune burns its polygons only around them: its window, labels, feature
    numbers equal those of burning the whole grid and cropping (how it was done
    before), at scales that do not divide the image's; so the same polygons and seed fit
    the same model."""
    from helpers_engine import random_model

    from map_refiner.engine.labels.rasterize import downsample_labels
    from map_refiner.engine.rasters.grid import grid_of, scaled
    from map_refiner.training.corrections import data as corrections_data
    from map_refiner.training.data import labelled_window
    from map_refiner.training.tile import LabelSource

    if not whole:  # the window around the corrections of a large image, at test scale
        monkeypatch.setattr(corrections_data, "WHOLE_IMAGE_PIXELS", 1000)
        monkeypatch.setattr(corrections_data, "MARGIN", 24)
    image = _image(tmp_path / "img.tif", 700, (200, 200, 300))
    boxes = FOUR + [(0, 0, 9.5, 7, "background")]  # one on the corner
    source = LabelSource(_polygons(tmp_path / "c.gpkg", boxes), class_field="class", mode="sparse")
    _, cfg = random_model(resolution_m=model_m, seed=2)
    corr = corrections_data.load_corrections(image, source, cfg)

    ds = gdal.Open(str(image))
    grids = corrections_data.model_grids(ds, cfg)
    model_grid = scaled(grid_of(ds), grids.model_width, grids.model_height)
    labels = downsample_labels(
        corr.kept.labels_on(grid_of(ds)), model_grid.width, model_grid.height
    )
    if whole:
        window = (0, 0, model_grid.width, model_grid.height)
    else:
        window = labelled_window(labels, 24)
    x0, y0, x1, y1 = window
    assert corr.tile.window == window
    assert corr.tile.image.shape == (3, y1 - y0, x1 - x0)
    assert (corr.tile.labels.numpy() == labels[y0:y1, x0:x1]).all()
    features = corr.kept.features_on(model_grid)[y0:y1, x0:x1]
    assert (corr.features.numpy() == features).all()
    assert corr.tile.labelled_pixels == int((labels != 255).sum())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_finetune_memory_does_not_grow_with_the_raster(tmp_path: Path) -> None:
    """Four polygons on a 16000 x 16000 image against the same four on a 700 x 700 one:
    burning the whole grid took 2.26 GB on a 12000 x 12000 image (the labels, and the
    feature numbers as int32 twice); around the polygons the large one costs no more."""
    peaks = {}
    for size in (700, 16000):
        image = _image(tmp_path / f"img{size}.tif", size, (200, 200, 300))
        labels = _polygons(tmp_path / f"c{size}.gpkg", FOUR)
        out = tmp_path / f"m{size}.safetensors"
        peaks[size] = _peak_mb(
            "finetune", image, labels, "--class-field", "class", "--steps", 1, "--out", out
        )
    assert peaks[16000] - peaks[700] < 100, peaks


CORNERS = [
    (2, 2, 30, 30, "building"),
    (40, 2, 70, 30, "background"),
    (11950, 11950, 11990, 11990, "background"),
    (11900, 11950, 11930, 11990, "building"),
]


def test_corrections_far_apart_on_a_large_image_are_fitted_as_separate_windows(
    tmp_path: Path,
) -> None:
    """Polygons at opposite corners of a 12000 x 12000 image: the window between them
    would be 100 million model pixels (a 3900 x 3900 one took 3.4 GB); each corner's
    group gets a window of its own, the two side by side on one canvas, and the round
    learns from both."""
    from map_refiner.engine.modelfile.io import load_model
    from map_refiner.training.corrections import data
    from map_refiner.training.corrections.finetune import finetune
    from map_refiner.training.corrections.fit import FitParams
    from map_refiner.training.tile import LabelSource

    image = _image(tmp_path / "img.tif", 12000, (0, 0, 16))
    source = LabelSource(
        _polygons(tmp_path / "c.gpkg", CORNERS), class_field="class", mode="sparse"
    )
    _, cfg = load_model(None)
    corr = data.load_corrections(image, source, cfg)
    assert len(corr.pieces) == 2
    h, w = corr.tile.labels.shape
    assert h * w < 2_000_000  # not the 100 million between them
    assert sorted(corr.feature_classes().values()) == [0, 0, 1, 1]
    out = tmp_path / "m.safetensors"
    res = finetune(image, source, out, params=FitParams(steps=2, eval_every=1))
    assert out.exists() and res.polygons == 4 and res.held_out >= 2


def test_corrections_whose_windows_even_apart_are_too_large_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound scaled down so that even the two corners' windows pass it: refused
    before the image is read, with what to do, nothing written."""
    from map_refiner.engine.errors import MapRefinerError
    from map_refiner.training.corrections import data
    from map_refiner.training.corrections.finetune import finetune
    from map_refiner.training.tile import LabelSource

    monkeypatch.setattr(data, "MAX_WINDOW_PIXELS", 100_000)
    image = _image(tmp_path / "img.tif", 12000, (0, 0, 16))
    source = LabelSource(
        _polygons(tmp_path / "c.gpkg", CORNERS), class_field="class", mode="sparse"
    )
    out = tmp_path / "m.safetensors"
    with pytest.raises(MapRefinerError, match="closer together, fine-tune on a crop") as e:
        finetune(image, source, out)
    assert re.search(r"spread over \d{4,5} x \d{4,5} pixels of the model's grid", str(e.value))
    assert "still cover 0." in str(e.value) and "--allow-large" in str(e.value)
    assert not out.exists()


def test_windows_apart_carry_the_labels_and_features_of_a_whole_grid_burn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At test scale (a 700 px image, the whole-image and window bounds scaled down):
    two groups of polygons far apart make two windows on one canvas; each piece holds
    exactly the labels, feature numbers and image of its window of the whole grid, the
    gaps hold nothing, and every drawn pixel is there once."""
    import torch
    from helpers_engine import random_model

    from map_refiner.engine.labels.rasterize import downsample_labels
    from map_refiner.engine.rasters.grid import grid_of, scaled
    from map_refiner.training.corrections import data
    from map_refiner.training.data import read_model_window
    from map_refiner.training.tile import LabelSource

    monkeypatch.setattr(data, "WHOLE_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(data, "MARGIN", 24)
    monkeypatch.setattr(data, "MAX_WINDOW_PIXELS", 60_000)
    image = _image(tmp_path / "img.tif", 700, (0, 0, 700))
    far = [(600, 610, 640, 650, "building"), (650, 600, 680, 640, "background")]
    source = LabelSource(
        _polygons(tmp_path / "c.gpkg", FOUR + far), class_field="class", mode="sparse"
    )
    _, cfg = random_model(resolution_m=0.5, seed=2)
    corr = data.load_corrections(image, source, cfg)
    assert len(corr.pieces) == 2
    ds = gdal.Open(str(image))
    grids = data.model_grids(ds, cfg)
    model_grid = scaled(grid_of(ds), grids.model_width, grids.model_height)
    labels = downsample_labels(
        corr.kept.labels_on(grid_of(ds)), model_grid.width, model_grid.height
    )
    features = corr.kept.features_on(model_grid)
    valid = corr.tile.valid
    assert valid is not None and int(valid.sum()) == sum(
        (p.window[2] - p.window[0]) * (p.window[3] - p.window[1]) for p in corr.pieces
    )
    for piece in corr.pieces:
        x0, y0, x1, y1 = piece.window
        (ax, ay), pw, ph = piece.at, x1 - x0, y1 - y0
        assert ax % 4 == 0 and ay % 4 == 0
        on = (slice(ay, ay + ph), slice(ax, ax + pw))
        assert (corr.tile.labels.numpy()[on] == labels[y0:y1, x0:x1]).all()
        assert (corr.features.numpy()[on] == features[y0:y1, x0:x1]).all()
        window_image = read_model_window(ds, list(cfg.bands), grids, cfg, piece.window)
        assert torch.equal(corr.tile.image[:, on[0], on[1]], window_image)
    assert corr.tile.labelled_pixels == int((labels != 255).sum())
    gaps = ~valid.numpy()
    assert (corr.tile.labels.numpy()[gaps] == 255).all() and (
        corr.features.numpy()[gaps] == -1
    ).all()
    assert float(corr.tile.image[:, torch.from_numpy(gaps)].abs().max()) == 0.0
    h, w = valid.shape
    assert h * w <= 60_000


def test_composite_merges_overlapping_windows_and_keeps_the_rest_apart() -> None:
    from map_refiner.training.corrections.data import PIECE_GAP, composite

    pieces = composite([(0, 0, 100, 100), (80, 40, 200, 120), (1000, 1000, 1050, 1090)])
    assert sorted(p.window for p in pieces) == [(0, 0, 200, 120), (1000, 1000, 1050, 1090)]
    boxes = [
        (p.at[0], p.at[1], p.at[0] + p.window[2] - p.window[0], p.at[1] + p.window[3] - p.window[1])
        for p in pieces
    ]
    a, b = boxes
    apart_x = max(b[0] - a[2], a[0] - b[2])
    apart_y = max(b[1] - a[3], a[1] - b[3])
    assert max(apart_x, apart_y) >= PIECE_GAP  # never touching, a gap between
    assert all(x % 4 == 0 and y % 4 == 0 for x, y, _, _ in boxes)


def test_allow_large_lets_a_spread_fine_tune_go_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound scaled down to a small image: refused without --allow-large, fitted with."""
    from map_refiner.cli import main as cli_main
    from map_refiner.training.corrections import data

    monkeypatch.setattr(data, "WHOLE_IMAGE_PIXELS", 100)
    monkeypatch.setattr(data, "MAX_WINDOW_PIXELS", 1000)
    image = _image(tmp_path / "img.tif", 700, (200, 200, 300))
    labels = _polygons(tmp_path / "c.gpkg", FOUR)
    out = tmp_path / "m.safetensors"
    args = ["finetune", str(image), str(labels), "--class-field", "class", "--steps", "1"]
    assert cli_main(args + ["--out", str(out)]) != 0
    assert not out.exists()
    assert cli_main(args + ["--out", str(out), "--allow-large"]) == 0
    assert out.exists()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_compare_memory_does_not_grow_with_the_raster(tmp_path: Path) -> None:
    """A 12000 x 12000 map and 922 of its squares as the prior, GDAL's cache at 16 MB:
    with the mask and the objects in memory compare grew by 233 MB; by blocks, with them
    on disk, by 99 MB (docs/reliability.md has the 20000 x 20000 figures)."""
    refined = blocky(tmp_path / "r.tif", 12000, 250)
    prior = prior_squares(tmp_path / "p.gpkg", 12000, 250, 3)
    base = _peak_mb()
    out = tmp_path / "f.gpkg"
    grown = _peak_mb("compare", prior, refined, "--class", "class 1", "--out", out) - base
    assert grown < 160, grown


def test_training_on_a_raster_too_large_to_hold_is_refused_unless_insisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train-rnn and train-coarse hold the whole labelled raster in memory: past the bound
    they stop before reading it, with what to do; --allow-large goes ahead (here with the
    bound scaled down to a small image, so that going ahead is cheap)."""
    from map_refiner.cli import main as cli_main
    from map_refiner.engine import limits

    image = _image(tmp_path / "img.tif", 20000, (0, 0, 16))  # sparse: costs nothing
    labels = _polygons(tmp_path / "c.gpkg", FOUR)
    for command in ("train-rnn", "train-coarse"):
        out = tmp_path / f"{command}.safetensors"
        args = [command, str(image), str(labels), "--class-field", "class", "--out", str(out)]
        assert cli_main(args + ["--steps", "1"]) != 0
        assert not out.exists()
    from map_refiner.engine.errors import MapRefinerError

    with pytest.raises(MapRefinerError, match="whole labelled raster into memory.*allow-large"):
        limits.check_training_size((20000, 20000), (10000, 10000), 3, False)
    limits.check_training_size((20000, 20000), (10000, 10000), 3, True)
    monkeypatch.setattr(limits, "MAX_TRAINING_IMAGE_PIXELS", 100)
    small = _image(tmp_path / "small.tif", 700, (200, 200, 300))
    out = tmp_path / "rnn.safetensors"
    args = ["train-rnn", str(small), str(labels), "--class-field", "class", "--steps", "1"]
    assert cli_main(args + ["--out", str(out)]) != 0
    assert cli_main(args + ["--out", str(out), "--allow-large"]) == 0
    assert out.exists()
