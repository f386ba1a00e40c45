"""Does registration place a prior by a map that means nothing? On each georeferenced
shared scene: its reference as a prior (right, and shifted 2 and 4 m) read through the
bundled snap model and through random-weight models (maps that do not mean buildings),
and another scene's reference laid on this scene's grid (a prior that does not belong
to the image) read through the snap model. For each: the whole prior's correlation with
the model's map at its best shift (registration.peak_correlation, the number a guard
would test), and what registration did.

    python -m map_refiner.dev.prior.meaningless [--random-seeds 0,1,2]
        [--report docs/results_prior.md]
        # -> a markdown table on stdout (and as the report's section "A map that means
        # nothing"); about 2.5 min on the 2-core CPU, alone
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from ...engine.modelfile.config import ModelConfig, make_classes
from ...engine.modelfile.io import build_model, save_model
from ...engine.refine.pipeline import RefineParams, refine_raster
from ..corrections.scenes import scenes
from ..provenance import git_state
from .sections import write_section
from .shifted import GEOREFERENCED, ROOT, wrong_map

#: The report's section this study writes.
SECTION = "A map that means nothing"

gdal.UseExceptions()


def random_model(seed: int, out: Path) -> Path:
    """A random-weight two-class model at 0.6 m (its map varies in space and means
    nothing), saved as safetensors."""
    cfg = ModelConfig(
        classes=make_classes(["background", "building"]),
        ground_resolution_m=0.6,
        mean=[120.0] * 3,
        std=[70.0] * 3,
        class_specific=True,
    )
    torch.manual_seed(seed)
    net = build_model(cfg)
    with torch.no_grad():
        net.coarse.conv4.weight.mul_(4.0)  # as the tests' random models: maps not flat
    return save_model(net.eval(), cfg, out)


def laid_on(ref: np.ndarray, like: gdal.Dataset, out: Path) -> Path:
    """Another scene's 0/1 reference as a prior on ``like``'s grid: its top-left part,
    tiled where it is smaller."""
    h, w = like.RasterYSize, like.RasterXSize
    reps = (-(-h // ref.shape[0]), -(-w // ref.shape[1]))
    arr = np.tile(ref, reps)[:h, :w].astype(np.uint8)
    ds = gdal.GetDriverByName("GTiff").Create(str(out), w, h, 1)
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    ds.GetRasterBand(1).WriteArray(arr)
    ds = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--random-seeds", default="0,1,2")
    ap.add_argument(
        "--report", type=Path, default=None, help="also the table as this report's section"
    )
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meaningless_") as tmp:
        return study(a, Path(tmp))


def study(a: argparse.Namespace, tmp: Path) -> int:
    """The table (and the report's section), with the priors and models in ``tmp``."""
    sc = scenes(a.data, ROOT / "out" / "corrections" / "data")
    models = {"snap": None}
    for seed in a.random_seeds.split(","):
        models[f"random {seed}"] = random_model(int(seed), tmp / f"random_{seed}.safetensors")
    lines = ["| scene | prior | model | correlation | registration |", "|---|---|---|---|---|"]
    print("\n".join(lines))
    names = list(GEOREFERENCED)
    for i, name in enumerate(names):
        s = sc[name]
        like = gdal.Open(str(s.image))
        ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
        other = names[(i + 1) % len(names)]
        cases = [
            (kind, model) for kind in ("shift:0", "shift:2", "shift:4") for model in models
        ] + [(f"{other}'s reference", "snap")]
        for kind, model in cases:
            if kind.startswith("shift:"):
                prior = wrong_map(ref, like, kind, tmp / f"{name}_{kind[6:]}.tif")
            else:
                theirs = gdal.Open(str(sc[other].reference)).ReadAsArray() > 0
                prior = laid_on(theirs, like, tmp / f"{name}_other.tif")
            result = refine_raster(
                RefineParams(
                    image=s.image,
                    out=tmp / "out.tif",
                    device="cpu",
                    model_path=models[model],
                    prior=prior,
                    prior_value_map={0: 0, 1: 1},
                    overwrite=True,
                )
            )
            found = result.prior_correlation
            corr = "-" if found is None else f"{found:.3f}"
            lines.append(f"| {name} | {kind} | {model} | {corr} | {result.prior_note} |")
            print(lines[-1], flush=True)
    if a.report:
        state = git_state(untracked=False)
        dirty = ", with uncommitted changes" if state["dirty"] == "yes" else ""
        head = (
            "Generated by `python -m map_refiner.dev.prior.meaningless --random-seeds "
            f"{a.random_seeds} --report {a.report}` (commit {state['commit']}{dirty}; "
            "this 2-core CPU). Each scene's reference as a prior (right, shifted 2 and 4 m "
            "east and south) read through the snap model and through random-weight models, "
            "and the next scene's reference laid on its grid read through the snap model; "
            "*correlation*: the whole prior's with the model's map at its best shift "
            "(registration.peak_correlation)."
        )
        write_section(a.report, SECTION, head + "\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
