"""The parameters and result of a refine, free of torch so the QGIS side can
build them without importing the engine's heavy parts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .trajectory import Trajectory

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 on the input grid

#: Largest window kept (pixels): N+1 class maps and uncertainty maps of this size stay in memory.
MAX_PIXELS = 2048 * 2048


@dataclass
class KeepIterations:
    """Also keep the class map and the uncertainty at every iteration ``0..N`` over
    a window, from the same pass (what an iteration slider shows)."""

    window: Window | None = None  # None: the whole raster
    kind: str = "entropy"  # or "margin" (engine/refine/uncertainty.py)
    max_pixels: int | None = None  # a larger window shrinks; None: MAX_PIXELS


@dataclass
class RefineParams:
    """Everything a refine needs; built by the CLI, the dialog or an algorithm."""

    image: Path
    out: Path
    model_path: Path | None = None
    iterations: int | None = None
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 mixed precision on CUDA, fp32 on the CPU
    scores: Path | None = None
    coarse: Path | None = None  # also write the coarse CNN's class map here
    bands: list[int] | None = None
    input_resolution_m: float | None = None
    tile_size: int = 1024  # model px; docs/benchmarks.md compares tile sizes
    overwrite: bool = False
    keep_corrections: bool = True  # burn a fine-tuned model's drawn polygons over its image
    keep_iterations: KeepIterations | None = None
    allow_large: bool = False  # go ahead with a refine estimated at hours (limits.check_work)
    prior: Path | None = None  # a class raster or vector layer the RNN starts from instead
    # of the coarse CNN (engine/refine/prior.py)
    prior_value_map: Mapping[object, int] | None = None  # prior value -> class (None: a
    # raster's values are classes, a vector's field holds class names or indices)
    prior_class_field: str | None = None  # a vector prior's class field (None: every
    # feature is class 1)
    prior_layer: str | None = None  # a vector prior's layer (None: the file's only one)
    prior_line_width_m: float | None = None  # a vector prior's lines are burned to this
    # ground width in metres (None: prior.LINE_WIDTH_M)
    prior_strength: float | None = None  # a fixed logit for the prior's class; None: the
    # CNN's own heat vectors, measured on this image (prior.calibration)
    prior_register: bool = True  # move the prior by the shift that lays it best over the
    # model's own map first (refine_pass.register_prior)
    prior_regions: bool = True  # or by a shift varying across the image, where regions
    # of it clearly fit different shifts (False: one shift at most)
    prior_edges: bool = True  # undo a move that lays the prior's outlines on weaker edges
    # of the image than where it was drawn (registration.edge_ratio; False: never)
    prior_search_m: float | None = None  # how far (ground metres on each axis) that
    # shift is looked for (None: registration.SEARCH_M)
    prior_keep: float | None = None  # the prior's own class stays on a pixel of the
    # image's grid unless the refined map gives it less than this probability (0: the
    # refined map everywhere; None: prior.PRIOR_KEEP)
    detail_iterations: int | None = None  # run this many more RNN iterations on a grid
    # finer than the model's (the image's own pixels, no finer than a quarter of the
    # model's); None: the model's own (ModelConfig.detail_iterations) on imagery at least
    # tiling.DETAIL_AUTO_FINER times finer than its grid, else none
    detail_resolution_m: float | None = None  # that grid's pixel size instead
    match_colours: bool = True  # False: read the image as it is even where the model
    # would match its colours to its training imagery (ModelConfig.colour_match)
    choose_model: bool = False  # with no model_path and no prior: the bundled model chosen
    # for the image by its look (bundled_choice.choose_bundled: the default model on imagery
    # like its training scenes, else the general one); False: the bundled default model.
    # What the CLI, the dialog and Processing do when the user names no model


def describe_map(
    name: str, iterations: int, detail_iterations: int = 0, detail_m: float = 0.0
) -> str:
    """A class map's band description: the model and the iterations that made it."""
    text = f"{name}: {iterations} RNN iterations"
    if detail_iterations:
        text += f", then {detail_iterations} at {detail_m:.2g} m"
    return text


@dataclass
class RefineResult:
    out: Path
    scores: Path | None
    iterations: int
    class_names: list[str]
    colours: list[tuple[int, int, int]]
    seconds: float
    device: str
    tiles: int
    model_grid: tuple[int, int] = field(default=(0, 0))
    coarse: Path | None = None
    corrections: int = 0  # drawn corrections burned over the map
    trajectory: Trajectory | None = None  # the iterations kept, when asked
    prior_note: str = ""  # what registration did with the prior ("" without a prior)
    # the whole prior's correlation with the model's map at its best shift (None: no
    # prior, or not registered)
    prior_correlation: float | None = None
    # the image's edge strength under the moved prior's outlines over that as drawn
    # (registration.edge_ratio; None: not moved or not measured); under
    # registration.EDGE_AGREEMENT the move is undone
    prior_edge_ratio: float | None = None
    # where the model's map agreed too little with the prior to place it: the image's
    # edge strength under its outlines over the image's mean (registration.edge_support;
    # None: not measured); at registration.EDGE_SUPPORT or more the model is taken to
    # misread the imagery and the prior is kept as drawn (RefinePass.prior_as_drawn)
    prior_edge_support: float | None = None
    # the image's edge strength under the outlines of the map the networks make from the
    # placed prior over that under the prior's own (RefinePass.prior_reshape_ratio; None:
    # not measured); under registration.RESHAPE_AGREEMENT the prior is kept as drawn
    prior_reshape_ratio: float | None = None
    # the image's edges say the model may misread this imagery (a move undone, or the
    # prior kept as drawn; the note says which): the dialog and Processing warn
    prior_misread: bool = False
    model_path: Path | None = None  # the model file the refine used (None: the bundled
    # default model, named by no one)
    model_note: str = ""  # which bundled model was chosen for the image and why ("" when
    # none was chosen: RefineParams.choose_model)
    scale_note: str = ""  # imagery far coarser than the model's grid (limits.coarse_note)
    colour_note: str = ""  # the image's colours matched to the model's training imagery,
    # and how ("": read as it is; RefinePass.colour_note)
    corrections_note: str = ""  # the model's drawn corrections on this image's grid that
    # were not burned in, the image under them being another (RefinePass.kept_note)
