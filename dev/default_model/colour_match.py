"""The bundled models' colour matching entry (session 46; engine/modelfile/colour_match.py,
engine/modelfile/colour_fit.py).

``build`` measures each band's percentiles (colour_match.PERCENTILES) over every area the
bundled default model's networks trained on (home_looks.training_areas: the left half of
every shared scene with an accurate reference but austin_dev, austin_enh whole), read as
the product reads an image's look (bundled_choice.look_pixels), pools them (the mean over
the areas) and writes the entry -- the pooled target, the areas' looks from
resources/models/default_home.json and bundled_choice.HOME_DISTANCE as ``far`` -- into the
configuration of each model named (weights unchanged):

    python -m map_refiner.dev.default_model.colour_match build \\
        resources/models/default.safetensors resources/models/general.safetensors

``--print`` only prints the entry; ``--areas xiamen,austin_enh`` builds the entry of a model
trained on those areas instead (the previous bundled model's, for the new user's study
with colours matched: docs/results_colour_match.md).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch  # noqa: F401  (before GDAL, as every dev module here)

from ...engine.modelfile.bundled_choice import HOME_DISTANCE, home_looks, look_pixels
from ...engine.modelfile.colour_fit import band_percentiles
from ...engine.modelfile.colour_match import PERCENTILES, ColourMatch
from ...engine.modelfile.io import load_model, save_model
from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from ..corrections.scenes import scenes
from .home_looks import look_of
from .multiscene import KEPT_OUT, WHOLE

ROOT = Path(__file__).resolve().parents[2]


def area_percentiles(image: Path, part: str) -> np.ndarray:
    """``image``'s band percentiles over its ``part`` ("whole" or "left" half)."""
    ds = open_raster(image)
    pixel_m = math.sqrt(math.prod(ground_resolution(raster_info(ds))))
    w, h = ds.RasterXSize, ds.RasterYSize
    window = None if part == "whole" else (0, 0, w // 2, h)
    rgb, valid = look_pixels(ds, [1, 2, 3], pixel_m, window)
    return band_percentiles(rgb, valid, PERCENTILES)


def entry(data: Path, names: list[str] | None = None) -> ColourMatch:
    """The bundled models' entry from the shared scenes in ``data``; with ``names``, the
    entry of a model trained on those areas instead (a scene's left half, austin_enh and
    ``xiamen`` whole), their looks measured here (the previous bundled model's:
    ``xiamen,austin_enh``)."""
    found = scenes(data, ROOT / "out" / "corrections" / "data")
    xiamen = data / "xiamen" / "xiamen_rgb.tif"
    areas, looks = {}, {}
    for name in names or [n for n in found if n not in KEPT_OUT]:
        image = xiamen if name == "xiamen" else found[name].image
        part = "whole" if name in WHOLE or name == "xiamen" else "left"
        areas[name] = area_percentiles(image, part)
        looks[name] = look_of(image, part)
    homes = looks if names else home_looks()
    if set(homes) != set(areas):
        raise SystemExit(f"default_home.json's areas {sorted(homes)} are not {sorted(areas)}")
    target = np.mean([areas[n] for n in sorted(areas)], axis=0)
    return ColourMatch(PERCENTILES, target, homes, HOME_DISTANCE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("models", type=Path, nargs="*")
    b.add_argument("--data", type=Path, default=Path("../shared/data"))
    b.add_argument("--print", action="store_true", dest="show")
    b.add_argument("--areas", default=None, help="another model's training areas (a,b,...)")
    a = ap.parse_args(argv)
    made = entry(a.data, a.areas.split(",") if a.areas else None).to_config()
    if a.show or not a.models:
        print(json.dumps(made, indent=1))
    for path in a.models:
        net, cfg = load_model(path)
        cfg.colour_match = made
        cfg.validate()
        save_model(net, cfg, path, overwrite=True)
        print(f"{path}: colour_match written (format version {cfg.format_version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
