"""Probe (session 32): how well the image's edges find what a hand overdrew.

The K largest errors of each scene's left half (the bundled default model's map, or
``--model``'s), drawn as the study's users draw them (users.drawn_as, seed 0); for every
drawing, the drawn image pixels whose class the reference contradicts (wrong), and what
training/corrections/overdrawn.py leaves out of the fit's loss: the wrong pixels it
removes and the right ones it takes with them, against a fixed 1 m band
(interior.interior, FitParams.edge_band_m).

    python -m map_refiner.dev.corrections.overdrawn_probe [--scenes a,b] [--k 16]
        [--min-side M] [--side-gain G] [--reuse]

``--min-side 2`` judges each stretch of outline on its own (the opt-in stretch rule; 0, the
default, each polygon as a whole); ``--reuse`` reads the maps an earlier
run left in ``--out`` instead of refining again (session 33: out/s32/probe).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ...training.corrections.interior import interior
from ...training.corrections.overdrawn import (
    EDGE_GAIN,
    MIN_SIDE_M,
    NO_EDGE,
    SIDE_GAIN,
    overdrawn,
)
from ...training.tile import IGNORE
from .left_half import left_half
from .scenes import scenes
from .users import drawn_as

DRAWN = ("traced", "rough:1", "loose:1", "inside:1", "rough:0.5", "shifted:1")


def burned(corrections: list, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels (IGNORE where nothing is drawn) and polygon numbers (-1 none); a later
    polygon holds where two overlap."""
    labels = np.full(shape, IGNORE, np.int64)
    features = np.full(shape, -1, np.int64)
    for i, (m, c) in enumerate(corrections):
        labels[m] = c
        features[m] = i
    return labels, features


def crops(image: np.ndarray):
    """overdrawn's reader over an image held whole."""
    return lambda y0, y1, x0, x1: image[:, y0:y1, x0:x1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("out/s32/probe"))
    ap.add_argument("--scenes", default="")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--gain", type=float, default=EDGE_GAIN)
    ap.add_argument("--no-edge", type=float, default=NO_EDGE)
    ap.add_argument("--every-class", action="store_true", help="background polygons too")
    ap.add_argument(
        "--min-side",
        type=float,
        default=0.0,
        help=f"metres: the stretch rule (measured at {MIN_SIDE_M}); 0 (the fit's default): "
        "whole polygons",
    )
    ap.add_argument("--side-gain", type=float, default=SIDE_GAIN)
    ap.add_argument("--reuse", action="store_true", help="read the maps an earlier run made")
    ap.add_argument("--drawings", default=",".join(DRAWN))
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    every = scenes(a.data, Path("out/corrections/data"))
    names = a.scenes.split(",") if a.scenes else [n for n in every if n != "loveda_0"]
    for name in names:
        scene = left_half(every[name], a.out, a.model, a.reuse)
        ref, half, pm, image = scene.ref, scene.half, scene.pixel_m, scene.image()
        for drawing in a.drawings.split(","):
            drawn = drawn_as(scene.errors[: a.k], drawing, pm, half, 0)
            labels, features = burned(drawn, ref.shape)
            on = labels != IGNORE
            wrong = on & (labels != ref.astype(np.int64))
            over = overdrawn(
                labels,
                features,
                crops(image),
                pm,
                gain=a.gain,
                no_edge=a.no_edge,
                ground=None if a.every_class else 0,
                min_side_m=a.min_side,
                side_gain=a.side_gain,
            )
            band = on & (interior(labels, int(round(1.0 / pm)), features) == IGNORE)
            n = int(on.sum())
            print(
                f"{name:14s} {drawing:10s} drawn {n:8d} wrong {wrong.sum() / n:6.1%} | "
                f"edges: removed {over.sum() / n:6.1%}, wrong left "
                f"{(wrong & ~over).sum() / n:6.1%}, right lost {(over & ~wrong).sum() / n:6.1%} | "
                f"band 1 m: removed {band.sum() / n:6.1%}, wrong left "
                f"{(wrong & ~band).sum() / n:6.1%}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
