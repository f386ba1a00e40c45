"""The prior studies' report: each script rewrites only its own section of
docs/results_prior.md, and the regularisation study's scores mean what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_engine import write_image
from osgeo import gdal, ogr

from map_refiner.dev.prior.regularize_eval import scores
from map_refiner.dev.prior.sections import kept_sections, write_section


def test_a_section_is_added_then_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    report = tmp_path / "results.md"
    report.write_text("# Title\n\nthe shifted study's table\n")
    write_section(report, "Regularised outlines", "first run")
    assert report.read_text() == (
        "# Title\n\nthe shifted study's table\n\n## Regularised outlines\n\nfirst run\n"
    )
    report.write_text(report.read_text() + "\n## Later\n\nkept too\n")
    write_section(report, "Regularised outlines", "second run")
    text = report.read_text()
    assert "first run" not in text and text.count("## Regularised outlines") == 1
    assert text.startswith("# Title\n\nthe shifted study's table\n\n## Regularised outlines")
    assert text.endswith("second run\n\n## Later\n\nkept too\n")
    assert kept_sections(report, ["Regularised outlines"]) == (
        "## Regularised outlines\n\nsecond run"
    )
    assert kept_sections(tmp_path / "none.md", ["Regularised outlines"]) == ""


def _box(x0: float, y0: float, x1: float, y1: float) -> ogr.Geometry:
    return ogr.CreateGeometryFromWkt(
        f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
    )


def test_iou_and_boundary_f_score() -> None:
    ref = _box(0, 0, 10, 10)
    assert scores(ref, ref, 1.0) == pytest.approx(
        {"iou": 1.0, "precision": 1.0, "recall": 1.0, "f": 1.0}
    )
    shifted = scores(_box(0.5, 0, 10.5, 10), ref, 1.0)  # within the tolerance: all boundary
    assert shifted["iou"] == pytest.approx(95 / 105) and shifted["f"] == pytest.approx(1.0)
    far = scores(_box(3, 0, 13, 10), ref, 1.0)  # the vertical sides 3 m off
    # within 1 m of the other outline: 8 m of each horizontal side (the overlap and 1 m
    # past the corner) and the last metre of the near vertical side at each end
    assert far["precision"] == pytest.approx(18 / 40, abs=0.01)
    assert far["recall"] == pytest.approx(18 / 40, abs=0.01)


def _osm_measure(tmp_path: Path, note: str) -> dict:
    """What dev.prior.osm.measure returns, made up (the reports only format it)."""
    summary = {
        "counts": {"kept": 19, "moved": 1, "reshaped": 0, "not seen": 0, "new": 0},
        "moved_median_m": 2.6,
        "moved_p90_m": 2.6,
        "mean_iou": 0.83,
    }
    figure = tmp_path / "figures" / "f.png"
    return {
        "seconds": 1.0,
        "results": {"snapped": summary, "plain": summary},
        "osm_cov": 0.005,
        "snap_cov": 0.005,
        "plain_cov": 0.002,
        "agree": 0.99,
        "osm_pixels": 1287,
        "note": note,
        "figure": figure,
        "boxes": [(0, 0, 10, 10)],
        "pixels": {"snapped": (1210, 0.94), "plain": (375, 0.11)},
        "details": {"snapped": [], "plain": []},
    }


def test_each_osm_scene_rewrites_only_its_own_part_and_the_reading_stays(tmp_path: Path) -> None:
    from map_refiner.dev.prior import osm

    report = tmp_path / "results_prior_osm.md"
    osm.xiamen_report(_osm_measure(tmp_path, "moved 2.6 m west"), 3800, 2600, 2000, report)
    osm.swellendam_report(_osm_measure(tmp_path, "left in place"), 600, 1270, 498, report)
    text = report.read_text()
    assert text.startswith("# Real OpenStreetMap buildings snapped to the image (Xiamen)")
    assert "the OSM layer moved 2.6 m west" in text
    assert text.count(f"## {osm.SWELLENDAM}") == 1 and "(to be read)" in text
    # the reading is written by hand below the mark; a rerun of either scene keeps it
    report.write_text(text.replace("(to be read)", "Read by a person."))
    osm.swellendam_report(_osm_measure(tmp_path, "left in place again"), 600, 1270, 498, report)
    osm.xiamen_report(_osm_measure(tmp_path, "moved 3.0 m west"), 3800, 2600, 2000, report)
    text = report.read_text()
    assert "moved 2.6 m west" not in text and "the OSM layer moved 3.0 m west" in text
    assert "the OSM layer left in place again." in text
    assert text.count("Read by a person.") == 1 and "(to be read)" not in text
    assert text.count(f"## {osm.SWELLENDAM}") == 1
    assert text.index("moved 3.0 m west") < text.index(f"## {osm.SWELLENDAM}")


def test_shifted_report_shows_registration_and_keeps_the_reading(tmp_path: Path) -> None:
    import argparse

    import numpy as np

    from map_refiner.dev.prior import shifted

    moved = "moved 1.9 m west and 2.1 m north to fit the image"
    assert shifted.short_note(moved) == "moved 1.9 m west and 2.1 m north"
    small = "left in place: its 0.3 m offset is within a model pixel"
    assert shifted.short_note(small) == "in place (0.3 m found)"
    assert shifted.short_note("left in place: no shift fits the image clearly") == "in place"
    assert shifted.short_note("") == ""
    reshaped = (
        "left in place: no shift fits the image clearly better than none; the model's map "
        "would reshape it onto weaker edges of the image (0.89 times as strong as under "
        "its own outlines), so the model may misread this imagery"
    )
    assert shifted.short_note(reshaped) == "in place + kept (reshape 0.89)"
    followed = (
        "left in place: the model's map agrees too little with it to tell where it belongs "
        "(correlation 0.22 at its best fit, under 0.25); but the image's edges follow its "
        "outlines (1.68 times the image's mean edge strength), so ..."
    )
    assert shifted.short_note(followed) == "in place + kept (support 1.68)"
    ref = np.zeros((40, 60), bool)
    ref[25:35, 45:55] = True  # the window goes where the buildings are
    window = shifted.figure_window(ref, pixel_m=1.0, metres=20)
    assert ref[window].sum() == ref.sum() and ref[window].shape == (20, 20)
    a = argparse.Namespace(
        strengths="calibrated",
        iterations=5,
        model=None,
        right_half=False,
        also_unregistered=True,
        figure=tmp_path / "figures" / "prior_shifted.png",
    )
    row = {"scene": "s", "prior": "shift:2", "prior_iou": 50.0, "snapped_iou": 90.0}
    rows = [
        {**row, "strength": "calibrated", "registration": "moved 2.8 m"},
        {**row, "strength": "calibrated (unregistered, keep 0)", "registration": ""},
    ]
    report = tmp_path / "results_prior.md"
    shifted.write_report(rows, a, report)
    text = report.read_text()
    assert "| calibrated | s | shift:2 | 50.0 | 90.0 | +40.0 | moved 2.8 m |" in text
    assert "| +40.0 | - |" in text and "](figures/prior_shifted.png)" in text
    assert "--also-unregistered --figure" in text
    report.write_text(text + f"\n## {shifted.READING}\n\nRead by a person.\n")
    write_section(report, "Regularised outlines", "another study")
    for heading in shifted.OTHERS:  # the other studies' and readings' sections
        write_section(report, heading, f"kept: {heading}")
    shifted.write_report(rows, a, report)
    text = report.read_text()
    assert text.count("Read by a person.") == 1 and "another study" in text
    assert all(text.count(f"kept: {h}\n") == 1 for h in shifted.OTHERS)
    assert "Every scene with an accurate reference: reading" in shifted.OTHERS
    assert text.index("moved 2.8 m") < text.index("Read by a person.")


def test_the_wrong_priors_of_the_shifted_study(tmp_path: Path) -> None:
    """dilate:N grows every building by N m; scatter:N moves each one on its own by N m
    (not all the same way); drop:P removes P % of them."""
    import numpy as np
    from osgeo import gdal, osr
    from scipy import ndimage

    from map_refiner.dev.prior.shifted import prior_on_image, wrong_map

    ref = np.zeros((120, 120), dtype=bool)
    for y, x in [(10, 10), (10, 70), (70, 10), (70, 70), (40, 40)]:
        ref[y : y + 12, x : x + 16] = True
    like = gdal.GetDriverByName("MEM").Create("", 120, 120, 1)
    like.SetGeoTransform((500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    like.SetProjection(srs.ExportToWkt())

    def read(kind: str) -> np.ndarray:
        out = wrong_map(ref, like, kind, tmp_path / f"{kind.replace(':', '')}.tif", seed=3)
        return gdal.Open(str(out)).ReadAsArray() == 1

    grown = read("dilate:1")  # 2 px at 0.5 m
    assert (grown & ref).sum() == ref.sum() and grown.sum() > ref.sum() + 5 * 2 * 2 * (12 + 16)
    moved = read("scatter:2")  # 4 px each, in random directions
    assert moved.sum() == ref.sum() and (moved & ref).sum() < ref.sum()
    shifts = set()
    labels, n = ndimage.label(moved)
    assert n == 5
    for i in range(1, n + 1):
        ys, xs = np.nonzero(labels == i)
        (ry, rx), d = min(
            (
                ((y, x), (ys.min() - y) ** 2 + (xs.min() - x) ** 2)
                for y, x in [(10, 10), (10, 70), (70, 10), (70, 70), (40, 40)]
            ),
            key=lambda t: t[1],
        )
        assert 3 <= d**0.5 <= 5
        shifts.add((ys.min() - ry, xs.min() - rx))
    assert len(shifts) > 1
    assert ndimage.label(read("drop:40"))[1] == 3
    for seed in range(12):  # two of five buildings, never one drawn twice
        out = wrong_map(ref, like, "drop:40", tmp_path / f"drop_{seed}.tif", seed=seed)
        assert ndimage.label(gdal.Open(str(out)).ReadAsArray() == 1)[1] == 3
    # warp:1: the left half 2 px east and south, the right half 2 px west and north
    warped = read("warp:1")
    assert warped.sum() == ref.sum() and warped[12:24, 12:28].all()
    assert warped[42:54, 42:58].all() and warped[8:20, 68:84].all()
    # ramp:1: columns moved 1 m (2 px) east and south at the left edge, 0 in the middle,
    # 2 px west and north at the right edge
    ramp = read("ramp:1")
    labels, n = ndimage.label(ramp)
    assert n == 5
    centres = ndimage.center_of_mass(ramp, labels, range(1, n + 1))
    left, right = min(centres, key=lambda c: c[0] + c[1]), max(centres, key=lambda c: c[1])
    assert 1 <= left[0] - 15.5 <= 2 and 1 <= left[1] - 17.5 <= 2, left
    assert -1 <= right[1] - 77.5 <= 0, right
    # soft:N: two probability bands, never fully sure, whose most probable class is the
    # (shifted) reference
    soft = gdal.Open(str(wrong_map(ref, like, "soft:0", tmp_path / "soft0.tif"))).ReadAsArray()
    assert soft.shape == (2, 120, 120) and np.allclose(soft.sum(0), 1, atol=1e-5)
    assert soft.min() >= 0.05 - 1e-6 and soft.max() <= 0.95 + 1e-6
    assert ((soft[1] > soft[0]) == ref).mean() > 0.98
    assert (prior_on_image(tmp_path / "soft0.tif", like) == (soft[1] > soft[0])).all()


def test_the_per_region_table_is_its_own_section(tmp_path: Path) -> None:
    """--section writes the table into that section only; a rerun of the top keeps it."""
    import argparse

    from map_refiner.dev.prior import shifted

    a = argparse.Namespace(
        strengths="calibrated",
        iterations=5,
        model=None,
        right_half=False,
        also_unregistered=False,
        also_one_shift=True,
        kinds="shift:0,warp:2",
        section=shifted.REGIONS[0],
        figure=None,
    )
    row = {"scene": "s", "prior": "warp:2", "prior_iou": 40.0, "snapped_iou": 80.0}
    rows = [
        {**row, "strength": "calibrated", "registration": "moved by 2.8 m, varying"},
        {**row, "strength": "calibrated (one shift)", "snapped_iou": 60.0, "registration": ""},
    ]
    report = tmp_path / "results_prior.md"
    report.write_text("# Top\n\nthe main table\n")
    shifted.write_report(rows, a, report)
    text = report.read_text()
    assert text.startswith("# Top\n\nthe main table\n\n## Per-region shifts\n")
    assert "--kinds shift:0,warp:2 --also-one-shift --section" in text
    assert "| calibrated (one shift) | s | warp:2 | 40.0 | 60.0 | +20.0 | - |" in text
    assert "- strength calibrated, warp:2: mean change +40.0 points over 1 scenes." in text
    shifted.write_report(rows, argparse.Namespace(**{**vars(a), "section": None}), report)
    assert report.read_text().count("## Per-region shifts\n") == 1


def test_coarse_scenes_for_the_shifted_study(tmp_path: Path) -> None:
    """--pixel-m: a scene resampled to coarse pixels keeps its reference by majority on
    the image's grid; on degrees (--degrees) a shift:N prior still moves N ground metres."""
    import numpy as np
    from osgeo import gdal, osr

    from map_refiner.dev.corrections.scenes import Scene
    from map_refiner.dev.prior.shifted import coarsened, wrong_map
    from map_refiner.engine.rasters.grid import grid_of, metres_per_unit

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)

    def tif(path: Path, arr: np.ndarray) -> Path:
        ds = gdal.GetDriverByName("GTiff").Create(str(path), 80, 80, arr.shape[0])
        ds.SetGeoTransform((500000.0, 0.3, 0.0, 4000000.0, 0.0, -0.3))
        ds.SetProjection(srs.ExportToWkt())
        for i, band in enumerate(arr, start=1):
            ds.GetRasterBand(i).WriteArray(band)
        return path

    ref = np.zeros((80, 80), np.uint8)
    ref[0:4, 0:4] = 255  # a whole coarse pixel: building
    ref[0:4, 4:6] = 255  # half of one: building
    ref[0:1, 8:12] = 255  # a quarter of one: not
    image = np.stack([np.arange(80 * 80, dtype=np.uint8).reshape(80, 80)] * 3)
    s = Scene("s", "test", tif(tmp_path / "rgb.tif", image), tif(tmp_path / "gt.tif", ref[None]))
    c = coarsened(s, 1.2, tmp_path / "coarse")
    like, gt = gdal.Open(str(c.image)), gdal.Open(str(c.reference))
    assert (like.RasterXSize, like.RasterYSize) == (20, 20) and like.RasterCount == 3
    assert gt.GetGeoTransform() == like.GetGeoTransform()
    coarse = gt.ReadAsArray()
    assert coarse[0, 0] == 255 and coarse[0, 1] == 255 and coarse[0, 2] == 0
    assert (coarse > 0).sum() == 2
    d = coarsened(s, 0.00001, tmp_path / "degrees", degrees=True)
    deg = gdal.Open(str(d.image))
    assert osr.SpatialReference(deg.GetProjection()).IsGeographic()
    per_x, per_y = metres_per_unit(grid_of(deg))
    prior = gdal.Open(
        str(
            wrong_map(
                gdal.Open(str(d.reference)).ReadAsArray() > 0, deg, "shift:2.4", tmp_path / "p.tif"
            )
        )
    )
    east = (prior.GetGeoTransform()[0] - deg.GetGeoTransform()[0]) * per_x
    south = (deg.GetGeoTransform()[3] - prior.GetGeoTransform()[3]) * per_y
    assert abs(east - 2.4) < 1e-6 and abs(south - 2.4) < 1e-6


