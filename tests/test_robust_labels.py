"""Bad and odd label layers: burned where they can be (reprojected, repaired, flattened),
refused in one actionable line where they cannot, through the engine and the CLI."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from helpers_data import box_wkt, srs_of, wkt_of, write_raster, write_vector
from helpers_engine import random_model, scene, write_image
from osgeo import gdal, ogr, osr

from map_refiner import cli
from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.labels.rasterize import IGNORE, burn_vector
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.grid import GridSpec
from map_refiner.training.rnn import RnnParams, train_rnn
from map_refiner.training.tile import LabelSource

gdal.UseExceptions()
ogr.UseExceptions()
X0, Y0, PX = 500000.0, 4000000.0, 0.6
GT = (X0, PX, 0.0, Y0, 0.0, -PX)
GRID = GridSpec(64, 64, GT, wkt_of(32633))
NAMES = ["background", "building"]
TEXT, INTEGER = ogr.OFTString, ogr.OFTInteger


def cell_box(c0: int, r0: int, c1: int, r1: int) -> str:
    """Pixels ``[c0, c1) x [r0, r1)`` of GRID as a polygon in UTM 33N."""
    return box_wkt(X0 + c0 * PX, Y0 - r1 * PX, X0 + c1 * PX, Y0 - r0 * PX)


def cells(c0: int, r0: int, c1: int, r1: int, value: int = 1) -> np.ndarray:
    want = np.full((64, 64), IGNORE, np.uint8)
    want[r0:r1, c0:c1] = value
    return want


def sparse(path: Path, field: str = "c", **kw) -> np.ndarray:
    return burn_vector(path, GRID, NAMES, class_field=field, mode="sparse", **kw).labels


# --- burned correctly --------------------------------------------------------------------------


def test_geopackage_without_crs_is_taken_in_the_raster_crs(tmp_path: Path, caplog) -> None:
    """GDAL reports such a layer's CRS as 'Undefined geographic SRS'; reading the UTM
    coordinates as degrees put every polygon off the raster ('no feature falls on it')."""
    path = write_vector(
        tmp_path / "nocrs.gpkg",
        [(cell_box(3, 4, 9, 8), {"c": "building"})],
        None,
        fields={"c": TEXT},
    )
    ds = ogr.Open(str(path))
    assert "Undefined" in ds.GetLayer(0).GetSpatialRef().GetName()  # what GDAL makes of it
    ds = None
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(sparse(path), cells(3, 4, 9, 8))
    assert "no CRS" in caplog.text


@pytest.mark.parametrize("epsg", [4326, 3857, 32634])
def test_labels_in_another_crs_are_reprojected(tmp_path: Path, epsg: int) -> None:
    ring = ogr.CreateGeometryFromWkt(cell_box(10, 20, 30, 28))
    ring.Transform(osr.CoordinateTransformation(srs_of(32633), srs_of(epsg)))
    path = write_vector(
        tmp_path / f"l{epsg}.gpkg", [(ring.ExportToWkt(), {"c": 1})], epsg, fields={"c": INTEGER}
    )
    got = sparse(path)
    want = cells(10, 20, 30, 28)
    # Reprojected edges may move a pixel centre across; the area must agree closely.
    assert (got != want).sum() <= 2 * (20 + 8)
    assert (got[21:27, 11:29] == 1).all()


def test_multipart_polygon_burns_every_part(tmp_path: Path) -> None:
    parts = [cell_box(2, 2, 6, 6), cell_box(40, 40, 50, 44)]
    multi = "MULTIPOLYGON(" + ",".join(p[len("POLYGON") :] for p in parts) + ")"
    got = sparse(
        write_vector(tmp_path / "m.gpkg", [(multi, {"c": "building"})], 32633, fields={"c": TEXT})
    )
    want = cells(2, 2, 6, 6)
    want[40:44, 40:50] = 1
    np.testing.assert_array_equal(got, want)


def test_3d_multipolygon_with_a_self_intersecting_part(tmp_path: Path) -> None:
    z = 12.5
    bowtie = (
        f"(({X0} {Y0 - 10 * PX} {z},{X0 + 10 * PX} {Y0} {z},{X0 + 10 * PX} "
        f"{Y0 - 10 * PX} {z},{X0} {Y0} {z},{X0} {Y0 - 10 * PX} {z}))"
    )
    square = (
        f"(({X0 + 30 * PX} {Y0 - 34 * PX} {z},{X0 + 34 * PX} {Y0 - 34 * PX} {z},"
        f"{X0 + 34 * PX} {Y0 - 30 * PX} {z},{X0 + 30 * PX} {Y0 - 30 * PX} {z},"
        f"{X0 + 30 * PX} {Y0 - 34 * PX} {z}))"
    )
    got = sparse(
        write_vector(
            tmp_path / "z.gpkg",
            [(f"MULTIPOLYGON Z({bowtie},{square})", {"c": "building"})],
            32633,
            fields={"c": TEXT},
        )
    )
    assert got[5, 1] == 1 and got[5, 8] == 1  # both triangles of the bow-tie
    assert got[1, 5] == IGNORE and got[8, 5] == IGNORE
    assert (got[30:34, 30:34] == 1).all()


def test_lines_where_polygons_were_expected_are_burned_to_a_width(tmp_path: Path) -> None:
    line = f"LINESTRING({X0 + 5 * PX} {Y0 - 32 * PX},{X0 + 60 * PX} {Y0 - 32 * PX})"
    got = sparse(
        write_vector(tmp_path / "l.gpkg", [(line, {"c": "building"})], 32633, fields={"c": TEXT}),
        line_width_m=3.0,
    )
    across = int((got[:, 30] == 1).sum())
    assert abs(across * PX - 3.0) <= PX


def test_rotated_raster_grid(tmp_path: Path) -> None:
    a = math.radians(30.0)
    gt = (X0, PX * math.cos(a), PX * math.sin(a), Y0, PX * math.sin(a), -PX * math.cos(a))
    grid = GridSpec(40, 40, gt, wkt_of(32633))

    def at(c: float, r: float) -> tuple[float, float]:
        return gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5]

    ring = ",".join(
        f"{x} {y}" for x, y in (at(5, 10), at(15, 10), at(15, 20), at(5, 20), at(5, 10))
    )
    path = write_vector(tmp_path / "r.gpkg", [(f"POLYGON(({ring}))", {})], 32633)
    got = burn_vector(path, grid, NAMES, mode="sparse").labels
    want = np.full((40, 40), IGNORE, np.uint8)
    want[10:20, 5:15] = 1
    np.testing.assert_array_equal(got, want)


def test_unknown_and_null_classes_beside_good_ones_are_skipped_and_named(
    tmp_path: Path, caplog
) -> None:
    feats = [
        (cell_box(0, 0, 4, 4), {"c": "building"}),
        (cell_box(10, 0, 14, 4), {"c": "lake"}),
        (cell_box(20, 0, 24, 4), {"c": None}),
    ]
    with caplog.at_level(logging.WARNING):
        res = burn_vector(
            write_vector(tmp_path / "u.gpkg", feats, 32633, fields={"c": TEXT}),
            GRID,
            NAMES,
            class_field="c",
            mode="sparse",
        )
    assert res.burned == 1 and res.unknown_class == 2
    assert "'lake'" in caplog.text and "None" in caplog.text
    np.testing.assert_array_equal(res.labels, cells(0, 0, 4, 4))


def test_a_field_of_other_values_or_of_class_1_alone_is_no_class_field(tmp_path: Path) -> None:
    """Without a class field every feature is class 1 (a layer of building outlines): text
    values that name no class (OSM's building=yes), a text field naming class 1 only, an
    id of 0 in a field not named as a class field leave it so."""
    feats = [
        (cell_box(0, 0, 4, 4), {"building": "yes", "kind": "building", "osm_id": 0}),
        (cell_box(10, 0, 14, 4), {"building": "house", "kind": None, "osm_id": 1}),
    ]
    path = write_vector(
        tmp_path / "osm.gpkg",
        feats,
        32633,
        fields={"building": TEXT, "kind": TEXT, "osm_id": INTEGER},
    )
    got = burn_vector(path, GRID, NAMES, mode="sparse").labels
    want = cells(0, 0, 4, 4)
    want[0:4, 10:14] = 1
    np.testing.assert_array_equal(got, want)


# --- refused, with a message that says what to do ----------------------------------------------


def test_truncated_shapefile_is_a_clear_error(tmp_path: Path) -> None:
    feats = [
        (cell_box(i % 60, i % 60, i % 60 + 3, i % 60 + 3), {"c": "building"}) for i in range(400)
    ]
    shp = write_vector(tmp_path / "t.shp", feats, 32633, fields={"c": TEXT})
    data = shp.read_bytes()
    shp.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapRefinerError, match="damaged or truncated"):
        sparse(shp)


def test_only_points_is_a_clear_error(tmp_path: Path) -> None:
    pts = write_vector(
        tmp_path / "p.gpkg",
        [(f"POINT({X0 + 3} {Y0 - 3})", {"c": "building"})],
        32633,
        fields={"c": TEXT},
    )
    with pytest.raises(MapRefinerError, match="only points.*draw polygons"):
        sparse(pts)


def test_a_label_raster_class_the_model_lacks_is_refused_at_any_resolution(tmp_path: Path) -> None:
    """One pixel of class 3 on a grid twice as fine as the model's loses every majority vote
    after downsampling; it used to slip through unnoticed."""
    img = tmp_path / "img.tif"
    write_image(img, scene(64, 64, seed=70), (X0, 0.3, 0.0, Y0, 0.0, -0.3), epsg=32633)
    lab = np.zeros((64, 64), np.uint8)
    lab[20:40, 20:40] = 1
    lab[50, 50] = 3
    labels = write_raster(tmp_path / "lab.tif", lab, (X0, 0.3, 0.0, Y0, 0.0, -0.3), epsg=32633)
    net, cfg = random_model(NAMES, resolution_m=0.6, seed=71)
    base = save_model(net, cfg, tmp_path / "m.safetensors")
    with pytest.raises(MapRefinerError, match="up to 3 but the model has 2 classes"):
        train_rnn(
            RnnParams(
                image=img,
                labels=LabelSource(labels),
                out=tmp_path / "n.safetensors",
                base_model=base,
                steps=1,
                device="cpu",
                init="base",
            )
        )
    assert not (tmp_path / "n.safetensors").exists()


@pytest.mark.parametrize(
    ("fields", "values", "told"),
    [
        ({"kind": TEXT}, ["building", "background"], r"field 'kind' \(1 background, 1 building\)"),
        ({"class": INTEGER}, [1, 0], r"field 'class' \(1 background, 1 building\)"),
        ({"Label": TEXT}, ["background", "background"], r"field 'Label' \(2 background\)"),
    ],
)
def test_a_field_naming_other_classes_is_not_read_as_class_1_in_silence(
    tmp_path: Path, fields: dict[str, int], values: list[object], told: str
) -> None:
    """A correction layer's own field says which polygons are background; read without a
    class field they were all building (taught so, and burned into the map)."""
    (name,) = fields
    feats = [(cell_box(10 * i, 0, 10 * i + 4, 4), {name: v}) for i, v in enumerate(values)]
    path = write_vector(tmp_path / "c.gpkg", feats, 32633, fields=fields)
    with pytest.raises(MapRefinerError, match=r"No class field was chosen.*" + told) as err:
        burn_vector(path, GRID, NAMES, mode="sparse")
    assert f"--class-field {name}" in str(err.value)
    # chosen, it burns each polygon as its field says
    got = burn_vector(path, GRID, NAMES, class_field=name, mode="sparse").labels
    assert [int(got[0, 10 * i]) for i in range(len(values))] == [
        NAMES.index(v) if isinstance(v, str) else v for v in values
    ]


# --- the same through the command line: one line, nothing written ------------------------------


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("labels_cli")
    img = d / "img.tif"
    write_image(img, scene(64, 64, seed=72), GT, epsg=32633)
    net, cfg = random_model(NAMES, resolution_m=0.6, seed=73, iterations=2)
    return {"image": img, "model": save_model(net, cfg, d / "m.safetensors")}


def _vec(
    t: Path, feats: list[tuple[str, dict]], epsg=32633, name: str = "l.gpkg", kind: int = TEXT
) -> Path:
    return write_vector(t / name, feats, epsg, fields={"c": kind})


def _trunc_shp(t: Path) -> Path:
    shp = _vec(
        t,
        [(cell_box(i % 50, 0, i % 50 + 3, 3), {"c": "building"}) for i in range(300)],
        name="t.shp",
    )
    data = shp.read_bytes()
    shp.write_bytes(data[: len(data) // 2])
    return shp


LabelCase = Callable[[Path], tuple[list[object], str]]
FINETUNE_CASES: dict[str, LabelCase] = {
    "field-missing": lambda t: (
        [_vec(t, [(cell_box(1, 1, 9, 9), {"c": "building"})]), "--class-field", "kind"],
        r"no field 'kind'; choose one of: c",
    ),
    "class-null": lambda t: (
        [_vec(t, [(cell_box(1, 1, 9, 9), {"c": None})]), "--class-field", "c"],
        r"usable class .*an empty value",
    ),
    "class-unknown-names": lambda t: (
        [_vec(t, [(cell_box(1, 1, 9, 9), {"c": "lake"})]), "--class-field", "c"],
        r"usable class .*'lake'.*value map",
    ),
    "class-index-beyond-model": lambda t: (
        [_vec(t, [(cell_box(1, 1, 9, 9), {"c": 3})], kind=INTEGER), "--class-field", "c"],
        r"usable class .*\(3; feature id\(s\) 1\).*classes are background, building",
    ),
    # one polygon of several: refused too, naming it (a drawn correction is never dropped)
    "class-unknown-beside-good": lambda t: (
        [
            _vec(
                t,
                [
                    (cell_box(1, 1, 9, 9), {"c": "building"}),
                    (cell_box(20, 20, 29, 29), {"c": "Gebaeude"}),
                    (cell_box(40, 40, 49, 49), {"c": "background"}),
                ],
            ),
            "--class-field",
            "c",
        ],
        r"^map-refiner: error: 1 polygon\(s\) of l\.gpkg:labels have no usable class in field 'c' "
        r"\('Gebaeude'; feature id\(s\) 2\).*background, building"
        r".*'Gebaeude:1,background:0,building:1'",
    ),
    # the layer's own field says which are background, but no class field was given
    # (reliability row 160: they were all taught and burned as building)
    "class-field-not-chosen": lambda t: (
        [
            _vec(
                t,
                [
                    (cell_box(1, 1, 9, 9), {"c": "building"}),
                    (cell_box(20, 20, 29, 29), {"c": "Background"}),
                ],
            )
        ],
        r"No class field was chosen, so every feature of l\.gpkg:labels would be read as "
        r"building, but its field 'c' \(1 background, 1 building\) names the model's classes"
        r".*--class-field c",
    ),
    "value-map-beyond-model": lambda t: (
        [_vec(t, [(cell_box(1, 1, 9, 9), {"c": "x"})]), "--class-field", "c", "--value-map", "x:5"],
        r"maps to class 5, but the classes are 0\.\.1",
    ),
    "outside-raster": lambda t: (
        [_vec(t, [(box_wkt(0, 0, 10, 10), {"c": "building"})]), "--class-field", "c"],
        r"falls on the raster.*CRS",
    ),
    "empty-layer": lambda t: ([_vec(t, [])], "has no features"),
    "points-only": lambda t: (
        [_vec(t, [(f"POINT({X0 + 3} {Y0 - 3})", {"c": "building"})])],
        "only points",
    ),
    "truncated-shapefile": lambda t: (
        [_trunc_shp(t), "--class-field", "c"],
        "damaged or truncated",
    ),
    "not-a-vector": lambda t: (
        [(t / "x.gpkg").write_bytes(b"nope") and t / "x.gpkg"],
        r"cannot read x\.gpkg as a vector layer",
    ),
    "labels-missing": lambda t: ([t / "gone.gpkg"], "Vector file not found"),
    "raster-labels": lambda t: (
        [
            write_raster(
                t / "lab.tif",
                np.arange(64 * 64, dtype=np.uint8).reshape(64, 64) % 4,
                GT,
                epsg=32633,
            )
        ],
        "correction polygons.*train-rnn",
    ),
}


@pytest.mark.parametrize("case", sorted(FINETUNE_CASES))
def test_bad_labels_through_the_cli_are_one_line(
    case: str, tmp_path: Path, capsys, scene_files: dict[str, Path]
) -> None:
    labels, pattern = FINETUNE_CASES[case](tmp_path)
    base = scene_files["model"]
    before_model = base.read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = cli.main(
        [
            str(a)
            for a in [
                "finetune",
                scene_files["image"],
                *labels,
                "--model",
                base,
                "--out",
                tmp_path / "new.safetensors",
                "--steps",
                "1",
                "--device",
                "cpu",
            ]
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()  # held warnings (e.g. skipped features) are not printed
    assert len(lines) == 1 and lines[0].startswith("map-refiner: error: "), err
    assert re.search(pattern, lines[0]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert base.read_bytes() == before_model


def test_skipped_features_are_reported_after_a_successful_run(
    tmp_path: Path, capsys, scene_files: dict[str, Path]
) -> None:
    labels = _vec(
        tmp_path,
        [(cell_box(1, 1, 20, 20), {"c": "building"}), (f"POINT({X0 + 40} {Y0 - 40})", {"c": "x"})],
    )
    rc = cli.main(
        [
            str(a)
            for a in [
                "finetune",
                scene_files["image"],
                labels,
                "--class-field",
                "c",
                "--model",
                scene_files["model"],
                "--out",
                tmp_path / "new.safetensors",
                "--steps",
                "1",
                "--device",
                "cpu",
            ]
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0 and out.startswith("wrote ")
    warnings = [ln for ln in err.splitlines() if ln.startswith("WARNING")]
    assert len(warnings) == 1 and "1 point feature(s)" in warnings[0] and "ignored" in warnings[0]
    assert err.rstrip().endswith(warnings[0]), "held warnings come after the progress bar"
