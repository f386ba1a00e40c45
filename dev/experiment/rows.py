"""The rows of the table: each method run on the enhancement (train) and test scenes.

Baselines are tuned on the enhancement scene only and then applied once to the
test scene; learned refiners are trained on the enhancement scene only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...engine.networks.models import RefinementRNN, UnsharedRefinement
from ...engine.scoring.metrics import Scores
from .baselines import CrfParams, best_offsets, dense_crf, grid_search, guided_filter
from .data import Scene, cropped_heat, refine_scene, score_logits, score_map, softmax, to_reference
from .fit import FitSpec, fit_refiner

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One method: its test and train scores, class maps for figures, and how it was set."""

    name: str
    test: Scores
    train: Scores | None = None
    test_map: np.ndarray | None = None
    settings: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0
    curve: dict[str, list[float]] = field(default_factory=dict)  # learning curve


def coarse_row(enh: Scene, test: Scene, names: Sequence[str], label: str = "CNN") -> Row:
    t0 = time.perf_counter()
    maps = {
        s.name: to_reference(cropped_heat(s), s.grids).argmax(0).astype(np.uint8)
        for s in (enh, test)
    }
    return Row(
        label,
        score_map(maps[test.name], test.reference, names),
        score_map(maps[enh.name], enh.reference, names),
        maps[test.name],
        seconds=time.perf_counter() - t0,
    )


def offsets_row(enh: Scene, test: Scene, names: Sequence[str], values: Sequence[float]) -> Row:
    """Per-class offsets on the coarse logits tuned on the enhancement tile (no edges used)."""
    t0 = time.perf_counter()
    lg = {s.name: to_reference(cropped_heat(s), s.grids) for s in (enh, test)}
    off, train = best_offsets(lg[enh.name], lambda c: score_map(c, enh.reference, names), values)
    m = (lg[test.name] + off[:, None, None]).argmax(0).astype(np.uint8)
    return Row(
        "CNN + tuned class offsets",
        score_map(m, test.reference, names),
        train,
        m,
        {"offsets": [round(float(v), 3) for v in off]},
        time.perf_counter() - t0,
    )


def crf_row(
    enh: Scene,
    test: Scene,
    names: Sequence[str],
    grid: dict[str, Sequence[float]],
    iterations: int = 5,
) -> Row:
    """DeepLab's dense CRF on the CNN's probabilities.

    Its energy is grid-searched on the enhancement tile.
    """
    t0 = time.perf_counter()
    probs = {s.name: softmax(to_reference(cropped_heat(s), s.grids)) for s in (enh, test)}

    def run(scene: Scene, params: dict[str, float]) -> np.ndarray:
        q = dense_crf(scene.rgb, probs[scene.name], CrfParams(**params), iterations)
        return q.argmax(0).astype(np.uint8)

    best, train, tried = grid_search(grid, lambda p: score_map(run(enh, p), enh.reference, names))
    m = run(test, best)
    return Row(
        "CNN + dense CRF",
        score_map(m, test.reference, names),
        train,
        m,
        {**best, "mean-field iterations": iterations, "combinations tried": len(tried)},
        time.perf_counter() - t0,
    )


def guided_row(
    enh: Scene,
    test: Scene,
    names: Sequence[str],
    radii: Sequence[int],
    eps: Sequence[float],
    offsets: Sequence[float],
) -> Row:
    """Colour guided filter on the CNN's probabilities; radius, eps and class offsets
    tuned on the enhancement tile."""
    t0 = time.perf_counter()
    probs = {s.name: softmax(to_reference(cropped_heat(s), s.grids)) for s in (enh, test)}
    cache: dict[tuple, np.ndarray] = {}

    def filtered(scene: Scene, r: int, e: float) -> np.ndarray:
        key = (scene.name, r, e)
        if key not in cache:
            cache[key] = guided_filter(scene.rgb / 255.0, probs[scene.name], int(r), float(e))
        return cache[key]

    def tune(p: dict[str, float]) -> Scores:
        return best_offsets(
            filtered(enh, p["radius"], p["eps"]),
            lambda c: score_map(c, enh.reference, names),
            offsets,
        )[1]

    best, _, tried = grid_search({"radius": radii, "eps": eps}, tune)
    q = filtered(enh, best["radius"], best["eps"])
    off, train = best_offsets(q, lambda c: score_map(c, enh.reference, names), offsets)
    cache.clear()
    qt = guided_filter(test.rgb / 255.0, probs[test.name], int(best["radius"]), float(best["eps"]))
    m = (qt + off[:, None, None]).argmax(0).astype(np.uint8)
    return Row(
        "CNN + guided filter",
        score_map(m, test.reference, names),
        train,
        m,
        {**best, "offsets": [round(float(v), 3) for v in off], "combinations tried": len(tried)},
        time.perf_counter() - t0,
    )


