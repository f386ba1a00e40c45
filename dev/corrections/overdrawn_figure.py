"""Figure (session 33): what the outline-edges rule leaves out of a hand-drawn polygon.

For a few of a scene's largest missed buildings (the bundled default model's map, left
half), drawn as the study's user draws them (users.drawn_as, seed 0): the image with the
reference outline (cyan), the drawn outline (yellow) and the pixels the fit leaves out
(red), under session 32's whole-polygon rule (``min_side_m=0``) and with each stretch of
outline judged on its own (the opt-in stretch rule, ``min_side_m=MIN_SIDE_M``).

    python -m map_refiner.dev.corrections.overdrawn_figure --scene kampala_drone \\
        --drawing shifted:1 --out docs/figures/overdrawn_sides.png [--reuse]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ...training.corrections.interior import _all_within  # noqa: E402
from ...training.corrections.overdrawn import MIN_SIDE_M, overdrawn  # noqa: E402
from .left_half import left_half  # noqa: E402
from .overdrawn_probe import burned, crops  # noqa: E402
from .scenes import scenes  # noqa: E402
from .users import drawn_as  # noqa: E402


def outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~_all_within(mask, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--maps", type=Path, default=Path("out/s32/probe"))
    ap.add_argument("--scene", default="kampala_drone")
    ap.add_argument("--drawing", default="shifted:1")
    ap.add_argument("--polygons", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("docs/figures/overdrawn_sides.png"))
    ap.add_argument("--reuse", action="store_true", help="read the map an earlier run made")
    a = ap.parse_args(argv)
    scene = left_half(scenes(a.data, Path("out/corrections/data"))[a.scene], a.maps, None, a.reuse)
    ref, half, pm, image = scene.ref, scene.half, scene.pixel_m, scene.image()
    drawn = drawn_as(scene.missed(a.polygons), a.drawing, pm, half, 0)
    labels, features = burned(drawn, ref.shape)
    rules = {
        "whole polygon (the default)": overdrawn(labels, features, crops(image), pm),
        "each stretch (session 33, opt-in)": overdrawn(
            labels, features, crops(image), pm, min_side_m=MIN_SIDE_M
        ),
    }
    fig, axes = plt.subplots(len(rules), len(drawn), figsize=(3.2 * len(drawn), 6.6))
    axes = np.atleast_2d(axes)
    rgb = np.moveaxis(image, 0, -1)
    lo, hi = np.percentile(rgb, 2), np.percentile(rgb, 98)
    rgb = np.clip((rgb - lo) / (hi - lo), 0, 1)
    for j, (mask, _) in enumerate(drawn):
        ys, xs = np.nonzero(mask)
        pad = int(round(2.0 / pm))
        y0, y1 = max(0, ys.min() - pad), min(ref.shape[0], ys.max() + pad)
        x0, x1 = max(0, xs.min() - pad), min(ref.shape[1], xs.max() + pad)
        on = mask[y0:y1, x0:x1]
        for i, (name, out) in enumerate(rules.items()):
            view = rgb[y0:y1, x0:x1].copy()
            left = out[y0:y1, x0:x1] & on
            view[left] = 0.45 * view[left] + 0.55 * np.array([1.0, 0.0, 0.0])
            view[outline(ref[y0:y1, x0:x1])] = (0.0, 1.0, 1.0)
            view[outline(on)] = (1.0, 1.0, 0.0)
            wrong = on & ~ref[y0:y1, x0:x1]
            ax = axes[i, j]
            ax.imshow(view, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(
                f"{name}\nleft out {left.sum() / on.sum():.0%}: wrong "
                f"{(left & wrong).sum() / max(1, wrong.sum()):.0%} of {wrong.sum() / on.sum():.0%}",
                fontsize=8,
            )
    fig.suptitle(
        f"{a.scene}, drawn {a.drawing}: reference cyan, drawn yellow, left out of the fit red",
        fontsize=9,
    )
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=72)
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
