"""Bounds on the numbers a user, a model file or a raster can set, checked before any
work starts: a value outside them is a mistake (or an attack), never a long job.

Each bound says why it is where it is.
"""

from __future__ import annotations

import math

from .errors import MapRefinerError

#: RNN iterations: the paper unrolls 5 and the dialog's slider goes to 10; each one
#: widens every tile's halo by 2 model pixels, and 1e9 of them filled 22 GB.
MAX_ITERATIONS = 100
#: A model's ground resolution, metres: finer than 5 mm or coarser than 1 km is no
#: imagery this architecture was made for (1e-9 m took 11 GB in 30 s).
MIN_MODEL_RESOLUTION_M = 0.005
MAX_MODEL_RESOLUTION_M = 1000.0
#: How much coarser than the model's pixels an image's pixels may be. A safety bound,
#: not a quality one (already at 4x the networks see upsampled blur): a 10 x 10 raster
#: of 1 km pixels on a 0.6 m model was a 278 Mpx job that ran for 50 minutes. The tiling
#: tests run the model 16x finer than the input on purpose.
MAX_COARSER = 32.0
#: How much finer: beyond this the image is read at a scale where the model's grid
#: holds a few pixels of it (a 1 cm drone image on a 0.6 m model is 60x).
MAX_FINER = 256.0
#: Model-grid pixels of one refine before it asks for ``allow_large``: about an hour on
#: the 2-core development CPU (0.64 s per model megapixel, docs/benchmarks.md), some
#: 1,800 km2 at 0.6 m. Detail iterations' finer grid adds its own estimate (work_seconds).
MAX_MODEL_PIXELS = 5_000_000_000
#: Seconds per model megapixel on the development CPU, for the estimate in messages.
CPU_S_PER_MODEL_MPX = 0.64
#: Seconds per megapixel of the detail iterations' finer grid (``--detail-iterations``):
#: the image filters and the resampling onto that grid and back once, then each
#: iteration. An estimate, not a measurement of detail iterations: the RNN's rate in
#: docs/benchmarks.md (0.44 s per megapixel for 5 iterations and the image filters)
#: split by the arithmetic its CPU path runs (image filters 37 %, each iteration 13 %:
#: dev/benchmarks/flops.py, 2 classes, 3 bands), and the resampling's 0.03 s there.
CPU_S_PER_DETAIL_MPX = 0.19
CPU_S_PER_DETAIL_MPX_ITERATION = 0.056
#: Detail iterations (``refine --detail-iterations``) sharpened outlines on imagery at
#: least this many times finer than the model's grid and cost IoU on imagery 1.2x finer
#: (docs/results_detail.md): the dialog offers them, and Processing warns, from here.
DETAIL_MIN_FINER = 2.0
#: ... within this share: 0.3 m imagery on a 0.6 m model counts, whatever the fraction of
#: a percent its projection puts between its nominal and its ground pixel size.
DETAIL_TOLERANCE = 0.05
#: The finest detail grid by default: this many times finer than the model's (finer
#: bought nothing where measured, at that many times the pixels: docs/results_detail.md).
DETAIL_FACTOR = 4
#: Training (train-rnn, train-coarse) holds its whole labelled raster in memory: the
#: labels on the image's grid (a byte a pixel, and a few copies while they are burned
#: and voted onto the model's grid) and the normalised image on the model's grid (4
#: bytes a band). Past 20000 x 20000 image pixels or 6000 x 6000 model pixels that is
#: several GB: a 30000-40000 px raster took 4-6 GB before failing.
MAX_TRAINING_IMAGE_PIXELS = 400_000_000
MAX_TRAINING_MODEL_PIXELS = 36_000_000


def check_iterations(n: int, what: str = "The number of iterations") -> int:
    """``n`` as an int in ``[0, MAX_ITERATIONS]``."""
    try:
        v = int(n)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MapRefinerError(f"{what} must be a whole number; got {n!r}.") from exc
    if not 0 <= v <= MAX_ITERATIONS:
        raise MapRefinerError(
            f"{what} must be between 0 and {MAX_ITERATIONS} (the paper uses 5); got {n}."
        )
    return v


