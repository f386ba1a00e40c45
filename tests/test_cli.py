"""The command line: help for every verb, one-line errors, refine and info end to end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_engine import make_tif, random_model
from osgeo import gdal

from map_refiner import cli
from map_refiner.cli_progress import ProgressBar
from map_refiner.engine.modelfile.header import GENERAL_MODEL_PATH
from map_refiner.engine.modelfile.io import DEFAULT_MODEL_PATH, save_model
from map_refiner.engine.networks.models import count_parameters

gdal.UseExceptions()
VERBS = sorted(cli.build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net, cfg = random_model(("background", "building"), resolution_m=0.6, seed=31, iterations=2)
    return save_model(net, cfg, tmp_path_factory.mktemp("model") / "tiny.safetensors")


def run_cli(args, capsys):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("map-refiner: error:")
    assert "Traceback" not in err


def test_every_verb_is_known() -> None:
    assert set(VERBS) >= {
        "refine",
        "train-coarse",
        "train-rnn",
        "finetune",
        "evaluate",
        "vectorize",
        "info",
        "demo",
    }


@pytest.mark.parametrize("verb", [None] + VERBS)
def test_help_exits_zero(verb, capsys) -> None:
    assert cli.main(([verb] if verb else []) + ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: map-refiner" + (f" {verb}" if verb else ""))


def test_refine_missing_file_is_one_line(tmp_path: Path, capsys, model_file: Path) -> None:
    rc, out, err = run_cli(
        ["refine", tmp_path / "missing.tif", "--out", tmp_path / "o.tif", "--model", model_file],
        capsys,
    )
    assert rc == 2 and out == ""
    assert_one_error_line(err)
    assert "missing.tif" in err
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--iterations", "-1"], "between 0 and 100"),
        (["--iterations", "99999999999999999999"], "between 0 and 100"),
        (["--bands", "1,2,7"], "--bands"),
        (["--device", "cuda"], "CUDA"),
    ],
)
def test_refine_user_errors_are_one_line(
    tmp_path: Path, capsys, model_file: Path, extra, message: str
) -> None:
    if "cuda" in extra:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    image = make_tif(tmp_path / "in.tif", 24, 24)
    rc, _, err = run_cli(
        ["refine", image, "--out", tmp_path / "o.tif", "--model", model_file] + extra, capsys
    )
    assert rc == 2
    assert_one_error_line(err)
    assert message in err


@pytest.mark.parametrize("bands", ["a,b", "1,,2", ""])
def test_bad_band_list_is_a_usage_error(tmp_path: Path, capsys, bands: str) -> None:
    rc, _, err = run_cli(
        ["refine", tmp_path / "in.tif", "--out", tmp_path / "o.tif", "--bands", bands], capsys
    )
    assert rc == 2
    assert_one_error_line(err)  # a usage error is one line too now
    assert "argument --bands" in err


def test_refine_writes_the_output(tmp_path: Path, capsys, model_file: Path) -> None:
    image = make_tif(tmp_path / "in.tif", 60, 50, seed=3)
    out, scores = tmp_path / "classes.tif", tmp_path / "scores.tif"
    coarse = tmp_path / "coarse.tif"
    rc, stdout, _ = run_cli(
        [
            "refine",
            image,
            "--out",
            out,
            "--model",
            model_file,
            "--scores",
            scores,
            "--coarse",
            coarse,
            "--tile-size",
            "40",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert rc == 0
    assert stdout.startswith(f"wrote {out} (2 iterations,")
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize) == (50, 60)
    assert gdal.Open(str(scores)).RasterCount == 2
    assert gdal.Open(str(coarse)).RasterCount == 1
    rc, _, err = run_cli(["refine", image, "--out", out, "--model", model_file], capsys)
    assert rc == 2 and "already exists" in err
    rc, _, _ = run_cli(
        [
            "refine",
            image,
            "--out",
            out,
            "--model",
            model_file,
            "--overwrite",
            "--iterations",
            "0",
            "--bands",
            "3,2,1",
        ],
        capsys,
    )
    assert rc == 0


def test_refine_without_crs_uses_input_resolution(tmp_path: Path, capsys, model_file: Path) -> None:
    image = make_tif(tmp_path / "nocrs.tif", 30, 30, epsg=None, geotransform=(0, 1, 0, 0, 0, -1))
    rc, _, err = run_cli(
        ["refine", image, "--out", tmp_path / "o.tif", "--model", model_file], capsys
    )
    assert rc == 2 and "--input-resolution" in err
    rc, _, _ = run_cli(
        [
            "refine",
            image,
            "--out",
            tmp_path / "o.tif",
            "--model",
            model_file,
            "--input-resolution",
            "0.3",
        ],
        capsys,
    )
    assert rc == 0 and (tmp_path / "o.tif").exists()


def test_info_prints_the_model_json(capsys, model_file: Path) -> None:
    rc, out, _ = run_cli(["info", model_file], capsys)
    assert rc == 0
    d = json.loads(out)
    sidecar = json.loads(model_file.with_suffix(".json").read_text())
    assert d.pop("parameters") == count_parameters(random_model(("a", "b"))[0])
    assert d == sidecar
    assert d["classes"][1]["name"] == "building" and d["ground_resolution_m"] == 0.6


@pytest.mark.parametrize(
    "verb_args",
    [
        ["train-coarse", "IMG", "LAB", "--out", "OUT", "--steps", "0"],
        ["train-coarse", "IMG", "LAB", "--out", "OUT", "--lr", "1e30"],
        ["train-coarse", "IMG", "LAB", "--out", "OUT", "--lr", "nan"],
        ["train-coarse", "IMG", "LAB", "--out", "OUT", "--batch-size", "-3"],
        ["train-coarse", "IMG", "LAB", "--out", "OUT", "--resolution", "1e-300"],
        ["train-coarse", "IMG", "LAB", "--out", "OUT", "--seed", "-1"],
        ["train-rnn", "IMG", "LAB", "--out", "OUT", "--iterations", "99999999999"],
        ["finetune", "IMG", "LAB", "--out", "OUT", "--steps", "0"],
        ["refine", "IMG", "--out", "OUT", "--input-resolution", "inf"],
        ["refine", "IMG", "--out", "OUT", "--tile-size", "100000000"],
        ["vectorize", "IMG", "--out", "OUT", "--min-area", "-1"],
    ],
)
def test_out_of_range_numbers_are_one_line_before_any_work(capsys, verb_args) -> None:
    rc, out, err = run_cli(verb_args, capsys)
    assert rc == 2 and out == ""
    assert_one_error_line(err)
    assert verb_args[-2] in err


def test_help_still_exits_zero(capsys) -> None:
    rc, out, _ = run_cli(["refine", "--help"], capsys)
    assert rc == 0 and "--allow-large" in out


def test_info_names_a_fine_tuned_round_and_its_parent(capsys, tmp_path: Path) -> None:

    net, cfg = random_model(("background", "building"))
    cfg.name = "tanzania — round 2 (7 corrections)"
    cfg.training["finetune"] = [
        {"image": "tanzania.tif", "round": 1, "parent": "bundled", "adopted": True},
        {"image": "tanzania.tif", "round": 2, "parent": "r1.safetensors", "adopted": False},
    ]
    path = save_model(net, cfg, tmp_path / "r2.safetensors")
    rc, out, _ = run_cli(["info", path], capsys)
    assert rc == 0
    d = json.loads(out)
    assert next(iter(d)) == "round"  # printed first
    assert d["round"]["name"] == "tanzania — round 2 (7 corrections)"
    assert d["round"]["round"] == 2 and d["round"]["parent"] == "r1.safetensors"
    assert d["round"]["adopted"] is False


def test_info_on_the_bundled_model(capsys) -> None:
    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("the bundled default model is not in this checkout")
    rc, out, _ = run_cli(["info"], capsys)
    assert rc == 0
    d = json.loads(out)
    assert d["architecture"] == "maggiori2017-fcn-rnn" and d["parameters"] > 100_000


def test_info_names_the_bundled_general_model(capsys) -> None:
    if not GENERAL_MODEL_PATH.exists():
        pytest.skip("the bundled general model is not in this checkout")
    rc, out, _ = run_cli(["info", "general"], capsys)
    assert rc == 0
    d = json.loads(out)
    assert d["name"].startswith("Map Refiner general")
    assert d["training"]["trunk"]["left_out"] == ["austin_dev"]


def test_model_names_stand_for_the_bundled_models(tmp_path: Path, monkeypatch) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["refine", "in.tif", "--out", "o.tif", "--model", "general"])
    assert args.model == GENERAL_MODEL_PATH
    args = parser.parse_args(
        ["finetune", "in.tif", "c.gpkg", "--out", "n.safetensors", "--model", "default"]
    )
    assert args.model == DEFAULT_MODEL_PATH
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general").write_bytes(b"")  # a file of that name is the user's own
    args = parser.parse_args(["refine", "in.tif", "--out", "o.tif", "--model", "general"])
    assert args.model == Path("general")


def test_refine_and_finetune_without_a_model_choose_one_for_the_image(
    tmp_path: Path, capsys, monkeypatch, model_file: Path
) -> None:  # noqa: ANN001
    """No --model: the engine chooses the bundled model for the image and the CLI prints
    which and why; a model named (default included) is taken as named."""
    from map_refiner.engine.modelfile.bundled_choice import ModelChoice

    asked = []

    def choose(image, bands, input_m):  # noqa: ANN001, ANN202
        asked.append(Path(image))
        return ModelChoice(model_file, 9.9, "somewhere", "the tiny model, for the test")

    monkeypatch.setattr("map_refiner.engine.refine.pipeline.choose_bundled", choose)
    image = make_tif(tmp_path / "in.tif", 40, 40, seed=5)
    common = ["--iterations", "1", "--device", "cpu"]
    rc, stdout, _ = run_cli(["refine", image, "--out", tmp_path / "a.tif", *common], capsys)
    assert rc == 0 and asked == [image]
    assert "model: the tiny model, for the test" in stdout
    rc, stdout, _ = run_cli(
        ["refine", image, "--out", tmp_path / "b.tif", "--model", model_file, *common], capsys
    )
    assert rc == 0 and len(asked) == 1 and "model:" not in stdout
    seen = []

    def finetune(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append((args[3], kwargs["choose_base"]))
        raise KeyboardInterrupt  # enough: the arguments are what is checked

    monkeypatch.setattr("map_refiner.training.corrections.finetune.finetune", finetune)
    for extra, expected in (
        ([], (None, True)),
        (["--model", "default"], (DEFAULT_MODEL_PATH, False)),
    ):
        run_cli(["finetune", image, image, "--out", tmp_path / "n.safetensors", *extra], capsys)
        assert seen[-1] == expected


def test_info_on_a_bad_file_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a model")
    rc, out, err = run_cli(["info", bad], capsys)
    assert rc == 2 and out == ""
    assert_one_error_line(err)


def test_keyboard_interrupt_exits_130(capsys, monkeypatch) -> None:
    from map_refiner import cli_commands

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_commands.VERBS, "info", interrupted)
    rc, _, err = run_cli(["info"], capsys)
    assert rc == 130 and "interrupted" in err


def test_progress_bar_follows_redirected_stderr(capsys) -> None:
    bar = ProgressBar("job")
    bar(0.5)
    bar(1.0)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("job [###############---------------]  50.0%")
    assert err[-1].startswith("job [##############################] 100.0%")
    buf = io.StringIO()
    quiet = ProgressBar("q", stream=buf)
    for i in range(100):
        quiet(i / 100)
    quiet(1.0)
    assert len(buf.getvalue().splitlines()) == 2  # first call and the end; not 101 lines


def test_as_a_subprocess(tmp_path: Path, model_file: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    # Run outside the repository so that the installed package is what gets imported.
    done = subprocess.run(
        [sys.executable, "-m", "map_refiner", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and "refine" in done.stdout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "map_refiner",
            "refine",
            "missing.tif",
            "--out",
            "o.tif",
            "--model",
            str(model_file),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert_one_error_line(done.stderr)
