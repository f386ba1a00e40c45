"""The product's correction loop on shared scenes under another look (session 45): each
scene's image rewritten with a colour cast, darker or hazier (dev/prior/misread.py's
looks), the bundled model the product chooses for such imagery (the general model: every
scene under another look lies far from the default model's training areas, session 37),
the largest-errors user, K=4/16 -- a stand-in for a new user's sensor on four continents,
with the current bundled models rather than the previous one.

    python -m map_refiner.dev.corrections.look_rounds --seed S \\
        [--scenes austin_dev,kampala_drone,nepal_drone,rio_wv2] \\
        [--looks "cool cast,dark,haze 0.5"]   # rows_s45_looks_seed<S>.jsonl, ~8 min alone
    python -m map_refiner.dev.corrections.seeds_table \\
        "looks=out/corrections/rows_s45_looks_seed*.jsonl"

The looked images are kept in out/s45/looks (made once). Rows name the scene
``<scene>+<look>``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..prior.misread import LOOKS, apply_look
from .scenes import scenes
from .study import ROOT, run_scene_in


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "s45" / "looks")
    ap.add_argument("--scenes", default="austin_dev,kampala_drone,nepal_drone,rio_wv2")
    ap.add_argument("--looks", default="cool cast,dark,haze 0.5")
    ap.add_argument("--model", type=Path, default=ROOT / "resources/models/general.safetensors")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", default=None, help="default: rows_s45_looks_seed<S>.jsonl")
    a = ap.parse_args(argv)
    looks = a.looks.split(",")
    unknown = [look for look in looks if look not in LOOKS]
    if unknown:
        raise SystemExit(f"unknown looks {unknown}; use {', '.join(LOOKS)}")
    a.work.mkdir(parents=True, exist_ok=True)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    rows = a.out_dir / (a.rows or f"rows_s45_looks_seed{a.seed}.jsonl")
    found = scenes(a.data, a.out_dir / "data")
    for name in a.scenes.split(","):
        for look in looks:
            tag = look.replace(" ", "")
            image = a.work / f"{name}_{tag}.tif"
            if not image.exists():
                apply_look(found[name].image, look, image)
            scene = replace(found[name], name=f"{name}+{tag}", image=image)
            run_scene_in(
                a.out_dir,
                scene,
                ["largest"],
                [4, 16],
                ["head+rnn"],
                rows,
                base_model=a.model,
                overrides={"seed": a.seed, "anchor_partner": "bundled"},
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
