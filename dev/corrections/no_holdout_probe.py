"""What a round with nothing to hold out would do if it fitted anyway, and whether the
anchors' partner could judge it.

A round whose polygons are one per class (a user who drew one roof, or Potsdam's two
error regions of one class) runs no fit today: no polygon can be held out, so nothing
checks the fit. This probe fits such rounds anyway (every polygon learnt, the product's
step count, no early stopping; the refit as an adopted round's) and scores the right
half as the study does, keeping the maps. It then refines the scene with the partner
(the bundled general model unless ``--partner``) and prints, for each round, the share
of the pixels the fit changed on the undrawn half that the partner's map agrees with:
a check a round could run without a held-out polygon, if it parts gains from losses.

    python -m map_refiner.dev.corrections.no_holdout_probe --ks 1 --seeds 0,1
        [--scenes a,b] [--model M] [--partner P] [--rows NAME]

Not a product path: it patches the fine-tune's held-out phase for its own process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from ...engine.labels.classes import IGNORE
from ...training.corrections import finetune as ft
from .scenes import scenes
from .study import ROOT, refine, run_scene_in

GENERAL = ROOT / "resources" / "models" / "general.safetensors"


def _fit_everything(fit, corr, folds, steps, base_state, rep, budget):  # noqa: ANN001
    """The held-out phase with nothing held out: learn every polygon for ``steps``."""
    fit.net.load_state_dict(base_state)
    base = ft.balanced_accuracy(fit.base, fit.labels, fit.labels != IGNORE)
    out = fit.fit(fit.labels, steps, rep, held_out=None)
    return [out], [fit.rng], base, 1.0  # "adopted": its 1.0 is no evidence


def _patch() -> None:
    real_folds = ft.fold_holdouts
    ft.fold_holdouts = lambda classes, seed, n: real_folds(classes, seed, n) or [[]]
    real_phases = ft._held_out_phases

    def phases(fit, corr, folds, steps, base_state, rep, budget):  # noqa: ANN001
        if folds == [[]]:
            return _fit_everything(fit, corr, folds, steps, base_state, rep, budget)
        return real_phases(fit, corr, folds, steps, base_state, rep, budget)

    ft._held_out_phases = phases


def agreement(npz: Path, partner: np.ndarray) -> tuple[float, int]:
    """Share of the undrawn half's changed pixels where the fitted map gives the
    partner's class, and how many pixels changed."""
    z = np.load(npz)
    shape = tuple(z["shape"])
    n = shape[0] * shape[1]
    pred = np.unpackbits(z["pred"])[:n].reshape(shape).astype(bool)
    fitted = np.unpackbits(z["fitted"])[:n].reshape(shape).astype(bool)
    half = shape[1] // 2
    changed = (pred != fitted)[:, half:]
    if not changed.any():
        return float("nan"), 0
    return float((fitted[:, half:] == partner[:, half:])[changed].mean()), int(changed.sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--users", default="largest")
    ap.add_argument("--ks", default="1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--model", type=Path, default=None, help="the starting model (bundled)")
    ap.add_argument("--partner", type=Path, default=GENERAL)
    ap.add_argument("--rows", default="rows_no_holdout.jsonl", help="file name in --out-dir")
    a = ap.parse_args(argv)
    _patch()
    rows = a.out_dir / a.rows
    maps = a.out_dir / (Path(a.rows).stem + "_maps")
    every = scenes(a.data, a.out_dir / "data")
    overrides = {} if a.model is None else {"anchor_partner": str(a.partner)}
    for name in a.scenes.split(",") if a.scenes else list(every):
        for seed in [int(s) for s in a.seeds.split(",")]:
            run_scene_in(
                a.out_dir,
                every[name],
                a.users.split(","),
                [int(k) for k in a.ks.split(",")],
                ["head+rnn"],
                rows,
                base_model=a.model,
                overrides={**overrides, "seed": seed},
                keep_maps=maps,
            )
        with tempfile.TemporaryDirectory(dir=a.out_dir) as work:
            partner, _ = refine(every[name].image, Path(work) / "partner.tif", a.partner)
        for npz in sorted(maps.glob(f"{name}_*.npz")):
            row = json.loads(str(np.load(npz)["row"]))
            share, n = agreement(npz, partner)
            print(
                f"{name} {row['user']} K={row['k']} seed {row['overrides'].get('seed')}: "
                f"drawn {row['drawn']} {row['before']} -> fit {row['after_fit']} "
                f"({row['after_fit'] - row['before']:+.1f}); changed {n} px, "
                f"partner agrees with {100 * share:.0f} %",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
