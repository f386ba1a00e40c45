"""Screenshots of the real QGIS desktop running Map Refiner, under Xvfb.

Installs the working tree as a plugin in a throwaway profile, starts Xvfb (1440 x 900;
1920 x 1080 for --session rounds) and QGIS with dev/desktop/session.py, which opens the
dialog on the Austin test tile, refines it and saves PNGs to docs/screenshots/:

    .venv/bin/python -m map_refiner.dev.desktop.screenshots [--model M.safetensors]
        [--session refine|rounds|online|dropped|prior|snap]

Without --model it uses the bundled model, or a seeded untrained model when
the bundled one is missing (the screenshots then show the UI, not accuracy).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..package_zip import ROOT
from .qgis_profile import QUIET_DESKTOP, enable_plugin, install_plugin, qgis_env

DATA = ROOT.parent / "shared" / "data"
SCREEN = "1440x900"
# rounds: room for a layer tree whose round names read in full, the dialog wide enough
# for its rounds list, and the image left of it
SCREENS = {"rounds": "1920x1080", "dropped": "1920x1080"}


def untrained_model(folder: Path) -> Path:
    import torch

    from ...engine.modelfile.config import ModelConfig, make_classes
    from ...engine.modelfile.io import build_model, save_model

    torch.manual_seed(0)
    cfg = ModelConfig(
        classes=make_classes(["background", "building"]),
        ground_resolution_m=0.6,
        name="untrained demo model",
    )
    return save_model(build_model(cfg), cfg, folder / "untrained.safetensors")


def choose_model(arg: Path | None, work: Path) -> str:
    from ...engine.modelfile.io import default_model_exists

    if arg:
        return str(arg.resolve())
    if default_model_exists():
        return ""  # the dialog's "Bundled default model"
    print("warning: no bundled model yet; using an untrained one", file=sys.stderr)
    return str(untrained_model(work))


def free_display() -> int:
    for number in range(91, 140):
        if not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise SystemExit("no free X display number")


SESSIONS = {
    "refine": "session.py",
    "rounds": "rounds_session.py",
    "online": "online_session.py",
    "dropped": "dropped_session.py",
    "prior": "prior_session.py",
    "snap": "snap_session.py",
    "survey": "survey_session.py",
}
XIAMEN_TILES = (2048, 2048, 2048, 2048)  # the mosaic window served as XYZ tiles (online)


def run(
    image: Path,
    out_dir: Path,
    model: Path | None,
    timeout: float,
    session: str = "refine",
    corrections: Path | None = None,
    prior: Path | None = None,
) -> dict:
    for tool in ("Xvfb", "qgis", "import"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install xvfb qgis imagemagick)")
    # Not under /tmp: QGIS marks layers there as temporary in the Layers panel.
    work = ROOT / "out" / "desktop_screenshots"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    install_plugin(work)
    enable_plugin(work, QUIET_DESKTOP)
    env = qgis_env(work)
    env.update(MAP_REFINER_MODEL=choose_model(model, work))
    reference = image.with_name(image.name.replace("_rgb.tif", "_buildings.gpkg"))
    if reference.exists():  # a copy: QGIS may write beside a GeoPackage it opens
        (work / "data").mkdir(exist_ok=True)
        env.update(MAP_REFINER_REFERENCE=str(shutil.copy(reference, work / "data")))
    if corrections is not None:  # a copy too (the dropped session fine-tunes on it)
        (work / "data").mkdir(exist_ok=True)
        env.update(MAP_REFINER_CORRECTIONS=str(shutil.copy(corrections, work / "data")))
    if prior is not None:  # a copy: QGIS may write beside a GeoPackage it opens
        (work / "data").mkdir(exist_ok=True)
        env.update(MAP_REFINER_PRIOR=str(shutil.copy(prior, work / "data")))
    env.pop("QT_QPA_PLATFORM", None)
    server = None
    if session == "online":  # the image's tiles on 127.0.0.1, the view at their centre
        server, url = online_service(image, work)
        env.update(MAP_REFINER_XYZ_URL=url, MAP_REFINER_VIEW=online_view(image))
    try:
        return run_session(
            Path(__file__).with_name(SESSIONS[session]),
            work,
            env,
            image,
            work / "project" / f"{image.stem.split('_')[0]}_demo.qgz",
            out_dir,
            timeout,
            SCREENS.get(session, SCREEN),
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


def online_service(image: Path, work: Path) -> tuple[subprocess.Popen, str]:
    from .tile_server import cut_tiles, serve

    cut_tiles(image, work / "tiles", XIAMEN_TILES)
    return serve(work / "tiles")


def online_view(image: Path) -> str:
    """A view of 1100 x 700 pixels at the served window's centre (EPSG:3857)."""
    from osgeo import gdal

    gt = gdal.OpenEx(str(image), gdal.OF_RASTER | gdal.OF_READONLY).GetGeoTransform()
    col = XIAMEN_TILES[0] + XIAMEN_TILES[2] / 2
    row = XIAMEN_TILES[1] + XIAMEN_TILES[3] / 2
    x, y = gt[0] + col * gt[1], gt[3] + row * gt[5]
    return f"{x - 550 * gt[1]},{y - 350 * gt[1]},{x + 550 * gt[1]},{y + 350 * gt[1]}"


