"""Training times for ``make bench``: the RNN on ``austin_enh`` from scratch, and
the plugin's fine-tune on a handful of correction polygons.

Both go through the same calls the CLI and the QGIS tasks make
(``training.rnn.train_rnn`` / ``training.rnn.finetune``), so the seconds include
reading the window, the frozen CNN's scores and writing the model file.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...training.corrections.finetune import finetune
from ...training.rnn import RnnParams, train_rnn
from ...training.tile import LabelSource
from ..active.candidates import BUILDING, polygon_candidates, write_polygons
from ..default_model.build import AUSTIN_ENH

LOG_EVERY = 25  # training/loop.py records the loss's moving average every 25 steps (RNN)


def austin_enh(data: Path) -> tuple[Path, LabelSource]:
    """``austin_enh``'s image and labels, read as the bundled model's RNN was
    trained on them (dev/default_model/build.py: 0 background, 255 building)."""
    return data / AUSTIN_ENH["image"], LabelSource(
        data / AUSTIN_ENH["labels"], value_map=AUSTIN_ENH["value_map"]
    )


def nearby_buildings(data: Path, count: int = 3) -> tuple:
    """``count`` reference buildings (with their background rings) nearest the
    centre of ``austin_dev``: what a user draws after spotting a wrong block."""
    image = data / "austin" / "austin_dev_rgb.tif"
    cands = polygon_candidates(image, data / "austin" / "austin_dev_buildings.gpkg")
    h, w = cands.ids.shape
    centres = {}
    ys, xs = np.nonzero(cands.ids >= 0)
    ids = cands.ids[ys, xs]
    for cid in np.unique(ids):
        if any(cls == BUILDING for _, cls in cands.parts[cid]):
            sel = ids == cid
            centres[int(cid)] = (ys[sel].mean(), xs[sel].mean())
    chosen = sorted(
        centres, key=lambda c: (centres[c][0] - h / 2) ** 2 + (centres[c][1] - w / 2) ** 2
    )
    return image, cands, chosen[:count]


def finetune_time(data: Path, tmp: Path, count: int = 3) -> dict[str, float]:
    """Seconds for the dialog's Fine-tune (default steps) on ``count`` polygons."""
    image, cands, chosen = nearby_buildings(data, count)
    gpkg = write_polygons(tmp / "corrections.gpkg", cands, chosen, ["background", "building"])
    t0 = time.perf_counter()
    res = finetune(
        image,
        LabelSource(gpkg, class_field="class", mode="sparse"),
        tmp / "tuned.safetensors",
        device="cpu",
        overwrite=True,
    )
    total = time.perf_counter() - t0
    return {
        "polygons": float(sum(len(cands.parts[c]) for c in chosen)),
        "steps": float(res.steps),
        "seconds": total,
        "fit_seconds": res.seconds,
        "s_per_step": res.seconds / max(1, res.steps),
    }


def converged_at(history: list[float], tolerance: float = 0.05) -> int:
    """Index of the first moving-average loss within ``tolerance`` of the run's best."""
    best = min(history)
    return next(i for i, v in enumerate(history) if v <= best * (1 + tolerance))


def rnn_training_time(data: Path, tmp: Path, steps: int) -> dict[str, object]:
    """A fresh RNN on ``austin_enh`` (CNN frozen), ``steps`` AdaGrad steps, batch 8 of 64 px."""
    image, labels = austin_enh(data)
    params = RnnParams(
        image=image,
        labels=labels,
        out=tmp / "rnn.safetensors",
        steps=steps,
        device="cpu",
        checkpoint_every=0,
        resume=False,
        overwrite=True,
    )
    t0 = time.perf_counter()
    res = train_rnn(params)
    total = time.perf_counter() - t0
    i = converged_at(res.history)
    per_step = res.seconds / max(1, res.steps)
    return {
        "steps": res.steps,
        "seconds": total,
        "s_per_step": per_step,
        "converged_step": (i + 1) * LOG_EVERY,
        "converged_seconds": (i + 1) * LOG_EVERY * per_step,
        "loss_first": res.history[0],
        "loss_best": min(res.history),
        "loss_curve": [
            (k * LOG_EVERY, round(v, 4))
            for k, v in enumerate(res.history, 1)
            if k % max(1, len(res.history) // 6) == 0
        ],
    }