def check_model_resolution(res_m: float) -> float:
    try:
        v = float(res_m)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MapRefinerError(
            f"The model's ground resolution must be a number; got {res_m!r}."
        ) from exc
    if not (math.isfinite(v) and MIN_MODEL_RESOLUTION_M <= v <= MAX_MODEL_RESOLUTION_M):
        raise MapRefinerError(
            f"The model's ground resolution must be between {MIN_MODEL_RESOLUTION_M} and "
            f"{MAX_MODEL_RESOLUTION_M:g} m; it says {res_m} m. Use a model saved by Map Refiner."
        )
    return v


def check_scale(res_x_m: float, res_y_m: float, model_res_m: float) -> None:
    """An image whose pixels (metres) the model can work on: not far coarser, not far finer."""
    for r in (res_x_m, res_y_m):
        if not (math.isfinite(r) and r > 0):
            raise MapRefinerError(
                f"The image's pixel size is {r} m; check its georeferencing, or give its "
                "ground resolution (--input-resolution)."
            )
    coarse, fine = max(res_x_m, res_y_m), min(res_x_m, res_y_m)
    if coarse > MAX_COARSER * model_res_m:
        raise MapRefinerError(
            f"The image's pixels are {coarse:g} m across; this model works at "
            f"{model_res_m:g} m and cannot refine imagery coarser than "
            f"{MAX_COARSER * model_res_m:g} m. Check the raster's georeferencing (units?), give "
            "its true ground resolution with --input-resolution, or use a model made for "
            "coarser imagery."
        )
    if fine * MAX_FINER < model_res_m:
        raise MapRefinerError(
            f"The image's pixels are {fine:g} m across, more than {MAX_FINER:g} times finer "
            f"than this model's {model_res_m:g} m. Check the raster's georeferencing, or give "
            "its true ground resolution with --input-resolution."
        )


#: Imagery this many times coarser than the model's grid gets a note with its map: four
#: shared scenes averaged to 2x the bundled default's 0.6 m changed building IoU by +0.4
#: to -10.6 points, to 4x by -8.8 to -34.2, to 8x by -36.4 to -56.3 (session 40,
#: dev/default_model/coarse_probe.py, docs/results_bundled_recipes.md "Session 40").
COARSE_NOTE = 3.0


def too_coarse(res_x_m: float, res_y_m: float, model_res_m: float) -> bool:
    """Whether an image's pixels (the larger side) are COARSE_NOTE times the model's or
    more: what a refine notes, and what it reads without matching its colours
    (predict.colours_matched)."""
    return max(res_x_m, res_y_m) >= COARSE_NOTE * model_res_m


def coarse_note(res_x_m: float, res_y_m: float, model_res_m: float) -> str:
    """What a refine says of an image whose pixels are COARSE_NOTE times the model's or
    more ("" otherwise): what is lost, and what maps such imagery better."""
    if not too_coarse(res_x_m, res_y_m, model_res_m):
        return ""
    coarse = max(res_x_m, res_y_m)
    return (
        f"the image's pixels are {coarse:.2g} m, {coarse / model_res_m:.0f}x the model's "
        f"{model_res_m:g} m: objects a few image pixels across are lost or merged (on the "
        "shared scenes at 4x building IoU fell by 9 to 34 points); a model trained at this "
        "resolution maps it better (train-coarse, train-rnn)"
    )


def work_seconds(model_pixels: int, detail_pixels: int = 0, detail_iterations: int = 0) -> float:
    """The estimated seconds of a refine on the development CPU: its model grid's pixels
    and, with detail iterations, those of their finer grid."""
    per_detail_mpx = CPU_S_PER_DETAIL_MPX + detail_iterations * CPU_S_PER_DETAIL_MPX_ITERATION
    seconds = model_pixels / 1e6 * CPU_S_PER_MODEL_MPX
    if detail_pixels:
        seconds += detail_pixels / 1e6 * per_detail_mpx
    return seconds


