"""A second opinion for a fit's anchors: the other bundled model's map of the window.

A fit keeps the base model's map where that model is sure (the anchors, fit.py), and on
imagery new to it those sure pixels hold many of its errors (session 17: building anchors
23-96 % wrong on the scenes a model never saw). The two bundled models read imagery
differently (the default's CNN trunk was trained on Xiamen's OSM, the general model's on
every shared scene with turns, colour, scale and blur augmented), so a pixel both call
the same class is less often wrong: on never-seen scenes (session 26,
dev/corrections/anchor_oracle.py ``--partner``) the anchors the other model disagrees
with were 5-8 times as often wrong as those it agrees with, and keeping only the agreed
ones lifted the loop (docs/results_corrections.md "Session 26").

``partner_for`` picks the bundled general model for a base that descends from the bundled
default model, and the default model for one that descends from the general model (a
fine-tune never changes the CNN's first layer, so its weights tell the lineage); a model
of another lineage, other classes or another grid has none.
``partner_classes`` is that model's class on each cell of the fit's window.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...engine.modelfile.config import ModelConfig
from ...engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH, read_model_config
from ...engine.modelfile.io import load_model, read_model_file
from ...engine.networks.inference import class_argmax, run_networks
from ...engine.networks.models import MapRefinerNet
from ..tile import TrainingTile

#: The CNN's first layer, whose weights a fine-tune never changes (fit.ADAPT_MODES train
#: conv3 at the deepest): the same weights, the same bundled ancestor.
LINEAGE_KEY = "coarse.conv1.weight"
#: (ancestor, partner): a base of the default model's lineage takes the general model's
#: agreement, and since session 28 the other way too. Session 26 had measured the default
#: as the general recipe's partner under that session's fit (anchors at 0.1, turned
#: patches): +15.5 over 24 never-seen rounds but one lost by 13.6. Under session 27's fit
#: (anchors by sure ratio, the image's own orientation, the partner check) the general
#: model's own scenes gain +86.4 over 32 rounds with none worse, against +21.6 with 7 worse
#: (austin_enh -4.6, Kampala -2.4) without a partner, and the general recipe on scenes it
#: never saw +544.5 against +515.4 over 48 rounds, none worse against one (-4.2), +5/+15
#: reached in 29 against 23 (docs/results_corrections.md "Session 28").
PARTNERS = ((DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH), (GENERAL_MODEL_PATH, DEFAULT_MODEL_PATH))


def partner_for(net: MapRefinerNet, config: ModelConfig, choice: str = "bundled") -> Path | None:
    """The model whose map chooses ``net``'s anchors: for ``choice`` "bundled", the other
    bundled model when ``net`` descends from one of them (PARTNERS) and the other has its
    classes, bands, grid and fixed normalisation; a model file
    for any other ``choice`` but "" (checked the same way); else None."""
    if not choice or config.normalisation != "model":
        return None
    if choice != "bundled":
        other = Path(choice)
    else:
        own = net.state_dict().get(LINEAGE_KEY)
        other = None
        for ancestor, partner in PARTNERS:
            if not ancestor.exists() or not partner.exists() or own is None:
                continue
            theirs = read_model_file(ancestor)[1].get(LINEAGE_KEY)
            if theirs is not None and theirs.shape == own.shape and torch.equal(theirs, own.cpu()):
                other = partner
        if other is None:
            return None
    cfg = read_model_config(other)  # its header only
    same = (
        list(cfg.class_names) == list(config.class_names)
        and list(cfg.bands) == list(config.bands)
        and abs(cfg.ground_resolution_m - config.ground_resolution_m) < 1e-6
        and cfg.normalisation == "model"
    )
    return other if same else None


def partner_classes(
    path: Path, tile: TrainingTile, config: ModelConfig, device: torch.device
) -> torch.Tensor:
    """The class the model at ``path`` gives each cell of ``tile`` (the fit's window,
    normalised for ``config``), after its own RNN iterations; ``(h, w)`` int64 on the CPU."""
    net, cfg = load_model(path, "cpu")
    mean = torch.tensor(config.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(config.std, dtype=torch.float32)[:, None, None]
    pmean = torch.tensor(cfg.mean, dtype=torch.float32)[:, None, None]
    pstd = torch.tensor(cfg.std, dtype=torch.float32)[:, None, None]
    image = ((tile.image.float().cpu() * std + mean) - pmean) / pstd
    net = net.to(device).eval()
    with torch.inference_mode():
        logits = run_networks(net, image.to(device), cfg.default_iterations)
    return class_argmax(logits.float()).long().cpu()
