"""How clearly the image's edges pick a prior's shift out of the search (session 41): the
guard a prior the model's map cannot place needs before the edges may move it.

For each scene's reference shifted by 0, 1, 2 and 4 m (a prior the image shows, off by a
shift) and for priors that do not belong to the image (the reference flipped left to
right, turned half round, another scene's reference laid on the grid), the summed edge
strength under the prior's outlines at every shift of the registration's search
(registration.outline_surface on the lattice windows' model grid, as
RefinePass._edge_offset), and what a guard would read from it: the support as drawn and
at the peak (times the image's mean edge strength), the gain at the peak over as drawn,
how far the peak stands above the rest of the search (registration.peak_standing) and
above the best shift of the prior's mirror images (registration.mirrored_surfaces).
No network runs: the figures depend on the image and the prior only.

    python -m map_refiner.dev.prior.edge_search_probe --json out/s41/edge_search.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

from ...engine.labels.kept import window_grid
from ...engine.refine.params import RefineParams
from ...engine.refine.pipeline import open_refine_pass
from ...engine.refine.prior import Prior
from ...engine.refine.refine_pass import RefinePass
from ...engine.refine.registration import (
    SEARCH_M,
    edge_support,
    mirrored_surfaces,
    outline,
    outline_surface,
    peak_standing,
)
from ...engine.refine.tiling import lattice_tiles
from ..corrections.scenes import scenes
from .meaningless import laid_on
from .misread import SCENES
from .shifted import ROOT, wrong_map

gdal.UseExceptions()


def search_figures(p: RefinePass, search_m: float = SEARCH_M) -> dict:
    """The summed outline surface of ``p``'s prior over the search and a guard's figures."""
    assert p.prior is not None
    mgrid = p.model_grid()
    pixel_m = float(p.config.ground_resolution_m)
    radius = max(1, int(math.ceil(search_m / pixel_m)))
    total, count, img_sum, img_n, objects = None, 0, 0.0, 0, 0
    mirrors = [np.zeros((2 * radius + 1,) * 2)] * 3
    for tile in lattice_tiles(p.grids, p.iterations):
        grid = window_grid(mgrid, tile.mx0, tile.my0, tile.mx1, tile.my1)
        strength = p._edge_strength(tile)
        classes = p.prior.classes_at(grid)
        s = outline_surface(classes, strength, radius)
        total = s if total is None else total + s
        mirrored = mirrored_surfaces(classes, strength, radius)
        mirrors = [m + n for m, n in zip(mirrors, mirrored)]
        count += int(outline(classes).sum())
        objects += int(ndimage.label(classes > 0)[1])
        img_sum += float(strength.sum())
        img_n += int((strength > 0).sum())
    assert total is not None
    r = radius
    iy, ix = np.unravel_index(int(np.argmax(total)), total.shape)
    drawn = edge_support((float(total[r, r]), count), (img_sum, img_n))
    peak = edge_support((float(total.max()), count), (img_sum, img_n))
    return {
        "outline_px": count,
        "objects": objects,
        "support_drawn": drawn,
        "support_peak": peak,
        "gain": float(total.max() / total[r, r]) if total[r, r] > 0 else None,
        "shift_px": [int(iy - r), int(ix - r)],
        **standing(total),
        "over_mirrors": float(total.max() / max(float(np.max(m)) for m in mirrors)),
    }


def standing(total: np.ndarray, near: int = 2) -> dict:
    """How far the surface's peak stands above the rest of the search: registration.
    peak_standing (robust deviations over every shift), its ratio to the best shift more
    than ``near`` pixels from it, and to the median shift."""
    iy, ix = np.unravel_index(int(np.argmax(total)), total.shape)
    yy, xx = np.indices(total.shape)
    away = np.maximum(abs(yy - iy), abs(xx - ix)) > near
    med = float(np.median(total))
    return {
        "z": peak_standing(total),
        "sep": float(total.max() / total[away].max()) if away.any() else None,
        "over_median": float(total.max() / med) if med > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default=",".join(SCENES + ("isprs_vaihingen",)))
    ap.add_argument("--kinds", default="shift:0,shift:1,shift:2,shift:4,flip,turn,other")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    found = scenes(a.data, ROOT / "out" / "corrections" / "data")
    names = a.scenes.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, name in enumerate(names):
            scene = found[name]
            like = gdal.Open(str(scene.image))
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            for kind in a.kinds.split(","):
                path = work / f"{name}_{kind}.tif"
                if kind.startswith("shift:"):
                    prior = wrong_map(ref, like, kind, path)
                elif kind == "flip":
                    prior = laid_on(ref[:, ::-1], like, path)
                elif kind == "turn":
                    prior = laid_on(ref[::-1, ::-1], like, path)
                else:
                    other = names[(i + 1) % len(names)]
                    theirs = gdal.Open(str(found[other].reference)).ReadAsArray() > 0
                    prior = laid_on(theirs, like, path)
                params = RefineParams(image=scene.image, out=work / "x.tif", prior=prior)
                p = open_refine_pass(params)
                p.prior = Prior(
                    prior,
                    p.config.num_classes,
                    {0: 0, 1: 1},
                    1.0,
                    class_names=p.config.class_names,
                )
                row = {"scene": name, "prior": kind, **search_figures(p)}
                rows.append(row)
                print(
                    f"{name:16s} {kind:8s} n={row['outline_px']:6d} obj={row['objects']:4d} "
                    f"drawn={row['support_drawn']:.2f} peak={row['support_peak']:.2f} "
                    f"gain={row['gain']:.2f} at {row['shift_px']} z={row['z']:.1f} "
                    f"mirrors={row['over_mirrors']:.2f}",
                    flush=True,
                )
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
