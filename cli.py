"""``map-refiner`` / ``python -m map_refiner``: the command line.

Every verb exits 0 on success, 2 with one line on stderr for an expected error (bad
input, cancelled), and 70 with one line and a log file holding the traceback for a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from .engine import limits
from .engine import vocabulary as vocab
from .engine.errors import MapRefinerError

log = logging.getLogger("map_refiner")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def _value_map(text: str | None) -> dict[str, int] | None:
    """``"0:0,255:1"`` or ``"residential:1,road:2"`` -> dict."""
    try:
        return vocab.parse_value_map(text)
    except MapRefinerError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _label_mode(text: str) -> str:
    try:
        return vocab.label_mode(text)
    except MapRefinerError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _band_list(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]`` (vocab.parse_bands)."""
    try:
        bands = vocab.parse_bands(text)
    except MapRefinerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if bands is None:
        raise argparse.ArgumentTypeError("give 1-based band numbers, e.g. '1,2,3'")
    return bands


def _allow_large_training(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-large",
        action="store_true",
        help="train on a raster past 20000 x 20000 pixels (or 6000 x 6000 on the model's "
        "grid): refused otherwise, as training holds it whole in memory",
    )


def _bounded(kind: type, lo: float, hi: float, what: str):  # noqa: ANN202 - an argparse type
    """An argparse type: a finite ``kind`` number in ``[lo, hi]``, else one clear line."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{what} must be a number; got {text!r}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(
                f"{what} must be between {lo:g} and {hi:g}; got {text}"
            )
        return value

    return parse


def _model_file(text: str) -> Path:
    """A model file, or the name of a bundled model (``default``, ``general``) where no
    file of that name exists."""
    from .engine.modelfile.header import BUNDLED_MODELS

    path = Path(text)
    if text in BUNDLED_MODELS and not path.exists():
        return BUNDLED_MODELS[text]
    return path


def _tile_size(text: str) -> int:
    """At most 16384 model pixels a side (one such tile already needs tens of GB); the
    engine says the least."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--tile-size must be a whole number; got {text!r}"
        ) from None
    if value > 16384:
        raise argparse.ArgumentTypeError(f"--tile-size must be at most 16384; got {text}")
    return value


_STEPS = _bounded(int, 1, 10_000_000, "--steps")
_SEED = _bounded(int, 0, 2**32 - 1, "--seed")
_LR = _bounded(float, 1e-12, 10.0, "--lr")
_BATCH = _bounded(int, 1, 4096, "--batch-size")


