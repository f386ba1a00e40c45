"""What a round's fitted map looks like, from figures a check could compute without the
reference: the maps ``study --keep-maps DIR`` saved (save_maps), one line a round and the
ranges per scene and outcome.

    python -m map_refiner.dev.corrections.map_figures out/corrections/maps_s19 [--data DIR]

A round is ``dropped`` when its fit passed the held-out check and the flip check turned
it down, ``adopted`` when it was kept, ``none`` when no fit passed; ``change`` is what the
fit would do to the undrawn half's building IoU had it been adopted (the study's
``after_fit - before``: the only figure here that uses the reference). With ``--data``
(the shared data folder) the scenes' images give what the added pixels look like
(colour_figures).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from osgeo import gdal
from scipy import ndimage

from .scenes import scenes

#: A fitted building object this many times the largest drawn building polygon or more
#: counts as a flood.
FLOOD_TIMES = 3


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The starting and fitted building maps, the drawn labels (0 none, 1 background, 2
    building) and the study's row."""
    z = np.load(path)
    shape = tuple(int(v) for v in z["shape"])
    n = shape[0] * shape[1]
    pred = np.unpackbits(z["pred"])[:n].reshape(shape).astype(bool)
    fitted = np.unpackbits(z["fitted"])[:n].reshape(shape).astype(bool)
    return pred, fitted, z["drawn"], json.loads(str(z["row"]))


def changes(
    pred: np.ndarray, fitted: np.ndarray, drawn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The undrawn pixels, and those of them the fit turns to building and to background."""
    undrawn = drawn == 0
    return undrawn, ~pred & fitted & undrawn, pred & ~fitted & undrawn


def figures(pred: np.ndarray, fitted: np.ndarray, drawn: np.ndarray) -> dict[str, float]:
    """Shares (percent of the image) of the undrawn pixels the fit turns to building and
    to background, the share of those it turns to building that lie in flood objects,
    the fitted objects' median size (pixels) and the drawn pixels' building share."""
    _, added, removed = changes(pred, fitted, drawn)
    polygons, _ = ndimage.label(drawn == 2)
    largest = int(np.bincount(polygons.ravel())[1:].max(initial=0))
    objects, count = ndimage.label(fitted)
    sizes = np.bincount(objects.ravel())
    sizes[0] = 0
    flood = sizes[objects] >= FLOOD_TIMES * max(largest, 1)
    drawn_px = int((drawn > 0).sum())
    return {
        "added": 100 * float(added.mean()),
        "removed": 100 * float(removed.mean()),
        "flood": 100 * float((added & flood).sum()) / max(1, int(added.sum())),
        "median_object": float(np.median(sizes[1:])) if count else 0.0,
        "drawn_building": 100 * float((drawn == 2).sum()) / max(1, drawn_px),
    }


def colour_figures(
    image: np.ndarray, pred: np.ndarray, fitted: np.ndarray, drawn: np.ndarray
) -> dict[str, float]:
    """How far (Euclidean, in the image's values over its first three bands) the mean
    colour of the undrawn pixels the fit turns to building lies from the starting map's
    buildings and from the background both maps keep, and the ratio of the two (under 1:
    the added pixels look more like the map's buildings)."""
    undrawn, added_px, _ = changes(pred, fitted, drawn)
    rgb = image[:3].astype(np.float64)

    def mean(mask: np.ndarray) -> np.ndarray:
        return rgb[:, mask].mean(axis=1) if mask.any() else np.full(3, np.nan)

    added = mean(added_px)
    to_building = float(np.linalg.norm(added - mean(pred & undrawn)))
    to_background = float(np.linalg.norm(added - mean(~pred & ~fitted & undrawn)))
    return {
        "to_building": to_building,
        "to_background": to_background,
        "colour_ratio": to_building / to_background if to_background > 0 else float("nan"),
    }


def outcome(row: dict) -> str:
    if row["passed_held_out"] and not row["adopted"]:
        return "dropped"
    return "adopted" if row["adopted"] else "none"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a study's --keep-maps folder")
    ap.add_argument("--data", type=Path, default=None, help="the shared data, for colours")
    a = ap.parse_args(argv)
    found = scenes(a.data, a.folder.parent / "data") if a.data is not None else {}
    images: dict[str, np.ndarray] = {}
    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for path in sorted(a.folder.glob("*.npz")):
        pred, fitted, drawn, row = load(path)
        f = {"change": row["after_fit"] - row["before"], **figures(pred, fitted, drawn)}
        if found:
            if row["scene"] not in images:
                images[row["scene"]] = gdal.Open(str(found[row["scene"]].image)).ReadAsArray()
            f |= colour_figures(images[row["scene"]], pred, fitted, drawn)
        seed = row["overrides"].get("seed", 0)
        print(
            f"{row['scene']:16} K={row['k']:<2} seed {seed} {outcome(row):8}",
            "  ".join(f"{k} {v:+.1f}" if k == "change" else f"{k} {v:.1f}" for k, v in f.items()),
        )
        if outcome(row) != "none":
            groups[(row["scene"], outcome(row))].append(f)
    print()
    for (scene, kind), rows in sorted(groups.items()):
        spans = "  ".join(
            f"{k} {min(r[k] for r in rows):.1f}..{max(r[k] for r in rows):.1f}" for k in rows[0]
        )
        print(f"{scene:16} {kind:8} {len(rows):2} rounds  {spans}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
