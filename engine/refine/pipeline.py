"""The one call path for refining a raster file, shared by the CLI, the QGIS
tasks and the Processing algorithms."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..errors import MapRefinerError
from ..labels.kept import burn_into
from ..limits import check_work, coarse_note
from ..modelfile.bundled_choice import ModelChoice, choose_bundled
from ..modelfile.config import ModelConfig
from ..modelfile.header import model_for_refine
from ..networks.map_cache import MapCache
from ..networks.models import MapRefinerNet
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.files import check_geotiff_name, check_output_path
from ..rasters.group import WriterGroup, writer_group
from ..rasters.write import CLASS_NODATA, RefinedWriter, refined_writer
from .memory import bounded_memory, release_free_memory
from .params import KeepIterations, RefineParams, RefineResult, describe_map
from .predict import classes_and_probs
from .prior import (
    DEFAULT_STRENGTH,
    PRIOR_KEEP,
    PRIOR_KEEP_OBJECTS,
    Prior,
    keep_prior,
)
from .refine_pass import RefinePass, open_pass, plan_detail, prepare_pass
from .registration import RESHAPE_AGREEMENT, search_of
from .tiling import Tile
from .trajectory import TrajectoryCollector

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
__all__ = ["KeepIterations", "RefineParams", "RefineResult", "refine_array", "refine_raster"]


def refine_raster(
    params: RefineParams,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    model: tuple[MapRefinerNet, ModelConfig] | None = None,
) -> RefineResult:
    """Coarse CNN + ``iterations`` RNN steps over a raster, tile by tile, to a GeoTIFF.

    With ``params.keep_iterations`` the same pass also keeps the class map and the
    uncertainty at every iteration over a window (``RefineResult.trajectory``).
    """
    t0 = time.perf_counter()
    rep = make_reporter(progress, is_cancelled)
    image, out = Path(params.image), Path(params.out)
    check_outputs(params)
    params, choice = chosen_model(params, model is not None)
    p = open_refine_pass(params, model)
    if params.prior is None:  # the maps kept for, and read by, correction rounds' refines
        files = p.ds.GetFileList() or []
        p.cache = MapCache.for_pass(files, p.info.width * p.info.height, pass_settings(p))
    d = p.detail
    check_work(
        p.grids.model_width * p.grids.model_height,
        params.allow_large,
        d.width * d.height if d is not None else 0,
        d.iterations if d is not None else 0,
    )
    note = ""  # what registration did with the prior
    correlation: float | None = None  # and how well it agreed with the model's map
    edges: float | None = None  # and with the image's edges, when it would move it
    support: float | None = None  # the image's edges under it, when the map could not place it
    misread = False  # the image follows the prior where the model's map does not
    reshape: float | None = None  # the model's map from the prior on the image's edges
    warn = False  # the edges say the model may misread the imagery (RefineResult.prior_misread)
    if params.prior is not None:
        strength = params.prior_strength
        p.prior = Prior(
            Path(params.prior),
            p.config.num_classes,
            params.prior_value_map,
            DEFAULT_STRENGTH if strength is None else strength,
            class_field=params.prior_class_field,
            layer=params.prior_layer,
            class_names=p.config.class_names,
            line_width_m=params.prior_line_width_m,
        )
        if params.prior_register:
            placed = p.register_prior(
                search_of(params.prior_search_m),
                regions=params.prior_regions,
                edges=params.prior_edges,
            )
            note, correlation, edges = placed.why, placed.correlation, placed.edge_ratio
            support = placed.edge_support
            misread = placed.misread
            # a move the image's edges undid (RefinePass._edges_second_opinion), whether
            # left in place or moved onto the image's own edges instead
            warn = edges is not None and (not placed.applied or placed.by_edges)
        else:
            note = "left in place (not registered)"
        if strength is None:
            p.calibrate_prior()
        p.prior_keep = PRIOR_KEEP if params.prior_keep is None else params.prior_keep
        # a drawn object is kept unless the map all but excludes it (the user's own
        # --prior-keep is one value for every class)
        p.prior_keep_objects = PRIOR_KEEP_OBJECTS if params.prior_keep is None else None
        doubt = ""  # why the image's edges follow the prior better than the model's map
        if params.prior_keep is None and misread:  # the map could not place it at all
            doubt = (
                f"but the image's edges follow its outlines ({support:.2f} times the image's "
                "mean edge strength)"
            )
        elif params.prior_keep is None and params.prior_edges:
            # does the model reshape the prior onto the image's edges, or off them?
            reshape = p.prior_reshape_ratio()
            if reshape is not None and reshape < RESHAPE_AGREEMENT:
                doubt = (
                    "the model's map would reshape it onto weaker edges of the image "
                    f"({reshape:.2f} times as strong as under its own outlines)"
                )
        if doubt:
            warn = True
            note += (
                f"; {doubt}, so the model may misread this imagery (bands in another order, "
                "false colour, haze, an unusual colour balance?)"
            )
        if warn and params.prior_keep is None:
            # the edges doubt the model's map (one of the rules above, or a move they
            # undid): the model misreads this imagery, so the prior's classes are kept as
            # drawn and the refined map only fills what the prior leaves open. Sessions
            # 24-25 kept them wherever the map gave them at least 0.001, and a misreading
            # map can be surer than that of what is not there (austin_enh under a cool
            # cast 93.0 building IoU on a right prior, Kampala read blue-green-red 85.3);
            # docs/results_prior.md "A third misreading: reading". An undone move counts
            # since session 25 (a cool cast on Kampala: a map sure of buildings that are
            # not there, on strong edges, so the reshape check passes).
            p.prior_as_drawn = True
            note += ": its classes are kept as drawn"
    info, config, iterations, total = p.info, p.config, p.iterations, p.tile_count()
    log.info(
        "refining %s (%dx%d, %.2fx%.2f m) on a %dx%d model grid, %d tiles, %d iterations, %s",
        image.name,
        info.width,
        info.height,
        *p.resolution_m,
        p.grids.model_width,
        p.grids.model_height,
        total,
        iterations,
        p.device_label,
    )
    if p.detail is not None:
        log.info(
            "then %d more iterations on a finer %dx%d grid (%.3f m)",
            p.detail.iterations,
            p.detail.width,
            p.detail.height,
            min(p.detail.resolution_m),
        )
    wanted = params.keep_iterations
    traj = None
    if wanted is not None:
        traj = TrajectoryCollector(p, wanted.window, wanted.kind, wanted.max_pixels)
    colours = config.colours
    with (
        bounded_memory(),
        writer_group() as group,  # the class map, scores and coarse map: all or none
        refined_writer(
            info,
            out,
            config.class_names,
            colours,
            params.scores,
            map_description(p),
            params.overwrite,
            group,
        ) as writer,
        optional_writer(params.coarse, p, params.overwrite, group) as coarse_writer,
    ):
        for i, tile in enumerate(p.tiles()):
            rep.check()
            maps = refine_tile(p, tile, params.scores is not None, coarse_writer is not None, traj)
            writer.write(tile.x0, tile.y0, maps.classes, maps.probs)
            if coarse_writer is not None and maps.coarse is not None:
                coarse_writer.write(tile.x0, tile.y0, maps.coarse, None)
            del maps
            release_free_memory()  # flat memory over thousands of tiles
            rep.report((i + 1) / total)
        rep.check()
    seconds = time.perf_counter() - t0
    return RefineResult(
        out,
        params.scores,
        iterations,
        config.class_names,
        colours,
        seconds,
        p.device_label,
        total,
        (p.grids.model_width, p.grids.model_height),
        params.coarse,
        p.kept.features if p.kept is not None else 0,
        traj.result(seconds) if traj is not None else None,
        note,
        correlation,
        edges,
        support,
        reshape,
        warn,
        params.model_path,
        choice.note if choice is not None else "",
        coarse_note(*p.resolution_m, config.ground_resolution_m),
        p.colour_note,
        p.kept_note,
    )


def chosen_model(
    params: RefineParams, model_given: bool = False
) -> tuple[RefineParams, ModelChoice | None]:
    """``params`` with the bundled model chosen for the image when they ask for one
    (RefineParams.choose_model) and name no model, prior or loaded ``model``; and the
    choice (None: none made)."""
    if not params.choose_model or params.model_path is not None or params.prior is not None:
        return params, None
    if model_given:
        return params, None
    choice = choose_bundled(Path(params.image), params.bands, params.input_resolution_m)
    log.info("model: %s", choice.note)
    return replace(params, model_path=choice.path), choice


def pass_settings(p: RefinePass) -> dict:
    """Everything besides the networks and the image that makes a pass's maps
    (map_cache.py's key)."""
    return {
        "bands": list(p.bands),
        "iterations": p.iterations,
        "resolution_m": list(p.resolution_m),
        "grids": repr(p.grids),
        "tile_size": p.tile_size,
        "detail": repr(p.detail),
        "autocast": str(p.autocast),
        "device": str(p.device),
    }  # the tile plan follows from these (plan_tiles); each map's name holds its tile


def open_refine_pass(
    params: RefineParams, model: tuple[MapRefinerNet, ModelConfig] | None = None
) -> RefinePass:
    """The pass ``params`` ask for (``model`` if given, else their model file, else the
    bundled one; the snap model with a prior), for one process or a cluster's block."""
    model_path = (
        params.model_path
        if model is not None
        else model_for_refine(params.model_path, params.prior is not None)
    )
    return open_pass(
        Path(params.image),
        model_path,
        model=model,
        device=params.device,
        precision=params.precision,
        bands=params.bands,
        iterations=params.iterations,
        input_resolution_m=params.input_resolution_m,
        tile_size=params.tile_size,
        keep_corrections=params.keep_corrections,
        detail_iterations=params.detail_iterations,
        detail_resolution_m=params.detail_resolution_m,
        match_colours=params.match_colours,
    )


def map_description(p: RefinePass) -> str:
    """The class map band's description."""
    d = p.detail
    if d is None:
        return describe_map(p.config.name, p.iterations)
    return describe_map(p.config.name, p.iterations, d.iterations, min(d.resolution_m))


@dataclass
class TileMaps:
    """One output tile's class map, probabilities (when asked) and coarse class map
    (when asked), drawn corrections burned in."""

    classes: np.ndarray
    probs: np.ndarray | None
    coarse: np.ndarray | None


def refine_tile(
    p: RefinePass,
    tile: Tile,
    scores: bool,
    coarse: bool,
    traj: TrajectoryCollector | None = None,
) -> TileMaps:
    """One tile through the networks: what ``refine_raster`` and a cluster's block write."""
    every = traj is not None and traj.wants(tile)  # the tile keeps all its iterations
    keep = traj.keep if traj is not None and every else ([0, p.iterations] if coarse else None)
    res = p.predict(tile, keep)
    refined = res.logits if keep is None else res.logits[-1]
    cls, probs = classes_and_probs(refined, res.valid, CLASS_NODATA, scores)
    prior = p.prior_classes(tile)
    if prior is not None and p.prior_as_drawn:
        keep_prior(prior, refined, cls, res.valid, 0.0)
    elif prior is not None:
        keep_prior(prior, refined, cls, res.valid, p.prior_keep, p.prior_keep_objects, p.background)
    drawn = p.drawn(tile)
    if drawn is not None:
        burn_into(drawn, cls, probs, res.valid)
    coarse_cls = None
    if coarse:
        coarse_cls, _ = classes_and_probs(res.logits[0], res.valid, CLASS_NODATA, False)
    if traj is not None and every:
        traj.add(tile, res.logits, res.valid, drawn)
    return TileMaps(cls, probs, coarse_cls)


def check_outputs(params: RefineParams, vrt: bool = False) -> None:
    """The outputs are new (or may be overwritten), distinct, and none of the inputs;
    GeoTIFFs (or, with ``vrt``, VRTs over a cluster's parts)."""
    out = Path(params.out)
    inputs = [Path(params.image)] + ([params.model_path] if params.model_path else [])
    inputs += [Path(params.prior)] if params.prior else []
    check_output_path(out, inputs, params.overwrite)
    for path, what in (
        (out, "class map"),
        (params.scores, "scores"),
        (params.coarse, "coarse map"),
    ):
        if path is None:
            continue
        suffix = Path(path).suffix.lower()
        if vrt and suffix != ".vrt":
            raise MapRefinerError(
                f"With --format vrt the {what} is written as a VRT over its parts: give it "
                f"a .vrt name, not {Path(path).name}."
            )
        if not vrt:
            check_geotiff_name(path, what, " (for polygons, run vectorize on the class map)")
    written = {out.resolve(): "class map"}
    for path, what in ((params.scores, "scores file"), (params.coarse, "coarse class map")):
        if path is None:
            continue
        other = written.setdefault(Path(path).resolve(), what)
        if other != what:
            raise MapRefinerError(f"The {what} and the {other} must be different files.")
        check_output_path(path, inputs, params.overwrite)


@contextmanager
def optional_writer(
    path: PathLike | None, p: RefinePass, overwrite: bool = True, group: WriterGroup | None = None
) -> Iterator[RefinedWriter | None]:
    """A class-map writer for ``path``, or None; written atomically like the main map."""
    if path is None:
        yield None
        return
    config = p.config
    with refined_writer(
        p.info,
        Path(path),
        config.class_names,
        config.colours,
        None,
        f"{config.name}: coarse CNN (no RNN iteration)",
        overwrite,
        group,
    ) as writer:
        yield writer


def refine_array(
    net: MapRefinerNet,
    config: ModelConfig,
    ds,
    iterations: int,
    device: str | torch.device = "cpu",
    bands: list[int] | None = None,
    input_resolution_m: float | None = None,
    tile_size: int = RefineParams.tile_size,
    trajectory: bool = False,
    detail_iterations: int | None = 0,
    detail_resolution_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits on the whole input grid in memory (for evaluation and small rasters).

    Returns ``(logits, valid)``; logits are ``(K, H, W)``, or ``(T+1, K, H, W)``
    with ``trajectory``. The model runs as given (no kept corrections, fp32); with
    ``detail_iterations``, the last iteration goes on that many on a finer grid (None:
    the model's own where the image is fine enough, as a refine).
    """
    p = prepare_pass(
        ds,
        net,
        config,
        torch.device(device),
        None,
        bands,
        iterations,
        input_resolution_m,
        tile_size,
    )
    p.detail = plan_detail(p, detail_iterations, detail_resolution_m)
    info, k = p.info, config.num_classes
    keep = list(range(p.iterations + 1)) if trajectory else None
    shape = ((len(keep), k) if keep else (k,)) + (info.height, info.width)
    logits = np.zeros(shape, dtype=np.float32)
    valid = np.zeros((info.height, info.width), dtype=bool)
    for tile in p.tiles():
        res = p.predict(tile, keep)
        logits[..., tile.y0 : tile.y1, tile.x0 : tile.x1] = res.logits.cpu().numpy()
        valid[tile.y0 : tile.y1, tile.x0 : tile.x1] = res.valid
    return logits, valid
