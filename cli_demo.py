"""``make demo``: the bundled model refines the Austin test tile, end to end.

Writes the coarse and refined GeoTIFFs, a shapefile of the refined buildings
and a before/after PNG under the output folder, and prints overall accuracy
and per-class IoU of both maps against the accurate reference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

import numpy as np

from .engine.errors import MapRefinerError
from .engine.modelfile.io import load_model
from .engine.rasters.read import open_raster
from .engine.rasters.render import overlay, side_by_side, to_rgb8, write_png
from .engine.refine.pipeline import RefineParams, refine_raster
from .engine.scoring.metrics import evaluate_rasters
from .engine.vectors.vectorize import vectorize

REFERENCE_MAP = {0: 0, 255: 1}


def _read(path: Path) -> np.ndarray:
    return open_raster(path).ReadAsArray()


def _iterations_run(path: Path) -> str:
    """What made a class map, from its band description ("5 RNN iterations, then 2 at
    0.3 m": the detail iterations too, when the model ran them)."""
    ds = open_raster(path)  # kept while its band is read
    return ds.GetRasterBand(1).GetDescription().rpartition(": ")[2]


def run_demo(
    data: Path, out_dir: Path, model_path: Path | None, device: str, stream: TextIO
) -> int:
    image = data / "austin" / "austin_dev_rgb.tif"
    reference = data / "austin" / "austin_dev_gt.tif"
    if not image.exists() or not reference.exists():
        raise MapRefinerError(
            f"The demo needs {image} and {reference}; pass --data to the "
            "folder holding austin/ (the team's shared data)."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(model_path, "cpu")
    config = model[1]
    coarse_tif, refined_tif = out_dir / "austin_dev_coarse.tif", out_dir / "austin_dev_refined.tif"
    t0 = time.perf_counter()
    for out, iters in ((coarse_tif, 0), (refined_tif, config.default_iterations)):
        refine_raster(
            RefineParams(image=image, out=out, iterations=iters, device=device, overwrite=True),
            model=model,
        )
    seconds = time.perf_counter() - t0
    shp = out_dir / "austin_dev_refined_buildings.shp"
    vec = vectorize(refined_tif, shp, classes=[config.class_names[1]], overwrite=True)
    rgb = to_rgb8(_read(image))
    ref = np.vectorize(lambda v: REFERENCE_MAP.get(int(v), 0))(_read(reference)).astype(np.uint8)
    colours = config.colours
    png = write_png(
        out_dir / "austin_dev_before_after.png",
        side_by_side(
            [
                rgb,
                overlay(rgb, _read(coarse_tif), colours),
                overlay(rgb, _read(refined_tif), colours),
                overlay(rgb, ref, colours),
            ]
        ),
    )
    stream.write(
        f"Map Refiner demo: {config.name} on {image.name} "
        f"(model resolution {config.ground_resolution_m} m, "
        f"{_iterations_run(refined_tif)}; {seconds:.1f} s for both maps)\n"
    )
    for label, path in (("coarse CNN", coarse_tif), ("CNN + RNN", refined_tif)):
        s = evaluate_rasters(path, reference, config.class_names, reference_value_map=REFERENCE_MAP)
        ious = "  ".join(f"IoU {n} {100 * v:6.2f}" for n, v in zip(config.class_names, s.iou))
        stream.write(
            f"  {label:<11} overall accuracy {100 * s.overall_accuracy:6.2f}  "
            f"mean IoU {100 * s.mean_iou:6.2f}  {ious}\n"
        )
    stream.write(
        f"wrote {coarse_tif}, {refined_tif}, {shp} ({vec.feature_count} buildings), "
        f"{png} (image | coarse | refined | reference)\n"
    )
    return 0
