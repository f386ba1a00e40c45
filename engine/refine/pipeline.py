"""The one call path for refining a raster file, shared by the CLI, the QGIS
tasks and the Processing algorithms."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..device import configure_threads, device_label, inference_autocast, resolve_device
from ..errors import MapRefinerError
from ..labels.kept import KeptCorrections, burn_into, from_config, window_grid
from ..modelfile.config import ModelConfig
from ..modelfile.io import load_model
from ..networks.models import MapRefinerNet
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.files import check_output_path
from ..rasters.grid import grid_of
from ..rasters.read import check_bands, ground_resolution, open_raster, raster_info
from ..rasters.write import CLASS_NODATA, RefinedWriter, refined_writer
from .memory import bounded_memory, release_free_memory
from .params import RefineParams, RefineResult
from .predict import classes_and_probs, predict_tile, stack_bands
from .tiling import count_tiles, make_grids, plan_tiles

log = logging.getLogger(__name__)
PathLike = Union[str, Path]


def refine_raster(
    params: RefineParams,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    model: tuple[MapRefinerNet, ModelConfig] | None = None,
) -> RefineResult:
    """Coarse CNN + ``iterations`` RNN steps over a raster, tile by tile, to a GeoTIFF."""
    t0 = time.perf_counter()
    rep = make_reporter(progress, is_cancelled)
    image, out = Path(params.image), Path(params.out)
    inputs = [image] + ([params.model_path] if params.model_path else [])
    check_output_path(out, inputs, params.overwrite)
    if int(params.tile_size) < 16:
        raise MapRefinerError(
            f"The tile size must be at least 16 model pixels; got {params.tile_size}."
        )
    written = {out.resolve(): "class map"}
    for p, what in ((params.scores, "scores file"), (params.coarse, "coarse class map")):
        if p is None:
            continue
        other = written.setdefault(Path(p).resolve(), what)
        if other != what:
            raise MapRefinerError(f"The {what} and the {other} must be different files.")
        check_output_path(p, inputs, params.overwrite)
    ds = open_raster(image)
    info = raster_info(ds)
    configure_threads()
    device = resolve_device(params.device)
    autocast = inference_autocast(params.precision, device)
    net, config = model if model else load_model(params.model_path, device)
    net.to(device).eval()
    bands = stack_bands(params.bands, config)
    check_bands(info, bands)
    if len(bands) != config.in_channels:
        raise MapRefinerError(
            f"The model needs {config.in_channels} bands; {len(bands)} were chosen."
        )
    iterations = config.default_iterations if params.iterations is None else int(params.iterations)
    if iterations < 0:
        raise MapRefinerError("The number of iterations must be 0 or more.")
    rx, ry = ground_resolution(info, params.input_resolution_m)
    grids = make_grids(info.width, info.height, rx, ry, config.ground_resolution_m)
    total = count_tiles(grids, params.tile_size)
    log.info(
        "refining %s (%dx%d, %.2fx%.2f m) on a %dx%d model grid, %d tiles, %d iterations, %s",
        image.name,
        info.width,
        info.height,
        rx,
        ry,
        grids.model_width,
        grids.model_height,
        total,
        iterations,
        device_label(device, autocast),
    )
    kept = drawn_corrections(config, ds, params.keep_corrections, image.name)
    colours = config.colours
    desc = f"{config.name}: {iterations} RNN iterations"
    keep = [0, iterations] if params.coarse is not None else None
    with (
        bounded_memory(),
        refined_writer(info, out, config.class_names, colours, params.scores, desc) as writer,
        optional_writer(params.coarse, info, config, colours) as coarse_writer,
    ):
        for i, tile in enumerate(plan_tiles(grids, iterations, params.tile_size)):
            rep.check()
            res = predict_tile(
                net,
                config,
                ds,
                bands,
                grids,
                tile,
                iterations,
                device,
                keep=keep,
                autocast=autocast,
            )
            refined = res.logits if keep is None else res.logits[1]
            cls, probs = classes_and_probs(
                refined, res.valid, CLASS_NODATA, params.scores is not None
            )
            if kept is not None:
                burn_into(
                    kept.labels_on(window_grid(kept.grid, tile.x0, tile.y0, tile.x1, tile.y1)),
                    cls,
                    probs,
                    res.valid,
                )
            writer.write(tile.x0, tile.y0, cls, probs)
            if coarse_writer is not None:
                coarse_cls, _ = classes_and_probs(res.logits[0], res.valid, CLASS_NODATA, False)
                coarse_writer.write(tile.x0, tile.y0, coarse_cls, None)
            del res, refined, cls, probs
            release_free_memory()  # flat memory over thousands of tiles
            rep.report((i + 1) / total)
        rep.check()
    return RefineResult(
        out,
        params.scores,
        iterations,
        config.class_names,
        colours,
        time.perf_counter() - t0,
        device_label(device, autocast),
        total,
        (grids.model_width, grids.model_height),
        params.coarse,
        kept.features if kept is not None else 0,
    )


def drawn_corrections(config: ModelConfig, ds, wanted: bool, name: str) -> KeptCorrections | None:
    """The model's kept corrections when they belong to this image and are wanted."""
    kept = from_config(config.corrections, config.num_classes)
    if kept is None:
        return None
    if not wanted:
        log.info("the model's %d drawn corrections are not applied (asked not to)", kept.features)
        return None
    if not kept.matches(grid_of(ds)):
        log.info(
            "the model's %d drawn corrections belong to %s, not to %s: not applied",
            kept.features,
            kept.image or "another image",
            name,
        )
        return None
    log.info("applying the model's %d drawn corrections to %s", kept.features, name)
    return kept


@contextmanager
def optional_writer(
    path: PathLike | None, info, config: ModelConfig, colours
) -> Iterator[RefinedWriter | None]:
    """A class-map writer for ``path``, or None; written atomically like the main map."""
    if path is None:
        yield None
        return
    with refined_writer(
        info,
        Path(path),
        config.class_names,
        colours,
        None,
        f"{config.name}: coarse CNN (no RNN iteration)",
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
) -> tuple[np.ndarray, np.ndarray]:
    """Logits on the whole input grid in memory (for evaluation and small rasters).

    Returns ``(logits, valid)``; logits are ``(K, H, W)``, or ``(T+1, K, H, W)``
    with ``trajectory``.
    """
    device = torch.device(device)
    info = raster_info(ds)
    bands = stack_bands(bands, config)
    check_bands(info, bands)
    rx, ry = ground_resolution(info, input_resolution_m)
    grids = make_grids(info.width, info.height, rx, ry, config.ground_resolution_m)
    k = config.num_classes
    shape = ((iterations + 1, k) if trajectory else (k,)) + (info.height, info.width)
    logits = np.zeros(shape, dtype=np.float32)
    valid = np.zeros((info.height, info.width), dtype=bool)
    for tile in plan_tiles(grids, iterations, tile_size):
        res = predict_tile(net, config, ds, bands, grids, tile, iterations, device, trajectory)
        logits[..., tile.y0 : tile.y1, tile.x0 : tile.x1] = res.logits.cpu().numpy()
        valid[tile.y0 : tile.y1, tile.x0 : tile.x1] = res.valid
    return logits, valid