def make_refiner(
    kind: str, in_channels: int, num_classes: int, iterations: int, seed: int
) -> torch.nn.Module:
    """``rnn`` (the paper), ``agnostic`` (one MLP for all classes) or ``unshared``."""
    torch.manual_seed(seed)
    if kind == "rnn":
        return RefinementRNN(in_channels, num_classes)
    if kind == "agnostic":
        return RefinementRNN(in_channels, num_classes, class_specific=False)
    if kind == "unshared":
        return UnsharedRefinement(in_channels, num_classes, iterations)
    raise ValueError(f"unknown refiner {kind!r}")


LABELS = {
    "rnn": "CNN + RNN (the paper)",
    "agnostic": "CNN + class-agnostic RNN",
    "unshared": "CNN + non-recurrent (5 unshared iterations)",
}


def learned_row(
    kind: str,
    enh: Scene,
    test: Scene,
    names: Sequence[str],
    spec: FitSpec,
    device: torch.device,
    label: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple:
    """Train one refiner on the enhancement scene; score it on both scenes.

    Returns the row and the trained module.
    """
    refiner = make_refiner(kind, enh.image.shape[0], len(names), spec.iterations, spec.seed)
    curve: dict[str, list[float]] = {"step": [], "train": [], "test": []}

    def score_now(step: int) -> None:
        refiner.to("cpu")
        tr = score_logits(
            to_reference(refine_scene(refiner, enh, spec.iterations), enh.grids), enh, names
        )
        te = score_logits(
            to_reference(refine_scene(refiner, test, spec.iterations), test.grids), test, names
        )
        curve["step"].append(step)
        curve["train"].append(100 * tr.mean_iou)
        curve["test"].append(100 * te.mean_iou)
        refiner.to(device)
        if progress:
            progress(
                f"{kind} step {step}: mean IoU train {100 * tr.mean_iou:.2f} "
                f"test {100 * te.mean_iou:.2f}"
            )

    out = fit_refiner(refiner, enh.image, cropped_heat(enh), enh.labels, spec, device, score_now)
    refiner.to("cpu").eval()
    logits = {
        s.name: to_reference(refine_scene(refiner, s, spec.iterations), s.grids)
        for s in (enh, test)
    }
    m = logits[test.name].argmax(0).astype(np.uint8)
    row = Row(
        label or LABELS[kind],
        score_map(m, test.reference, names),
        score_logits(logits[enh.name], enh, names),
        m,
        {"steps": out.steps, "final loss": round(out.final_loss, 4)},
        out.seconds,
        curve,
    )
    return row, refiner


def iteration_curve(
    refiner: RefinementRNN, scene: Scene, names: Sequence[str], iterations: int
) -> dict[str, list[float]]:
    """Scores (percent) after 0..``iterations`` RNN iterations on one scene (Fig. 7b)."""
    traj = refine_scene(refiner, scene, iterations, trajectory=True)
    curve: dict[str, list[float]] = {"overall accuracy": [], "mean IoU": []}
    for name in names[1:]:
        curve[f"IoU {name}"] = []
    for t in range(traj.shape[0]):
        s = score_logits(to_reference(traj[t], scene.grids), scene, names)
        curve["overall accuracy"].append(100 * s.overall_accuracy)
        curve["mean IoU"].append(100 * s.mean_iou)
        for name, v in zip(names[1:], s.iou[1:]):
            curve[f"IoU {name}"].append(100 * v)
    return curve
