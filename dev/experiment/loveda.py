"""The three-class run (background / building / road) on LoveDA.

The RNN is trained on ``loveda_0`` and tested on ``loveda_1``. No coarse road
classifier exists here, so the coarse heat maps are the reference degraded by
:func:`degrade.degrade_reference` (seeded, documented there). The
PNGs carry no georeference: their 0.3 m resolution is given to the engine.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...engine.modelfile.config import ModelConfig, make_classes
from ...training.data import band_statistics
from .data import Scene, load_scene
from .degrade import Degradation, degrade_reference

CLASSES = ["background", "building", "road"]
RESOLUTION_IN_M = 0.3
MODEL_RESOLUTION_M = 0.6
# LoveDA: 0 no data, 1 background, 2 building, 3 road, 4 water, 5 barren, 6 forest, 7 agriculture.
VALUE_MAP = {1: 0, 2: 1, 3: 2, 4: 0, 5: 0, 6: 0, 7: 0}


def loveda_config(data: Path) -> ModelConfig:
    """Three classes at the bundled model's 0.6 m; normalised with loveda_0's statistics."""
    mean, std = band_statistics(data / "loveda" / "loveda_0_rgb.png", [1, 2, 3])
    return ModelConfig(
        classes=make_classes(CLASSES),
        mean=mean,
        std=std,
        ground_resolution_m=MODEL_RESOLUTION_M,
        name="LoveDA three-class run",
    )


#: Seeds of further degradations of the training tile: seed + EXTRA_SEED + j
#: (dev/experiment/guarded.py).
EXTRA_SEED = 1000


def load_loveda(
    data: Path, config: ModelConfig, spec: Degradation, seed: int
) -> tuple[Scene, Scene, dict[str, dict]]:
    """Both tiles with their degraded coarse heat maps (seed + tile index)."""
    scenes, records = [], {}
    for i in (0, 1):
        d = data / "loveda"
        s = load_scene(
            f"loveda_{i}",
            d / f"loveda_{i}_rgb.png",
            d / f"loveda_{i}_gt.png",
            config,
            VALUE_MAP,
            RESOLUTION_IN_M,
        )
        s.heat, records[s.name] = degraded_heat(s, spec, seed + i)
        scenes.append(s)
    return scenes[0], scenes[1], records


def degraded_heat(s: Scene, spec: Degradation, seed: int) -> tuple[torch.Tensor, dict]:
    """A degraded coarse map of the scene's reference, padded to the CNN's stride."""
    heat, rec = degrade_reference(s.reference, len(CLASSES), tuple(s.image.shape[-2:]), spec, seed)
    h, w = s.image.shape[-2:]
    padded = torch.nn.functional.pad(
        torch.from_numpy(heat)[None], (0, (-w) % 4, 0, (-h) % 4), mode="replicate"
    )[0]
    return padded, rec
