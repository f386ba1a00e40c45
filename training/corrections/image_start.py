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
from pathlib import Path
from typing import Any

from ...engine.labels.kept import from_config
from ...engine.modelfile.config import ModelConfig
from ...engine.networks.models import MapRefinerNet
from ...engine.rasters.grid import GridSpec


def _last_adopted_image(config: ModelConfig) -> str | None:
    """The image file name of the last round whose networks ``config``'s model holds (its
    last adopted fine-tune), None for a model never adopted a fit."""
    rounds = config.training.get("finetune") if isinstance(config.training, dict) else None
    adopted: list[dict[str, Any]] = [
        r for r in (rounds or []) if isinstance(r, dict) and r.get("adopted")
    ]
    return str(adopted[-1].get("image")) if adopted else None


def image_start(
    net: MapRefinerNet, config: ModelConfig, image: Path, grid: GridSpec
) -> tuple[MapRefinerNet, ModelConfig] | None:
    """The networks and configuration (as its rounds' gates hold them) that the rounds of
    this image started from, when ``net`` holds a round fitted on it (its last adopted fit
    was on an image of this name, and the model keeps polygons on this grid); None when
    ``net`` is where this image starts (a bundled or trained model, a model whose rounds
    were on other images, or rounds made without a change gate, whose parents are not
    kept)."""
    name = Path(image).name
    kept = from_config(config.corrections, config.num_classes, grid)
    if kept is None or not kept.matches(grid):
        return None
    here, here_config = net, config
    while _last_adopted_image(here_config) == name:
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
