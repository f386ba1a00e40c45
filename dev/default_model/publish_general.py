"""Publish a trunk-recipe model as the bundled general model (general.safetensors).

    python -m map_refiner.dev.default_model.publish_general out/trunk/halfturn_s1_detail.safetensors

The source is session 20's half-turn trunk candidate, seed 1 (``trunk.py --turn-share
0.5 --seed 1``, its RNN retrained by ``multiscene train --adapt rnn``, the bundled
model's detail RNN grafted on by ``graft_detail``; the commands are in
docs/results_bundled_recipes.md, "Session 20"). Only its name and a record of where it
came from change; the weights are the source's, byte for byte.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from ...engine.modelfile.header import GENERAL_MODEL_PATH
from ...engine.modelfile.io import load_model, save_model

NAME = "Map Refiner general (buildings, new sensors)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--out", type=Path, default=GENERAL_MODEL_PATH)
    a = ap.parse_args(argv)
    net, config = load_model(a.source, "cpu")
    config = copy.deepcopy(config)
    config.name = NAME
    config.training["published"] = {
        "what": "the half-turn trunk recipe's seed-1 model (every layer retrained, quarter "
        "turns and flips on half the patches), the bundled default's detail RNN grafted on",
        "source": a.source.name,
        "why": "starts higher than the default on sensors it never saw (session 21's "
        "leave-out runs) and loses on Austin's aerial tiles "
        "(docs/results_bundled_recipes.md, sessions 20-22)",
    }
    save_model(net, config, a.out, overwrite=True)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
