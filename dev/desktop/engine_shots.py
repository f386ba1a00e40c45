"""Screenshots of the engine installer, the iteration slider and the uncertainty layer
in the real QGIS desktop under Xvfb, from a fresh profile whose Python has no torch.

QGIS starts with the working tree linked in as the plugin and *without* the
venv's torch on its path (unlike dev/desktop/screenshots.py), so the plugin
offers its installer; dev/desktop/engine_session.py clicks through it (CPU
build), refines the Austin tile with the bundled model, moves the slider and
opens the uncertainty layer, taking PNGs into docs/screenshots/:

    .venv/bin/python -m map_refiner.dev.desktop.engine_shots [--keep-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ..package_zip import ROOT
from .qgis_profile import QUIET_DESKTOP, enable_plugin, install_plugin
from .screenshots import DATA, run_session


def run(image: Path, out_dir: Path, timeout: float, keep: bool) -> dict:
    for tool in ("Xvfb", "qgis", "import"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install xvfb qgis imagemagick)")
    work = ROOT / "out" / "desktop_engine"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    install_plugin(work)
    enable_plugin(work, QUIET_DESKTOP)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QT_QPA_PLATFORM")}
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(work), PYTHONNOUSERSITE="1")
    status = run_session(
        Path(__file__).with_name("engine_session.py"),
        work,
        env,
        image,
        work / "project" / "austin_engine.qgz",
        out_dir,
        timeout,
    )
    if not keep:  # the installed engine is about 900 MB
        shutil.rmtree(
            work / "profiles" / "default" / "python" / "map_refiner_deps", ignore_errors=True
        )
    status["work"] = str(work)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DATA / "austin" / "austin_dev_rgb.tif")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--keep-profile",
        action="store_true",
        help="keep the installed engine in out/desktop_engine",
    )
    args = parser.parse_args(argv)
    if not args.image.exists():
        raise SystemExit(f"{args.image} not found (see ../shared/data/README.md)")
    status = run(args.image, args.out_dir, args.timeout, args.keep_profile)
    print(json.dumps(status, indent=2))
    return 1 if status.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
