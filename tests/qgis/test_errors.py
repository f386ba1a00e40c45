"""Expected errors in QGIS: one message-bar line (task) or one QgsProcessingException line
(Processing), the same text as the engine's, details in the Map Refiner log, no traceback,
nothing written, no layer added, and no model file ever unpickled."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable

import pytest
from osgeo import gdal, ogr, osr
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorLayer,
)

from map_refiner.ui.jobs.refine_job import RefineJob

gdal.UseExceptions()
MARKER = "unpickled.marker"


class _Touch:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def pickle_model(folder: Path) -> Path:
    evil = folder / "evil.safetensors"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Touch(folder / MARKER)}, f)
    return evil


def two_band(folder: Path, make_rgb) -> Path:  # noqa: ANN001
    rgb = make_rgb(folder / "rgb.tif")
    out = folder / "two.tif"
    gdal.Translate(str(out), str(rgb), bandList=[1, 2])
    rgb.unlink()
    return out


def truncated(folder: Path, make_rgb) -> Path:  # noqa: ANN001
    rgb = make_rgb(folder / "rgb.tif", size=64)
    data = rgb.read_bytes()
    rgb.unlink()
    cut = folder / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def polygons_with_unknown_classes(folder: Path) -> Path:
    path = folder / "labels.gpkg"
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(26914)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("labels", srs=srs, geom_type=ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("c", ogr.OFTString))
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetField("c", "lake")
    feat.SetGeometry(
        ogr.CreateGeometryFromWkt(
            "POLYGON((620003 3349990,620010 3349990,620010 3349997,620003 3349997,620003 3349990))"
        )
    )
    lyr.CreateFeature(feat)
    ds = None
    return path


def log_lines(run: Callable[[], None]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def collect(message: str, tag: str, _level) -> None:  # noqa: ANN001
        seen.append((tag, message))

    QgsApplication.messageLog().messageReceived.connect(collect)
    try:
        run()
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(collect)
    return seen


# id -> builder(folder, make_rgb, tiny_model) -> (RefineParams kwargs, text of the message)
TASK_CASES: dict[str, Callable] = {
    "truncated-raster": lambda d, mk, m: (
        dict(image=truncated(d, mk), model_path=m),
        "damaged or truncated",
    ),
    "two-band-raster": lambda d, mk, m: (
        dict(image=two_band(d, mk), model_path=m),
        "has 2 band(s)",
    ),
    "pickle-model": lambda d, mk, m: (
        dict(image=mk(d / "rgb.tif"), model_path=pickle_model(d)),
        "not a readable Map Refiner model",
    ),
    "output-is-input": lambda d, mk, m: (
        dict(image=mk(d / "rgb.tif"), model_path=m, out=d / "rgb.tif", overwrite=True),
        "is one of the inputs",
    ),
    "output-exists": lambda d, mk, m: (
        dict(image=mk(d / "rgb.tif"), model_path=m, out=mk(d / "old.tif")),
        "already exists",
    ),
}


@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_task_error_is_one_message_bar_line_and_a_log_entry(
    case: str, plugin, tmp_path, make_rgb, tiny_model, qgis_iface, qgis_new_project, wait_for_tasks
) -> None:  # noqa: ANN001
    from map_refiner.engine.refine.pipeline import RefineParams

    kwargs, text = TASK_CASES[case](tmp_path, make_rgb, tiny_model)
    kwargs.setdefault("out", tmp_path / "refined.tif")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    job = RefineJob(RefineParams(device="cpu", **kwargs), "scene")
    seen = log_lines(lambda: (plugin.controller.start_refine(job), wait_for_tasks()))

    errors = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert len(errors) == 1 and text in errors[0], errors
    assert "\n" not in errors[0] and "Unexpected error" not in errors[0]
    ours = [msg for tag, msg in seen if tag == "Map Refiner"]
    assert any(text in msg for msg in ours), ours
    assert not any("Traceback" in msg for msg in ours), "an expected error logs no traceback"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert qgis_new_project.mapLayers() == {}
    assert plugin.controller.tasks == []


def test_finetune_task_with_unusable_labels(
    plugin, tmp_path, make_rgb, tiny_model, qgis_iface, wait_for_tasks
) -> None:  # noqa: ANN001
    from map_refiner.training.tile import LabelSource
    from map_refiner.ui.jobs.training_jobs import FinetuneJob

    base = tiny_model.read_bytes()
    job = FinetuneJob(
        make_rgb(tmp_path / "rgb.tif"),
        LabelSource(polygons_with_unknown_classes(tmp_path), class_field="c", mode="sparse"),
        tmp_path / "new.safetensors",
        tiny_model,
        1,
        "cpu",
        "",
    )
    plugin.controller.start_finetune(job)
    wait_for_tasks(timeout=120)
    errors = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert len(errors) == 1 and "usable class" in errors[0] and "'lake'" in errors[0]
    assert not job.out.exists() and tiny_model.read_bytes() == base


@pytest.fixture
def processing_with_plugin(qgis_processing, plugin):  # noqa: ANN001, ANN201
    import processing

    return processing


PROCESSING_CASES: dict[str, Callable] = {
    "pickle-model": lambda d, mk, m: (
        {"INPUT": str(mk(d / "rgb.tif")), "MODEL": str(pickle_model(d))},
        "not a readable Map Refiner model",
    ),
    "two-band-raster": lambda d, mk, m: (
        {"INPUT": str(two_band(d, mk)), "MODEL": str(m)},
        "has 2 band(s)",
    ),
    "output-is-input": lambda d, mk, m: (
        {"INPUT": str(mk(d / "rgb.tif")), "MODEL": str(m), "OUTPUT": str(d / "rgb.tif")},
        "one of the inputs",
    ),
    "truncated-model": lambda d, mk, m: (
        {"INPUT": str(mk(d / "rgb.tif")), "MODEL": str(_cut(d, m))},
        "truncated",
    ),
}


def _cut(folder: Path, model: Path) -> Path:
    data = model.read_bytes()
    cut = folder / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 3])
    return cut


@pytest.mark.parametrize("case", sorted(PROCESSING_CASES))
def test_processing_error_is_one_line_exception(
    case: str, processing_with_plugin, tmp_path, make_rgb, tiny_model
) -> None:  # noqa: ANN001
    params, text = PROCESSING_CASES[case](tmp_path, make_rgb, tiny_model)
    params.setdefault("OUTPUT", str(tmp_path / "refined.tif"))
    params["DEVICE"] = 1
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(QgsProcessingException) as caught:
        processing_with_plugin.run("map_refiner:refine", params, feedback=QgsProcessingFeedback())
    message = str(caught.value)
    assert text in message and "\n" not in message.strip() and "Traceback" not in message
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".aux.xml")) == [
        n for n in before if not n.endswith(".aux.xml")
    ]
    assert not (tmp_path / MARKER).exists(), "a model file was unpickled"


def test_processing_finetune_with_unusable_labels(
    processing_with_plugin, tmp_path, make_rgb, tiny_model
) -> None:  # noqa: ANN001
    labels = polygons_with_unknown_classes(tmp_path)
    assert QgsVectorLayer(str(labels), "l", "ogr").isValid()
    params = {
        "INPUT": str(make_rgb(tmp_path / "rgb.tif")),
        "LABELS": str(labels),
        "CLASS_FIELD": "c",
        "MODEL": str(tiny_model),
        "STEPS": 1,
        "DEVICE": 1,
        "OUTPUT": str(tmp_path / "new.safetensors"),
    }
    with pytest.raises(QgsProcessingException, match=r"usable class .*'lake'") as caught:
        processing_with_plugin.run("map_refiner:finetune", params, feedback=QgsProcessingFeedback())
    assert "\n" not in str(caught.value).strip()
    assert "Processing: the class field's values" in str(caught.value)
    assert not (tmp_path / "new.safetensors").exists()
    # the advanced VALUE_MAP reads such a field, as the CLI's --value-map does
    result = processing_with_plugin.run(
        "map_refiner:finetune",
        {**params, "VALUE_MAP": "lake:1"},
        feedback=QgsProcessingFeedback(),
    )
    assert Path(result["OUTPUT"]).is_file()


def test_processing_read_only_output_folder(
    processing_with_plugin, tmp_path, make_rgb, tiny_model, monkeypatch
) -> None:  # noqa: ANN001
    """Simulated (os.access says no): a real read-only mount is tested in
    tests/test_robust_disk.py, engine-side."""
    import os

    from map_refiner.engine.rasters import files

    image = make_rgb(tmp_path / "rgb.tif")
    out_dir = tmp_path / "locked"
    out_dir.mkdir()
    real = os.access
    monkeypatch.setattr(
        files.os,
        "access",
        lambda p, mode: False if mode == os.W_OK and Path(p) == out_dir else real(p, mode),
    )
    with pytest.raises(QgsProcessingException, match="is not writable; choose another one"):
        processing_with_plugin.run(
            "map_refiner:refine",
            {
                "INPUT": str(image),
                "MODEL": str(tiny_model),
                "DEVICE": 1,
                "OUTPUT": str(out_dir / "o.tif"),
            },
            feedback=QgsProcessingFeedback(),
        )
    assert list(out_dir.iterdir()) == []


def test_a_bug_in_processing_is_one_line_and_a_crash_log(
    processing_with_plugin, tmp_path, make_rgb, tiny_model, monkeypatch
) -> None:  # noqa: ANN001
    """An exception that is not a MapRefinerError (a bug) reaches Processing as one line
    naming the crash log, which holds the traceback (before: QGIS printed the traceback
    in the algorithm's log)."""
    from map_refiner import cli_crash
    from map_refiner.engine.refine import pipeline

    def bug(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ValueError("boom\nsecond line of the bug")

    monkeypatch.setattr(pipeline, "refine_raster", bug)
    logs = tmp_path / "logs"
    monkeypatch.setattr(cli_crash, "crash_log_dir", lambda: logs)
    with pytest.raises(QgsProcessingException) as caught:
        processing_with_plugin.run(
            "map_refiner:refine",
            {
                "INPUT": str(make_rgb(tmp_path / "rgb.tif")),
                "MODEL": str(tiny_model),
                "DEVICE": 1,
                "OUTPUT": str(tmp_path / "refined.tif"),
            },
            feedback=QgsProcessingFeedback(),
        )
    message = str(caught.value)
    assert "\n" not in message.strip() and "Traceback" not in message, message
    assert "internal error (ValueError: boom)" in message and "second line" not in message
    (crash,) = logs.iterdir()
    assert str(crash) in message
    text = crash.read_text()
    assert "in QGIS Processing" in text and "Traceback" in text
    assert 'raise ValueError("boom' in text and "second line of the bug" in text
    assert not (tmp_path / "refined.tif").exists()
