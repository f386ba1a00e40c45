"""One reading for a survey's images: a model file that reads every tile alike (session 47).

Without a model named, a refine chooses the bundled model by the image's look
(bundled_choice.py) and matches the colours of an image unlike the training imagery
(colour_fit.py), each judged on that image alone. The tiles of one orthophoto or mosaic
then fall either side of the thresholds: Xiamen's mosaic cut into 600 m tiles gives 27 of
49 tiles the general model with their colours matched and 21 the default as they are, and
a tile read the other way agrees with the mosaic read once at 0.31-0.42 building IoU (a
seam at every tile border; docs/results_colour_match.md section 8).

``survey_model`` judges once over all the images (their look pixels pooled, each image
thinned to an equal share): it takes the bundled model the survey's look chooses (or the
model named) and fixes its colour matching for every image (ColourMatch.fixed, or none
when the survey lies near a training area), and writes that as a model file. Refining,
fine-tuning and rounds with it read every tile the same way; a fine-tuned model inherits
the fixed match.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import MapRefinerError
from ..limits import too_coarse
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.read import check_bands, ground_resolution, open_image, raster_info
from .bundled_choice import (
    TooFewPixels,
    choose_by_look,
    data_area,
    held_out_scores,
    home_looks,
    look_bands,
    look_features,
    look_pixels,
)
from .colour_fit import beyond_8_bits, judge
from .colour_match import ColourMatch, Matched
from .header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from .io import check_model_output, load_model, save_model

log = logging.getLogger(__name__)

#: The look pixels kept over all the images together (each image an equal share, at least
#: MIN_SHARE): a hundred tiles' looks would otherwise hold 240 M values (48 MB kept).
SURVEY_PIXELS = 4_000_000
MIN_SHARE = 256


@dataclass(frozen=True)
class SurveyReading:
    """What a survey model fixes, and why."""

    path: Path  # the model file written
    model: Path  # the model it was made from
    choice: str  # why that model ("" where it was named)
    matched: Matched | None  # the colour match every image takes (None: read as they are)
    images: int

    def describe(self) -> str:
        images = f"{self.images} image{'s' if self.images != 1 else ''}"
        lines = [f"wrote {self.path} (a survey model for {images})"]
        if self.choice:
            lines.append(f"model: {self.choice}")
        else:
            lines.append(f"model: {self.model.name}, as named")
        if self.matched is None:
            lines.append("colours: every image is read as it is")
        else:
            gains = ", ".join(f"{g:.2f}" for g in self.matched.gains)
            if self.matched.power != 1.0:
                gains += f" after a power curve of {self.matched.power:.2f} (linear values)"
            lines.append(
                f"colours: every image is matched to the model's training imagery with band "
                f"gains {gains} (the images together look unlike all of it: the nearest, "
                f"{self.matched.nearest}, is {self.matched.distance:.2f} apart)"
            )
        return "\n".join(lines)


@dataclass
class _Pooled:
    rgb: np.ndarray  # (3, n) look pixels of every image, 8-bit scale
    valid: np.ndarray  # (n,)
    area_m2: float  # ground with data over all the images
    pixel_m: tuple[float, float]  # the coarsest image's pixel size (x, y)
    curve: bool = False  # every image stored beyond 8 bits (colour_fit.beyond_8_bits)


def pooled_look(
    images: Sequence[Path],
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> _Pooled:
    """The look pixels of ``images`` together, each thinned to an equal share."""
    if not images:
        raise MapRefinerError("A survey model needs at least one image.")
    reporter = make_reporter(progress, is_cancelled)
    share = max(MIN_SHARE, SURVEY_PIXELS // len(images))
    rgbs, valids = [], []
    area = 0.0
    coarsest = (0.0, 0.0)
    beyond = []
    for i, image in enumerate(images):
        reporter.check()
        ds = open_image(image)
        info = raster_info(ds)
        chosen = look_bands(ds, bands)
        if len(chosen) != 3 or info.band_count < 3:
            raise MapRefinerError(
                f"{Path(image).name} has {info.band_count} band(s); a survey's images are "
                "judged by three colour bands (name them with --bands)."
            )
        check_bands(info, chosen)
        gx, gy = ground_resolution(info, input_resolution_m)
        rgb, valid = look_pixels(ds, chosen, math.sqrt(gx * gy))
        beyond.append(beyond_8_bits(ds, chosen))
        area += data_area(ds, valid, gx, gy)
        keep = np.linspace(0, valid.size - 1, min(share, valid.size)).astype(np.int64)
        rgbs.append(rgb[:, keep])
        valids.append(valid[keep])
        coarsest = max(coarsest, (gx, gy), key=max)
        ds = None
        reporter.report((i + 1) / len(images))
    rgb_all, valid_all = np.concatenate(rgbs, 1), np.concatenate(valids)
    return _Pooled(rgb_all, valid_all, area, coarsest, all(beyond))


def survey_model(
    images: Sequence[Path],
    out: Path,
    model: Path | None = None,
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
    match_colours: bool = True,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
) -> SurveyReading:
    """Write ``out``: ``model`` (None: the bundled model the images' pooled look chooses)
    reading every image with one colour match judged over all of them (or none)."""
    out = check_model_output(out, images, overwrite)  # said before the images are read
    pooled = pooled_look(images, bands, input_resolution_m, progress, is_cancelled)
    choice = ""
    if model is None:
        homes, scores = home_looks(), held_out_scores()
        model = DEFAULT_MODEL_PATH
        if GENERAL_MODEL_PATH.exists() and homes:
            try:
                look = look_features(pooled.rgb[:, :, None], pooled.valid[:, None])
            except TooFewPixels as exc:
                raise MapRefinerError(
                    "The images hold too little data to judge their look; check their nodata."
                ) from exc
            pixel_m = math.sqrt(pooled.pixel_m[0] * pooled.pixel_m[1])  # the coarsest's
            chosen = choose_by_look(look, homes, scores, "these images look", pixel_m)
            model, choice = chosen.path, chosen.note
    net, cfg = load_model(model)
    if not choice and cfg.normalisation == "image":
        raise MapRefinerError(
            f"{Path(model).name} normalises each image by its own band statistics; a survey "
            "model cannot fix one reading for it. Refine one mosaic of the tiles instead "
            "(gdalbuildvrt)."
        )
    if not choice and not cfg.colour_match:
        raise MapRefinerError(
            f"{Path(model).name} matches no image's colours, so it reads every tile alike "
            "already: refine each tile with it as it is."
        )
    matched = None
    base = ColourMatch.from_config(cfg.colour_match) if cfg.colour_match else None
    res = cfg.ground_resolution_m
    if (
        match_colours
        and base is not None
        and cfg.normalisation != "image"
        and not too_coarse(*pooled.pixel_m, res)
    ):
        unfixed = replace(base, fixed=None)
        matched = judge(unfixed, pooled.rgb, pooled.valid, pooled.area_m2, pooled.curve)
    entry: dict = {}
    if matched is not None and base is not None:
        entry = replace(base, fixed=replace(matched, images=len(images))).to_config()
        matched = Matched.from_config(entry["fixed"])  # as the file holds it, rounded
    survey = cfg.with_colour_match(entry)
    survey.name = f"{cfg.name} (survey of {len(images)} image{'s' if len(images) != 1 else ''})"
    survey.training = {
        **cfg.training,
        "survey": {"images": [Path(i).name for i in images][:1000], "from": Path(model).name},
    }
    path = save_model(net, survey, out, overwrite=overwrite)
    return SurveyReading(path, Path(model), choice, matched, len(images))
