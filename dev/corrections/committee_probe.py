"""Does a second model's opinion find the first model's errors better than its own
uncertainty? A probe for the dialog's "where to draw next" list.

For every scene with an accurate reference, both bundled models refine the whole scene
through the product's path. On the left half (where the study's users draw) the
default model's error pixels are the targets, and three signals rank the dialog's
12 m cells: the default's own uncertainty (today's list), the two models' disagreement
(half the L1 distance between their class probabilities, 0 where they agree, 1 where
each is sure of a different class), and the mean of the two. Printed per scene and
signal: the share of the half's error pixels inside the top cells covering 5 % and
10 % of the half (a random list finds about 5 % and 10 %), and the error pixels inside
the K = 4 and 16 corrections of a user who follows the list (users.ordered), as a share
of those inside the largest-errors user's.

    python -m map_refiner.dev.corrections.committee_probe [--scenes a,b] [--out-dir D]
        [--model M --other O]   (never seen: a model and a partner trained without the scenes)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from ...engine.refine.uncertainty import cell_scores, uncertainty
from .scenes import scenes as all_scenes
from .study import cell_px, refine
from .users import disagreement, error_regions, ordered

SIGNALS = ("uncertainty", "disagreement", "both")


def signal(kind: str, probs: np.ndarray, other: np.ndarray) -> np.ndarray:
    if kind == "uncertainty":
        return uncertainty(probs)
    if kind == "disagreement":
        return disagreement(probs, other)
    if kind == "both":
        return 0.5 * (uncertainty(probs) + disagreement(probs, other))
    raise ValueError(kind)


def recall_at(
    sig: np.ndarray, errors: np.ndarray, valid: np.ndarray, cell: int, share: float
) -> float:
    """Share of the error pixels inside the best cells covering ``share`` of the valid area."""
    scores = cell_scores(sig, valid, cell)
    err = cell_scores(errors.astype(np.float32), valid, cell)
    ok = np.isfinite(scores)
    order = np.argsort(-scores[ok])
    n = max(1, int(round(share * ok.sum())))
    found = err[ok][order[:n]].sum()
    total = err[ok].sum()
    return float(found / total) if total else float("nan")


def fixed_pixels(corrections: list, k: int, errors: np.ndarray) -> int:
    """Error pixels inside the first ``k`` corrections."""
    drawn = np.zeros(errors.shape, bool)
    for mask, _ in corrections[:k]:
        drawn |= mask
    return int((drawn & errors).sum())


def probe_scene(
    scene, work: Path, model: Path = DEFAULT_MODEL_PATH, other: Path = GENERAL_MODEL_PATH
) -> dict:
    """``model``: the one whose errors a user draws; ``other``: the second opinion."""
    work.mkdir(parents=True, exist_ok=True)
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    half = ref.shape[1] // 2
    pred, probs = refine(scene.image, work / "default.tif", model)
    gpred, gprobs = refine(scene.image, work / "general.tif", other)
    like = gdal.Open(str(scene.image))
    cell = cell_px(scene, like)
    valid = np.zeros(ref.shape, bool)
    valid[:, :half] = True
    errors = (pred != ref) & valid
    disagree = (pred != gpred)[:, :half]
    regions = error_regions(pred, ref, half)
    largest = ordered(regions, "largest", probs, half, cell)
    row: dict = {
        "scene": scene.name,
        "error_share": round(100 * float(errors[:, :half].mean()), 2),
        "models_disagree": round(100 * float(disagree.mean()), 2),
        "general_right_where_disagree": round(
            100
            * float((gpred[:, :half] == ref[:, :half])[disagree].sum())
            / max(1, int(disagree.sum())),
            1,
        ),
    }
    for kind in SIGNALS:
        sig = signal(kind, probs, gprobs)
        for share in (0.05, 0.10):
            row[f"{kind}_recall{int(100 * share)}"] = round(
                100 * recall_at(sig, errors, valid, cell, share), 1
            )
        # a user who follows the list ranked by this signal
        order = ordered(regions, "uncertainty", probs, half, cell, signal=sig)
        for k in (4, 16):
            row[f"{kind}_drawn{k}"] = round(
                100 * fixed_pixels(order, k, errors) / max(1, fixed_pixels(largest, k, errors)), 1
            )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=Path("out/committee"))
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="whose errors")
    ap.add_argument("--other", type=Path, default=GENERAL_MODEL_PATH, help="second opinion")
    args = ap.parse_args(argv)
    found = all_scenes(args.data, args.out_dir / "scenes")
    names = args.scenes.split(",") if args.scenes else list(found)
    rows = []
    for name in names:
        row = probe_scene(found[name], args.out_dir / name, args.model, args.other)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out_dir / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
