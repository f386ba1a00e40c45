"""The default model's training areas' looks, and how well the look picks a bundled model.

``build`` writes resources/models/default_home.json: engine/refine/model_choice's look of
each area the bundled default model's networks were trained on (dev/default_model/
multiscene.py: the left half of every shared scene with an accurate reference but
austin_dev, austin_enh whole).

``probe`` measures the rule (model_choice.HOME_DISTANCE) on session 36's pairs
(dev/default_model/agreement_probe.py's rows, out/s36/agreement.json: both bundled
recipes' right-half building IoU on every scene as it is and under eight other looks,
and on four scenes each recipe never saw, with its leave-one-out models): each pair's
image is judged by its distance to the training areas its default-recipe model was
trained on (a scene as it is by its right half, the part a user's other imagery of the
same source stands for; a scene under a look by the whole image) and the rule's pick is
summed at several thresholds beside "always the default" (the product until session 37),
"always the general" and the better of the two.

    python -m map_refiner.dev.default_model.home_looks build
    python -m map_refiner.dev.default_model.home_looks probe --rows out/s36/agreement.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from ...engine.refine.model_choice import HOME_DISTANCE, HOME_LOOKS_PATH, image_look, look_distance
from ..corrections.scenes import Scene, scenes
from ..prior.misread import apply_look
from .multiscene import KEPT_OUT, WHOLE

ROOT = Path(__file__).resolve().parents[2]
#: The scenes each never-seen pair's default-recipe model was trained without
#: (out/s35/t2loo: hr_lo without Kampala and Rio, the others without their scene).
LEFT_OUT = {
    "kampala_drone": ("kampala_drone", "rio_wv2"),
    "rio_wv2": ("kampala_drone", "rio_wv2"),
    "nepal_drone": ("nepal_drone",),
    "loveda_1": ("loveda_1",),
}
THRESHOLDS = (1.0, 1.5, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.5)


def look_of(image: Path, part: str = "whole") -> np.ndarray:
    """``image``'s look over its ``part`` ("whole", "left" or "right" half)."""
    ds = open_raster(image)
    pixel_m = math.sqrt(math.prod(ground_resolution(raster_info(ds))))
    w, h = ds.RasterXSize, ds.RasterYSize
    window = {"whole": None, "left": (0, 0, w // 2, h), "right": (w // 2, 0, w, h)}[part]
    return image_look(ds, [1, 2, 3], pixel_m, window)


def training_areas(found: dict[str, Scene]) -> dict[str, np.ndarray]:
    """The look of every area the default model's networks trained on."""
    return {
        name: look_of(s.image, "whole" if name in WHOLE else "left")
        for name, s in found.items()
        if name not in KEPT_OUT
    }


def build(data: Path, out: Path) -> None:
    areas = training_areas(scenes(data, ROOT / "out" / "corrections" / "data"))
    out.write_text(
        json.dumps(
            {
                "model": "default.safetensors",
                "look": "engine/refine/model_choice.py look_features on a 0.6 m grid",
                "made_by": "python -m map_refiner.dev.default_model.home_looks build",
                "areas": {k: [round(float(x), 3) for x in v] for k, v in areas.items()},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out} ({len(areas)} areas)")


def probe(data: Path, rows_path: Path) -> None:
    found = scenes(data, ROOT / "out" / "corrections" / "data")
    homes = training_areas(found)
    rows = json.loads(rows_path.read_text())
    judged = []
    with tempfile.TemporaryDirectory() as tmp:
        looks: dict[tuple[str, str], np.ndarray] = {}
        for key, row in rows.items():
            scene, setting, *rest = key.split("|")
            look = rest[0] if rest else "as is"
            if (scene, look) not in looks:
                image = found[scene].image
                if look == "as is":
                    looks[(scene, look)] = look_of(image, "right")
                else:
                    looks[(scene, look)] = look_of(apply_look(image, look, Path(tmp) / "l.tif"))
            left_out = LEFT_OUT[scene] if setting == "never" else ()
            near = {k: v for k, v in homes.items() if k not in left_out}
            distance, nearest = look_distance(looks[(scene, look)], near)
            judged.append((distance, nearest, key, row["iou_a"], row["iou_b"]))
    judged.sort()
    print("| distance | nearest training area | pair | default recipe | general recipe |")
    print("|---|---|---|---|---|")
    for d, n, k, a, b in judged:
        print(f"| {d:.2f} | {n} | {k} | {a:.1f} | {b:.1f} |")
    as_is = [j for j in judged if len(j[2].split("|")) == 2]
    print()
    print("| rule | all pairs | as they are | picks the better |")
    print("|---|---|---|---|")
    for name, pick in (
        ("always the default", lambda j: j[3]),
        ("always the general", lambda j: j[4]),
        ("the better of the two", lambda j: max(j[3], j[4])),
    ):
        print(f"| {name} | {sum(map(pick, judged)):.1f} | {sum(map(pick, as_is)):.1f} | - |")
    for t in THRESHOLDS:

        def pick(j, t=t):
            return j[3] if j[0] <= t else j[4]

        better = sum(pick(j) >= max(j[3], j[4]) for j in judged)
        mark = " (model_choice.HOME_DISTANCE)" if t == HOME_DISTANCE else ""
        print(
            f"| default within {t:g}{mark} | {sum(map(pick, judged)):.1f} | "
            f"{sum(map(pick, as_is)):.1f} | {better} of {len(judged)} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["build", "probe"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HOME_LOOKS_PATH)
    ap.add_argument("--rows", type=Path, default=ROOT / "out" / "s36" / "agreement.json")
    a = ap.parse_args(argv)
    if a.step == "build":
        build(a.data, a.out)
    else:
        probe(a.data, a.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
