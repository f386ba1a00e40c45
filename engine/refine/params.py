"""The parameters and result of a refine, free of torch so the QGIS side can
build them without importing the engine's heavy parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple


@dataclass
class RefineParams:
    """Everything a refine needs; built by the CLI, the dialog or an algorithm."""

    image: Path
    out: Path
    model_path: Optional[Path] = None
    iterations: Optional[int] = None
    device: str = "auto"
    precision: str = "auto"              # auto: bf16 mixed precision on CUDA, fp32 on the CPU
    scores: Optional[Path] = None
    coarse: Optional[Path] = None        # also write the coarse CNN's class map here
    bands: Optional[List[int]] = None
    input_resolution_m: Optional[float] = None
    tile_size: int = 1024  # model px; docs/benchmarks.md: 4.07 s vs 5.01 s at 512, ~500-630 MiB peak
    overwrite: bool = False
    keep_corrections: bool = True        # burn a fine-tuned model's drawn polygons over its image


@dataclass
class RefineResult:
    out: Path
    scores: Optional[Path]
    iterations: int
    class_names: List[str]
    colours: List[Tuple[int, int, int]]
    seconds: float
    device: str
    tiles: int
    model_grid: Tuple[int, int] = field(default=(0, 0))
    coarse: Optional[Path] = None
    corrections: int = 0                 # drawn corrections burned over the map
