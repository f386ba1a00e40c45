"""A probe for a damage check the fine-tune lacks: for a few study cases, the share of
the base model's confident pixels (p >= 0.9) outside the drawn polygons that the
fine-tuned model flips, printed beside the gain of the undrawn half (docs/STATUS.md).

    python -m map_refiner.dev.corrections.damage_probe   # about 5 min, run alone
"""

import json
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...training.corrections.finetune import finetune
from ...training.tile import LabelSource
from .scenes import scenes
from .study import VARIANTS, cell_px, iou, refine
from .users import error_regions, ordered, write_corrections

cases = [
    ("austin_dev", "largest", 16),
    ("nepal_drone", "random", 4),
    ("nepal_drone", "random", 16),
    ("austin_dev", "random", 16),
    ("rio_wv2", "random", 4),
    ("rio_wv2", "uncertainty", 4),
    ("kampala_drone", "random", 4),
    ("kampala_drone", "largest", 4),
    ("rio_wv2", "random", 16),
]
root = Path(__file__).resolve().parents[2] / "out" / "corrections"
sc = scenes(Path(__file__).resolve().parents[3] / "shared" / "data", root / "data")
for name, user, k in cases:
    s = sc[name]
    with tempfile.TemporaryDirectory(dir=root) as w:
        w = Path(w)
        ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
        half = ref.shape[1] // 2
        pred, probs = refine(s.image, w / "base.tif")
        like = gdal.Open(str(s.image))
        order = ordered(error_regions(pred, ref, half), user, probs, half, cell_px(s, like))
        drawn = order[:k]
        gpkg = write_corrections(drawn, like, w / "c.gpkg")
        r = finetune(
            s.image,
            LabelSource(gpkg, class_field="class", mode="sparse"),
            w / "m.safetensors",
            params=VARIANTS["head+rnn"],
            device="cpu",
        )
        after, _ = refine(s.image, w / "after.tif", w / "m.safetensors")
        dmask = np.zeros_like(ref)
        for m, _ in drawn:
            dmask |= m
        conf = (probs.max(0) >= 0.9) & ~dmask
        flips_all = float(((pred != after) & conf).sum() / max(1, conf.sum()))
        left = np.zeros_like(ref)
        left[:, :half] = True
        flips_left = float(((pred != after) & conf & left).sum() / max(1, (conf & left).sum()))
        print(
            json.dumps(
                dict(
                    scene=name,
                    user=user,
                    k=k,
                    adopted=r.adopted,
                    gain=round(
                        100
                        * (
                            iou(after[:, half:], ref[:, half:]) - iou(pred[:, half:], ref[:, half:])
                        ),
                        1,
                    ),
                    flips_conf=round(100 * flips_all, 2),
                    flips_conf_left=round(100 * flips_left, 2),
                    drawn_px_share=round(100 * float(dmask.mean()), 2),
                )
            ),
            flush=True,
        )
