"""Imagery stored beyond 8 bits, matched with a power curve or without (session 49).

Each scene's image is written as 16-bit versions and refined through the product's path
with the bundled model the image chooses (as the CLI with no model named), once as the
product reads it now (a matched image stored beyond 8 bits is fitted a power curve too,
colour_fit.CURVE_POWERS) and once with that curve turned off
(``colour_fit.beyond_8_bits`` patched to False: the gains and offsets alone, as before
session 49). Whole-image building IoU:

- ``lin11``: 11-bit linear values, (v / 255)^2.2 x 2047, a display image's values taken
  back to linear (session 48's look; the curve family holds its inverse);
- ``lin11path``: the same with a path radiance added in linear space,
  ((v / 255)^2.2 x 0.85 + 0.05) x 2047, as a hazy day's sensor values: a transfer the
  curve family does not hold exactly;
- ``lin12g1.8``, ``lin16g2.4``: other curves and bit depths (a display image's values to
  the power 1.8 in 12 bits, 2.4 in 16), as other sensors' transfers might be;
- ``x256 <look>``: display-ready imagery stored at 16 bits (the looked 8-bit image of
  out/s46/looks times 256) under a look far from the training areas, which is matched
  too: the curve must not cost it.

The power each image was matched with is read from the refine's log (``power``; 1: no
curve, "-": not matched).

``CURVE_PROBE_WIDE=1`` tries session 48's powers, 0.35-1.3, instead of the product's.

    python -m map_refiner.dev.default_model.curve_probe --json out/s49/curve.json \\
        austin_dev austin_enh kampala_drone nepal_drone rio_wv2 isprs_potsdam \\
        isprs_vaihingen loveda_0 loveda_1
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from unittest import mock

import numpy as np
from osgeo import gdal

from ...engine.modelfile import colour_fit
from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import ROOT, building_mask, iou
from .bit_depth_probe import write
from .scene_probe import scene_probe_main

LOOKS = ("dark", "haze 0.3", "cool cast")
if os.environ.get("CURVE_PROBE_WIDE"):  # session 48's range, 0.35-1.3, for comparison
    colour_fit.CURVE_POWERS = tuple(round(0.35 + 0.05 * i, 2) for i in range(20))


def refine(image: Path, out: Path) -> np.ndarray:
    """The building mask of a refine as the CLI runs it with no model named: the bundled
    model the image chooses (study.refine would take the default model)."""
    refine_raster(RefineParams(image=image, out=out, overwrite=True, choose_model=True))
    return building_mask(out)


LOOKED = ROOT / "out" / "s46" / "looks"  # colour_match_probe.looked's images


class _Notes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _power(messages: list[str]) -> str:
    matched = [m for m in messages if "colours were matched" in m]
    if not matched:
        return "-"
    found = re.search(r"power curve of ([0-9.]+)", matched[-1])
    return found.group(1) if found else "1"


def scene_row(image: Path, reference: Path, work: Path) -> dict[str, object]:
    src = gdal.Open(str(image))
    a8 = src.ReadAsArray()[:3].astype(np.float64)
    ref = gdal.Open(str(reference)).ReadAsArray() > 0
    versions = {
        "lin11": np.round((a8 / 255.0) ** 2.2 * 2047),
        "lin11path": np.round(((a8 / 255.0) ** 2.2 * 0.85 + 0.05) * 2047),
        "lin12g1.8": np.round((a8 / 255.0) ** 1.8 * 4095),
        "lin16g2.4": np.round((a8 / 255.0) ** 2.4 * 65535),
    }
    for look in LOOKS:
        looked = LOOKED / f"{_scene_name(image)}_{look.replace(' ', '')}.tif"
        if looked.exists():
            versions[f"x256 {look}"] = gdal.Open(str(looked)).ReadAsArray()[:3] * 256.0
    notes = _Notes()
    logger = logging.getLogger("map_refiner")
    logger.addHandler(notes)
    level = logger.level
    logger.setLevel(logging.INFO)
    row: dict[str, object] = {}
    try:
        for key, arr in versions.items():
            path = write(arr.astype(np.uint16), src, work / "in16.tif", gdal.GDT_UInt16)
            for way in ("before", "now"):
                notes.messages.clear()
                if way == "before":
                    with mock.patch.object(colour_fit, "beyond_8_bits", lambda ds, bands: False):
                        pred = refine(path, work / "out.tif")
                else:
                    pred = refine(path, work / "out.tif")
                row[f"{key} {way}"] = round(100 * iou(pred, ref), 1)
                row[f"{key} {way} power"] = _power(notes.messages)
    finally:
        logger.removeHandler(notes)
        logger.setLevel(level)
    return row


def _scene_name(image: Path) -> str:
    """The scene's name (dev/corrections/scenes.py), as out/s46/looks names its files."""
    data = image.resolve().parents[1]  # <data>/<folder>/<image>
    for key, scene in scenes(data, ROOT / "out" / "corrections" / "data").items():
        if scene.image.resolve() == image.resolve():
            return key
    return image.stem.removesuffix("_rgb")  # the ISPRS crops' copies: <name>_rgb.tif


def main(argv: list[str] | None = None) -> int:
    return scene_probe_main(__doc__, scene_row, argv)


if __name__ == "__main__":
    raise SystemExit(main())
