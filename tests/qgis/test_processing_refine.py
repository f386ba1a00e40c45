"""processing.run("map_refiner:refine", ...) on real data, progress and errors included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback


@pytest.fixture
def processing_with_plugin(qgis_processing, plugin):  # noqa: ANN001, ANN201
    import processing

    return processing


class RecordingFeedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.percents = []
        self.progressChanged.connect(self.percents.append)


def test_refine_algorithm_on_real_data(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    out, scores, coarse = tmp_path / "refined.tif", tmp_path / "scores.tif", tmp_path / "c.tif"
    feedback = RecordingFeedback()
    result = processing_with_plugin.run(
        "map_refiner:refine",
        {
            "INPUT": str(austin_rgb),
            "MODEL": str(tiny_model),
            "ITERATIONS": 1,
            "DEVICE": 1,
            "OUTPUT": str(out),
            "SCORES": str(scores),
            "COARSE": str(coarse),
        },
        feedback=feedback,
    )
    assert result == {"OUTPUT": str(out), "SCORES": str(scores), "COARSE": str(coarse)}
    assert "no RNN iteration" in gdal.Info(str(coarse))
    info = gdal.Info(str(out))
    assert "Size is 500, 500" in info
    assert "0: background" in info and "1: building" in info
    assert gdal.Info(str(scores)).count("Band ") == 2
    assert feedback.percents and feedback.percents[-1] == pytest.approx(100.0)


def test_defaults_use_the_model_iterations(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    out = tmp_path / "refined.tif"
    feedback = RecordingFeedback()
    processing_with_plugin.run(
        "map_refiner:refine",
        {"INPUT": str(austin_rgb), "MODEL": str(tiny_model), "OUTPUT": str(out)},
        feedback=feedback,
    )
    assert "tiny test model: 2 RNN iterations" in gdal.Info(str(out))


def test_the_general_model_is_a_bundled_choice(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    from map_refiner.engine.modelfile.header import GENERAL_MODEL_PATH

    if not GENERAL_MODEL_PATH.exists():
        pytest.skip("the bundled general model is not in this checkout")
    out = tmp_path / "general.tif"
    processing_with_plugin.run(
        "map_refiner:refine",
        {"INPUT": str(austin_rgb), "BUNDLED": 1, "ITERATIONS": 1, "DEVICE": 1, "OUTPUT": str(out)},
    )
    assert "Map Refiner general" in gdal.Info(str(out))
    # a model file still wins over the choice
    out2 = tmp_path / "file.tif"
    processing_with_plugin.run(
        "map_refiner:refine",
        {"INPUT": str(austin_rgb), "MODEL": str(tiny_model), "BUNDLED": 1, "OUTPUT": str(out2)},
    )
    assert "tiny test model" in gdal.Info(str(out2))


def test_precision_is_an_advanced_choice(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById("map_refiner:refine")
    param = alg.parameterDefinition("PRECISION")
    assert param.options() == ["auto", "fp32", "bf16"] and param.defaultValue() == 0
    assert param.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    out = tmp_path / "bf16.tif"
    feedback = RecordingFeedback()
    logged = []
    feedback.pushInfo = logged.append  # type: ignore[method-assign]
    processing_with_plugin.run(
        "map_refiner:refine",
        {
            "INPUT": str(austin_rgb),
            "MODEL": str(tiny_model),
            "DEVICE": 1,
            "PRECISION": 2,
            "OUTPUT": str(out),
        },
        feedback=feedback,
    )
    assert out.exists()
    assert any("cpu (bf16 mixed precision)" in line for line in logged), logged


def test_cancelled_feedback_writes_nothing(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {"INPUT": str(austin_rgb), "MODEL": str(tiny_model), "OUTPUT": str(tmp_path / "o.tif")},
            feedback=feedback,
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_torch_is_a_processing_error(
    processing_with_plugin, austin_rgb, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(QgsProcessingException, match=r"needs safetensors.*pip install"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {"INPUT": str(austin_rgb), "OUTPUT": str(tmp_path / "o.tif")},
            feedback=QgsProcessingFeedback(),
        )


def test_an_existing_map_is_snapped_as_the_cli_does(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    """PRIOR starts the RNN from another map: the same output as the engine's refine with
    the same prior and offset search, and not the map the CNN would start from; the log
    says where the map was placed."""
    import numpy as np

    from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

    ds = gdal.Open(str(austin_rgb))
    prior = tmp_path / "prior.tif"
    mask = np.zeros((ds.RasterYSize, ds.RasterXSize), np.uint8)
    mask[100:300, 150:400] = 255  # one big "building" block, nothing like the image
    out_ds = gdal.GetDriverByName("GTiff").Create(str(prior), mask.shape[1], mask.shape[0], 1)
    out_ds.SetGeoTransform(ds.GetGeoTransform())
    out_ds.SetProjection(ds.GetProjection())
    out_ds.GetRasterBand(1).WriteArray(mask)
    out_ds = None
    out, plain = tmp_path / "snapped.tif", tmp_path / "plain.tif"
    feedback = QgsProcessingFeedback()
    logged = []
    feedback.pushInfo = logged.append  # type: ignore[method-assign]
    processing_with_plugin.run(
        "map_refiner:refine",
        {
            "INPUT": str(austin_rgb),
            "MODEL": str(tiny_model),
            "ITERATIONS": 1,
            "DEVICE": 1,
            "PRIOR": str(prior),
            "PRIOR_VALUE_MAP": "0:0,255:1",
            "PRIOR_STRENGTH": 20.0,
            "PRIOR_SEARCH_M": 8.0,
            "PRIOR_EDGE_CHECK": False,
            "OUTPUT": str(out),
        },
        feedback=feedback,
    )
    assert any(line.startswith("Existing map ") for line in logged), logged
    engine = tmp_path / "engine.tif"
    refine_raster(
        RefineParams(
            image=austin_rgb,
            out=engine,
            model_path=tiny_model,
            iterations=1,
            device="cpu",
            prior=prior,
            prior_value_map={0: 0, 255: 1},
            prior_strength=20.0,
            prior_search_m=8.0,
            prior_edges=False,
        )
    )
    refine_raster(
        RefineParams(image=austin_rgb, out=plain, model_path=tiny_model, iterations=1, device="cpu")
    )
    got = gdal.Open(str(out)).ReadAsArray()
    np.testing.assert_array_equal(got, gdal.Open(str(engine)).ReadAsArray())
    # the prior counted: the tiny model's own map is nearly all building, the prior's is not
    assert (got != gdal.Open(str(plain)).ReadAsArray()).mean() > 0.2


def test_a_bad_prior_value_map_is_a_clear_error(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    with pytest.raises(QgsProcessingException, match="maps raster values"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {
                "INPUT": str(austin_rgb),
                "MODEL": str(tiny_model),
                "PRIOR": str(austin_rgb),
                "PRIOR_VALUE_MAP": "building:1",
                "OUTPUT": str(tmp_path / "x.tif"),
            },
            feedback=QgsProcessingFeedback(),
        )


def test_a_polygon_map_is_snapped_as_the_engine_does(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    """PRIOR_VECTOR: polygons (here every feature a building, no class field) as the
    start; the same map as the engine's refine from that layer (the second of its
    GeoPackage: the layer QGIS shows is the one refined from). Both kinds at once: an
    error."""
    import numpy as np
    from osgeo import ogr

    from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

    ds = gdal.Open(str(austin_rgb))
    gt = ds.GetGeoTransform()
    osm = tmp_path / "osm.gpkg"
    src = ogr.GetDriverByName("GPKG").CreateDataSource(str(osm))
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromWkt(ds.GetProjection())
    x0, y0 = gt[0] + 30, gt[3] - 30
    roads = src.CreateLayer("roads", srs, ogr.wkbLineString)  # the first layer: not refined
    roads.CreateFeature(_line(roads, x0, y0 - 60))
    lyr = src.CreateLayer("osm", srs, ogr.wkbPolygon)
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(
        ogr.CreateGeometryFromWkt(
            f"POLYGON(({x0} {y0},{x0 + 40} {y0},{x0 + 40} {y0 - 30},{x0} {y0 - 30},{x0} {y0}))"
        )
    )
    lyr.CreateFeature(feat)
    src = None
    out = tmp_path / "snapped.tif"
    processing_with_plugin.run(
        "map_refiner:refine",
        {
            "INPUT": str(austin_rgb),
            "MODEL": str(tiny_model),
            "ITERATIONS": 1,
            "DEVICE": 1,
            "PRIOR_VECTOR": f"{osm}|layername=osm",
            "PRIOR_STRENGTH": 20.0,
            "OUTPUT": str(out),
        },
        feedback=QgsProcessingFeedback(),
    )
    engine = tmp_path / "engine.tif"
    refine_raster(
        RefineParams(
            image=austin_rgb,
            out=engine,
            model_path=tiny_model,
            iterations=1,
            device="cpu",
            prior=osm,
            prior_layer="osm",
            prior_strength=20.0,
        )
    )
    got = gdal.Open(str(out)).ReadAsArray()
    np.testing.assert_array_equal(got, gdal.Open(str(engine)).ReadAsArray())
    assert (got == 1).mean() < 0.2  # the block, not the tiny model's all-building map
    with pytest.raises(QgsProcessingException, match="not both"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {
                "INPUT": str(austin_rgb),
                "MODEL": str(tiny_model),
                "PRIOR": str(austin_rgb),
                "PRIOR_VECTOR": str(osm),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
            feedback=QgsProcessingFeedback(),
        )


def _line(layer, x0: float, y0: float):  # noqa: ANN001, ANN202
    """A 60 m east-west line feature of ``layer``."""
    from osgeo import ogr

    feat = ogr.Feature(layer.GetLayerDefn())
    feat.SetGeometry(ogr.CreateGeometryFromWkt(f"LINESTRING({x0} {y0},{x0 + 60} {y0})"))
    return feat


def _rgb_at(path, pixel: float):  # noqa: ANN001, ANN202
    """A small seeded RGB GeoTIFF of ``pixel`` m pixels (UTM 14N)."""
    from conftest import write_rgb

    write_rgb(path, size=40)
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.SetGeoTransform((620000.0, pixel, 0.0, 3350000.0, 0.0, -pixel))
    ds = None
    return path


def test_detail_iterations_are_an_advanced_parameter_passed_to_the_engine(
    processing_with_plugin, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById("map_refiner:refine")
    param = alg.parameterDefinition("DETAIL_ITERATIONS")
    assert param.defaultValue() == -1  # the model's own (none for the tiny model)
    assert param.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    image = _rgb_at(tmp_path / "drone.tif", 0.15)
    base = {"INPUT": str(image), "MODEL": str(tiny_model), "ITERATIONS": 1, "DEVICE": 1}
    plain, fine = tmp_path / "plain.tif", tmp_path / "fine.tif"
    processing_with_plugin.run("map_refiner:refine", {**base, "OUTPUT": str(plain)})
    assert "tiny test model: 1 RNN iterations\n" in gdal.Info(str(plain))  # default: none
    feedback = RecordingFeedback()
    warnings: list[str] = []
    feedback.pushWarning = warnings.append  # type: ignore[method-assign]
    processing_with_plugin.run(
        "map_refiner:refine",
        {**base, "OUTPUT": str(fine), "DETAIL_ITERATIONS": 2},
        feedback=feedback,
    )
    assert "1 RNN iterations, then 2 at 0.15 m" in gdal.Info(str(fine))
    assert warnings == []


def test_the_fine_grid_s_pixel_size_is_an_advanced_parameter(
    processing_with_plugin, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    """DETAIL_RESOLUTION: empty, the engine's grid; a size reaches the engine, never finer
    than the image's own pixels; without fine-grid iterations a warning and no effect; not
    finer than the model's grid, the engine's refusal."""
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById("map_refiner:refine")
    param = alg.parameterDefinition("DETAIL_RESOLUTION")
    assert param.defaultValue() is None
    assert param.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert param.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional
    base = {
        "INPUT": str(_rgb_at(tmp_path / "drone.tif", 0.15)),
        "MODEL": str(tiny_model),
        "ITERATIONS": 1,
        "DEVICE": 1,
        "DETAIL_ITERATIONS": 2,
    }
    for size, grid in ((0.3, "0.3"), (0.05, "0.15")):
        out = tmp_path / f"grid_{size}.tif"
        processing_with_plugin.run(
            "map_refiner:refine", {**base, "OUTPUT": str(out), "DETAIL_RESOLUTION": size}
        )
        assert f"1 RNN iterations, then 2 at {grid} m" in gdal.Info(str(out))
    feedback = RecordingFeedback()
    warnings: list[str] = []
    feedback.pushWarning = warnings.append  # type: ignore[method-assign]
    out = tmp_path / "none.tif"
    processing_with_plugin.run(
        "map_refiner:refine",
        {**base, "OUTPUT": str(out), "DETAIL_ITERATIONS": 0, "DETAIL_RESOLUTION": 0.3},
        feedback=feedback,
    )
    assert "tiny test model: 1 RNN iterations\n" in gdal.Info(str(out))
    assert len(warnings) == 1 and "pixel size is ignored" in warnings[0]
    with pytest.raises(QgsProcessingException, match="finer than the model's grid"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {**base, "OUTPUT": str(tmp_path / "o.tif"), "DETAIL_RESOLUTION": 0.6},
            feedback=QgsProcessingFeedback(),
        )
    assert not (tmp_path / "o.tif").exists()


def test_detail_iterations_on_imagery_near_the_model_grid(
    processing_with_plugin, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    """Finer but not 2x: a warning in the log, and the refine runs; not finer: the
    engine's refusal is the algorithm's error."""
    params = {"MODEL": str(tiny_model), "ITERATIONS": 1, "DEVICE": 1, "DETAIL_ITERATIONS": 1}
    feedback = QgsProcessingFeedback()
    warnings: list[str] = []
    feedback.pushWarning = warnings.append  # type: ignore[method-assign]
    out = tmp_path / "half.tif"
    processing_with_plugin.run(
        "map_refiner:refine",
        {**params, "INPUT": str(_rgb_at(tmp_path / "half_metre.tif", 0.5)), "OUTPUT": str(out)},
        feedback=feedback,
    )
    assert "then 1 at 0.5 m" in gdal.Info(str(out))
    assert len(warnings) == 1 and "not 2x finer than the model's 0.6 m grid" in warnings[0]
    coarse = _rgb_at(tmp_path / "coarse.tif", 0.6)
    with pytest.raises(QgsProcessingException, match="no finer detail to refine to"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {**params, "INPUT": str(coarse), "OUTPUT": str(tmp_path / "o.tif")},
            feedback=QgsProcessingFeedback(),
        )
    assert not (tmp_path / "o.tif").exists()


def test_chosen_model_for_refine_and_finetune() -> None:
    """Both algorithms read MODEL and BUNDLED through chosen_model and
    chooses_for_image; BUNDLED offers every bundled model, the default first, then the
    model chosen for the image, its default."""
    from map_refiner.engine.modelfile.header import BUNDLED_MODELS, GENERAL_MODEL_PATH
    from map_refiner.ui.processing.common import (
        bundled_model_parameter,
        bundled_names,
        chooses_for_image,
        chosen_model,
    )

    assert chosen_model("", 0) == ""  # the default (or the snap model with a prior)
    assert chosen_model("", 1) == str(GENERAL_MODEL_PATH)
    assert chosen_model("mine.safetensors", 1) == "mine.safetensors"
    chosen = len(BUNDLED_MODELS)
    assert chosen_model("", chosen) == "" and chooses_for_image("", chosen)
    assert not chooses_for_image("mine.safetensors", chosen)
    assert not chooses_for_image("", 0) and not chooses_for_image("", 1)
    assert bundled_names()[0] == "default" and set(bundled_names()) == set(BUNDLED_MODELS)
    parameter = bundled_model_parameter()
    options = parameter.options()
    assert len(options) == len(BUNDLED_MODELS) + 1 and options[1].startswith("general")
    assert options[chosen].startswith("chosen for the image")
    assert parameter.defaultValue() == chosen


def _refined_from_itself(image: Path, model: Path, out: Path) -> dict:
    """Processing parameters of a one-iteration CPU refine of ``image`` with ``model``,
    the image itself given as the prior (values 0 and 255 as background and building):
    a prior that exercises the parameters, not one that means anything."""
    return {
        "INPUT": str(image),
        "MODEL": str(model),
        "ITERATIONS": 1,
        "DEVICE": 1,
        "PRIOR": str(image),
        "PRIOR_VALUE_MAP": "0:0,255:1",
        "OUTPUT": str(out),
    }


def _switch_seen(processing, monkeypatch, name: str, field: str, inputs) -> list:  # noqa: ANN001
    """The refine algorithm's boolean ``name`` (on by default) as RefineParams ``field``
    gets it: run once as given and once unticked (``inputs(i)``: the run's parameters)."""
    from qgis.core import QgsApplication

    from map_refiner.engine.refine import pipeline

    alg = QgsApplication.processingRegistry().algorithmById("map_refiner:refine")
    assert alg.parameterDefinition(name).defaultValue() is True
    seen = []
    real = pipeline.refine_raster

    def spy(params, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(getattr(params, field))
        return real(params, **kw)

    monkeypatch.setattr(pipeline, "refine_raster", spy)
    for i, flag in enumerate((None, False)):
        params = inputs(i)
        if flag is not None:
            params[name] = flag
        processing.run("map_refiner:refine", params, feedback=QgsProcessingFeedback())
    return seen


def test_the_edge_check_reaches_the_engine(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """PRIOR_EDGE_CHECK (on unless unticked) is RefineParams.prior_edges."""

    def inputs(i: int) -> dict:
        return _refined_from_itself(austin_rgb, tiny_model, tmp_path / f"o{i}.tif")

    seen = _switch_seen(
        processing_with_plugin, monkeypatch, "PRIOR_EDGE_CHECK", "prior_edges", inputs
    )
    assert seen == [True, False]


def test_a_model_that_may_misread_the_imagery_is_a_warning(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """When the image's edges doubt the model (RefineResult.prior_misread), the prior's
    note is pushed as a warning, not as information."""
    from dataclasses import replace

    from map_refiner.engine.refine import pipeline

    real = pipeline.refine_raster
    doubted = []

    def doubting(params, **kw):  # noqa: ANN001, ANN003, ANN202
        res = real(params, **kw)
        return replace(res, prior_note="left in place: X", prior_misread=bool(doubted))

    monkeypatch.setattr(pipeline, "refine_raster", doubting)

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.warnings: list[str] = []
            self.infos: list[str] = []

        def pushWarning(self, text: str) -> None:  # noqa: N802
            self.warnings.append(text)

        def pushInfo(self, text: str) -> None:  # noqa: N802
            self.infos.append(text)

    for i in range(2):
        feedback = Feedback()
        processing_with_plugin.run(
            "map_refiner:refine",
            _refined_from_itself(austin_rgb, tiny_model, tmp_path / f"o{i}.tif"),
            feedback=feedback,
        )
        note = "Existing map left in place: X."
        if doubted:
            assert note in feedback.warnings and note not in feedback.infos
        else:
            assert note in feedback.infos and note not in feedback.warnings
        doubted.append(True)


def test_bands_reach_the_engine_in_the_order_given(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    """BANDS (advanced): an image stored blue-green-red without colour names, read 3,2,1,
    gives the red-green-blue original's map; a bad list is a clear error."""
    import numpy as np

    bgr = tmp_path / "bgr.tif"
    options = "-b 3 -b 2 -b 1 -colorinterp undefined,undefined,undefined"
    gdal.Translate(str(bgr), str(austin_rgb), options=options)
    maps = {}
    for name, image, bands in (("rgb", austin_rgb, ""), ("bgr", bgr, "3,2,1")):
        out = tmp_path / f"map_{name}.tif"
        processing_with_plugin.run(
            "map_refiner:refine",
            {"INPUT": str(image), "MODEL": str(tiny_model), "BANDS": bands, "OUTPUT": str(out)},
        )
        maps[name] = gdal.Open(str(out)).ReadAsArray()
    assert np.array_equal(maps["rgb"], maps["bgr"])
    with pytest.raises(QgsProcessingException, match="Bad band list '3,two,1'"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {
                "INPUT": str(bgr),
                "MODEL": str(tiny_model),
                "BANDS": "3,two,1",
                "OUTPUT": str(tmp_path / "bad.tif"),
            },
        )


def test_the_colour_match_switch_reaches_the_engine(
    processing_with_plugin, austin_rgb, tiny_model, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """MATCH_COLOURS (on unless unticked) is RefineParams.match_colours."""
    base = {"INPUT": str(austin_rgb), "MODEL": str(tiny_model), "ITERATIONS": 1, "DEVICE": 1}

    def inputs(i: int) -> dict:
        return {**base, "OUTPUT": str(tmp_path / f"m{i}.tif")}

    seen = _switch_seen(
        processing_with_plugin, monkeypatch, "MATCH_COLOURS", "match_colours", inputs
    )
    assert seen == [True, False]


def test_a_loaded_map_goes_right_above_its_image(
    processing_with_plugin, tiny_model, tmp_path, qgis_new_project
) -> None:  # noqa: ANN001
    """Refined with the other tile on top (a batch of tiles refined one by one), the map
    is loaded right above its own image, not above the selected layer, where the other
    tiles' images would hide it (styling.place_above); with Processing's results group
    set, it stays in that group."""
    from conftest import write_rgb
    from processing.core.ProcessingConfig import ProcessingConfig
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    project = QgsProject.instance()
    a, b = (write_rgb(tmp_path / f"{n}.tif", seed=i) for i, n in enumerate("ab"))
    tile_a = QgsRasterLayer(str(a), "tile a")
    tile_b = QgsRasterLayer(str(b), "tile b")
    project.addMapLayer(tile_a)
    project.addMapLayer(tile_b)
    root = project.layerTreeRoot()
    order = [n.name() for n in root.children()]
    assert order.index("tile b") < order.index("tile a")  # b on top, as loaded

    def refine(out: str) -> None:
        context = QgsProcessingContext()
        context.setProject(project)
        processing_with_plugin.runAndLoadResults(
            "map_refiner:refine",
            {"INPUT": tile_a, "MODEL": str(tiny_model), "ITERATIONS": 1, "OUTPUT": out},
            context=context,
        )

    refine(str(tmp_path / "a_map.tif"))
    names = [n.name() for n in root.children()]
    refined = names.index(next(n for n in names if "refined" in n))
    assert names.index("tile b") < refined == names.index("tile a") - 1
    ProcessingConfig.setSettingValue(ProcessingConfig.RESULTS_GROUP_NAME, "Results")
    try:
        refine(str(tmp_path / "a_map2.tif"))
        group = root.findGroup("Results")
        assert group is not None and len(group.children()) == 1
    finally:
        ProcessingConfig.setSettingValue(ProcessingConfig.RESULTS_GROUP_NAME, "")


def test_an_image_without_georeferencing_refines_with_its_pixel_size(
    processing_with_plugin, tiny_model, tmp_path
) -> None:  # noqa: ANN001
    """INPUT_RESOLUTION (advanced) gives an unreferenced photo its pixel size, and the map
    lies on its pixels as QGIS shows it; left empty, the engine's message says what to do;
    a fine-tune takes it too."""
    import numpy as np
    from helpers_engine import scene

    from map_refiner.engine.rasters.read import UNREFERENCED_GEOTRANSFORM

    photo = tmp_path / "photo.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(photo), 80, 64, 3, gdal.GDT_Byte)
    for i, band in enumerate(scene(64, 80, seed=3).astype(np.uint8)):
        ds.GetRasterBand(i + 1).WriteArray(band)
    ds = None
    base = {"INPUT": str(photo), "MODEL": str(tiny_model), "ITERATIONS": 1, "DEVICE": 1}
    with pytest.raises(QgsProcessingException, match="Processing: Input pixel size on the ground"):
        processing_with_plugin.run(
            "map_refiner:refine", {**base, "OUTPUT": str(tmp_path / "no.tif")}
        )
    assert not (tmp_path / "no.tif").exists()
    out = tmp_path / "refined.tif"
    processing_with_plugin.run(
        "map_refiner:refine", {**base, "INPUT_RESOLUTION": 0.3, "OUTPUT": str(out)}
    )
    assert gdal.Open(str(out)).GetGeoTransform() == UNREFERENCED_GEOTRANSFORM
    from helpers_data import box_wkt, write_vector
    from osgeo import ogr

    drawn = write_vector(
        tmp_path / "drawn.gpkg",
        [
            (box_wkt(10, -30, 30, -10), {"class": "building"}),
            (box_wkt(50, -50, 70, -35), {"class": "background"}),
        ],
        fields={"class": ogr.OFTString},
    )
    tuned = tmp_path / "tuned.safetensors"
    result = processing_with_plugin.run(
        "map_refiner:finetune",
        {
            "INPUT": str(photo),
            "LABELS": str(drawn),
            "CLASS_FIELD": "class",
            "MODEL": str(tiny_model),
            "STEPS": 2,
            "INPUT_RESOLUTION": 0.3,
            "OUTPUT": str(tuned),
        },
    )
    assert Path(result["OUTPUT"]).is_file()
