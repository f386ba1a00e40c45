"""Training the refinement RNN on an accurately labelled tile (reads with GDAL; the
fitting is in rnn_fit). Fine-tuning on correction polygons: training/corrections/."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from ..engine.device import configure_threads, resolve_device
from ..engine.errors import MapRefinerError
from ..engine.limits import check_iterations
from ..engine.modelfile.io import check_model_output, load_model, save_model
from ..engine.networks.models import RefinementRNN
from ..engine.progress import CancelFn, ProgressFn, make_reporter
from ..engine.refine.predict import bands_note
from .checkpoint import checkpoint_for, remove_checkpoint
from .coarse_fit import TrainResult
from .data import load_training_tile
from .loop import seeded_build
from .rnn_fit import RnnParams, fit_rnn, rnn_record

log = logging.getLogger(__name__)
__all__ = ["RnnParams", "train_rnn"]


def train_rnn(
    params: RnnParams, progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None
) -> TrainResult:
    """Train (or fine-tune) the RNN of ``base_model`` and save a new model file.

    The base model file is only read, never modified.
    """
    rep = make_reporter(progress, is_cancelled)
    out = Path(params.out)
    inputs = [params.image, params.labels.path] + ([params.base_model] if params.base_model else [])
    check_model_output(out, inputs, params.overwrite)
    if check_iterations(params.iterations) < 1:
        raise MapRefinerError("Training the RNN needs at least one iteration.")
    if params.init not in ("fresh", "base"):
        raise MapRefinerError(f"Unknown RNN initialisation {params.init!r}; use 'fresh' or 'base'.")
    configure_threads()
    device = resolve_device(params.device)
    net, config = load_model(params.base_model, "cpu")
    config = copy.deepcopy(config)
    # a trained RNN is no correction round: a base round's change gate does not carry over
    net.gate_parent, config.change_gate, config.gate_parent = None, 0.0, {}
    tile = load_training_tile(
        params.image,
        params.labels,
        config,
        params.bands,
        params.input_resolution_m,
        margin=params.margin,
        allow_large=params.allow_large,
    )
    rep.sub(0.0, 0.05).report(1.0)
    if params.init == "fresh" or params.class_specific != config.class_specific:
        net.rnn = seeded_build(
            params.seed,
            lambda: RefinementRNN(
                config.in_channels, config.num_classes, class_specific=params.class_specific
            ),
        )
        config.class_specific = params.class_specific
    ckpt = checkpoint_for(out, [params.image, params.labels.path, params.base_model])
    res = fit_rnn(net, tile, params, device, rep.sub(0.05, 1.0), ckpt)
    config.default_iterations = params.iterations
    if params.name:
        config.name = params.name
    record = rnn_record(params, tile, res, device)
    if params.init == "fresh":
        config.training["rnn"] = record
        config.training.pop("finetune", None)
    else:
        config.training["finetune"] = list(config.training.get("finetune") or []) + [record]
    save_model(net.cpu(), config, out, overwrite=params.overwrite)
    remove_checkpoint(ckpt)
    note = bands_note(params.image, params.bands, config)  # the base CNN reads red, green, blue
    return TrainResult(
        out,
        res.steps,
        res.final_loss,
        res.seconds,
        str(device),
        res.history,
        res.resumed_from,
        note,
    )
