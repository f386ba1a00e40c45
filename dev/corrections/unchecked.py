"""What the fits the checks turn down would have done: the study's protocol with the
adoption check and the flip check switched off (every fit adopted), so that the
study's "not adopted" rows get a counterfactual. A question for the next step of the
loop: are gains lost to the checks, or are the fits themselves weak?

    python -m map_refiner.dev.corrections.unchecked [--users largest] [--ks 4,16]
        [--scenes a,b] [--model M] [--seed S] [--rows NAME] [--against ROWS]
        # rows -> out/corrections/NAME (rows_unchecked.jsonl); run alone

Not a product path: it patches ``finetune.should_adopt`` for its own process.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from osgeo import gdal

from ...training.corrections import finetune as ft
from .scenes import scenes
from .study import ROOT, VARIANTS, run_scene_in


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--users", default="largest")
    ap.add_argument("--ks", default="4,16")
    ap.add_argument("--model", type=Path, default=None, help="the starting model (bundled)")
    ap.add_argument("--seed", type=int, default=0, help="the fine-tune's seed")
    ap.add_argument("--rows", default="rows_unchecked.jsonl", help="file name in --out-dir")
    ap.add_argument(
        "--against", default="rows.jsonl", help="the study's rows (in --out-dir) to set beside"
    )
    a = ap.parse_args(argv)
    ft.should_adopt = lambda base, tuned: tuned is not None  # every fit adopted
    VARIANTS["unchecked"] = replace(VARIANTS["head+rnn"], flip_per_score=float("inf"))
    rows = a.out_dir / a.rows
    all_scenes = scenes(a.data, a.out_dir / "data")
    for name in a.scenes.split(",") if a.scenes else list(all_scenes):
        run_scene_in(
            a.out_dir,
            all_scenes[name],
            a.users.split(","),
            [int(k) for k in a.ks.split(",")],
            ["unchecked"],
            rows,
            base_model=a.model,
            overrides={"seed": a.seed},
        )
    checked = {
        (r["scene"], r["user"], r["k"]): r
        for r in map(json.loads, (a.out_dir / a.against).read_text().splitlines())
        if r["variant"] == "head+rnn"
    }
    for r in map(json.loads, rows.read_text().splitlines()):
        c = checked.get((r["scene"], r["user"], r["k"]))
        shipped = f"{c['after'] - c['before']:+.1f}" if c else "?"
        print(
            f"{r['scene']:16s} {r['user']:11s} K={r['k']:2d} unchecked "
            f"{r['after_fit'] - r['before']:+6.1f}  shipped {shipped:>6s}  held-out "
            f"{r['base_score'] or 0:.2f}->{r['tuned_score'] or 0:.2f}  flips "
            f"{r['flip_ratio'] or 0:.2f}"
        )
    return 0


if __name__ == "__main__":
    gdal.UseExceptions()
    raise SystemExit(main())
