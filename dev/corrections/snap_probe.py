"""Probe (session 33): what snapping drawn outlines onto the image's edges changes.

The K largest errors of each scene's left half (the bundled default model's map, cached
by overdrawn_probe in ``--maps``), drawn as the study's users draw them (users.drawn_as,
seed 0), then snapped (users.snapped_to_edges, as ``map-refiner snap-outlines`` does);
for every drawing the drawn image pixels the reference contradicts (wrong) and, of the
pixels snapping removed and added, how many were wrong and right (building polygons
only; shares of the drawn building pixels).

    python -m map_refiner.dev.corrections.snap_probe [--scenes a,b] [--k 16] [--maps DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .left_half import left_half
from .scenes import scenes
from .users import drawn_as, snapped_to_edges

DRAWN = ("traced", "shifted:1", "rough:1", "loose:1")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--maps", type=Path, default=Path("out/s32/probe"))
    ap.add_argument("--scenes", default="")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--drawings", default=",".join(DRAWN))
    a = ap.parse_args(argv)
    every = scenes(a.data, Path("out/corrections/data"))
    names = a.scenes.split(",") if a.scenes else [n for n in every if n != "loveda_0"]
    for name in names:
        scene = left_half(every[name], a.maps)
        ref, half, pm, image = scene.ref, scene.half, scene.pixel_m, scene.image()
        for drawing in a.drawings.split(","):
            drawn = drawn_as(scene.errors[: a.k], drawing, pm, half, 0)
            snapped = snapped_to_edges(drawn, image, pm, half)
            before = np.zeros_like(ref)
            after = np.zeros_like(ref)
            for (m, c), (n, _) in zip(drawn, snapped, strict=True):
                if c == 1:
                    before |= m
                    after |= n
            total = max(1, int(before.sum()))
            removed, added = before & ~after, after & ~before

            def share(x: np.ndarray, total: int = total) -> str:
                return f"{x.sum() / total:6.1%}"

            print(
                f"{name:15s} {drawing:10s} building px {total:8d} wrong {share(before & ~ref)}"
                f" | removed wrong {share(removed & ~ref)} right {share(removed & ref)}"
                f" | added right {share(added & ref)} wrong {share(added & ~ref)}"
                f" | wrong after {share(after & ~ref)}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