class _Parser(argparse.ArgumentParser):
    """Bad arguments end in one line, like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        print(f"map-refiner: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _label_args(p: argparse.ArgumentParser, default_mode: str = "tile") -> None:
    p.add_argument("labels", type=Path, help="label raster (mask) or vector file (gpkg, shp, ...)")
    p.add_argument(
        "--class-field",
        help="vector: attribute holding the class (default: every feature is class 1; "
        "refused where another field names the model's other classes)",
    )
    p.add_argument(
        "--value-map",
        type=_value_map,
        help="label value to class index, e.g. "
        f"'{vocab.VALUE_MAP_EXAMPLE}' for a 0/255 building mask (unmapped values are ignored)",
    )
    p.add_argument("--layer", help="vector: layer name")
    p.add_argument(
        "--mode",
        type=_label_mode,
        choices=vocab.LABEL_MODES,
        default=default_mode,
        help="vector: 'tile' "
        "= a fully labelled tile (unlabelled = background); 'sparse' = only pixels "
        "inside features count",
    )
    p.add_argument(
        "--line-width",
        type=_bounded(float, 0.01, 1000.0, "--line-width"),
        default=7.0,
        help="vector: width in metres of burned lines such as roads (default 7)",
    )


def _scheduler(text: str) -> str:
    from .engine.cluster.scheduler import check_scheduler

    try:
        return check_scheduler(text)
    except MapRefinerError as exc:
        raise argparse.ArgumentTypeError(exc.message.rstrip(".")) from None


def _cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("on a Dask cluster (README: Refining a whole county)")
    g.add_argument(
        "--scheduler",
        type=_scheduler,
        help="refine block by block on a Dask cluster: its scheduler's address "
        "(tcp://HOST:8786), or local:N for N worker processes on this machine",
    )
    g.add_argument(
        "--format",
        choices=vocab.CLUSTER_FORMATS,
        help="gtiff (default): assemble the parts into --out; vrt: --out is a VRT over the "
        "parts, which stay in OUT.parts/",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished parts of an interrupted refine of the same image, model "
        "and settings; compute only the missing ones",
    )
    g.add_argument(
        "--block-tiles",
        type=_bounded(int, 1, 64, "--block-tiles"),
        help="a block (one task) is this many tiles on a side (default 4)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=vocab.DEVICES, default="auto")
    p.add_argument(
        "--bands",
        type=_band_list,
        help="1-based bands to read, e.g. '1,2,3' (default: the model's)",
    )
    p.add_argument(
        "--input-resolution",
        type=_bounded(float, 1e-4, 1e5, "--input-resolution"),
        help="pixel size in metres, for rasters without a CRS",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _bbox(text: str) -> tuple[float, float, float, float]:
    """An argparse type: ``minx,miny,maxx,maxy``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"--bbox must be minx,miny,maxx,maxy; got {text!r}")
    return values  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="map-refiner",
        description="Refine coarse classification maps with a learned RNN (Maggiori et al. 2017).",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = ap.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("refine", help="coarse CNN + RNN refinement of a raster")
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output class map (GeoTIFF)")
    p.add_argument(
        "--model",
        type=_model_file,
        help="model file, or a bundled model: default (best on aerial photos like those it "
        "learnt from) or general (drones, satellites and other sensors unlike them); none "
        "named: the bundled model chosen for the image (the default where the image looks "
        "like one of the default model's training scenes and its pixels are finer than "
        "0.45 m, else the general; the choice is printed)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        help="RNN iterations (0 = the coarse map; default: the model's, 5)",
    )
    p.add_argument("--scores", type=Path, help="also write per-class probabilities (GeoTIFF)")
    p.add_argument("--coarse", type=Path, help="also write the coarse CNN's class map (GeoTIFF)")
    p.add_argument(
        "--tile-size",
        type=_tile_size,
        default=1024,
        help="tile size in model pixels",
    )
    p.add_argument(
        "--precision",
        choices=vocab.PRECISIONS,
        default="auto",
        help="auto: bf16 mixed precision on a CUDA GPU that supports it, fp32 on "
        "the CPU (where bf16 is slower)",
    )
    p.add_argument(
        "--no-corrections",
        action="store_true",
        help="do not burn a fine-tuned "
        "model's drawn corrections over the map of the image they were drawn on",
    )
    p.add_argument(
        "--no-colour-match",
        action="store_true",
        help="read the image as it is even where it looks unlike the model's training "
        "imagery (by default the bundled models match such an image's colours to theirs)",
    )
    p.add_argument(
        "--prior",
        type=Path,
        help="a class raster (any grid and CRS), a probability raster (one float band "
        "per class, or for a two-class model one band of the object class's probability) "
        "or a vector layer (polygons, e.g. OSM buildings) the RNN starts from instead of "
        "the coarse CNN: snap an existing map to the image's edges",
    )
    p.add_argument(
        "--prior-value-map",
        type=_value_map,
        help="prior value to class index, e.g. '0:0,255:1' (default: a raster's values "
        "are classes, a vector field's values class names or indices)",
    )
    p.add_argument(
        "--prior-class-field",
        default=None,
        help="a vector prior's field holding the class (default: every feature is class 1, "
        "e.g. building, refused where another field names the model's other classes; what "
        "no feature covers is class 0)",
    )
    p.add_argument(
        "--prior-layer",
        default=None,
        help="a vector prior's layer, for a file with several (e.g. a GeoPackage's "
        "'buildings'; default: the file's only layer)",
    )
    p.add_argument(
        "--prior-line-width",
        type=_bounded(float, 0.01, 1000.0, "--prior-line-width"),
        default=None,
        help="a vector prior's lines (roads, tracks) are burned to this width in metres "
        "(default 7, as training labels' --line-width; polygons are burned as drawn)",
    )
    p.add_argument(
        "--prior-strength",
        type=_bounded(float, 0.01, 99.0, "--prior-strength"),
        default=None,
        help="a fixed logit for the prior's class (default: the CNN's own heat maps for "
        "each class, measured on the image; docs/results_prior.md compares them)",
    )
    p.add_argument(
        "--no-prior-shift",
        action="store_true",
        help="leave the prior where it is (default: move it by the shift, up to 10 m (see "
        "--prior-search), that "
        "lays it best over the model's own map, when that shift is clear and over 0.75 m)",
    )
    p.add_argument(
        "--prior-search",
        type=_bounded(float, 0.1, 50.0, "--prior-search"),
        default=None,
        metavar="M",
        help="look for the prior's shift up to M metres on each axis (default 10, 5 before "
        "session 15; a map the note says fits best at the edge of the search may be "
        "further off)",
    )
    p.add_argument(
        "--one-prior-shift",
        action="store_true",
        help="move the prior by one shift at most (default: where regions of it clearly "
        "fit shifts over 2 m apart, by a shift varying smoothly across the image)",
    )
    p.add_argument(
        "--no-prior-edge-check",
        action="store_true",
        help="move the prior where the model's map says even when that lays its outlines "
        "on weaker edges of the image than where it is drawn (default: such a move is "
        "undone: the model may misread the imagery); and do not keep the prior more where "
        "the image's edges follow its outlines better than the model's map (default: a "
        "prior whose move was undone, one the map cannot place but the edges follow, or one "
        "the map would reshape onto weaker edges, is kept as drawn: the model only fills "
        "what it leaves open)",
    )
    p.add_argument(
        "--prior-keep",
        type=_bounded(float, 0.0, 1.0, "--prior-keep"),
        default=None,
        help="keep the prior's own class on a pixel unless the refined map gives it less "
        "than this probability, one value for every class (default: 0.1 for background, "
        "0.02 for the prior's objects; 0: the refined map everywhere)",
    )
    p.add_argument(
        "--detail-iterations",
        type=_bounded(int, 0, 50, "--detail-iterations"),
        default=None,
        help="for imagery finer than the model's grid: run this many more RNN iterations "
        "on a finer grid (the image's own pixels, at most 4x finer than the model's), "
        "for outlines at the image's detail (docs/results_detail.md; default: the model's "
        "own, 2 for the bundled model, on imagery at least 1.8x finer than its grid, else "
        "none; 0: none)",
    )
    p.add_argument(
        "--detail-resolution",
        type=_bounded(float, 1e-3, 1e3, "--detail-resolution"),
        default=None,
        help="the detail iterations' pixel size in metres (default: the image's own, "
        "but no finer than a quarter of the model's)",
    )
    p.add_argument(
        "--allow-large",
        action="store_true",
        help="go ahead with a refine estimated at more than about an hour on a 2-core CPU "
        "(refused otherwise)",
    )
    _cluster_args(p)
    _common(p)

    p = sub.add_parser("train-coarse", help="train the coarse CNN on imprecise labels")
    p.add_argument("image", type=Path)
    _label_args(p)
    p.add_argument("--out", type=Path, required=True, help="new model file (.safetensors)")
    p.add_argument("--classes", default="background,building", help="class names, in index order")
    p.add_argument(
        "--resolution",
        type=_bounded(
            float, limits.MIN_MODEL_RESOLUTION_M, limits.MAX_MODEL_RESOLUTION_M, "--resolution"
        ),
        default=1.0,
        help="model ground resolution (m)",
    )
    p.add_argument("--steps", type=_STEPS, default=2000)
    p.add_argument("--batch-size", type=_BATCH, default=64)
    p.add_argument("--lr", type=_LR, default=0.01)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    _allow_large_training(p)
    _common(p)

    p = sub.add_parser("train-rnn", help="train the refinement RNN on an accurate tile")
    p.add_argument("image", type=Path)
    _label_args(p)
    p.add_argument(
        "--model", type=_model_file, help="base model: a file, default (the default) or general"
    )
    p.add_argument("--out", type=Path, required=True, help="new model file (.safetensors)")
    p.add_argument("--steps", type=_STEPS, default=3000)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument(
        "--iterations", type=_bounded(int, 1, limits.MAX_ITERATIONS, "--iterations"), default=5
    )
    p.add_argument("--batch-size", type=_BATCH, default=8)
    p.add_argument("--patch-size", type=_bounded(int, 8, 4096, "--patch-size"), default=64)
    p.add_argument("--lr", type=_LR, default=0.01)
    p.add_argument("--class-agnostic", action="store_true", help="one MLP for all classes")
    p.add_argument("--no-resume", action="store_true")
    _allow_large_training(p)
    _common(p)

    p = sub.add_parser("finetune", help="fine-tune a model on correction polygons")
    p.add_argument("image", type=Path)
    _label_args(p, default_mode="sparse")
    p.add_argument(
        "--model",
        type=_model_file,
        help="base model: a file, default or general (none named: the bundled model chosen "
        "for the image, as refine chooses it); a round fine-tuned on this image before is "
        "fitted again from the model the image's first round started from, on every polygon "
        "of the layer, and kept as it is when that fit is not adopted",
    )
    p.add_argument("--out", type=Path, required=True, help="new model file (.safetensors)")
    p.add_argument(
        "--no-colour-match",
        action="store_true",
        help="read the image as it is even where it looks unlike the model's training "
        "imagery; the new model then never matches an image's colours",
    )
    p.add_argument(
        "--adapt",
        choices=vocab.ADAPT_MODES,
        default="head+rnn",
        help="what learns: the RNN and the coarse CNN's last layer (head+rnn, "
        "default), the RNN alone (rnn, the paper's fine-tune), also the "
        "CNN's third layer (deep+rnn), or its second and third (deeper+rnn); "
        "norm+head+rnn also learns the image's scale and shift per band",
    )
    p.add_argument(
        "--steps",
        type=_STEPS,
        default=None,
        help="steps of the held-out phase (default 60 on a CPU, 150 on a GPU; "
        "the refit on every polygon adds up to half as many)",
    )
    p.add_argument(
        "--folds",
        type=_bounded(int, 1, vocab.MAX_FOLDS, "--folds"),
        default=None,
        help="held-out phases on different splits of your polygons (cross-validation): "
        "their mean score decides whether the fit is adopted (default: "
        f"{vocab.FINETUNE_FOLDS}; each fold adds a held-out phase's time; not better on "
        "average in the project's measurements, see docs/results_corrections.md)",
    )
    p.add_argument(
        "--no-anchor-partner",
        action="store_true",
        help="keep the base model's map wherever it is sure (the anchors), whatever the "
        "other bundled model says (default, for a model of either bundled model's "
        "lineage: only where the other one agrees; docs/results_corrections.md "
        '"Session 26" and "Session 28")',
    )
    p.add_argument(
        "--edge-band",
        type=_bounded(float, 0.0, vocab.MAX_EDGE_BAND_M, "--edge-band"),
        default=None,
        metavar="M",
        help="how far your outlines may be off the objects' edges, in metres: the fit "
        "leaves that band inside each polygon out (the refined map still shows the "
        f"polygons whole; default {vocab.EDGE_BAND_M:g}). Measured, it gave rough outlines "
        "back most of their gain on imagery the model reads and cost on imagery new to it; "
        'drawing just inside the edges did better (docs/results_corrections.md "Session 31")',
    )
    p.add_argument(
        "--outline-edges",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="where a polygon's outline runs past an object's edge that the image shows "
        "clearly inside it, the fit leaves the overdrawn strip out (the refined map still "
        "shows the polygons whole); outlines on or inside the edges keep every pixel "
        f"(default: {'on' if vocab.OUTLINE_EDGES else 'off'}; "
        'docs/results_corrections.md "Session 32")',
    )
    p.add_argument(
        "--snap-outlines",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the fit learns each object polygon with its outline moved onto the edges "
        "the image shows within 1.5 m, as snap-outlines moves it (background polygons as "
        "drawn); the refined map still shows the polygons as drawn "
        f"(default: {'on' if vocab.SNAP_OUTLINES else 'off'}; "
        'docs/results_corrections.md "Session 34")',
    )
    p.add_argument(
        "--change-gate",
        type=_bounded(float, 0.0, 0.999, "--change-gate"),
        default=None,
        metavar="P",
        help="an adopted fit's map keeps a change from the starting model's map only where "
        "the fit gives the new class at least P; the model file then holds the starting "
        "model's networks too, and its refines run both (default "
        f"{vocab.CHANGE_GATE:g}; 0: no gate, every change kept; "
        'docs/results_corrections.md "Session 38")',
    )
    p.add_argument(
        "--any-change",
        action="store_true",
        help="with the gate, keep sure changes to any class; by default a round whose "
        "polygons are all of one class keeps changes to that class only (docs/"
        'results_corrections.md "Session 39")',
    )
    p.add_argument(
        "--detail-fit",
        action="store_true",
        help="also fit the model's detail RNN to the corrections on the fine grid, where a "
        "refine of this image runs it (kept only when it gets more of your held-out "
        "polygons right; about doubles a round on fine imagery; not better on average in "
        "the project's measurements, see docs/results_corrections.md)",
    )
    p.add_argument(
        "--allow-large",
        action="store_true",
        help="go ahead with corrections spread over more than 4000 x 4000 pixels of the "
        "model's grid of a large image (refused otherwise: the fine-tune holds that whole "
        "area in memory, several GB)",
    )
    p.add_argument(
        "--time-budget",
        type=_bounded(float, 0.001, 1e7, "--time-budget"),
        help="stop fitting after this many seconds (default: no limit; a limit makes "
        "the result depend on the machine's speed and load)",
    )
    p.add_argument("--seed", type=_SEED, default=0)
    _common(p)

    p = sub.add_parser("evaluate", help="accuracy and IoU of a class map against a reference")
    p.add_argument("prediction", type=Path)
    p.add_argument("reference", type=Path)
    p.add_argument("--classes", default="background,building")
    p.add_argument(
        "--reference-map",
        type=_value_map,
        help=f"reference value to class, e.g. '{vocab.VALUE_MAP_EXAMPLE}'",
    )
    p.add_argument(
        "--prediction-map",
        type=_value_map,
        help="prediction value to class, for another tool's map, e.g. "
        f"'{vocab.VALUE_MAP_EXAMPLE}' (default: values are class indices, as a refine's)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("vectorize", help="class map to polygons (Shapefile or GeoPackage)")
    p.add_argument("classmap", type=Path)
    p.add_argument("--out", type=Path, required=True, help=".shp or .gpkg")
    p.add_argument("--classes", help="only these classes (names or ids), comma-separated")
    p.add_argument(
        "--scores",
        type=Path,
        help="the refine's probabilities (refine --scores): adds each polygon's mean "
        "probability of its class (mean_prob)",
    )
    p.add_argument(
        "--simplify",
        type=_bounded(float, 0.0, 1e4, "--simplify"),
        default=0.0,
        help="tolerance in metres",
    )
    p.add_argument(
        "--min-area",
        type=_bounded(float, 0.0, 1e12, "--min-area"),
        default=0.0,
        help="drop polygons smaller (m²)",
    )
    p.add_argument(
        "--shared-borders",
        action="store_true",
        help="with --simplify: simplify each border once for both its sides, so that "
        "neighbouring polygons keep meeting exactly (no gaps or overlaps; holds every "
        "polygon in memory)",
    )
    p.add_argument(
        "--merge-small",
        type=_bounded(float, 0.0, 1e12, "--merge-small"),
        default=0.0,
        metavar="M2",
        help="merge regions smaller than this (m²) into their largest neighbour before "
        "polygonising: a minimum area that leaves no gap between classes (--min-area "
        "drops polygons instead)",
    )
    p.add_argument(
        "--regularize",
        nargs="?",
        const="building",
        metavar="CLASSES",
        help="give these classes' outlines (comma-separated; bare: building) right angles "
        "and parallel edges where they are nearly so, instead of --simplify",
    )
    p.add_argument(
        "--regularize-tolerance",
        type=_bounded(float, 0.01, 1e3, "--regularize-tolerance"),
        default=None,
        help="how far (m) a regularised outline may cut across the map's: the "
        "simplification tolerance and the distance under which parallel edges merge "
        "(default 1, or two pixels of a map coarser than 0.5 m)",
    )
    p.add_argument(
        "--regularize-every-edge",
        action="store_true",
        help="turn every edge of a regularised outline onto the building's axes, however "
        "far (all corners right angles, as buildingregulariser does), not only the "
        "edges that nearly are",
    )
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser(
        "compare",
        help="flag what the image contradicts in a vector map (kept, moved, reshaped, not "
        "seen, new)",
    )
    p.add_argument("prior", type=Path, help="the vector map you have (e.g. OSM buildings)")
    p.add_argument("refined", type=Path, help="a refined class map of the same area")
    p.add_argument("--out", type=Path, required=True, help="the flags, .gpkg or .shp")
    p.add_argument("--class", dest="class_name", default="building", help="the compared class")
    p.add_argument(
        "--prior-class-field",
        default=None,
        help="the prior's class field (default: every feature is of the compared class)",
    )
    p.add_argument(
        "--prior-layer",
        default=None,
        help="the prior's layer, for a file with several (default: the file's only layer)",
    )
    p.add_argument(
        "--moved",
        type=_bounded(float, 0.0, 1e4, "--moved"),
        default=1.0,
        help="shift in metres from which a feature counts as moved",
    )
    p.add_argument(
        "--search",
        type=_bounded(float, 0.0, 1e4, "--search"),
        default=4.0,
        help="how far (m) from a feature its object is looked for",
    )
    p.add_argument(
        "--min-area",
        type=_bounded(float, 0.0, 1e12, "--min-area"),
        default=2.0,
        help="refined objects smaller than this (m²) are never 'new'",
    )
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser(
        "snap-outlines",
        help="correction polygons moved onto the image's edges, stretch by stretch (a new layer)",
    )
    p.add_argument("image", type=Path, help="the raster the polygons were drawn on")
    p.add_argument("corrections", type=Path, help="the correction layer (.gpkg, .shp, ...)")
    p.add_argument("--out", type=Path, required=True, help="the snapped layer, .gpkg or .shp")
    p.add_argument("--class-field", default="class", help="the field holding class names")
    p.add_argument(
        "--keep",
        default="background",
        help="classes whose polygons stay as drawn, comma-separated (default: background)",
    )
    p.add_argument("--layer", default=None, help="the layer, for a file with several")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser(
        "changes",
        help="where a newer class map of an image differs from an older one (after a "
        "correction round: what it changed)",
    )
    p.add_argument("before", type=Path, help="the older class map")
    p.add_argument("after", type=Path, help="the newer class map (its grid is the output's)")
    p.add_argument(
        "--out",
        type=Path,
        help="a GeoTIFF of the changes: 1 + the class a pixel became, else 0 (with --model, "
        "only the changes away from the model's kept polygons)",
    )
    p.add_argument(
        "--class-names",
        help="comma-separated, for maps that do not name their classes (default: the maps')",
    )
    p.add_argument(
        "--model",
        type=_model_file,
        help="the fine-tuned model AFTER was refined with: the changes outside the polygons "
        "it keeps (drawn by the user) are counted apart",
    )
    p.add_argument(
        "--largest",
        type=_bounded(int, 1, 1000, "--largest"),
        metavar="N",
        help="with --out, list the N largest connected changes (the ones to look at first: "
        "the plugin's review list), each with its area and a point inside it",
    )
    p.add_argument(
        "--largest-out",
        type=Path,
        metavar="LIST.gpkg",
        help="with --out, also write that list (25 unless --largest says) as polygons: rank, "
        "class (what each change was: paste chosen ones into a correction layer to turn "
        "them back), became, pixels, area_m2, cut",
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser(
        "fetch", help="an XYZ, WMTS or WMS service's imagery over an extent, to refine"
    )
    p.add_argument(
        "url",
        help="tile URL with {z}, {x} and {y} (or {-y}), or a quadkey {q}; {s} is 'a'; "
        "with --wms, the WMS URL",
    )
    p.add_argument("--wms", metavar="LAYERS", help="a WMS: its layers (comma-separated)")
    p.add_argument("--wms-crs", default="EPSG:3857", help="the CRS to ask the WMS for")
    p.add_argument(
        "--wmts", metavar="LAYER", help="a WMTS: its layer (URL: its capabilities document)"
    )
    p.add_argument("--tile-matrix-set", default="", help="with --wmts: the tile matrix set")
    p.add_argument("--bbox", type=_bbox, required=True, help="minx,miny,maxx,maxy in --crs")
    p.add_argument("--crs", default="EPSG:4326", help="the bbox's CRS (default: EPSG:4326)")
    p.add_argument("--out", type=Path, required=True, help="output image (GeoTIFF)")
    p.add_argument(
        "--resolution",
        type=_bounded(float, 1e-3, 1e5, "--resolution"),
        help="ground metres per pixel wanted (default: the model's)",
    )
    p.add_argument("--model", type=_model_file, help="model whose resolution to fetch at")
    p.add_argument("--max-zoom", type=_bounded(int, 0, 22, "--max-zoom"), default=19)
    p.add_argument(
        "--tile-size",
        type=int,
        choices=vocab.XYZ_TILE_SIZES,
        help="the service's tile size in pixels (default: 512 for @2x URLs, else 256)",
    )
    p.add_argument(
        "--max-tiles",
        type=_bounded(int, 1, 1_000_000, "--max-tiles"),
        default=2000,
        help="refuse a fetch of more tiles (default 2000)",
    )

    p = sub.add_parser(
        "survey-model",
        help="one model file that reads every tile of a survey alike (the model and its "
        "colour match judged once over all of them, so no seams between tiles)",
    )
    p.add_argument("images", type=Path, nargs="+", help="the survey's images (tiles)")
    p.add_argument("--out", type=Path, required=True, help="new model file (.safetensors)")
    p.add_argument(
        "--model",
        type=_model_file,
        help="the model to fix the reading of (default: the bundled model the images "
        "together choose)",
    )
    p.add_argument(
        "--no-colour-match",
        action="store_true",
        help="read every image as it is (by default, where the images together look unlike "
        "the model's training imagery, every one is matched the same way)",
    )
    p.add_argument("--bands", type=_band_list, help="1-based bands to judge, e.g. '1,2,3'")
    p.add_argument(
        "--input-resolution",
        type=_bounded(float, 1e-4, 1e5, "--input-resolution"),
        help="pixel size in metres, for rasters without a CRS",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = sub.add_parser("info", help="describe a model file")
    p.add_argument("model", type=_model_file, nargs="?", help="a file, default or general")

    p = sub.add_parser("demo", help="refine the Austin test tile and score it")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out-dir", type=Path, default=Path("out"))
    p.add_argument("--model", type=_model_file)
    p.add_argument("--device", choices=vocab.DEVICES, default="auto")
    return ap


@contextlib.contextmanager
def _gdal_messages_to_log() -> Iterator[None]:
    """GDAL's own warnings (e.g. a damaged tag) go to the log (shown with -v), not raw to
    stderr, so an expected error stays one line; GDAL errors still raise exceptions."""
    from osgeo import gdal

    gdal_log = logging.getLogger("map_refiner.gdal")

    def handler(err_class: int, err_no: int, message: str) -> None:
        gdal_log.info(
            "GDAL %s %d: %s",
            "warning" if err_class == gdal.CE_Warning else "message",
            err_no,
            message,
        )

    gdal.PushErrorHandler(handler)
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def _unraisable_to_log(unraisable: sys.UnraisableHookArgs) -> None:
    """GDAL raises while a dataset closes after a failed write (disk full); Python would
    print that as a traceback beside the one-line error. It goes to the log instead."""
    log.info("while cleaning up: %r in %r", unraisable.exc_value, unraisable.object)


class _HeldWarnings(logging.Handler):
    """Warnings wait for the end of the verb: printed after a success, dropped before an
    expected error, whose one line says what matters (``-v`` shows everything as it comes)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def print_held(self) -> None:  # not release(): logging.Handler uses that name for its lock
        for record in self.records:
            print(self.format(record), file=sys.stderr)
        self.records = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb: 0 on success, 2 and one line for an expected error, 70 and one line
    (the traceback in a log file) for a bug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except Exception as exc:  # a bug: one line and a log file, never a traceback
        if "-v" in argv or "--verbose" in argv:
            log.exception("internal error")
        from .cli_crash import report_internal_error

        return report_internal_error(exc, argv)


def _main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, one line printed)
        return int(exc.code or 0)
    held = None
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    else:
        held = _HeldWarnings()
        logging.getLogger().addHandler(held)
    from . import cli_commands

    hook = sys.unraisablehook
    sys.unraisablehook = _unraisable_to_log
    try:
        with _gdal_messages_to_log():
            rc = cli_commands.run(args)
        if held is not None:
            held.print_held()
        return rc
    except MapRefinerError as exc:
        print(f"map-refiner: error: {exc.message}", file=sys.stderr)
        if exc.details:
            log.info("details: %s", exc.details)
        return 2
    except KeyboardInterrupt:
        print("map-refiner: interrupted; no output was written.", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = hook
        if held is not None:
            logging.getLogger().removeHandler(held)


if __name__ == "__main__":
    sys.exit(main())
