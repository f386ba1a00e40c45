"""Average the weights of several retrains of one recipe (a "model soup").

Models fine-tuned from the same starting weights often sit in one basin of the loss,
where the average of their weights scores as well as their ensemble and better than
most of them alone (Wortsman et al. 2022, "Model soups"). The whole-model retrains of
``trunk.py`` all start from the previous bundled model with the trunk at a tenth of the
rate, and their scores on the held-out right halves move by several points from one
seed or data share to the next (docs/results_bundled_recipes.md, "Session 11"):
averaging is the cheap way to keep what they share.

    python -m map_refiner.dev.default_model.soup --out M.safetensors A.safetensors B.safetensors ...

Every model must have the same architecture, classes and input normalisation; the
config (and its training record) is the first model's, with the list of ingredients
added under ``training["soup"]``.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from ...engine.modelfile.io import load_model, save_model
from ...engine.networks.models import MapRefinerNet


def model_inputs(config) -> tuple:
    """What models must share to be averaged: classes, grid and input normalisation."""
    return (
        config.class_names,
        config.normalisation,
        config.mean,
        config.std,
        config.ground_resolution_m,
    )


def soup(paths: list[Path]) -> tuple[MapRefinerNet, object]:
    """The uniform average of the models' weights, with the first model's config."""
    if len(paths) < 2:
        raise SystemExit("a soup needs at least two models")
    net, config = load_model(paths[0], "cpu")
    config = copy.deepcopy(config)
    total = {k: v.clone().double() for k, v in net.state_dict().items()}
    for p in paths[1:]:
        other, other_config = load_model(p, "cpu")
        same = model_inputs(other_config) == model_inputs(config)
        if not same:
            raise SystemExit(f"{p} differs from {paths[0]} in classes, resolution or inputs")
        state = other.state_dict()
        if state.keys() != total.keys() or any(state[k].shape != total[k].shape for k in total):
            raise SystemExit(f"{p} has another architecture than {paths[0]}")
        for k in total:
            total[k] += state[k].double()
    net.load_state_dict({k: (v / len(paths)).float() for k, v in total.items()})
    config.training["soup"] = {
        "what": "uniform average of the weights of these models (dev/default_model/soup.py)",
        "models": [p.name for p in paths],
    }
    return net, config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("models", type=Path, nargs="+")
    a = ap.parse_args(argv)
    with torch.no_grad():
        net, config = soup(a.models)
    save_model(net, config, a.out, overwrite=True)
    print(json.dumps(config.training["soup"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
