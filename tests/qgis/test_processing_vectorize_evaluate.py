"""map_refiner:vectorize and map_refiner:evaluate on the real Austin tile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer


@pytest.fixture
def run_alg(qgis_processing, plugin):  # noqa: ANN001, ANN201
    import processing

    return processing.run


@pytest.fixture
def refined(run_alg, austin_rgb, tiny_model, tmp_path):  # noqa: ANN001, ANN201
    out = tmp_path / "refined.tif"
    run_alg(
        "map_refiner:refine",
        {"INPUT": str(austin_rgb), "MODEL": str(tiny_model), "ITERATIONS": 1, "OUTPUT": str(out)},
    )
    return out


def test_vectorize_writes_class_polygons(run_alg, refined, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "polygons.gpkg"
    result = run_alg(
        "map_refiner:vectorize",
        {"INPUT": str(refined), "CLASSES": "building", "MIN_AREA_M2": 1.0, "OUTPUT": str(out)},
    )
    layer = QgsVectorLayer(str(out), "p", "ogr")
    assert layer.isValid() and result["FEATURE_COUNT"] == layer.featureCount() > 0
    assert {f["class"] for f in layer.getFeatures()} == {"building"}
    assert min(f["area_m2"] for f in layer.getFeatures()) >= 1.0
    assert layer.crs().authid() == "EPSG:26914"
    regular = tmp_path / "regular.gpkg"
    run_alg(
        "map_refiner:vectorize",
        {
            "INPUT": str(refined),
            "CLASSES": "building",
            "REGULARIZE": "building",
            "REGULARIZE_M": 1.5,
            "REGULARIZE_EVERY_EDGE": True,
            "MIN_AREA_M2": 1.0,
            "OUTPUT": str(regular),
        },
    )
    regular_layer = QgsVectorLayer(str(regular), "r", "ogr")
    vertices = [f.geometry().constGet().nCoordinates() for f in regular_layer.getFeatures()]
    raw = [f.geometry().constGet().nCoordinates() for f in layer.getFeatures()]
    assert vertices and sum(vertices) < sum(raw) / 2  # fewer corners than the pixel outlines
    tiled = tmp_path / "tiled.gpkg"
    result = run_alg(
        "map_refiner:vectorize",
        {
            "INPUT": str(refined),
            "SIMPLIFY_M": 1.0,
            "SHARED_BORDERS": True,
            "MERGE_SMALL_M2": 2.0,
            "OUTPUT": str(tiled),
        },
    )
    tiles = QgsVectorLayer(str(tiled), "t", "ogr")
    area = sum(f.geometry().area() for f in tiles.getFeatures())
    assert area == pytest.approx(500 * 500 * 0.3 * 0.3)  # the whole map once: no gap, no overlap
    plain = run_alg(
        "map_refiner:vectorize", {"INPUT": str(refined), "OUTPUT": str(tmp_path / "p.gpkg")}
    )
    assert result["FEATURE_COUNT"] < plain["FEATURE_COUNT"]  # specks merged, yet no hole


def test_evaluate_scores_a_map_and_the_reference_itself(
    run_alg, refined, austin_rgb, tmp_path
) -> None:  # noqa: ANN001
    gt = austin_rgb.with_name("austin_dev_gt.tif")
    report = tmp_path / "scores.json"
    scored = run_alg(
        "map_refiner:evaluate",
        {
            "PREDICTION": str(refined),
            "REFERENCE": str(gt),
            "CLASS_NAMES": "background, building",
            "REFERENCE_VALUE_MAP": "0=0, 255=1",
            "OUTPUT": str(report),
        },
    )
    assert 0.0 <= scored["OVERALL_ACCURACY"] <= 1.0
    saved = json.loads(report.read_text())
    assert saved["overall_accuracy"] == pytest.approx(scored["OVERALL_ACCURACY"])
    assert saved["pixel_count"] == 500 * 500
    assert "mean IoU" in scored["TABLE"]

    perfect = run_alg(
        "map_refiner:evaluate",
        {
            "PREDICTION": str(gt),
            "REFERENCE": str(gt),
            "REFERENCE_VALUE_MAP": "0:0,255:1",
            "PREDICTION_VALUE_MAP": "0=0,255=1",
        },
    )
    assert perfect["OVERALL_ACCURACY"] == 1.0 and perfect["MEAN_IOU"] == 1.0


def test_bad_value_map_is_a_clear_error(run_alg, austin_rgb) -> None:  # noqa: ANN001
    gt = austin_rgb.with_name("austin_dev_gt.tif")
    with pytest.raises(QgsProcessingException, match="value:class pairs such as 0:0,255:1"):
        run_alg(
            "map_refiner:evaluate",
            {"PREDICTION": str(gt), "REFERENCE": str(gt), "REFERENCE_VALUE_MAP": "0>0"},
        )


def _finetune_inputs(austin_rgb: Path, tiny_model: Path) -> dict:
    """map_refiner:finetune's inputs for two steps of the tiny model on austin_dev's
    building polygons (no OUTPUT)."""
    return {
        "INPUT": str(austin_rgb),
        "LABELS": str(austin_rgb.with_name("austin_dev_buildings.gpkg")),
        "MODE": 0,
        "STEPS": 2,
        "DEVICE": 1,
        "MODEL": str(tiny_model),
    }


def test_train_coarse_then_finetune_algorithms(run_alg, austin_rgb, tiny_model, tmp_path) -> None:  # noqa: ANN001
    from map_refiner.engine.modelfile.io import read_model_file

    buildings = str(austin_rgb.with_name("austin_dev_buildings.gpkg"))
    coarse = run_alg(
        "map_refiner:train_coarse",
        {
            "INPUT": str(austin_rgb),
            "LABELS": buildings,
            "MODE": 1,
            "STEPS": 2,
            "DEVICE": 1,
            "CLASS_NAMES": "background, building",
            "RESOLUTION_M": 0.6,
            "OUTPUT": str(tmp_path / "coarse.safetensors"),
        },
    )["OUTPUT"]
    config, _ = read_model_file(coarse)
    assert (config.class_names, config.ground_resolution_m) == (["background", "building"], 0.6)

    tuned = run_alg(
        "map_refiner:finetune",
        {**_finetune_inputs(austin_rgb, tiny_model), "OUTPUT": str(tmp_path / "tuned.safetensors")},
    )["OUTPUT"]
    assert Path(tuned).exists() and tiny_model.exists()


def test_finetune_algorithm_returns_the_dropped_fit(
    run_alg, austin_rgb, tiny_model, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """A fit the flip check drops comes back as DROPPED_FIT, a model beside OUTPUT."""
    from map_refiner.training.corrections import finetune as ft

    monkeypatch.setattr(ft, "should_adopt", lambda base, tuned: True)
    monkeypatch.setattr(ft, "flip_cap", lambda score, per_score: -1.0)
    monkeypatch.setattr(ft, "flip_check_applies", lambda ratio, at_least: True)
    out = run_alg(
        "map_refiner:finetune",
        {**_finetune_inputs(austin_rgb, tiny_model), "OUTPUT": str(tmp_path / "tuned.safetensors")},
    )
    assert out["DROPPED_FIT"] == str(tmp_path / "tuned_dropped_fit.safetensors")
    assert Path(out["DROPPED_FIT"]).exists() and Path(out["OUTPUT"]).exists()


def test_vectorize_and_evaluate_need_no_torch(
    run_alg, refined, austin_rgb, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    out = tmp_path / "all.shp"
    assert (
        run_alg("map_refiner:vectorize", {"INPUT": str(refined), "OUTPUT": str(out)})[
            "FEATURE_COUNT"
        ]
        > 0
    )
    gt = str(austin_rgb.with_name("austin_dev_gt.tif"))  # a 0/255 mask: mapped both ways
    maps = {"REFERENCE_VALUE_MAP": "0:0,255:1", "PREDICTION_VALUE_MAP": "0:0,255:1"}
    scored = run_alg("map_refiner:evaluate", {"PREDICTION": gt, "REFERENCE": gt, **maps})
    assert scored["OVERALL_ACCURACY"] == 1.0


def test_compare_flags_a_vector_map_and_styles_them_by_status(
    qgis_processing, plugin, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """map_refiner:compare writes the change list; loaded in QGIS it is coloured by status
    (needs no torch)."""
    import numpy as np
    import processing
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProcessingContext, QgsProject
    from test_compare import box, write_classmap, write_prior

    cls = np.zeros((100, 100), np.uint8)
    cls[10:30, 10:30] = 1
    cls[60:80, 60:80] = 1
    refined = write_classmap(tmp_path / "refined.tif", cls)
    prior = write_prior(tmp_path / "osm.gpkg", [(box(10, 10, 30, 30, dx_m=-2.0), "building")])
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = tmp_path / "flags.gpkg"
    result = processing.runAndLoadResults(
        "map_refiner:compare",
        {"PRIOR": str(prior), "REFINED": str(refined), "OUTPUT": str(out)},
        context=context,
    )
    layer = QgsVectorLayer(result["OUTPUT"], "flags")
    assert sorted(f["status"] for f in layer.getFeatures()) == ["moved", "new"]
    loaded = [
        lyr for lyr in QgsProject.instance().mapLayers().values() if "changes seen in" in lyr.name()
    ]
    assert len(loaded) == 1
    renderer = loaded[0].renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    assert renderer.classAttribute() == "status"
    assert [c.value() for c in renderer.categories()] == [
        "kept",
        "moved",
        "reshaped",
        "not seen",
        "new",
    ]


def test_finetune_algorithm_passes_what_learns(
    run_alg, austin_rgb, tiny_model, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """ADAPT picks the fit's layers, in engine.vocabulary.ADAPT_MODES's order; default
    head+rnn. EDGE_BAND reaches the fit (default vocab.EDGE_BAND_M) and its record, and
    OUTLINE_EDGES (default vocab.OUTLINE_EDGES), SNAP_OUTLINES (vocab.SNAP_OUTLINES),
    CHANGE_GATE (vocab.CHANGE_GATE), CHANGES_TO_DRAWN (vocab.CHANGES_TO_DRAWN) and BANDS
    too."""
    from map_refiner.engine import vocabulary as vocab
    from map_refiner.training.corrections import finetune as ft
    from map_refiner.ui.processing.finetune_algorithm import ADAPT_CHOICES

    assert tuple(mode for mode, _ in ADAPT_CHOICES) == vocab.ADAPT_MODES
    real, seen, gates, bands = ft.finetune, [], [], []

    def spy(*args, params, **kwargs):  # noqa: ANN001, ANN202
        seen.append((params.adapt, params.edge_band_m, params.outline_edges, params.snap_outlines))
        gates.append((params.change_gate, params.change_to_drawn))
        bands.append(kwargs.get("bands"))
        return real(*args, params=params, **kwargs)

    monkeypatch.setattr(ft, "finetune", spy)
    inputs = _finetune_inputs(austin_rgb, tiny_model)
    run_alg("map_refiner:finetune", {**inputs, "OUTPUT": str(tmp_path / "a.safetensors")})
    run_alg(
        "map_refiner:finetune",
        {**inputs, "ADAPT": 0, "EDGE_BAND": 1.0, "OUTPUT": str(tmp_path / "b.safetensors")},
    )
    run_alg(
        "map_refiner:finetune",
        {**inputs, "ADAPT": 4, "OUTPUT": str(tmp_path / "c.safetensors")},
    )
    flipped = not vocab.OUTLINE_EDGES
    run_alg(
        "map_refiner:finetune",
        {**inputs, "OUTLINE_EDGES": flipped, "OUTPUT": str(tmp_path / "d.safetensors")},
    )
    snap = not vocab.SNAP_OUTLINES
    run_alg(
        "map_refiner:finetune",
        {**inputs, "SNAP_OUTLINES": snap, "OUTPUT": str(tmp_path / "e.safetensors")},
    )
    run_alg(
        "map_refiner:finetune",
        {**inputs, "CHANGE_GATE": 0.0, "OUTPUT": str(tmp_path / "f.safetensors")},
    )
    to_drawn = not vocab.CHANGES_TO_DRAWN
    run_alg(
        "map_refiner:finetune",
        {**inputs, "CHANGES_TO_DRAWN": to_drawn, "OUTPUT": str(tmp_path / "g.safetensors")},
    )
    run_alg(
        "map_refiner:finetune",
        {**inputs, "BANDS": "3,2,1", "OUTPUT": str(tmp_path / "h.safetensors")},
    )
    assert bands == [None] * 7 + [[3, 2, 1]]  # BANDS (advanced) reaches the fine-tune
    gates.pop()
    gate, drawn = vocab.CHANGE_GATE, vocab.CHANGES_TO_DRAWN
    assert gates == [(gate, drawn)] * 5 + [(0.0, drawn), (gate, to_drawn)]
    seen.pop()
    seen.pop()
    seen.pop()
    band, edges, snapped = vocab.EDGE_BAND_M, vocab.OUTLINE_EDGES, vocab.SNAP_OUTLINES
    assert seen == [
        ("head+rnn", band, edges, snapped),
        ("rnn", 1.0, edges, snapped),
        ("norm+head+rnn", band, edges, snapped),
        ("head+rnn", band, flipped, snapped),
        ("head+rnn", band, edges, snap),
    ]
    from map_refiner.engine.modelfile.io import load_model

    assert load_model(tmp_path / "b.safetensors")[1].training["finetune"][-1]["edge_band_m"] == 1.0

    _, cfg = load_model(tmp_path / "c.safetensors")  # a plain model file, the colours folded in
    assert set(cfg.training["finetune"][-1]["input_norm"]) == {"scale", "shift"}


def test_snap_outlines_writes_a_new_layer_and_loads_it(
    qgis_processing, plugin, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """map_refiner:snap_outlines moves a roof drawn to one side onto the roof, keeps the
    background polygon, leaves the correction layer as it was and loads the result
    (needs no torch)."""
    import hashlib

    import processing
    from qgis.core import QgsProcessingContext, QgsProject
    from test_snap_outlines import layer, px_box, write_roof_image

    image = write_roof_image(tmp_path / "img.tif")
    corr = layer(
        tmp_path / "corr.gpkg",
        [
            (px_box(33, 30, 53, 50), {"class": "building"}),
            (px_box(2, 2, 20, 20), {"class": "background"}),
        ],
    )
    before = hashlib.sha256(corr.read_bytes()).hexdigest()
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    result = processing.runAndLoadResults(
        "map_refiner:snap_outlines",
        {
            "INPUT": str(image),
            "CORRECTIONS": str(corr),
            "CLASS_FIELD": "class",
            "OUTPUT": str(tmp_path / "snapped.gpkg"),
        },
        context=context,
    )
    out = QgsVectorLayer(result["OUTPUT"], "snapped")
    got = {f["class"]: f["snapped"] for f in out.getFeatures()}
    assert got == {"building": 1, "background": 0}
    assert hashlib.sha256(corr.read_bytes()).hexdigest() == before
    loaded = [
        lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().endswith("snapped")
    ]
    assert len(loaded) == 1


def test_changes_between_two_maps_loads_styled_and_needs_no_torch(
    qgis_processing, plugin, tmp_path, qgis_new_project, monkeypatch
) -> None:  # noqa: ANN001
    """map_refiner:changes writes where the newer map differs, says how much in its
    outputs, and the loaded layer draws each "became <class>" value."""
    import sys

    import numpy as np
    import processing
    from osgeo import gdal
    from qgis.core import QgsPalettedRasterRenderer, QgsProcessingContext, QgsProject
    from test_compare import write_classmap

    monkeypatch.setitem(sys.modules, "torch", None)
    old = np.zeros((100, 100), np.uint8)
    old[10:30, 10:30] = 1
    new = old.copy()
    new[60:80, 60:80] = 1
    before = write_classmap(tmp_path / "before.tif", old)
    after = write_classmap(tmp_path / "after.tif", new)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = tmp_path / "changes.tif"
    result = processing.runAndLoadResults(
        "map_refiner:changes",
        {"BEFORE": str(before), "AFTER": str(after), "OUTPUT": str(out)},
        context=context,
    )
    assert result["CHANGED_SHARE"] == pytest.approx(0.04)
    assert result["SUMMARY"].startswith("4.0 % of the map changed: building +")
    written = gdal.Open(str(out)).ReadAsArray()
    assert (written[60:80, 60:80] == 2).all() and (written == 2).sum() == 400
    assert (written == 0).sum() == 100 * 100 - 400
    (loaded,) = [
        lyr for lyr in QgsProject.instance().mapLayers().values() if "changes since" in lyr.name()
    ]
    renderer = loaded.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [c.label for c in renderer.classes()] == ["became background", "became building"]


def test_changes_lists_the_largest_as_polygons_to_paste(
    qgis_processing, plugin, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """map_refiner:changes with LARGEST: the largest changes as polygons, loaded under a
    name that says so, their class what each change was (a correction turning it back)."""
    import numpy as np
    import processing
    from qgis.core import QgsProcessingContext, QgsProject, QgsVectorLayer
    from test_compare import write_classmap

    old = np.zeros((100, 100), np.uint8)
    old[10:30, 10:30] = 1
    new = old.copy()
    new[10:30, 10:20] = 0  # 200 px erased
    new[60:80, 60:75] = 1  # 300 px new
    new[90:92, 90:92] = 1  # 4 px: too small to list
    before = write_classmap(tmp_path / "before.tif", old)
    after = write_classmap(tmp_path / "after.tif", new)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    listed = tmp_path / "largest.gpkg"
    result = processing.runAndLoadResults(
        "map_refiner:changes",
        {
            "BEFORE": str(before),
            "AFTER": str(after),
            "OUTPUT": str(tmp_path / "changes.tif"),
            "LARGEST": str(listed),
            "LARGEST_COUNT": 5,
        },
        context=context,
    )
    layer = QgsVectorLayer(result["LARGEST"], "largest")
    rows = [(f["rank"], f["class"], f["became"], f["pixels"]) for f in layer.getFeatures()]
    assert rows == [(1, "background", "building", 300), (2, "building", "background", 200)]
    assert layer.crs().authid() == "EPSG:32633"  # the maps' (test_compare's writer)
    (loaded,) = QgsProject.instance().mapLayersByName("after — largest changes since before")
    assert loaded.labelsEnabled() and loaded.labeling().settings().fieldName == "rank"
    symbol = loaded.renderer().symbol()  # the dock's style: dashed outlines, no fill
    assert symbol.color().alpha() == 0


def test_finetune_algorithm_passes_the_colour_match_switch(
    run_alg, austin_rgb, tiny_model, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """MATCH_COLOURS (advanced, on by default) reaches finetune's match_colours."""
    from map_refiner.training.corrections import finetune as ft

    real, seen = ft.finetune, []

    def spy(*args, **kwargs):  # noqa: ANN001, ANN202
        seen.append(kwargs.get("match_colours"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "finetune", spy)
    inputs = _finetune_inputs(austin_rgb, tiny_model)
    run_alg("map_refiner:finetune", {**inputs, "OUTPUT": str(tmp_path / "a.safetensors")})
    run_alg(
        "map_refiner:finetune",
        {**inputs, "MATCH_COLOURS": False, "OUTPUT": str(tmp_path / "b.safetensors")},
    )
    assert seen == [True, False]


def test_survey_model_fixes_one_reading_for_the_chosen_layers(
    run_alg, austin_rgb, tmp_path
) -> None:  # noqa: ANN001
    """map_refiner:survey_model over two raster layers: one model file whose configuration
    names both, judged together (engine/modelfile/survey.py); a grey layer is refused
    with what to do."""
    import numpy as np
    from osgeo import gdal

    from map_refiner.engine.modelfile.io import read_model_file

    dark = tmp_path / "dark.tif"
    src = gdal.Open(str(austin_rgb))
    copy = gdal.GetDriverByName("GTiff").CreateCopy(str(dark), src)
    for b in range(1, 4):
        band = copy.GetRasterBand(b)
        band.WriteArray((band.ReadAsArray() // 2).astype(np.uint8))
    copy = None
    # as file paths: Processing loads them into its context, which owns them (layer objects
    # made here outlived QGIS and crashed the test process at exit)
    layers = [str(austin_rgb), str(dark)]
    out = tmp_path / "survey.safetensors"
    result = run_alg("map_refiner:survey_model", {"INPUTS": layers, "OUTPUT": str(out)})
    assert Path(result["OUTPUT"]) == out and out.exists()
    config, _ = read_model_file(out)
    assert config.training["survey"]["images"] == [austin_rgb.name, "dark.tif"]
    assert "survey of 2 images" in config.name
    grey = tmp_path / "grey.tif"
    gdal.Translate(str(grey), str(austin_rgb), bandList=[1])
    with pytest.raises(QgsProcessingException, match="three colour bands"):
        run_alg(
            "map_refiner:survey_model",
            {
                "INPUTS": [str(grey)],
                "OUTPUT": str(tmp_path / "g.safetensors"),
            },
        )
