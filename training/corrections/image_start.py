"""The networks a series of rounds on one image started from.

A cartographer corrects an image round after round, each round fine-tuning the last
round's model. Each round used to fit the last round's networks: its held-out polygons
were mostly ones the last round had already learnt (its starting model scored 0.97-1.0
on them), so the check passed rounds that cost the undrawn map a little each time, and
the losses added up (session 51, six rounds of four polygons: Kampala -2.0 and -4.5 at
two seeds, drawn without the roofs its reference lacks). Since session 52 a round on an
image the model was already fine-tuned on fits, on every polygon drawn there so far, the
networks the image's first round started from (kept inside the last adopted round as its
gate parent): its held-out polygons are ones that model never saw, and a round's map is
gated against that one model, so a refine is one gated pass whatever the number of rounds
(docs/results_corrections.md "Session 52").
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from osgeo import gdal

from ...engine.labels.kept import from_config
from ...engine.modelfile.config import ModelConfig
from ...engine.networks.models import MapRefinerNet
from ...engine.rasters.grid import GridSpec, grid_of


def grid_key(grid: GridSpec) -> str:
    """A short digest of an image's grid (size, geotransform, CRS): a round's record keeps
    it (``image_grid``) so that two images of one name are told apart."""
    gt = [f"{v:.12g}" for v in grid.geotransform]  # degrees too (pixels of 1e-6)
    text = json.dumps([grid.width, grid.height, gt, grid.projection_wkt or ""])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _last_adopted_on(config: ModelConfig, name: str, key: str) -> bool:
    """True when the last round whose networks ``config``'s model holds (its last adopted
    fine-tune) was on this image: the same grid (rounds since session 52 record it), or
    for older rounds the same file name."""
    rounds = config.training.get("finetune") if isinstance(config.training, dict) else None
    adopted: list[dict[str, Any]] = [
        r for r in (rounds or []) if isinstance(r, dict) and r.get("adopted")
    ]
    if not adopted:
        return False
    last = adopted[-1]
    if last.get("image_grid"):
        return last["image_grid"] == key
    return last.get("image") == name


def image_start(
    net: MapRefinerNet, config: ModelConfig, image: Path, ds: gdal.Dataset
) -> tuple[MapRefinerNet, ModelConfig] | None:
    """The networks and configuration (as its rounds' gates hold them) that the rounds of
    this image (``ds``, opened from ``image``) started from, when ``net`` holds a round
    fitted on it: its last adopted fit was on this image, and the model keeps polygons
    on its grid under which it still shows what it showed when they were drawn. None
    when ``net`` is where this image starts (a bundled or trained model, a model whose
    rounds were on other images or on another year's image of this grid, or rounds made
    without a change gate, whose parents are not kept)."""
    grid = grid_of(ds)
    kept = from_config(config.corrections, config.num_classes, grid)
    if kept is None or not kept.matches(grid) or not kept.features:
        return None
    shown, gone = kept.still_shown(ds)
    if gone and not shown.features:
        return None  # another image on the same grid (drawn_look.py)
    name, key = Path(image).name, grid_key(grid)
    here, here_config = net, config
    while _last_adopted_on(here_config, name, key):
        parent_config = here_config.parent_config()
        if here.gate_parent is None or parent_config is None:
            break  # a round without a gate: its parent is not in the file
        here, here_config = here.gate_parent, parent_config
    return None if here is net else (here, here_config)


def kept_round(last: ModelConfig, this: ModelConfig, bands: list[int] | None) -> ModelConfig:
    """A round whose fit was not adopted keeps the last round's networks: the last round's
    configuration (its gate, detail temperature) with this round's name, polygons and
    training record (and ``bands``, the bands it was fitted on, when given)."""
    out = copy.deepcopy(last)
    out.name = this.name
    out.corrections = copy.deepcopy(this.corrections)
    out.training = copy.deepcopy(this.training)
    if bands:
        out.bands = [int(b) for b in bands]
    return out
