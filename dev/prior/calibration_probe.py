"""A lead for the snap model, not a product path: on one scene, the RNN started from a
prior whose classes take the coarse CNN's own mean heat vector (the mean of the CNN's
scores over the pixels it calls that class, on the same image: no labels), against a
fixed strength and the CNN's map, scored on the model grid against the reference.
Reads the priors dev/prior/shifted.py wrote to out/prior/.

    python -m map_refiner.dev.prior.calibration_probe austin_dev shift2 s1 s3 calib cnn
"""

from __future__ import annotations

import sys

import torch

from ...engine.networks.inference import class_argmax, coarse_scores, refine_heat
from ...engine.networks.models import pad_to_stride
from ...engine.rasters.grid import grid_of, scaled
from ...engine.refine.predict import model_image
from ...engine.refine.prior import Prior
from ...engine.refine.refine_pass import open_pass
from ..corrections.scenes import scenes
from ..corrections.study import iou
from .shifted import ROOT


def main(argv: list[str]) -> int:
    name, kind, modes = argv[0], argv[1], argv[2:]
    scene = scenes(ROOT.parent / "shared" / "data", ROOT / "out" / "corrections" / "data")[name]
    p = open_pass(scene.image, device="cpu")
    g = p.grids
    img = model_image(
        p.ds, p.bands, g, p.config, 0, 0, g.model_width, g.model_height, torch.device("cpu")
    )
    x = pad_to_stride(img[None])
    h, w = img.shape[-2:]
    with torch.no_grad():
        heat = coarse_scores(p.net.coarse, x)
    grid = scaled(grid_of(p.ds), g.model_width, g.model_height)
    out = ROOT / "out" / "prior"
    prior = torch.from_numpy(Prior(out / f"{name}_{kind}.tif", 2, {0: 0, 1: 1}).classes_on(grid))
    ref = Prior(out / f"{name}_shift0.tif", 2, {0: 0, 1: 1}).classes_on(grid) == 1
    cnn = class_argmax(heat[0, :, :h, :w]).long()
    for mode in modes:
        start = torch.zeros_like(heat)
        if mode.startswith("s"):
            for k in range(2):
                start[0, k, :h, :w][prior == k] = float(mode[1:])
        elif mode == "calib":
            for k in range(2):
                mean = heat[0, :, :h, :w][:, cnn == k].mean(1)
                start[0, :, :h, :w][:, prior == k] = mean[:, None]
        else:
            start = heat
        with torch.no_grad():
            pred = class_argmax(refine_heat(p.net.rnn, x, start, 5)[0, :, :h, :w]).numpy() == 1
        print(
            f"{name} {kind} {mode}: prior {100 * iou(prior.numpy() == 1, ref):.1f}, "
            f"snapped {100 * iou(pred, ref):.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
