"""Training the coarse CNN from a raster and its labels (reads with GDAL)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..engine.device import configure_threads, resolve_device
from ..engine.modelfile.config import ModelConfig, make_classes
from ..engine.modelfile.io import build_model, check_model_output, save_model
from ..engine.progress import CancelFn, ProgressFn, make_reporter
from ..engine.rasters.read import open_image
from .checkpoint import checkpoint_for, remove_checkpoint
from .coarse_fit import CoarseParams, TrainResult, coarse_record, fit_coarse, identity_rnn
from .data import band_statistics, load_training_tile
from .loop import seeded_build

log = logging.getLogger(__name__)
__all__ = ["CoarseParams", "TrainResult", "train_coarse"]


def train_coarse(
    params: CoarseParams, progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None
) -> TrainResult:
    """Train the coarse FCN and save a model whose RNN is the identity (no refinement yet)."""
    rep = make_reporter(progress, is_cancelled)
    out = Path(params.out)
    check_model_output(out, [params.image, params.labels.path], params.overwrite)
    configure_threads()
    device = resolve_device(params.device)
    ds = open_image(params.image)
    bands = params.bands or list(range(1, min(3, ds.RasterCount) + 1))
    mean, std = band_statistics(params.image, bands)
    config = ModelConfig(
        classes=make_classes(params.class_names),
        bands=bands,
        band_names=[f"band {b}" for b in bands],
        mean=mean,
        std=std,
        ground_resolution_m=params.ground_resolution_m,
        name=params.name,
    )
    tile = load_training_tile(
        params.image,
        params.labels,
        config,
        bands,
        params.input_resolution_m,
        extra_ignore=params.ignore_mask,
        allow_large=params.allow_large,
    )
    rep.sub(0.0, 0.05).report(1.0)
    net = seeded_build(params.seed, lambda: build_model(config))
    ckpt = checkpoint_for(out, [params.image, params.labels.path])
    res = fit_coarse(net.coarse, tile, params, device, rep.sub(0.05, 1.0), ckpt)
    identity_rnn(net)
    config.default_iterations = 0
    config.training = {"coarse": coarse_record(params, res, device), "rnn": None}
    save_model(net.cpu(), config, out, overwrite=params.overwrite)
    remove_checkpoint(ckpt)
    return TrainResult(
        out, res.steps, res.final_loss, res.seconds, str(device), res.history, res.resumed_from
    )
