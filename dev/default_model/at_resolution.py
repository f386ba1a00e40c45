"""A copy of a model told that its grid is another ground resolution, for a probe of
the scale a model reads best (docs/results_bundled_recipes.md "Session 23"): the same
weights see every image resampled to ``METRES`` a pixel instead of the model's own.

    python -m map_refiner.dev.default_model.at_resolution MODEL METRES OUT.safetensors
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ...engine.modelfile.io import load_model, save_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("metres", type=float)
    ap.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    net, cfg = load_model(a.model)
    save_model(net, replace(cfg, ground_resolution_m=a.metres), a.out)
    print(f"{a.out}: {a.model.name} on a {a.metres:g} m grid (was {cfg.ground_resolution_m:g} m)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
