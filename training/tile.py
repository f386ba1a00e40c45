"""The in-memory training tile (torch only, no GDAL, so a GPU box can use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

IGNORE = 255
VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".kml", ".gml", ".sqlite", ".fgb"}


@dataclass
class LabelSource:
    """Where labels come from: a label raster or a vector layer, and how to read it."""

    path: Path
    value_map: dict[str, int] | None = None  # raster value / field value -> class index
    class_field: str | None = None  # vector: attribute holding the class
    layer: str | None = None  # vector: layer name
    mode: str = "tile"  # vector: "tile" (unlabelled = background) or "sparse"
    line_width_m: float = 7.0  # vector: width of burned lines (roads)
    extent: tuple[float, float, float, float] | None = (
        None  # vector "tile" mode: xmin, ymin, xmax, ymax
    )

    @property
    def is_vector(self) -> bool:
        return Path(self.path).suffix.lower() in VECTOR_SUFFIXES


@dataclass
class TrainingTile:
    """A normalised image ``(C, H, W)`` and labels ``(H, W)`` (uint8) on the model grid."""

    image: torch.Tensor
    labels: torch.Tensor
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # model-grid window read: x0, y0, x1, y1
    info: dict[str, float] = field(default_factory=dict)
    valid: torch.Tensor | None = None  # (H, W) bool: where the tile holds the image (None:
    # everywhere; a fine-tune's canvas of several windows has empty gaps between them)
    unweighted: torch.Tensor | None = None  # (H, W) bool: labelled pixels the loss leaves
    # out (a fine-tune's band along hand-drawn outlines); None: none

    @property
    def labelled_pixels(self) -> int:
        return int((self.labels != IGNORE).sum())
