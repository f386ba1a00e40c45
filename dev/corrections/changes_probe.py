"""Probe: of what a correction round changed where the user did not draw, how much came
out right against an accurate reference, and whether keeping only the changes the round's
model is sure of would have kept the right ones (session 38).

The plugin's changes layer (engine/scoring/changes.py) shows a cartographer where a
round's map differs from the map before it; this says, where a reference exists, what
looking at it would find. Building masks are compared on the scene's right half (the
study's undrawn half): the changed pixels, the share of them the reference agrees with,
building IoU before and after, and with a gate T the round's map with its changes kept
only where the round's model gives the new class at least T (the parent's class
elsewhere).

Two ways in:

    python -m map_refiner.dev.corrections.changes_probe --maps BEFORE.tif AFTER.tif \
        AFTER_scores.tif REFERENCE.tif
    python -m map_refiner.dev.corrections.changes_probe \
        --models 'out/s36/models/own_*/*.safetensors' --json out/s38/changes_own.json

``--models``: fitted models a study kept (``study --set change_gate=0 --keep-models
DIR``: ungated, adopted rounds only; a gated file is refused), each refined again through
the product's path with its scores, and its parent (the ``parent_path`` its fine-tune
recorded; none: the bundled default) refined once per scene; the rows are stored in
``--json`` and a rerun only adds the missing ones; it ends with a table per folder of
models. Measured in docs/results_corrections.md ("Session 38").
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
from pathlib import Path

import numpy as np

GATES = (0.55, 0.6, 0.7, 0.8, 0.9)


def judge(
    before: np.ndarray,
    after: np.ndarray,
    sure: np.ndarray,
    ref: np.ndarray,
    sure_at_parent: np.ndarray | None = None,
    drawn: set[str] | None = None,
    pixel_m2: float | None = None,
) -> dict[str, object]:
    """Right-half figures of a round (boolean building masks ``before``/``after``, the
    round's top probability ``sure`` and the reference ``ref``, all on one grid);
    ``sure_at_parent``: the round's top probability at its parent's detail temperature
    (rows ``pgate{T}``, session 39); ``drawn``: the classes the round's polygons carry
    (by name), whose changes alone rows ``dgate{T}`` (the gate and a
    change only to a drawn class) and ``direction`` (that alone) keep."""
    half = before.shape[1] // 2
    b, a, s, r = before[:, half:], after[:, half:], sure[:, half:], ref[:, half:]
    changed = a != b
    row: dict[str, object] = {
        "before": _iou(b, r),
        "after": _iou(a, r),
        "changed_share": round(100 * float(changed.mean()), 3),
        "changed_right": _share(changed & (a == r), changed),
        "became_building_right": _share(changed & a & r, changed & a),
        "became_background_right": _share(changed & ~a & ~r, changed & ~a),
    }
    for t in GATES:
        gated = np.where(changed & (s >= t), a, b)
        row[f"gate{t}"] = _iou(gated, r)
    if sure_at_parent is not None:
        sp = sure_at_parent[:, half:]
        for t in GATES:
            row[f"pgate{t}"] = _iou(np.where(changed & (sp >= t), a, b), r)
    if drawn is not None:
        to_drawn = (a & ("building" in drawn)) | (~a & ("background" in drawn))
        row["direction"] = _iou(np.where(changed & to_drawn, a, b), r)
        for t in GATES:
            row[f"dgate{t}"] = _iou(np.where(changed & to_drawn & (s >= t), a, b), r)
        row.update(object_gates(changed & to_drawn, s, a, b, r, pixel_m2))
    return row


#: Session 41's object-wise variants of the product's gate (dgate0.7): a connected change
#: kept whole when its mean top probability reaches T (``ogate{T}``), and the product's
#: gate with its kept changes smaller than A m² dropped (``sgate{A}``).
OBJECT_GATES = (0.6, 0.7, 0.8)
MIN_AREAS_M2 = (1.0, 4.0, 16.0)


def object_gates(
    candidate: np.ndarray,
    sure: np.ndarray,
    after: np.ndarray,
    before: np.ndarray,
    ref: np.ndarray,
    pixel_m2: float | None,
) -> dict[str, float]:
    """Right-half IoU with the round's changes (``candidate``: changed, to a drawn class)
    gated by connected change (8-connected) instead of by pixel."""
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    row: dict[str, float] = {}
    labels, n = ndimage.label(candidate, structure=eight)
    index = np.arange(1, n + 1)
    mean = np.asarray(ndimage.mean(sure, labels, index)) if n else np.zeros(0)
    for t in OBJECT_GATES:
        keep = np.concatenate([[False], mean >= t])
        row[f"ogate{t}"] = _iou(np.where(keep[labels], after, before), ref)
    if pixel_m2 is not None:
        kept = candidate & (sure >= 0.7)
        labels, n = ndimage.label(kept, structure=eight)
        sizes = np.asarray(ndimage.sum(kept, labels, np.arange(1, n + 1))) * pixel_m2
        for area in MIN_AREAS_M2:
            keep = np.concatenate([[False], sizes >= area])
            row[f"sgate{area:g}"] = _iou(np.where(keep[labels], after, before), ref)
    return row


def drawn_classes(model: Path) -> set[str]:
    """The class names of the polygons a round's model keeps (its ``corrections``)."""
    from ...engine.modelfile.header import read_model_config

    config = read_model_config(model)
    shapes = (config.corrections or {}).get("shapes", [])
    return {config.class_names[int(s["class"])] for s in shapes}


def top_at(probs: np.ndarray, ratio: float) -> np.ndarray:
    """The top class probability of ``(K, h, w)`` probabilities with their logits
    multiplied by ``ratio`` (a map refined at detail temperature T seen at T / ratio)."""
    if ratio == 1.0:
        return probs.max(0)
    logits = ratio * np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    logits -= logits.max(0, keepdims=True)
    e = np.exp(logits)
    return (e.max(0) / e.sum(0)).astype(np.float32)


def parent_ratio(model: Path, parent: Path | None, image: Path) -> float:
    """How much a round's detail temperature exceeds its parent's where the refine of
    ``image`` runs the detail pass (1 where it does not: its scores are not divided)."""
    from ...engine.modelfile.header import DEFAULT_MODEL_PATH, read_model_config
    from ...engine.refine.tiling import auto_detail_iterations
    from .study import _ground_m

    config = read_model_config(model)
    parent_config = read_model_config(parent or DEFAULT_MODEL_PATH)
    px = _ground_m(image)
    if not auto_detail_iterations(config.detail_iterations, px, px, config.ground_resolution_m):
        return 1.0
    return config.detail_temperature / parent_config.detail_temperature


def _iou(pred: np.ndarray, ref: np.ndarray) -> float:
    union = (pred | ref).sum()
    return round(100 * float((pred & ref).sum() / union) if union else 100.0, 2)


def _share(part: np.ndarray, whole: np.ndarray) -> float | None:
    n = int(whole.sum())
    return round(100 * float(part.sum()) / n, 1) if n else None


def maps_mode(before: Path, after: Path, scores: Path, reference: Path) -> dict[str, object]:
    from osgeo import gdal

    from ..corrections.study import building_mask

    ref = gdal.Open(str(reference)).ReadAsArray() > 0
    sure = gdal.Open(str(scores)).ReadAsArray().max(0)
    return judge(building_mask(before), building_mask(after), sure, ref)


def parent_of(model: Path) -> Path | None:
    """The model a kept fit started from (its fine-tune's record; None: bundled)."""
    from ...engine.modelfile.header import read_model_config

    record = read_model_config(model).training.get("finetune", [{}])[-1]
    path = record.get("parent_path")
    if not path:
        return None
    bundled = Path(__file__).resolve().parents[2] / "resources" / "models" / Path(path).name
    # a bundled model recorded from a worktree since removed: the same file here
    return Path(path) if Path(path).exists() or not bundled.exists() else bundled


def models_mode(pattern: str, data: Path, out: Path) -> dict[str, dict]:
    from osgeo import gdal

    from ...engine.modelfile.header import read_model_config
    from .scenes import scenes
    from .study import ROOT, _ground_m, refine

    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no model matches {pattern!r}")
    work_root = ROOT / "out" / "corrections"
    found = scenes(data, work_root / "data")
    named = sorted(found, key=len, reverse=True)  # loveda_1 before loveda
    rows = json.loads(out.read_text()) if out.exists() else {}
    parents: dict[tuple[str, str], np.ndarray] = {}
    with tempfile.TemporaryDirectory(dir=work_root) as tmp:
        work = Path(tmp)
        for f in map(Path, files):
            key = f"{f.parent.name}/{f.stem}"
            if key in rows:
                continue
            if read_model_config(f).change_gate > 0:
                raise SystemExit(
                    f"{f} gates its own changes already; keep ungated fits for this probe "
                    "(study ... --set change_gate=0 --keep-models DIR)"
                )
            name = next(n for n in named if f.name.startswith(n + "_"))
            scene = found[name]
            parent = parent_of(f)
            if (name, str(parent)) not in parents:
                parents[(name, str(parent))], _ = refine(scene.image, work / "parent.tif", parent)
            before = parents[(name, str(parent))]
            after, probs = refine(scene.image, work / "round.tif", f)
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            ratio = parent_ratio(f, parent, scene.image)
            drawn = drawn_classes(f)
            px = _ground_m(scene.image)
            row = judge(before, after, probs.max(0), ref, top_at(probs, ratio), drawn, px * px)
            row["ratio"] = round(ratio, 3)
            rows[key] = {"scene": name, "parent": str(parent or "bundled"), **row}
            out.write_text(json.dumps(rows, indent=1))
            print(key, json.dumps(row), flush=True)
    return rows


def table(rows: dict[str, dict]) -> str:
    """Per group of rounds (the kept models' folder) and over all: the right halves'
    change summed over the rounds without a gate and with each, how many end below their
    start (by more than 0.05), and the worst change."""
    groups: dict[str, list[dict]] = {}
    for key, row in rows.items():
        groups.setdefault(key.split("/")[0], []).append(row)
    groups["all"] = list(rows.values())
    keys = ["after"] + [f"gate{t}" for t in GATES]
    head = "| rounds | " + " | ".join(["no gate"] + [f"gate {t}" for t in GATES]) + " |"
    lines = [head, "|---" * (len(keys) + 1) + "|"]
    for name, group in groups.items():
        cells = []
        for k in keys:
            d = [r[k] - r["before"] for r in group]
            worse = sum(x < -0.05 for x in d)
            cells.append(f"{sum(d):+.1f} ({worse}; {min(d):+.1f})")
        lines.append(f"| {name} ({len(group)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--maps", nargs=4, type=Path, metavar=("BEFORE", "AFTER", "SCORES", "REF"))
    p.add_argument("--models", help="glob of fitted models a study kept")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--json", type=Path, help="with --models: the rows (kept, added to)")
    a = p.parse_args(argv)
    if a.maps:
        print(json.dumps(maps_mode(*a.maps), indent=1))
        return 0
    if not a.models or a.json is None:
        p.error("give --maps, or --models with --json")
    rows = models_mode(a.models, a.data, a.json)
    print("right half's building IoU change summed (rounds below their start; worst):")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
