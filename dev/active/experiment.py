"""Does "draw here next" help? A simulated user on the Austin development tile.

The bundled model refines ``austin_dev_rgb.tif``; its uncertainty (normalised
entropy at the default iteration count) is ranked into regions as the plugin's
dock does. A user copies K corrections from the reference (K = 1, 2, 4, 8, 16),
either where the ranking points or under random points (several seeds), in one
of two units (see :mod:`.candidates`): ``polygon`` (a building with a
background ring, or a background square) and ``cell`` (a 12 m region cell,
labelled inside as the reference says). Each set fine-tunes the RNN with the
plugin's Fine-tune (``training.corrections.finetune``): from the correction polygons
(``sparse``, as the dialog does; the fine-tune keeps the model's own map for
uncovered pixels in the window it reads) or on the bundled model's own map over
the whole tile with the corrections burned in (``anchored``, a label raster).
The fine-tuned model is scored on the rest of the tile: the corrected pixels are
left out. The base model is scored on exactly the same pixels, so each run also
gives a gain.

    python -m map_refiner.dev.active.experiment [--configs polygon/sparse,...] [--steps N]

Writes ``out/active/<unit>/results.json``, ``docs/results_active.md`` and
``docs/figures/active_*.png``. Finished runs are kept and skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from ...engine.modelfile.io import load_model
from ...engine.refine.pipeline import refine_array
from ...engine.refine.uncertainty import Region, rank_regions, softmax, uncertainty
from ...engine.scoring.metrics import Scores, confusion_matrix
from ...training.corrections.finetune import finetune
from ...training.corrections.fit import FitParams
from ...training.rnn import RnnParams, train_rnn
from ...training.tile import LabelSource
from .candidates import (
    Candidates,
    at_random,
    by_uncertainty,
    cell_candidates,
    polygon_candidates,
    write_anchored_labels,
    write_polygons,
)
from .report import write_figures, write_report

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
LABELS = ["background", "building"]
UNITS = ("polygon", "cell")
LABEL_MODES = ("sparse", "anchored")


def predict(model: Path | None, image: Path):  # noqa: ANN201
    """``(probs (K, H, W), valid, iterations)`` of a model over the whole image, as a
    refine makes it (the model's detail pass and a round's change gate; the drawn
    polygons' kept pixels are left out of every score anyway)."""
    net, config = load_model(model, "cpu")
    its = config.default_iterations
    ds = gdal.Open(str(image))
    logits, valid = refine_array(net.eval(), config, ds, its, detail_iterations=None)
    return softmax(logits, axis=0), valid, its


def score(pred: np.ndarray, ref: np.ndarray, keep: np.ndarray) -> dict[str, float]:
    cm = confusion_matrix(pred[keep].astype(np.uint8), ref[keep].astype(np.uint8), 2)
    s = Scores.from_confusion(cm, LABELS)
    return {
        "building_iou": s.iou[1],
        "mean_iou": s.mean_iou,
        "accuracy": s.overall_accuracy,
        "pixels": s.pixel_count,
    }


@dataclass
class Setup:
    """The tile, its reference, the base model's map and uncertainty, the candidates."""

    unit: str
    labels: str
    image: Path
    ref: np.ndarray
    probs: np.ndarray
    valid: np.ndarray
    iterations: int
    unc: np.ndarray
    regions: list[Region]
    cands: Candidates
    cell_m: float


def prepare(data: Path, unit: str, labels: str, cell_m: float) -> Setup:
    image = data / "austin" / "austin_dev_rgb.tif"
    buildings = data / "austin" / "austin_dev_buildings.gpkg"
    ref = gdal.Open(str(data / "austin" / "austin_dev_gt.tif")).ReadAsArray() > 0
    probs, valid, its = predict(None, image)
    unc = uncertainty(probs, "entropy")
    cell = max(1, int(round(cell_m / abs(gdal.Open(str(image)).GetGeoTransform()[1]))))
    if unit == "polygon":  # the dock's ranking, regions grown from cells
        regions = rank_regions(unc, valid, cell=cell, top=None)
        cands = polygon_candidates(image, buildings)
    else:  # one cell per correction, so every correction labels one cell
        regions = rank_regions(unc, valid, cell=cell, top=None, max_cells=1)
        cands = cell_candidates(image, buildings, cell)
    return Setup(unit, labels, image, ref, probs, valid, its, unc, regions, cands, cell_m)


def orders(setup: Setup, kmax: int, seeds: int) -> dict[str, list[int]]:
    """The candidates each simulated user draws, in drawing order."""
    found = {"uncertainty": by_uncertainty(setup.cands, setup.unc, setup.regions, kmax)}
    for seed in range(seeds):
        found[f"random{seed}"] = at_random(setup.cands, np.random.default_rng(seed), kmax)
    return found


def run_one(
    name: str, chosen: list[int], setup: Setup, out_dir: Path, steps: int | None, device: str
) -> dict:
    """Fine-tune on the chosen corrections; score tuned and base models off them.

    ``sparse``: the corrections' polygons only, as the dialog's Fine-tune reads a
    correction layer. ``anchored``: the base model's own map everywhere, the
    corrections burned over it (a label raster, same fine-tune).
    """
    gpkg = write_polygons(out_dir / f"{name}.gpkg", setup.cands, chosen, LABELS)
    if setup.labels == "sparse":
        source = LabelSource(gpkg, class_field="class", mode="sparse")
    else:
        source = LabelSource(
            write_anchored_labels(
                out_dir / f"{name}_labels.tif",
                setup.image,
                setup.probs.argmax(0),
                setup.cands,
                chosen,
            )
        )
    model = out_dir / f"{name}.safetensors"
    t0 = time.perf_counter()
    if setup.labels == "sparse":
        finetune(
            setup.image,
            source,
            model,
            params=FitParams(steps=steps),
            device=device,
            overwrite=True,
        )
    else:  # a label raster: the RNN trained from the base model's (the pre-2026-12 fine-tune)
        train_rnn(
            RnnParams(
                image=setup.image,
                labels=source,
                out=model,
                steps=steps or 100,  # the label-raster path has no product default here
                device=device,
                init="base",
                checkpoint_every=0,
                resume=False,
                overwrite=True,
            )
        )
    probs, _, _ = predict(model, setup.image)
    drawn = setup.cands.mask(chosen)
    keep = setup.valid & ~drawn
    return {
        "tuned": score(probs.argmax(0), setup.ref, keep),
        "base": score(setup.probs.argmax(0), setup.ref, keep),
        "with_building": sum(setup.cands.has_building(c) for c in chosen),
        "drawn_pixels": int(drawn.sum()),
        "drawn_building_pixels": int((drawn & setup.ref).sum()),
        "predicted_building_fraction": float((probs.argmax(0) == 1)[keep].mean()),
        "seconds": time.perf_counter() - t0,
    }


def run(
    setup: Setup, out_dir: Path, ks: Sequence[int], steps: int | None, seeds: int, device: str
) -> dict:
    """Every (strategy, K) fine-tune of one unit; resumes from ``out_dir/results.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    picks = orders(setup, max(ks), seeds)
    result = {
        "unit": setup.unit,
        "labels": setup.labels,
        "runs": runs,
        "orders": picks,
        "iterations": setup.iterations,
        "cell_m": setup.cell_m,
        "steps": steps,
        "ks": list(ks),
        "base_whole_tile": score(setup.probs.argmax(0), setup.ref, setup.valid),
        "reference_building_fraction": float(setup.ref[setup.valid].mean()),
        "base_building_fraction": float((setup.probs.argmax(0) == 1)[setup.valid].mean()),
        "candidates": len(setup.cands.parts),
        "regions": [r.__dict__ for r in setup.regions[:16]],
    }
    for strategy, order in picks.items():
        for k in ks:
            key = f"{strategy}_k{k}"
            old = runs.get(key)
            if old and old["chosen"] == order[:k] and old["steps"] == steps:
                continue
            runs[key] = dict(
                run_one(key, order[:k], setup, out_dir, steps, device),
                strategy=strategy,
                k=k,
                chosen=order[:k],
                steps=steps,
            )
            path.write_text(json.dumps(result, indent=1))
            print(
                f"{setup.unit}/{setup.labels} {key}: building "
                f"IoU {runs[key]['tuned']['building_iou']:.4f} "
                f"(base {runs[key]['base']['building_iou']:.4f}) {runs[key]['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    path.write_text(json.dumps(result, indent=1))
    return result


def iteration_curve(data: Path, max_iterations: int = 10) -> list[dict]:
    """Scores of the bundled model's class map at each iteration 0..N (one trajectory)."""
    from ...engine.refine.trajectory import compute_trajectory

    image = data / "austin" / "austin_dev_rgb.tif"
    ref = gdal.Open(str(data / "austin" / "austin_dev_gt.tif")).ReadAsArray() > 0
    traj = compute_trajectory(image, max_iterations, device="cpu")
    return [
        dict(
            score(traj.classes[t], ref, traj.valid),
            iteration=t,
            mean_uncertainty=float(traj.uncertainty[t][traj.valid].astype(np.float32).mean()),
        )
        for t in range(max_iterations + 1)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "out" / "active")
    parser.add_argument(
        "--configs",
        default="polygon/sparse",
        help="comma-separated unit/labels pairs; unit: polygon or cell, labels: "
        "sparse (the correction polygons, as the plugin's Fine-tune) or "
        "anchored (the bundled model's map elsewhere); about 3.5 min each on two free cores",
    )
    parser.add_argument("--ks", default="1,2,4,8,16")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="fine-tune steps (default: the product's, fit.CPU_STEPS + the refit on a CPU)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="random users (one fine-tune each)")
    parser.add_argument("--cell-m", type=float, default=12.0, help="region cell size, metres")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is fastest on a shared 2-core machine)",
    )
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "results_active.md")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    args = parser.parse_args(argv)
    if not (args.data / "austin" / "austin_dev_rgb.tif").exists():
        raise SystemExit(f"{args.data}/austin not found (see ../shared/data/README.md)")
    configs = [tuple(c.split("/")) for c in args.configs.split(",") if c]
    if any(len(c) != 2 or c[0] not in UNITS or c[1] not in LABEL_MODES for c in configs):
        raise SystemExit(
            f"--configs: unit/labels pairs, unit in {', '.join(UNITS)}, labels in "
            f"{', '.join(LABEL_MODES)}"
        )
    logging.basicConfig(level=logging.WARNING)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # configure_threads() then leaves it
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ks = [int(k) for k in args.ks.split(",")]
    results, setups = {}, {}
    for unit, mode in configs:
        key = f"{unit}/{mode}"
        setups[key] = prepare(args.data, unit, mode, args.cell_m)
        folder = args.out_dir / (unit if mode == "sparse" else f"{unit}_{mode}")
        results[key] = run(setups[key], folder, ks, args.steps, args.seeds, args.device)
    curve = iteration_curve(args.data)
    seconds = time.perf_counter() - t0
    (args.out_dir / "iterations.json").write_text(json.dumps(curve, indent=1))
    figures = write_figures(results, setups, curve, args.figures)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    write_report(results, curve, args.report, figures, command, seconds)
    print(
        f"wrote {args.report} and {len(figures)} figures in {seconds / 60:.1f} min", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