def copy_image(image: Path, work: Path) -> Path:
    """QGIS writes statistics (.aux.xml) beside the rasters it opens: show a copy,
    never the shared original."""
    (work / "data").mkdir(exist_ok=True)
    return Path(shutil.copy(image, work / "data" / image.name))


def run_session(
    session: Path,
    work: Path,
    env: dict,
    image: Path,
    project: Path,
    out_dir: Path,
    timeout: float,
    screen: str = SCREEN,
) -> dict:
    """QGIS under a fresh Xvfb display running ``session`` (dev/desktop/steps.py
    reads the MAP_REFINER_* variables set here); its status, shots copied to ``out_dir``."""
    shots = work / "shots"
    shots.mkdir()
    display = free_display()
    env = dict(
        env,
        DISPLAY=f":{display}",
        MAP_REFINER_SHOTS=str(shots),
        MAP_REFINER_IMAGE=str(copy_image(image, work)),
        MAP_REFINER_SCREEN=screen,
        MAP_REFINER_PROJECT=str(project),
    )
    xvfb = subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", f"{screen}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        with open(work / "qgis.log", "w") as log:
            subprocess.run(
                ["qgis", "--nologo", "--noversioncheck", "--code", str(session)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    status_file = shots / "status.json"
    if not status_file.exists():
        raise SystemExit(f"QGIS ended without a status; see {work / 'qgis.log'}")
    status = json.loads(status_file.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in status.get("shots", []):
        shutil.copy(shots / name, out_dir / name)
    status["work"] = str(work)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DATA / "austin" / "austin_dev_rgb.tif")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument(
        "--session",
        choices=SESSIONS,
        default="refine",
        help="refine: dialog, refine, export, correction layer; rounds: two fine-tune "
        "rounds, undo, export (needs the image's *_buildings.gpkg reference beside it); "
        "online: an XYZ layer of the image's tiles on 127.0.0.1, fetched and refined "
        "(--image ../shared/data/xiamen/xiamen_rgb.tif); dropped: a fine-tune on "
        "--corrections whose fit the flip check drops, taken with Use dropped fit; "
        "prior: --prior (a polygon layer, e.g. OSM buildings) as the dialog's Start "
        "from, refined, then flagged by Processing's compare; survey: four tiles of the "
        "image (--image ../shared/data/xiamen/xiamen_rgb.tif), Processing's survey model "
        "on them, each refined with it",
    )
    parser.add_argument(
        "--corrections",
        type=Path,
        help="correction polygons (a GeoPackage with a class field) for --session dropped",
    )
    parser.add_argument(
        "--prior",
        type=Path,
        help="the map the user has (a polygon layer) for --session prior",
    )
    args = parser.parse_args(argv)
    if not args.image.exists():
        raise SystemExit(f"{args.image} not found (see ../shared/data/README.md)")
    if args.session == "prior" and args.prior is None:
        raise SystemExit("--session prior needs --prior LAYER.gpkg")
    status = run(
        args.image,
        args.out_dir,
        args.model,
        args.timeout,
        args.session,
        args.corrections,
        args.prior,
    )
    print(json.dumps(status, indent=2))
    return 1 if status.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