def check_work(
    model_pixels: int, allow_large: bool, detail_pixels: int = 0, detail_iterations: int = 0
) -> None:
    """Refuse a refine that would run for hours unless the user insists: as long as
    MAX_MODEL_PIXELS on the model's grid, the detail iterations' finer grid counted at
    its own rate."""
    seconds = work_seconds(model_pixels, detail_pixels, detail_iterations)
    if seconds <= work_seconds(MAX_MODEL_PIXELS) or allow_large:
        return
    hours = max(1, round(seconds / 3600))
    about = f"about {hours} hour{'s' if hours > 1 else ''} on a 2-core CPU"
    insist = "insist (--allow-large in the command line) to go ahead."
    if not detail_pixels:
        raise MapRefinerError(
            f"This refine covers {model_pixels / 1e9:.1f} billion pixels on the model's grid: "
            f"{about}. Refine a smaller extent, or {insist}"
        )
    raise MapRefinerError(
        f"This refine covers {model_pixels / 1e9:.1f} billion pixels on the model's grid and "
        f"{detail_pixels / 1e9:.1f} billion on the finer grid of its {detail_iterations} "
        f"detail iteration{'s' if detail_iterations > 1 else ''}: {about} (estimated). "
        f"Refine a smaller extent, use fewer detail iterations or none, or {insist}"
    )


def detail_grid_range(image_res_m: float, model_res_m: float) -> tuple[float, float, float]:
    """The detail grid's pixel sizes a user may choose for imagery of ``image_res_m`` on a
    model of ``model_res_m``, ``(finest, default, coarsest)``: no finer than the image's
    own pixels (the engine reads nothing finer), by default at most DETAIL_FACTOR times
    finer than the model's, and at least DETAIL_MIN_FINER times finer than it (a coarser
    grid is the imagery that loses accuracy)."""
    coarsest = model_res_m / DETAIL_MIN_FINER
    finest = min(image_res_m, coarsest)
    return finest, min(max(image_res_m, model_res_m / DETAIL_FACTOR), coarsest), coarsest


def detail_unsuited(image_res_m: float, model_res_m: float) -> str | None:
    """Why detail iterations do not suit imagery of ``image_res_m`` metre pixels on a
    model of ``model_res_m``; None when it is at least DETAIL_MIN_FINER times finer."""
    if image_res_m * DETAIL_MIN_FINER <= model_res_m * (1 + DETAIL_TOLERANCE):
        return None
    return (
        f"this raster's pixels are {image_res_m:.2g} m, not 2x finer than the model's "
        f"{model_res_m:g} m grid: detail iterations sharpen outlines on finer imagery "
        "(drone, 0.3 m aerial) and lose accuracy on imagery near the model's resolution"
    )


def check_training_size(
    image_px: tuple[int, int], model_px: tuple[int, int], bands: int, allow_large: bool
) -> None:
    """Refuse a training raster whose labels and image would not fit in a few GB, before
    anything is read, unless the user insists."""
    iw, ih = image_px
    mw, mh = model_px
    if allow_large or (
        iw * ih <= MAX_TRAINING_IMAGE_PIXELS and mw * mh <= MAX_TRAINING_MODEL_PIXELS
    ):
        return
    gb = (3 * iw * ih + 4 * bands * mw * mh) / 1e9
    raise MapRefinerError(
        f"Training reads the whole labelled raster into memory: {iw} x {ih} pixels "
        f"({mw} x {mh} on the model's grid) would take about {gb:.0f} GB. Crop the image "
        "and labels to the labelled area (e.g. gdal_translate -projwin), or insist "
        "(--allow-large in the command line) if this machine has the memory."
    )
