"""The default model's training areas' looks, and how well the look picks a bundled model.

``build`` writes resources/models/default_home.json: engine/modelfile/bundled_choice's look of
each area the bundled default model's networks were trained on (dev/default_model/
multiscene.py: the left half of every shared scene with an accurate reference but
austin_dev, austin_enh whole), and both bundled models' building IoU on that scene's
held-out right half, refined through the product's path (what bundled_choice.
prefers_general reads; a few minutes on this CPU).

``probe`` measures the rule (bundled_choice.HOME_DISTANCE) on session 36's pairs
(dev/default_model/agreement_probe.py's rows, out/s36/agreement.json: both bundled
recipes' right-half building IoU on every scene as it is and under eight other looks,
and on four scenes each recipe never saw, with its leave-one-out models): each pair's
image is judged by its distance to the training areas its default-recipe model was
trained on (a scene as it is by its right half, the part a user's other imagery of the
same source stands for; a scene under a look by the whole image) and the rule's pick is
summed at several thresholds beside "always the default" (the product until session 37),
"always the general" and the better of the two.

``loop`` sums the correction-study rows of both recipes (sessions 35-36, out/corrections/
rows_s3[56]_*: LOOP_GROUPS) as the rule would pick the base of each scene: the maps users
start from and end with, against "always the default" and "always the general".

    python -m map_refiner.dev.default_model.home_looks build
    python -m map_refiner.dev.default_model.home_looks probe --rows out/s36/agreement.json
    python -m map_refiner.dev.default_model.home_looks loop
    python -m map_refiner.dev.default_model.home_looks loop85
    python -m map_refiner.dev.default_model.home_looks osm [--models name=FILE,...]
    python -m map_refiner.dev.default_model.home_looks choices
    python -m map_refiner.dev.default_model.home_looks targets
    python -m map_refiner.dev.default_model.home_looks quarters

``quarters`` splits each scene's held-out right half into its top and bottom quarter and
prints both bundled models' building IoU on each: whether an area's preference (set on
the whole half) holds on both parts of it.

``targets`` counts the largest-errors traced rounds that reach the issue's +5 (K=4) / +15
(K=16) over their start, today's (the default's rows at 0.9) against the rule's with the
flip check at 0.85 (the general recipe's rows at 0.85 where the rule gives it the scene).

``choices`` prints the rule's choice, distance and time (the look's reading alone,
choose_bundled) for every shared image, Xiamen's mosaic and Swellendam's orthophotos.

``osm`` scores both bundled models on Xiamen's mosaic (where the rule sends the general
model) against the OSM building mask on the source's own validation and evaluation tiles
(OSM's outlines are metres off and miss buildings: low figures for both). Not an
independent check of the rule: the default's CNN trained on the training tiles' OSM only,
but the general recipe's trunk (dev/default_model/trunk.py) on the whole mosaic's OSM,
these tiles included.

``loop85`` compares, on the rounds the rule gives each recipe, the study rows made with
the flip check standing aside from a sure ratio of 0.85 (session 36's rows_s36_*fs85_*,
their adoption re-derived with study.flip_dropped, as the study now derives it) with the
same rounds at 0.9 (FitParams.flip_sure_ratio until session 37).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from ...engine.modelfile.bundled_choice import (
    HOME_DISTANCE,
    HOME_LOOKS_PATH,
    held_out_scores,
    image_look,
    look_distance,
    prefers_general,
)
from ...engine.modelfile.header import BUNDLED_MODELS
from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from ..corrections.final_maps import Key, paired_rows
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
#: The correction-study rows of each recipe, by group (default's rows, general's rows):
#: the same users, drawings, K and seeds (docs/results_bundled_recipes.md "Session 36").
LOOP_GROUPS = {
    "own, largest traced": ("rows_s36_k36_traced_own*", "rows_s35_genT2_own*"),
    "own, largest rough:1": ("rows_s36_k36_rough1_own*", "rows_s36_genown_rough1_own*"),
    "own, largest loose:1": ("rows_s36_k36_loose1_own*", "rows_s36_genown_loose1_own*"),
    "own, uncertainty rough:1": ("rows_s35_u2_*", "rows_s36_genown_unc_*"),
    "never seen, largest traced": ("rows_s36_k36_traced_never_*", "rows_s36_gen_traced_never_*"),
    "never seen, largest rough:1": ("rows_s36_k36_rough1_never_*", "rows_s36_gen_rough1_never_*"),
    "never seen, largest loose:1": ("rows_s36_k36_loose1_never_*", "rows_s36_gen_loose1_never_*"),
    "never seen, uncertainty rough:1": ("rows_s36_defbase_unc_*", "rows_s36_gen_unc_*"),
    "never seen, random rough:1": ("rows_s35_r2_*", "rows_s36_gen_rnd_*"),
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


def held_out(scene: Scene, work: Path) -> dict[str, float]:
    """Both bundled models' building IoU (%) on ``scene``'s right half."""
    from osgeo import gdal

    from ..corrections.study import iou, refine

    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    half = ref.shape[1] // 2
    out = {}
    for name, model in BUNDLED_MODELS.items():
        pred, _ = refine(scene.image, work / f"{name}.tif", model)
        out[name] = round(100 * iou(pred[:, half:], ref[:, half:]), 2)
    return out


def build(data: Path, out: Path) -> None:
    found = scenes(data, ROOT / "out" / "corrections" / "data")
    areas = training_areas(found)
    with tempfile.TemporaryDirectory() as tmp:
        scores = {name: held_out(found[name], Path(tmp)) for name in areas}
    for name, s in scores.items():
        print(f"{name}: default {s['default']}, general {s['general']}", flush=True)
    out.write_text(
        json.dumps(
            {
                "model": "default.safetensors",
                "look": "engine/modelfile/bundled_choice.py look_features on a 0.6 m grid",
                "made_by": "python -m map_refiner.dev.default_model.home_looks build",
                "areas": {k: [round(float(x), 3) for x in v] for k, v in areas.items()},
                "held_out": scores,
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
    held = held_out_scores()
    for prefer in (False, True):
        for t in THRESHOLDS:

            def pick(j, t=t, prefer=prefer):
                near = j[0] <= t and not (prefer and prefers_general(held.get(j[1])))
                return j[3] if near else j[4]

            better = sum(pick(j) >= max(j[3], j[4]) for j in judged)
            rule = "the nearest area's better model" if prefer else "the default"
            mark = " (the rule)" if prefer and t == HOME_DISTANCE else ""
            print(
                f"| {rule} within {t:g}{mark} | {sum(map(pick, judged)):.1f} | "
                f"{sum(map(pick, as_is)):.1f} | {better} of {len(judged)} |"
            )


def rule_picks_general(data: Path) -> dict[str, set[str]]:
    """The scenes whose image the rule gives the general model (bundled_choice.
    choose_bundled's: far from every training area, or nearest one whose held-out half
    the general model reads better), for the own rounds (the bundled default's training
    areas as homes, the scene's right half judged) and the never-seen ones (the
    leave-one-out model's homes, the whole image judged)."""
    found = scenes(data, ROOT / "out" / "corrections" / "data")
    homes = training_areas(found)
    held = held_out_scores()

    def general(look: np.ndarray, near: dict[str, np.ndarray]) -> bool:
        distance, nearest = look_distance(look, near)
        return distance > HOME_DISTANCE or prefers_general(held.get(nearest))

    own, never = set(), set()
    for name, scene in found.items():
        if general(look_of(scene.image, "right"), homes):
            own.add(name)
        if name in LEFT_OUT:
            near = {k: v for k, v in homes.items() if k not in LEFT_OUT[name]}
            if general(look_of(scene.image), near):
                never.add(name)
    return {"own": own, "never": never}


def loop(data: Path, rows_dir: Path) -> None:
    picks = rule_picks_general(data)
    print(
        f"the rule's general model: own {sorted(picks['own'])}, never seen {sorted(picks['never'])}"
    )
    print()
    print("| rounds | always the default: start -> final (worse) | the rule | always the general |")
    print("|---|---|---|---|")
    totals = {k: [0.0, 0.0, 0] for k in ("default", "rule", "general")}
    for group, (d_glob, g_glob) in LOOP_GROUPS.items():
        d, g = _rows(rows_dir, d_glob), _rows(rows_dir, g_glob)
        keys = sorted(set(d) & set(g))
        general = picks["never" if group.startswith("never") else "own"]
        sums = {k: [0.0, 0.0, 0] for k in totals}
        for key in keys:
            for name, row in (
                ("default", d[key]),
                ("general", g[key]),
                ("rule", g[key] if key[1] in general else d[key]),
            ):
                sums[name][0] += row["before"]
                sums[name][1] += row["after"]
                sums[name][2] += row["after"] < row["before"] - 0.05
        for name, v in sums.items():
            totals[name] = [a + b for a, b in zip(totals[name], v)]
        cells = [f"{v[0]:.1f} -> {v[1]:.1f} ({v[2]})" for v in sums.values()]
        print(f"| {group} ({len(keys)}) | " + " | ".join(cells) + " |")
    cells = [f"{v[0]:.1f} -> {v[1]:.1f} ({v[2]})" for v in totals.values()]
    print("| all | " + " | ".join(cells) + " |")


#: The never-seen scenes the rule gives the general recipe (rule_picks_general's "never").
NEVER_GENERAL = ("kampala_drone", "rio_wv2", "nepal_drone")
#: Rounds measured at both sure ratios: (rows at 0.9, rows at 0.85, the scenes the rule
#: gives that recipe; None: every scene of the rows).
LOOP85_GROUPS = {
    "general, never seen, largest traced": (
        "rows_s36_gen_traced_never_*",
        "rows_s36_genfs85_traced_never_*",
        NEVER_GENERAL,
    ),
    "general, never seen, largest rough:1": (
        "rows_s36_gen_rough1_never_*",
        "rows_s36_genfs85_rough1_never_*",
        NEVER_GENERAL,
    ),
    "general, never seen, largest loose:1": (
        "rows_s36_gen_loose1_never_*",
        "rows_s37_gen85_never_*",  # session 37, made at 0.85 (Kampala and Rio only)
        NEVER_GENERAL,
    ),
    "general, never seen, uncertainty rough:1": (
        "rows_s36_gen_unc_*",
        "rows_s36_genfs85_unc_*",
        NEVER_GENERAL,
    ),
    "general, never seen, random rough:1": (
        "rows_s36_gen_rnd_*",
        "rows_s36_genfs85_ran_*",
        NEVER_GENERAL,
    ),
    "default, never seen, largest traced": (
        "rows_s36_k36_traced_never_*",
        "rows_s36_deffs85_traced_never_*",
        ("loveda_1",),
    ),
    "default, never seen, largest rough:1": (
        "rows_s36_k36_rough1_never_*",
        "rows_s36_deffs85_rough1_never_*",
        ("loveda_1",),
    ),
    "default, never seen, uncertainty rough:1": (
        "rows_s36_defbase_unc_*",
        "rows_s36_deffs85_unc_*",
        ("loveda_1",),
    ),
    "default, never seen, random rough:1": (
        "rows_s35_r2_*",
        "rows_s36_deffs85_ran_*",
        ("loveda_1",),
    ),
    "default, own, largest traced": (
        "rows_s36_k36_traced_own*",
        "rows_s36_deffs85_traced_own*",
        None,
    ),
    "general, own, largest traced": ("rows_s35_genT2_own*", "rows_s36_genfs85_traced_own*", None),
    "general, own, largest rough:1 (Nepal)": (
        "rows_s36_genown_rough1_own*",
        "rows_s37_gen85own_rough1_own*",  # session 37: its one round with a ratio in 0.85-0.9
        ("nepal_drone",),
    ),
}


def after_rederived(row: dict) -> float:
    """A study row's map after the round, its adoption judged again with the row's own
    flip-check overrides (the study's re-derivation ignored them until session 36)."""
    from ..corrections.study import flip_dropped

    if row.get("after_fit") is None or not row.get("passed_held_out"):
        return row["after"]
    erased = row.get("class_kept") is not None and row["class_kept"] < 0.1
    dropped = flip_dropped(
        True, row.get("flip_ratio"), row.get("tuned_score"), row.get("sure_ratio"), row["overrides"]
    )
    return row["before"] if dropped or erased else row["after_fit"]


def loop85(rows_dir: Path) -> None:
    print("| rounds | at 0.9: final (worse than start) | at 0.85 | change |")
    print("|---|---|---|---|")
    for group, (at90, at85, kept) in LOOP85_GROUPS.items():
        a, b = _rows(rows_dir, at90), _rows(rows_dir, at85)
        keys = [k for k in sorted(set(a) & set(b)) if kept is None or k[1] in kept]
        s90 = sum(a[k]["after"] for k in keys)
        s85 = sum(after_rederived(b[k]) for k in keys)
        w90 = sum(a[k]["after"] < a[k]["before"] - 0.05 for k in keys)
        w85 = sum(after_rederived(b[k]) < b[k]["before"] - 0.05 for k in keys)
        print(
            f"| {group} ({len(keys)}) | {s90:.1f} ({w90}) | {s85:.1f} ({w85}) | {s85 - s90:+.1f} |"
        )


def _rows(folder: Path, pattern: str) -> dict[Key, dict]:
    """Study rows by (group, scene, K, drawing, user, seed): final_maps.paired_rows."""
    return paired_rows(str(folder / pattern))


def osm_check(data: Path, work: Path, models: dict[str, Path] | None = None) -> None:
    """Building IoU against Xiamen's OSM buildings of each of ``models`` (name: file;
    default: the bundled ones), on the validation and evaluation tiles."""
    from osgeo import gdal

    from ...engine.modelfile.bundled_choice import choose_bundled
    from ..corrections.study import iou, refine
    from ..webtiles import read_tiles, split_mask, tile_pixel_box

    image = data / "xiamen" / "xiamen_rgb.tif"
    labels = gdal.Open(str(data / "xiamen" / "xiamen_osm_buildings_mask.tif"))
    osm = labels.ReadAsArray()
    chosen = choose_bundled(image)
    print(f"the rule: {chosen.note}")
    work.mkdir(parents=True, exist_ok=True)
    models = dict(BUNDLED_MODELS) if models is None else models
    maps = {name: refine(image, work / f"{name}.tif", model)[0] for name, model in models.items()}
    if set(maps) != {"default", "general"}:  # other models: their IoU on each split
        for split in ("validation", "evaluation"):
            inside = split_mask(labels, data / "xiamen" / f"{split}.tiles") & (osm != 255)
            ref = (osm == 1) & inside
            ious = {name: round(100 * iou(m & inside, ref), 1) for name, m in maps.items()}
            print(f"{split}: building IoU vs OSM {ious}")
        return
    print("| tiles | default: building IoU vs OSM | general | tiles where the general is higher |")
    print("|---|---|---|---|")
    for split in ("validation", "evaluation"):
        inside = split_mask(labels, data / "xiamen" / f"{split}.tiles") & (osm != 255)
        ref = (osm == 1) & inside
        ious = {name: 100 * iou(m & inside, ref) for name, m in maps.items()}
        wins, tiles = 0, 0
        for x, y, z in read_tiles(data / "xiamen" / f"{split}.tiles"):
            c0, r0, c1, r1 = tile_pixel_box(labels, x, y, z)
            box = (slice(max(0, r0), max(0, r1)), slice(max(0, c0), max(0, c1)))
            here = inside[box]
            if not here.any() or not ref[box].any():
                continue
            tiles += 1
            per = {n: iou(m[box] & here, ref[box]) for n, m in maps.items()}
            wins += per["general"] > per["default"]
        print(
            f"| {split} ({tiles} with OSM buildings) | {ious['default']:.1f} | "
            f"{ious['general']:.1f} | {wins} of {tiles} |"
        )


def choices(data: Path) -> None:
    import time

    from ...engine.modelfile.bundled_choice import choose_bundled

    found = scenes(data, ROOT / "out" / "corrections" / "data")
    images = [s.image for s in found.values()] + [data / "xiamen" / "xiamen_rgb.tif"]
    images += sorted((data / "swellendam").glob("*.tif"))
    print("| image | model | nearest area | distance | seconds |")
    print("|---|---|---|---|---|")
    for image in images:
        t0 = time.perf_counter()
        c = choose_bundled(image)
        seconds = time.perf_counter() - t0
        print(f"| {image.name} | {c.path.stem} | {c.nearest} | {c.distance} | {seconds:.2f} |")


def targets(data: Path, rows_dir: Path) -> None:
    picks = rule_picks_general(data)
    for group, (today, general, kind) in {
        "own, largest traced": ("rows_s36_k36_traced_own*", "rows_s36_genfs85_traced_own*", "own"),
        "never seen, largest traced": (
            "rows_s36_k36_traced_never_*",
            "rows_s36_genfs85_traced_never_*",
            "never",
        ),
    }.items():
        d, g = _rows(rows_dir, today), _rows(rows_dir, general)
        keys = sorted(set(d) & set(g))
        counts = []
        for rule in (False, True):
            met = 0
            for key in keys:
                if rule and key[1] in picks[kind]:
                    row, after = g[key], after_rederived(g[key])
                else:
                    row, after = d[key], d[key]["after"]
                met += after - row["before"] >= (5 if key[2] == 4 else 15)
            counts.append(met)
        print(f"{group}: {counts[0]} of {len(keys)} today, {counts[1]} with the rule and 0.85")


def quarters(data: Path) -> None:
    from osgeo import gdal

    from ..corrections.study import iou, refine

    found = scenes(data, ROOT / "out" / "corrections" / "data")
    print("| scene | top-right quarter: default / general | bottom-right quarter |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, scene in found.items():
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            h, w = ref.shape
            maps = {
                m: refine(scene.image, Path(tmp) / f"{m}.tif", path)[0]
                for m, path in BUNDLED_MODELS.items()
            }
            cells = []
            for rows in (slice(0, h // 2), slice(h // 2, h)):
                part = (rows, slice(w // 2, w))
                a, b = (100 * iou(maps[m][part], ref[part]) for m in ("default", "general"))
                cells.append(f"{a:.1f} / {b:.1f}")
            print(f"| {name} | {cells[0]} | {cells[1]} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "step",
        choices=["build", "probe", "loop", "loop85", "osm", "choices", "targets", "quarters"],
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HOME_LOOKS_PATH)
    ap.add_argument("--rows", type=Path, default=ROOT / "out" / "s36" / "agreement.json")
    ap.add_argument("--rows-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--models", default=None, help="osm: name=file,... (default: the bundled)")
    a = ap.parse_args(argv)
    if a.step == "build":
        build(a.data, a.out)
    elif a.step == "probe":
        probe(a.data, a.rows)
    elif a.step == "loop":
        loop(a.data, a.rows_dir)
    elif a.step == "loop85":
        loop85(a.rows_dir)
    elif a.step == "osm":
        models = None
        if a.models:
            models = {k: Path(v) for k, v in (m.split("=", 1) for m in a.models.split(","))}
        osm_check(a.data, ROOT / "out" / "home_looks_osm", models)
    elif a.step == "choices":
        choices(a.data)
    elif a.step == "targets":
        targets(a.data, a.rows_dir)
    else:
        quarters(a.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
