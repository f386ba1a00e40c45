"""What registration's regions see: per shared scene and wrong prior (dev/prior/shifted.py
kinds), the whole prior's shift and each region's own clear peak, and how far apart
those peaks lie (what registration.REGION_SPREAD_M is compared with). The model's map
is made once per scene; no refine is run. With ``--bands DIR``, instead, the rasters
shifted.py snapped there scored in column bands: the left quarter, the middle half
(where a warp's step and the field's interpolation between regions lie), the right
quarter.

    python -m map_refiner.dev.prior.region_peaks [--kinds shift:1,shift:2,warp:1]
        [--bands out/prior_regions]
        # -> a markdown table on stdout; about 10 s a scene, alone
"""

from __future__ import annotations

import argparse
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from ...engine.labels.kept import window_grid
from ...engine.modelfile.header import DEFAULT_MODEL_PATH
from ...engine.rasters.grid import grid_of
from ...engine.refine.pipeline import RefineParams, open_refine_pass
from ...engine.refine.prior import Prior
from ...engine.refine.refine_pass import RefinePass
from ...engine.refine.registration import (
    SEARCH_M,
    agreement,
    best_offset,
    region_agreements,
    region_peak,
    region_shifts,
)
from ...engine.refine.tiling import lattice_tiles
from ..corrections.scenes import scenes
from ..corrections.study import iou
from .shifted import GEOREFERENCED, ROOT, wrong_map

gdal.UseExceptions()


def peaks(p, prior: Prior) -> tuple[str, list[str], float | None, bool]:  # noqa: ANN001
    """The whole prior's shift, each region's own peak (or why none), in ground metres
    east and south, the largest distance between two regions' own peaks, and whether
    registration moves the prior by a field."""
    pixel_m = float(min(p.resolution_m))
    radius = max(1, int(math.ceil(SEARCH_M / pixel_m)))
    full = grid_of(p.ds)
    surfaces, regions = [], []
    for tile in lattice_tiles(p.grids, p.iterations):
        res = p.predict(tile, from_prior=False)
        probs = torch.softmax(res.logits.float(), dim=0).cpu().numpy()
        cls = prior.classes_at(window_grid(full, tile.x0, tile.y0, tile.x1, tile.y1))
        surfaces.append(agreement(cls, probs, res.valid, radius))
        regions += region_agreements(cls, probs, res.valid, radius)
    whole = best_offset(surfaces, pixel_m)
    shown, own = [], []
    for _, _, c in regions:
        found = region_peak(c)
        if isinstance(found, str):
            shown.append("-")
        else:
            own.append(np.array(found) * pixel_m)
            shown.append(f"{found[1] * pixel_m:+.1f} E {found[0] * pixel_m:+.1f} S")
    spread = max((float(np.hypot(*(a - b))) for a, b in combinations(own, 2)), default=None)
    moved = f"{whole.dx * pixel_m:+.1f} E {whole.dy * pixel_m:+.1f} S"
    field = region_shifts(regions, pixel_m, whole) is not None
    return (moved if whole.applied else "in place"), shown, spread, field


def study_pass(a: argparse.Namespace, image: Path, prior: Path | None = None) -> RefinePass:
    """A refine pass over ``image`` (from ``prior``, when given) with the study's model
    and iterations (``a.model``, ``a.iterations``), for its registration surfaces; it
    writes nothing."""
    return open_refine_pass(
        RefineParams(
            image=image,
            out=a.out_dir / "unused.tif",
            device="cpu",
            model_path=a.model,
            iterations=a.iterations,
            prior=prior,
        ),
        None,
    )


def one_map(a: argparse.Namespace) -> int:
    """The regions of one image and one prior map as it is (``--image``, ``--prior``: a
    vector layer, every feature a building, or a class raster), one region a line."""
    p = study_pass(a, a.image, a.prior)
    prior = Prior(a.prior, p.config.num_classes, class_names=p.config.class_names)
    whole, shown, spread, field = peaks(p, prior)
    apart = "-" if spread is None else f"{spread:.1f} m"
    print(f"whole prior: {whole}; regions' own peaks up to {apart} apart; field: {field}")
    for i, peak in enumerate(shown):
        print(f"region {i}: {peak}")
    return 0


def bands(snapped: Path, sc: dict, kinds: list[str]) -> int:
    """Building IoU of shifted.py's snapped rasters in ``snapped`` per column band."""
    print("| scene | prior | registration | left quarter | middle half | right quarter |")
    print("|---|---|---|---|---|---|")
    for name in GEOREFERENCED:
        ref = gdal.Open(str(sc[name].reference)).ReadAsArray() > 0
        w = ref.shape[1]
        cuts = (slice(0, w // 4), slice(w // 4, 3 * w // 4), slice(3 * w // 4, w))
        for kind in kinds:
            for one, label in (("", "per region"), ("_one_shift", "one shift")):
                path = snapped / f"{name}_{kind.replace(':', '')}{one}_snapped.tif"
                if path.exists():
                    got = gdal.Open(str(path)).ReadAsArray() == 1
                    ious = [f"{100 * iou(got[:, c], ref[:, c]):.1f}" for c in cuts]
                    print(f"| {name} | {kind} | {label} | {' | '.join(ious)} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "region_peaks")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--kinds", default="shift:0,shift:1,shift:2,shift:4,drop:20,warp:1,warp:2")
    ap.add_argument("--image", type=Path, default=None, help="instead: this image ...")
    ap.add_argument("--prior", type=Path, default=None, help="... and this prior map")
    ap.add_argument("--bands", type=Path, default=None, help="shifted.py's --out-dir")
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    if a.bands:
        return bands(a.bands, sc, a.kinds.split(","))
    if a.image:
        return one_map(a)
    print("| scene | prior | whole prior | regions' own peaks (m) | apart (m) |")
    print("|---|---|---|---|---|")
    for name in GEOREFERENCED:
        s = sc[name]
        p = study_pass(a, s.image)
        like = gdal.Open(str(s.image))
        ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
        for kind in a.kinds.split(","):
            path = wrong_map(ref, like, kind, a.out_dir / f"{name}_{kind.replace(':', '')}.tif")
            whole, shown, spread, _ = peaks(p, Prior(path, p.config.num_classes, {0: 0, 1: 1}))
            apart = "-" if spread is None else f"{spread:.1f}"
            print(f"| {name} | {kind} | {whole} | {' / '.join(shown)} | {apart} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
