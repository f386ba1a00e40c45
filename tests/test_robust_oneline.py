"""One line, never a traceback: a bug becomes one line and a log file holding the
traceback; the inputs that used to print a traceback are each an expected error whose
line says what to do. Everything goes through the command line."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers_engine import random_model, scene, write_image
from osgeo import gdal, ogr, osr
from safetensors.torch import load_file, save_file

from map_refiner import cli, cli_commands, cli_crash
from map_refiner.engine.modelfile.io import CONFIG_KEY, save_model

gdal.UseExceptions()
GT = (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)
BAR = re.compile(r"^\w[\w-]* \[[#-]+\]")


@pytest.fixture(autouse=True)
def crash_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Crash logs of this test in its own folder, never in the user's cache."""
    folder = tmp_path / "cache"
    monkeypatch.setattr(cli_crash, "crash_log_dir", lambda: folder)
    return folder


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path]:
    """A 40 x 40 UTM image and a tiny model for it."""
    net, cfg = random_model(resolution_m=0.6, seed=1, iterations=1)
    model = save_model(net, cfg, tmp_path / "m.safetensors")
    image = tmp_path / "img.tif"
    write_image(image, scene(40, 40), GT)
    return image, model


def run_cli(args: Sequence[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = cli.main([str(a) for a in args])
    return rc, capsys.readouterr().err


def error_line(err: str) -> str:
    """The one error line; progress-bar lines may precede it, nothing else."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if not BAR.match(ln)]
    assert len(lines) == 1, err
    assert lines[0].startswith("map-refiner: error: "), err
    return lines[0]


# --- the catch-all ----------------------------------------------------------------------------


def _bug(_args: object) -> int:
    raise ValueError("an engine bug\nsecond line")


def test_a_bug_is_one_line_and_a_log_with_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, crash_logs: Path
) -> None:
    monkeypatch.setitem(cli_commands.VERBS, "info", _bug)
    rc, err = run_cli(["info"], capsys)
    assert rc == cli_crash.EXIT_INTERNAL != 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    m = re.fullmatch(
        r"map-refiner: internal error: ValueError: an engine bug; details in (\S+)\n", err
    )
    assert m, err
    log = Path(m.group(1))
    assert log.parent == crash_logs
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "second line" in text
    assert "command: map-refiner info" in text


def test_without_a_cache_folder_the_log_goes_to_the_temp_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(cli_crash, "crash_log_dir", lambda: blocked / "logs")
    monkeypatch.setattr(cli_crash.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.setitem(cli_commands.VERBS, "info", _bug)
    rc, err = run_cli(["info"], capsys)
    assert rc == cli_crash.EXIT_INTERNAL
    assert f"details in {tmp_path / 'tmp'}" in err and len(err.strip().splitlines()) == 1


def test_a_bug_while_parsing_is_caught_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_parser() -> None:
        raise ImportError("no module named dask")

    monkeypatch.setattr(cli, "build_parser", broken_parser)
    rc, err = run_cli(["info"], capsys)
    assert rc == cli_crash.EXIT_INTERNAL
    assert err.startswith("map-refiner: internal error: ImportError: no module named dask; ")


# --- the inputs that printed a traceback ------------------------------------------------------


def _edited_model(model: Path, edit: object, name: str = "edited.safetensors") -> Path:
    """``model`` with its configuration replaced by ``edit(config)``."""
    from safetensors import safe_open

    with safe_open(str(model), "pt") as f:
        config = json.loads(f.metadata()[CONFIG_KEY])
    out = model.with_name(name)
    save_file(load_file(str(model)), str(out), metadata={CONFIG_KEY: json.dumps(edit(config))})
    return out


def _two_value_colour(config: dict) -> dict:
    config["classes"][0]["colour"] = [200, 40]
    return config


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda c: [1, 2], "is a JSON list, not an object"),
        (lambda c: "text", "is a JSON str, not an object"),
        (_two_value_colour, r"colour of class 'background' .* is \[200, 40\]; a colour is three"),
        (
            lambda c: {**c, "training": [1]},
            "'training', 'corrections', 'gate_parent' or 'colour_match' entry",
        ),
        (lambda c: {**c, "default_iterations": 1e308}, "non-numeric|iterations"),
    ],
    ids=["list", "string", "two-value-colour", "training-not-object", "huge-iterations"],
)
@pytest.mark.parametrize("verb", ["refine", "info"])
def test_a_malformed_model_configuration_is_one_line(
    job: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: object,
    said: str,
    verb: str,
) -> None:
    image, model = job
    bad = _edited_model(model, edit)
    args = ["info", bad] if verb == "info" else ["refine", image, "--out", tmp_path / "o.tif"]
    rc, err = run_cli(args + (["--model", bad] if verb == "refine" else []), capsys)
    assert rc == 2 and re.search(said, error_line(err))
    assert not (tmp_path / "o.tif").exists()


HOSTILE = [None, "x", [], {}, -1, 0, 1e308, [1, 2], [[1]], True, [None]]


def test_any_hostile_value_in_any_configuration_field_is_one_line_or_works(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every field of the configuration, set to each of a list of wrong JSON values: the
    model either refines or is refused in one line; never a traceback or an internal error."""
    image, model = job
    from safetensors import safe_open

    with safe_open(str(model), "pt") as f:
        fields = list(json.loads(f.metadata()[CONFIG_KEY]))
    outcomes: dict[int, int] = {}
    for field in fields:
        for value in HOSTILE:
            bad = _edited_model(model, lambda c, f=field, v=value: {**c, f: v})  # type: ignore[misc]
            for args in (
                ["refine", image, "--out", tmp_path / "o.tif", "--model", bad, "--overwrite"],
                ["info", bad],
            ):
                rc, err = run_cli(args, capsys)
                assert rc in (0, 2), (field, value, err)
                if rc == 2:
                    error_line(err)
                outcomes[rc] = outcomes.get(rc, 0) + 1
    assert outcomes.get(2, 0) > 2 * len(fields)  # most are refused, some (a name) harmless


def test_a_nan_geotransform_is_one_line(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = job
    image = tmp_path / "nan.tif"
    write_image(image, scene(40, 40), (float("nan"), 0.5, 0.0, 4000000.0, 0.0, -0.5))
    rc, err = run_cli(["refine", image, "--out", tmp_path / "o.tif", "--model", model], capsys)
    assert rc == 2 and "georeferencing of nan.tif is broken" in error_line(err)


def test_a_binary_world_file_is_one_line_that_names_it(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = job
    image = tmp_path / "plain.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(image), 40, 40, 3, gdal.GDT_Byte)
    ds = None  # noqa: F841 (closes the file)
    image.with_suffix(".tfw").write_bytes(bytes(range(256)))
    rc, err = run_cli(["refine", image, "--out", tmp_path / "o.tif", "--model", model], capsys)
    line = error_line(err)
    assert rc == 2 and "Cannot read the georeferencing of plain.tif" in line
    assert "world file" in line


@pytest.mark.parametrize("what", ["model", "raster", "labels", "info"])
def test_a_fifo_as_an_input_is_refused_before_it_is_opened(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    """Opening a FIFO blocks until something writes into it: the run hung forever."""
    image, model = job
    fifo = tmp_path / {"model": "p.safetensors", "raster": "p.tif", "labels": "p.gpkg"}.get(
        what, "p.safetensors"
    )
    os.mkfifo(fifo)
    out = tmp_path / "o.safetensors"
    args = {
        "model": ["refine", image, "--out", tmp_path / "o.tif", "--model", fifo],
        "raster": ["refine", fifo, "--out", tmp_path / "o.tif", "--model", model],
        "labels": ["finetune", image, fifo, "--model", model, "--out", out, "--steps", "1"],
        "info": ["info", fifo],
    }[what]
    rc, err = run_cli(args, capsys)  # a hang here is the bug (pytest-timeout, or forever)
    assert rc == 2 and "p." in error_line(err) and "not a regular file" in err


class _RemovesFolder:
    """A progress bar that removes the output folder at its second report."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.calls = folder, 0

    def report(self, _fraction: float) -> None:
        self.calls += 1
        if self.calls == 2 and self.folder.exists():
            shutil.rmtree(self.folder)


@pytest.mark.parametrize("verb", ["refine", "vectorize"])
def test_the_output_folder_removed_mid_run_is_one_line(
    job: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    verb: str,
) -> None:
    image, model = job
    classes = tmp_path / "classes.tif"
    assert run_cli(["refine", image, "--out", classes, "--model", model], capsys)[0] == 0
    folder = tmp_path / "out"
    folder.mkdir()
    bar = _RemovesFolder(folder)
    monkeypatch.setattr(cli_commands, "ProgressBar", lambda label: bar.report)
    args = {
        "refine": ["refine", image, "--out", folder / "c.tif", "--model", model, "--tile-size"]
        + ["16", "--scores", folder / "s.tif"],
        "vectorize": ["vectorize", classes, "--out", folder / "v.gpkg"],
    }[verb]
    rc, err = run_cli(args, capsys)
    assert bar.calls >= 2
    assert rc == 2 and "was removed while writing" in error_line(err)


def test_a_label_crs_that_cannot_be_transformed_says_so(
    job: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was reported as a damaged file."""
    image, model = job
    labels = tmp_path / "site.gpkg"
    srs = osr.SpatialReference()
    srs.SetLocalCS("site grid")
    srs.SetLinearUnits("metre", 1.0)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(labels))
    layer = ds.CreateLayer("l", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("c", ogr.OFTInteger))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("c", 1)
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((2 2,10 2,10 10,2 10,2 2))"))
    layer.CreateFeature(feature)
    ds = None
    out = tmp_path / "t.safetensors"
    args = ["train-rnn", image, labels, "--class-field", "c", "--model", model, "--out", out]
    rc, err = run_cli(args + ["--steps", "1"], capsys)
    line = error_line(err)
    assert rc == 2 and "cannot be transformed to the raster's CRS" in line
    assert "damaged" not in line and not out.exists()
