"""One round of the correction loop, timed as a user lives it: fine-tune on 16
polygons, then refine the whole raster again with the new model and compare that map with
the one before the round (the plugin's changes layer; session 38).

The raster is a 2000 x 2000 px crop of the Xiamen mosaic (about 0.54 m pixels, so
its model grid is nearly as large: the heaviest case for a 2000 px raster). The
polygons are 8 OpenStreetMap buildings of the crop and 8 background squares, in
the mask's classes (the figures are about time, not accuracy). ``--fine``: the same
2000 x 2000 px from a 1000 x 1000 px crop resampled to half its pixel size (0.27 m), so
the refine ends with the bundled model's detail iterations (0.3 m aerial's case).

    python -m map_refiner.dev.benchmarks.bench_corrections [--data ../shared/data] [--runs N]
        [--fine] [--folds N] [--ratio partner|snap|gate]

``--ratio``: rounds with a setting off and on in turn, and the ratio of their best times
(``partner``: the anchors' partner, ``--partner-ratio`` too; ``snap``:
FitParams.snap_outlines; ``gate``: FitParams.change_gate, the round's refine then runs
its parent's networks too).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.scoring.changes import drawn_by, map_changes
from ...training.corrections.finetune import finetune
from ...training.corrections.fit import FitParams
from ...training.tile import LabelSource

SIDE = 2000
#: ``--ratio``'s settings: the FitParams overrides of a round without it and with it.
RATIOS: dict[str, tuple[dict, dict]] = {
    "partner": ({"anchor_partner": ""}, {}),
    "snap": ({"snap_outlines": False}, {"snap_outlines": True}),
    "gate": ({"change_gate": 0.0}, {}),
}
ORIGIN = (3800, 2600)  # the bench's crop of the mosaic (bench.make_crop), fully covered


def crop(data: Path, tmp: Path, scale: int = 1) -> dict[str, Path]:
    """The image crop and the OSM mask on the same pixels (``scale`` 2: a crop of half
    the side resampled to SIDE px, pixels half the size)."""
    from osgeo import gdal

    out = {}
    side = SIDE // scale
    for key, name, how in (
        ("image", "xiamen_rgb.tif", "bilinear"),
        ("mask", "xiamen_osm_buildings_mask.tif", "nearest"),
    ):
        out[key] = tmp / f"{key}.tif"
        gdal.Translate(
            str(out[key]),
            str(data / "xiamen" / name),
            srcWin=[ORIGIN[0], ORIGIN[1], side, side],
            width=SIDE,
            height=SIDE,
            resampleAlg=how,
        )
    return out


def polygons(files: dict[str, Path], path: Path, count: int = 16) -> Path:
    """``count // 2`` building outlines from the mask and as many background squares."""
    from osgeo import gdal
    from scipy import ndimage

    from ..corrections.users import write_class_polygons

    ds = gdal.Open(str(files["mask"]))
    mask = ds.GetRasterBand(1).ReadAsArray() == 1
    lab, n = ndimage.label(mask)
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    keep = np.zeros_like(mask, dtype=np.uint8)
    for i in np.argsort(-sizes)[: count // 2]:
        keep[lab == i + 1] = 2  # building
    rng = np.random.default_rng(0)
    free = ndimage.binary_dilation(mask, iterations=10)
    placed = 0
    while placed < count - count // 2:
        y, x = (int(v) for v in rng.integers(0, SIDE - 40, size=2))
        if not free[y : y + 40, x : x + 40].any() and not keep[y : y + 40, x : x + 40].any():
            keep[y : y + 40, x : x + 40] = 1  # background
            placed += 1
    return write_class_polygons(keep, ds, path)


def correction_round(
    data: Path,
    tmp: Path | None = None,
    fine: bool = False,
    folds: int | None = None,
    settings: dict | None = None,
) -> dict[str, float]:
    """Seconds of one round (fine-tune with the CLI's defaults, or ``folds`` held-out
    phases, or other FitParams ``settings``, then refine)."""
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        d = Path(d)
        files = crop(data, d, 2 if fine else 1)
        gpkg = polygons(files, d / "corrections.gpkg")
        parent = d / "parent.tif"  # the map the user drew on (not part of the round)
        refine_raster(RefineParams(image=files["image"], out=parent, device="cpu"))
        t0 = time.perf_counter()
        res = finetune(
            files["image"],
            LabelSource(gpkg, class_field="class", mode="sparse"),
            d / "round.safetensors",
            params=FitParams(
                **({} if folds is None else {"folds": folds}),
                **(settings or {}),
            ),
            device="cpu",
        )
        t1 = time.perf_counter()
        refine_raster(
            RefineParams(
                image=files["image"], out=d / "round.tif", model_path=res.model, device="cpu"
            )
        )
        t2 = time.perf_counter()
        # what the plugin does after a round's refine: the changes against the parent's
        # map, those outside the drawn polygons apart (ui/jobs/refine_job.map_changes_of)
        changes = map_changes(
            parent,
            d / "round.tif",
            d / "round_changes.tif",
            drawn=drawn_by(res.model, d / "round.tif"),
        )
        t3 = time.perf_counter()
    return {
        "pixels": float(SIDE * SIDE),
        "polygons": float(res.polygons),
        "finetune_s": t1 - t0,
        "fit_s": res.seconds,
        "steps": float(res.steps),
        "refine_s": t2 - t1,
        "changes_s": t3 - t2,
        "changed_share": changes.changed_share,
        "round_s": t3 - t0,
        "adopted": float(res.adopted),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument(
        "--runs", type=int, default=1, help="rounds to time (each printed, then the best)"
    )
    ap.add_argument("--fine", action="store_true", help="0.27 m pixels: detail iterations run")
    ap.add_argument("--folds", type=int, default=None, help="FitParams.folds (default: its own)")
    ap.add_argument(
        "--ratio",
        choices=sorted(RATIOS),
        default=None,
        help="time rounds with the setting off and on in turn, and print the ratio",
    )
    ap.add_argument("--partner-ratio", action="store_true", help="the same as --ratio partner")
    a = ap.parse_args(argv)
    which = "partner" if a.partner_ratio else a.ratio
    if which:
        both: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(max(1, a.runs)):
            for on in (False, True):
                r = correction_round(
                    a.data, fine=a.fine, folds=a.folds, settings=RATIOS[which][int(on)]
                )
                print(json.dumps({which: on, **r}))
                both[on].append(r["round_s"])
        best = {k: min(v) for k, v in both.items()}
        print(
            f"best round: {best[True]:.1f} s with {which}, {best[False]:.1f} s without "
            f"({best[True] / best[False]:.2f}x)"
        )
        return 0
    runs = [correction_round(a.data, fine=a.fine, folds=a.folds) for _ in range(max(1, a.runs))]
    for r in runs:
        print(json.dumps(r))
    if len(runs) > 1:
        print("best:", json.dumps(min(runs, key=lambda r: r["round_s"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
