"""The real ``qgis_process`` finds the plugin's provider in a profile where the zip
was installed and the plugin enabled, and runs map_refiner:refine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from map_refiner.dev.desktop.qgis_profile import (
    enable_plugin,
    install_plugin,
    qgis_env,
    qgis_process_command,
)
from map_refiner.dev.package_zip import build_zip

QGIS_PROCESS = qgis_process_command()
pytestmark = pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process is not installed")


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("qgis_profile")
    zip_path = base / "map_refiner.zip"
    build_zip(zip_path)
    install_plugin(base, zip_path)
    enable_plugin(base)
    return base


def _qgis_process(
    profile: Path, args: list[str], torch: bool = True
) -> subprocess.CompletedProcess:
    env = qgis_env(profile)
    env["QT_QPA_PLATFORM"] = "offscreen"
    if not torch:
        env.pop("PYTHONPATH", None)
        env["PYTHONNOUSERSITE"] = "1"
    return subprocess.run(
        [QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_qgis_process_lists_and_runs_refine(profile, austin_rgb, tiny_model) -> None:  # noqa: ANN001
    listed = _qgis_process(profile, ["plugins"])
    assert "* map_refiner" in listed.stdout, listed.stdout + listed.stderr
    out = profile / "refined.tif"
    run = _qgis_process(
        profile,
        [
            "--json",
            "run",
            "map_refiner:refine",
            "--",
            f"INPUT={austin_rgb}",
            f"MODEL={tiny_model}",
            "ITERATIONS=1",
            f"OUTPUT={out}",
        ],
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(run.stdout[run.stdout.index("{") :])
    assert result["results"]["OUTPUT"] == str(out)
    assert out.exists()


def test_qgis_process_without_torch_says_how_to_install(profile, austin_rgb, tmp_path) -> None:  # noqa: ANN001
    probe = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the system Python has torch, so QGIS's Python is not missing it")
    run = _qgis_process(
        profile,
        ["run", "map_refiner:refine", "--", f"INPUT={austin_rgb}", f"OUTPUT={tmp_path / 'o.tif'}"],
        torch=False,
    )
    assert run.returncode != 0
    assert "needs torch" in run.stdout + run.stderr and "pip install" in run.stdout + run.stderr
    assert not (tmp_path / "o.tif").exists()


def test_qgis_process_refines_an_xyz_layer_over_an_extent(profile, tiny_model, tmp_path) -> None:  # noqa: ANN001
    """An XYZ layer on 127.0.0.1 given as ``wms://<source>`` with an EXTENT: fetched beside
    the output and refined; the JSON result names the fetched GeoTIFF."""
    from helpers_tiles import serve_tiles, web_mosaic
    from test_online_layer import TX, TY, ZOOM, xyz_layer
    from test_processing_online import extent_text

    mosaic = web_mosaic(tmp_path / "mosaic.tif", ZOOM, TX, TY, cols=3, rows=2)
    out = tmp_path / "out" / "refined.tif"
    out.parent.mkdir()
    with serve_tiles(mosaic, ZOOM) as server:
        run = _qgis_process(
            profile,
            [
                "--json",
                "run",
                "map_refiner:refine",
                "--",
                "INPUT=wms://" + xyz_layer(server.url).source(),
                f"EXTENT={extent_text(mosaic, 100, 50, 400, 300)}",
                f"MODEL={tiny_model}",
                f"OUTPUT={out}",
            ],
        )
        served = len(server.served)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(run.stdout[run.stdout.index("{") :])["results"]
    fetched = Path(result["FETCHED"])
    assert fetched.parent == out.parent and fetched.name.startswith("127.0.0.1_")
    assert served == 4 and out.exists()  # pixels 100..499 x 50..349: 2 x 2 tiles
    assert fetched.is_file() and "Fetched 4 tiles (" in run.stdout + run.stderr