def test_a_look_changes_the_colours_and_keeps_the_grid_and_other_bands(tmp_path: Path) -> None:
    """dev/prior/misread.apply_look: the third misreading's images (haze, casts,
    exposure, contrast) are the scene's own pixels changed, on the scene's own grid."""
    from map_refiner.dev.prior.misread import AIRLIGHT, LOOKS, apply_look

    src = tmp_path / "scene.tif"
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (4, 20, 30)).astype(np.uint8)
    write_image(src, arr, (500000.0, 0.3, 0.0, 5000000.0, 0.0, -0.3), 32632)

    def look(name: str) -> np.ndarray:
        out = apply_look(src, name, tmp_path / f"{name}.tif")
        got = gdal.Open(str(out))
        assert got.GetGeoTransform() == (500000.0, 0.3, 0.0, 5000000.0, 0.0, -0.3)
        assert got.RasterCount == 4 and got.GetRasterBand(1).DataType == gdal.GDT_Byte
        pixels = got.ReadAsArray()
        assert (pixels[3] == arr[3]).all()  # a fourth band is not colour: copied
        return pixels[:3].astype(float)

    hazy = look("haze 0.5")  # halfway to the airlight: half the contrast, brighter
    assert np.abs(hazy - (0.5 * arr[:3] + 0.5 * np.asarray(AIRLIGHT)[:, None, None])).max() <= 0.5
    dark = look("dark")
    assert np.abs(dark - 0.5 * arr[:3]).max() <= 0.5
    bright = look("bright")  # clipped, never wrapped round
    assert bright.max() == 255 and (bright >= arr[:3] - 0.5).all()
    warm = look("warm cast")  # red up, blue down, green as it was
    assert (warm[1] == arr[1]).all()
    assert warm[0].mean() > arr[0].mean() and warm[2].mean() < arr[2].mean()
    flat = look("flat")  # half the spread about each band's mean
    assert np.isclose(flat.std(axis=(1, 2)), 0.5 * arr[:3].std(axis=(1, 2)), rtol=0.02).all()
    assert set(LOOKS) >= {"haze 0.3", "cool cast", "green cast"}
