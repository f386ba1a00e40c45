"""Probe: does test-time augmentation (averaging the refined probabilities over the
eight quarter turns and flips of the input) help the bundled model on new imagery?

Scores building IoU of each scene's right half on the model grid (labels resampled as
for training, so within a point of ``multiscene score``'s full-resolution figures),
for the plain map, the mean with one flip and the mean over all eight.

    python -m map_refiner.dev.default_model.tta_probe [--model M]

Measured in docs/results_bundled_recipes.md ("Session 11").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ...engine.device import configure_threads
from ...engine.labels.classes import IGNORE
from ...engine.modelfile.io import load_model
from ...engine.networks.inference import infer
from ..corrections.scenes import scenes
from ..corrections.study import iou
from .multiscene import ROOT, left_half_tile

SCENES = ("austin_dev", "austin_enh", "kampala_drone", "nepal_drone", "rio_wv2")


def probabilities(net, image: torch.Tensor, iterations: int, turns: int, flip: bool):
    x = torch.rot90(image, turns, (1, 2))
    if flip:
        x = x.flip(2)
    p = torch.softmax(infer(net, x, iterations), 0)
    if flip:
        p = p.flip(2)
    return torch.rot90(p, -turns, (1, 2))


def building_iou(pred: torch.Tensor, labels: torch.Tensor) -> float:
    known = labels != IGNORE
    return 100 * iou((pred[known] == 1).numpy(), (labels[known] == 1).numpy())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    a = ap.parse_args(argv)
    configure_threads()
    net, config = load_model(a.model, "cpu")
    every = scenes(a.data, ROOT / "out" / "multiscene" / "data")
    print("scene | plain | 2 (flip) | 8 (turns and flips)")
    for name in SCENES:
        s = every[name]
        tile = left_half_tile(s.image, s.reference, config, whole=True)
        labels = tile.labels.clone()
        labels[:, : labels.shape[1] // 2] = IGNORE  # score the right half only
        it = config.default_iterations
        plain = probabilities(net, tile.image, it, 0, False)
        two = (plain + probabilities(net, tile.image, it, 0, True)) / 2
        eight = sum(probabilities(net, tile.image, it, k, f) for k in range(4) for f in (0, 1))
        scores = [building_iou(p.argmax(0), labels) for p in (plain, two, eight / 8)]
        print(name, "|", " | ".join(f"{v:.1f}" for v in scores), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
