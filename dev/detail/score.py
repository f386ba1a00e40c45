"""Detail iterations measured: the product's refine of every shared scene finer than
the model's grid, today's and with the RNN's last iterations on a finer grid
(``refine --detail-iterations N``), and, for comparison, the whole model run at a
finer grid (the image's pixel size declared larger, so the model grid is 0.3 m).

Scores of each scene's right half, as ``dev.default_model.multiscene score``: building
IoU, and a boundary F-score (outline pixels of the map within ``--tolerance`` metres
of the reference's outline pixels, both ways). The maps are kept under
``out/detail/maps`` for ``figure.py``; docs/results_detail.md holds the table.

    python -m map_refiner.dev.detail.score --json out/detail/scores.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

from ...engine.modelfile.io import load_model, save_model
from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import building_mask, iou

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]
MAPS = ROOT / "out" / "detail" / "maps"
#: Setting name -> (detail iterations (None: the model's own), detail grid in metres
#: (None: the default, the image's own pixels but no finer than 0.15 m), model grid in
#: metres (None: 0.6 m), iterations on the model grid (None: the model's 5)).
SETTINGS: dict[str, tuple[int | None, float | None, float | None, int | None]] = {
    "today": (0, None, None, None),
    "auto": (None, None, None, None),  # the model's own detail iterations (its detail RNN)
    "detail1": (1, None, None, None),
    "detail2": (2, None, None, None),
    "detail5": (5, None, None, None),
    "detail2@0.3m": (2, 0.3, None, None),
    "detail2@own": (2, 0.01, None, None),  # the image's own pixels, however fine
    "grid0.3": (0, None, 0.3, None),
    "grid0.2": (0, None, 0.2, None),
    # Controls: as many more iterations, on the model's grid.
    "iter6": (0, None, None, 6),
    "iter7": (0, None, None, 7),
    "iter10": (0, None, None, 10),
}
#: Boundary F tolerances, metres.
TOLERANCES = (0.5, 1.0)


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the inner boundary)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=1)


def half(width: int, part: str) -> slice:
    """The columns scored: the right half (never trained on), the left one, or all."""
    return {"right": slice(width // 2, None), "left": slice(0, width // 2)}.get(part, slice(None))


def boundary_f(
    pred: np.ndarray, ref: np.ndarray, res_m: float, tol_m: float, part: str = "right"
) -> float | None:
    """F-score of the outlines within ``tol_m``: precision over the map's outline pixels,
    recall over the reference's, on ``part`` (outlines found on the whole scene);
    None where neither has an outline there."""
    cols = half(ref.shape[1], part)
    bp, br = outline(pred), outline(ref)
    near_r = ndimage.distance_transform_edt(~br, sampling=res_m) <= tol_m
    near_p = ndimage.distance_transform_edt(~bp, sampling=res_m) <= tol_m
    bp, br, near_r, near_p = bp[:, cols], br[:, cols], near_r[:, cols], near_p[:, cols]
    if not bp.any() and not br.any():
        return None
    if not bp.any() or not br.any():
        return 0.0
    precision = float(near_r[bp].mean())
    recall = float(near_p[br].mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def refine(image: Path, out: Path, model: Path | None, setting: str) -> np.ndarray:
    """The building mask of ``image`` refined with ``setting``."""
    detail, detail_m, grid_m, iterations = SETTINGS[setting]
    resolution = None
    if grid_m is not None:  # declare pixels larger: the model's grid becomes grid_m
        ds = gdal.Open(str(image))
        resolution = abs(ds.GetGeoTransform()[1]) * 0.6 / grid_m
        del ds
    refine_raster(
        RefineParams(
            image=image,
            out=out,
            model_path=model,
            iterations=iterations,
            device="cpu",
            input_resolution_m=resolution,
            detail_iterations=detail,
            detail_resolution_m=detail_m,
            overwrite=True,
        )
    )
    return building_mask(out)


def score(
    model: Path | None,
    data: Path,
    only: list[str],
    settings: list[str],
    part: str = "right",
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Building IoU and boundary F of each scene's ``part`` (right: the half no model
    was trained on) under each setting."""
    MAPS.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name, scene in scenes(data, ROOT / "out" / "multiscene" / "data").items():
        if only and name not in only:
            continue
        ds = gdal.Open(str(scene.image))
        res_m = abs(ds.GetGeoTransform()[1])
        del ds
        if res_m >= 0.6:
            continue  # not finer than the model's grid
        ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
        cols = half(ref.shape[1], part)
        for setting in settings:
            pred = refine(scene.image, MAPS / f"{name}_{setting}.tif", model, setting)
            row: dict[str, float | None] = {
                "building_iou": round(100 * iou(pred[:, cols], ref[:, cols]), 2)
            }
            for tol in TOLERANCES:
                f = boundary_f(pred, ref, res_m, tol, part)
                row[f"boundary_f_{tol:g}m"] = None if f is None else round(100 * f, 2)
            out.setdefault(name, {})[setting] = row
            print(name, setting, row, flush=True)
    return out


def markdown(res: dict[str, dict[str, dict[str, float | None]]], key: str) -> str:
    """One score of every scene and setting as a markdown table."""
    settings = list(next(iter(res.values())))
    lines = ["| scene | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for name, rows in res.items():
        cells = ["–" if rows[s][key] is None else f"{rows[s][key]:.1f}" for s in settings]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_temperature(model: Path | None, temperature: float) -> Path:
    """A copy of ``model`` (default: the bundled one) with its detail temperature set."""
    net, config = load_model(model, "cpu")
    config = copy.deepcopy(config)
    config.detail_temperature = temperature
    config.validate()
    stem = model.stem if model is not None else "bundled"
    MAPS.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no out/detail
    return save_model(net, config, MAPS.parent / f"{stem}_T{temperature:g}.safetensors", True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default="", help="comma-separated names (default: all)")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="score a copy of the model whose detail pass divides the model grid's scores "
        "by this first (ModelConfig.detail_temperature; written under out/detail/)",
    )
    ap.add_argument(
        "--part",
        choices=("right", "left", "whole"),
        default="right",
        help="the columns scored (right: the half every model here leaves out of training)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    only = [n for n in a.scenes.split(",") if n]
    model = a.model
    if a.temperature is not None:
        model = with_temperature(a.model, a.temperature)
    res = score(model, a.data, only, a.settings.split(","), a.part)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    for key in ("building_iou", *(f"boundary_f_{t:g}m" for t in TOLERANCES)):
        print(f"\n{key}\n\n{markdown(res, key)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
