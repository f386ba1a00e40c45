"""Bad rasters, models and output paths through the command line (and so the engine):
each is one ``map-refiner: error:`` line, exit 2, no traceback and nothing left on disk;
odd but usable rasters refine, with nodata where the input has none."""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from helpers_engine import UTM33N, random_model, scene, write_image
from osgeo import gdal
from safetensors.torch import save_file

from map_refiner import cli
from map_refiner.engine.modelfile.io import CONFIG_KEY, save_model

gdal.UseExceptions()
GT = (600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=61, iterations=1)
    return save_model(net, cfg, tmp_path_factory.mktemp("model") / "tiny.safetensors")


def write(
    path: Path,
    array: np.ndarray,
    gt: Sequence[float] = GT,
    epsg: int | None = UTM33N,
    nodata: float | None = None,
    options: Sequence[str] = (),
) -> Path:
    """A ``(bands, h, w)`` array of any numpy type as a GeoTIFF, closed."""
    write_image(path, array, gt, epsg, nodata, options=options)
    return path


def image(tmp: Path, name: str = "in.tif", h: int = 40, w: int = 44, bands: int = 3, **kw) -> Path:
    return write(tmp / name, scene(h, w, bands=bands, seed=62), **kw)


def run_cli(args: Sequence[object], capsys) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    """The one error line; progress-bar lines may precede it, nothing else."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if not re.match(r"^\w[\w-]* \[[#-]+\]", ln)]
    assert len(lines) == 1, err
    assert lines[0].startswith("map-refiner: error: ")
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- bad inputs: one line, exit 2, nothing written -------------------------------------------


def _truncated(tmp: Path, options: Sequence[str], keep: float) -> Path:
    full = image(tmp, "full.tif", 64, 64, options=options)
    data = full.read_bytes()
    full.unlink()
    cut = tmp / "cut.tif"
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut


def _zero_size(tmp: Path) -> Path:
    vrt = tmp / "zero.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="0" rasterYSize="10"><VRTRasterBand '
        'dataType="Byte" band="1"/></VRTDataset>'
    )
    return vrt


def _complex(tmp: Path) -> Path:
    return write(tmp / "sar.tif", scene(20, 20, seed=1).astype(np.complex64))


def _text(tmp: Path, name: str, content: bytes) -> Path:
    (tmp / name).write_bytes(content)
    return tmp / name


class _Touch:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _pickle_model(tmp: Path) -> Path:
    evil = tmp / "evil.safetensors"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Touch(tmp / "unpickled.marker")}, f)
    return evil


def _mismatched_model(tmp: Path) -> Path:
    net, cfg = random_model(("a", "b"), resolution_m=0.6)
    d = {**cfg.to_dict(), "classes": [{"name": n, "colour": [0, 0, 0]} for n in "abc"]}
    path = tmp / "mismatch.safetensors"
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()},
        str(path),
        metadata={CONFIG_KEY: __import__("json").dumps(d)},
    )
    return path


def _truncated_model(tmp: Path, model: Path) -> Path:
    data = model.read_bytes()
    return _text(tmp, "cut.safetensors", data[: len(data) // 2])


def _four_band_model(tmp: Path) -> Path:
    net, cfg = random_model(bands=4, resolution_m=0.6)
    return save_model(net, cfg, tmp / "m4.safetensors")


Builder = Callable[[Path, Path], tuple[list[object], str]]
# id -> builder(tmp, model) -> (argv after "refine", regex the error line must match)
REFINE_CASES: dict[str, Builder] = {
    "raster-1-band": lambda t, m: ([image(t, bands=1)], r"has 1 band\(s\).*\(--bands\)"),
    "raster-2-bands": lambda t, m: ([image(t, bands=2)], r"has 2 band\(s\).*\(--bands\)"),
    "raster-empty-file": lambda t, m: ([_text(t, "e.tif", b"")], r"empty file \(0 bytes\)"),
    "raster-size-zero": lambda t, m: ([_zero_size(t)], r"Invalid dataset dimensions : 0 x 10"),
    "raster-truncated-strips": lambda t, m: ([_truncated(t, (), 0.5)], "damaged or truncated"),
    "raster-truncated-header": lambda t, m: ([_truncated(t, (), 0.02)], "damaged or truncated"),
    "raster-truncated-tiled-deflate": lambda t, m: (
        [_truncated(t, ("TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE"), 0.7)],
        "damaged or truncated",
    ),
    "raster-not-a-raster": lambda t, m: (
        [_text(t, "notes.tif", b"just some text\n")],
        r"cannot read notes\.tif as a raster",
    ),
    "raster-is-a-folder": lambda t, m: ([t], "is a folder; choose a raster file"),
    "raster-missing": lambda t, m: ([t / "nope.tif"], r"Raster not found: .*nope\.tif"),
    "raster-complex": lambda t, m: ([_complex(t)], "complex numbers.*convert"),
    "raster-no-crs": lambda t, m: (
        [image(t, epsg=None)],
        r"no coordinate reference system"
        r".*--input-resolution",
    ),
    "tile-size-0": lambda t, m: ([image(t), "--tile-size", 0], "at least 16"),
    "tile-size-negative": lambda t, m: ([image(t), "--tile-size", -64], "at least 16"),
    "model-not-a-model": lambda t, m: (
        [image(t), "--model", _text(t, "m.safetensors", b"hello")],
        "not a readable Map Refiner model",
    ),
    "model-truncated": lambda t, m: ([image(t), "--model", _truncated_model(t, m)], "truncated"),
    "model-pickle": lambda t, m: (
        [image(t), "--model", _pickle_model(t)],
        "not a readable Map Refiner model",
    ),
    "model-shapes-mismatch": lambda t, m: (
        [image(t), "--model", _mismatched_model(t)],
        "do not match its configuration",
    ),
    "model-4-bands-on-rgb": lambda t, m: (
        [image(t), "--model", _four_band_model(t)],
        r"has 3 band\(s\) but the model reads",
    ),
    "model-missing": lambda t, m: (
        [image(t), "--model", t / "gone.safetensors"],
        "Model file not found",
    ),
    "out-is-input": lambda t, m: (
        [image(t), "--overwrite", "--out", t / "in.tif"],
        "one of the inputs",
    ),
    "out-is-model": lambda t, m: ([image(t), "--overwrite", "--out", m], "one of the inputs"),
    "out-exists": lambda t, m: (
        [image(t), "--out", _text(t, "old.tif", b"old")],
        "already exists; choose another name or allow overwriting",
    ),
    "out-folder-missing": lambda t, m: (
        [image(t), "--out", t / "no" / "o.tif"],
        "does not exist; create it first",
    ),
    "out-parent-is-a-file": lambda t, m: (
        [image(t), "--out", _text(t, "f", b"") / "o.tif"],
        "is a file, not a folder",
    ),
    "out-is-a-folder": lambda t, m: ([image(t), "--overwrite", "--out", t], "is a folder"),
    "scores-is-out": lambda t, m: ([image(t), "--scores", t / "o.tif"], "different files"),
    "scores-is-input": lambda t, m: (
        [image(t), "--overwrite", "--scores", t / "in.tif"],
        "one of the inputs",
    ),
}


@pytest.mark.parametrize("case", sorted(REFINE_CASES))
def test_bad_refine_input_is_one_line_and_writes_nothing(
    case: str, tmp_path: Path, capsys, model_file: Path
) -> None:
    argv, pattern = REFINE_CASES[case](tmp_path, model_file)
    if "--model" not in argv:
        argv += ["--model", model_file]
    if "--out" not in argv:
        argv += ["--out", tmp_path / "o.tif"]
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    rc, out, err = run_cli(["refine", *argv, "--device", "cpu"], capsys)
    assert rc == 2 and out == ""
    line = error_line(err)
    assert re.search(pattern, line), line
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert after == before, "an expected error must leave the folder as it was"
    assert not (tmp_path / "unpickled.marker").exists(), "a model file was unpickled"


@pytest.mark.parametrize(
    "verb_args,pattern",
    [
        (lambda t, m: ["info", _pickle_model(t)], "not a readable Map Refiner model"),
        (lambda t, m: ["info", _truncated_model(t, m)], "truncated"),
        (
            lambda t, m: [
                "finetune",
                image(t),
                _text(t, "l.gpkg", b"x"),
                "--model",
                _pickle_model(t),
                "--out",
                t / "n.safetensors",
            ],
            "not a readable Map Refiner model",
        ),
        (
            lambda t, m: [
                "finetune",
                image(t),
                _text(t, "l.gpkg", b"x"),
                "--model",
                m,
                "--out",
                m,
                "--overwrite",
            ],
            "one of the inputs",
        ),
        (
            lambda t, m: [
                "train-coarse",
                image(t),
                _text(t, "l.tif", b"x"),
                "--bands",
                "1,2,7",
                "--out",
                t / "c.safetensors",
            ],
            r"has 3 band\(s\)",
        ),
        (
            lambda t, m: ["evaluate", _truncated(t, (), 0.5), image(t, "ref.tif")],
            "damaged or truncated",
        ),
        (
            lambda t, m: ["vectorize", _truncated(t, (), 0.5), "--out", t / "v.gpkg"],
            "damaged or truncated|not a class map",
        ),
    ],
    ids=[
        "info-pickle",
        "info-truncated",
        "finetune-pickle-base",
        "finetune-out-is-base",
        "train-coarse-bands",
        "evaluate-truncated",
        "vectorize-truncated",
    ],
)
def test_other_verbs_refuse_bad_inputs_in_one_line(
    verb_args, pattern: str, tmp_path: Path, capsys, model_file: Path
) -> None:
    argv = verb_args(tmp_path, model_file)
    before = listing(tmp_path)
    sha = model_file.read_bytes()
    rc, _, err = run_cli(
        [*argv] + (["--device", "cpu"] if argv[0] in ("finetune", "train-coarse") else []), capsys
    )
    assert rc == 2
    assert re.search(pattern, error_line(err))
    assert listing(tmp_path) == before
    assert model_file.read_bytes() == sha
    assert not (tmp_path / "unpickled.marker").exists()


# --- odd but usable rasters: they refine, and nodata stays nodata -----------------------------


def _refine(
    tmp: Path, src: Path, model: Path, capsys, *extra: object
) -> tuple[np.ndarray, np.ndarray]:
    out, scores = tmp / "o.tif", tmp / "s.tif"
    rc, _, err = run_cli(
        [
            "refine",
            src,
            "--out",
            out,
            "--scores",
            scores,
            "--model",
            model,
            "--device",
            "cpu",
            "--tile-size",
            "32",
            *extra,
        ],
        capsys,
    )
    assert rc == 0, err
    assert "Traceback" not in err
    cls, probs = gdal.Open(str(out)).ReadAsArray(), gdal.Open(str(scores)).ReadAsArray()
    assert cls.shape == gdal.Open(str(src)).ReadAsArray().shape[-2:]
    valid = cls != 255
    assert set(np.unique(cls[valid])) <= {0, 1}
    np.testing.assert_allclose(probs[:, valid].sum(axis=0), 1.0, atol=1e-5)
    assert (probs[:, ~valid] == -1).all()
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []
    return cls, probs


def _rotated(angle_deg: float) -> tuple[float, ...]:
    a = math.radians(angle_deg)
    return (
        500000.0,
        0.4 * math.cos(a),
        0.4 * math.sin(a),
        4e6,
        0.4 * math.sin(a),
        -0.4 * math.cos(a),
    )


@pytest.mark.parametrize("case", ["geographic", "rotated-30", "eight-bands", "uint16", "int16"])
def test_usable_rasters_refine_everywhere(
    case: str, tmp_path: Path, capsys, model_file: Path
) -> None:
    base = scene(36, 40, bands=8, seed=63)
    kw: dict = {}
    if case == "geographic":
        kw = dict(gt=(20.0, 4e-6, 0.0, -34.0, 0.0, -4e-6), epsg=4326)
        arr = base[:3]
    elif case == "rotated-30":
        kw = dict(gt=_rotated(30.0))
        arr = base[:3]
    elif case == "eight-bands":
        arr = base
    else:
        arr = (
            base[:3].astype(np.uint16) * 200
            if case == "uint16"
            else base[:3].astype(np.int16) - 100
        )
    cls, _ = _refine(tmp_path, write(tmp_path / "in.tif", arr, **kw), model_file, capsys)
    assert (cls != 255).all(), "no nodata in, none out"
    out = gdal.Open(str(tmp_path / "o.tif"))
    assert out.GetGeoTransform() == pytest.approx(kw.get("gt", GT))


def test_rotated_grid_is_refined_in_pixel_space(tmp_path: Path, capsys, model_file: Path) -> None:
    """A rotated geotransform changes neither the pixels nor (at equal pixel size) the map."""
    arr = scene(36, 40, seed=64)
    north_up, _ = _refine(tmp_path, write(tmp_path / "in.tif", arr), model_file, capsys)
    (tmp_path / "o.tif").unlink()
    (tmp_path / "s.tif").unlink()
    (tmp_path / "o.tif.aux.xml").unlink()
    rotated, _ = _refine(
        tmp_path, write(tmp_path / "rot.tif", arr, gt=_rotated(137.0)), model_file, capsys
    )
    np.testing.assert_array_equal(rotated, north_up)


def test_nodata_regions_and_nan_come_out_as_nodata(
    tmp_path: Path, capsys, model_file: Path
) -> None:
    arr = scene(40, 44, seed=65).astype(np.float32)
    arr[:, 5:15, 10:30] = -9999.0  # a nodata hole in every band
    arr[1, 30:35, :] = np.nan  # NaN in one band only
    arr[2, 0, 0] = np.inf
    cls, probs = _refine(
        tmp_path, write(tmp_path / "in.tif", arr, nodata=-9999.0), model_file, capsys
    )
    expected = np.zeros(cls.shape, bool)
    expected[5:15, 10:30] = expected[30:35, :] = expected[0, 0] = True
    np.testing.assert_array_equal(cls == 255, expected)
    assert (probs[:, expected] == -1).all() and (probs[:, ~expected] >= 0).all()


def test_all_nodata_raster_is_all_nodata_not_invented_classes(
    tmp_path: Path, capsys, model_file: Path
) -> None:
    arr = np.full((3, 20, 24), np.nan, np.float32)
    cls, probs = _refine(tmp_path, write(tmp_path / "in.tif", arr), model_file, capsys)
    assert (cls == 255).all() and (probs == -1).all()


@pytest.mark.parametrize("how", ["alpha-band", "ALPHA=YES", "png-rgba"])
def test_rgba_alpha_is_the_validity_mask(
    how: str, tmp_path: Path, capsys, model_file: Path
) -> None:
    rgba = np.concatenate([scene(40, 40, seed=66), np.full((1, 40, 40), 255, np.uint8)])
    rgba[3, :8, :] = 0  # transparent rows
    rgba[3, 20:30, 5] = 0  # a transparent stripe
    if how == "ALPHA=YES":
        src = write(tmp_path / "in.tif", rgba, options=["ALPHA=YES", "PHOTOMETRIC=RGB"])
    else:
        src = write(tmp_path / "in.tif", rgba)
        ds = gdal.Open(str(src), gdal.GA_Update)
        ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
        ds = None
    extra: list[object] = []
    if how == "png-rgba":
        png = tmp_path / "in.png"
        gdal.Translate(str(png), str(src), format="PNG")
        src.unlink()
        src = png
        extra = ["--input-resolution", "0.4"]  # a PNG carries no georeferencing
        for p in tmp_path.glob("*.aux.xml"):
            p.unlink()
    cls, _ = _refine(tmp_path, src, model_file, capsys, *extra)
    np.testing.assert_array_equal(cls == 255, rgba[3] == 0)


def test_gdal_warnings_do_not_reach_stderr(tmp_path: Path, capfd, model_file: Path) -> None:
    """GDAL writes its warnings to the C-level stderr, beside the CLI's one line."""
    cut = _truncated(tmp_path, (), 0.02)
    with pytest.raises(RuntimeError):
        gdal.Open(str(cut)).ReadAsArray()
    assert "Warning" in capfd.readouterr().err  # GDAL does complain about this file
    rc = cli.main(
        ["refine", str(cut), "--out", str(tmp_path / "o.tif"), "--model", str(model_file)]
    )
    err = capfd.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "damaged or truncated" in err
