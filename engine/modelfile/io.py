"""Reading and writing model files: safetensors weights + JSON config, no pickle.

The config is stored in the safetensors header metadata (so one file is a
complete model) and also written beside it as ``<name>.json`` for people to
read. Loading parses only the safetensors format, which cannot run code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import torch

from ..errors import MapRefinerError
from ..networks.models import MapRefinerNet
from ..rasters.files import atomic_path, check_output_path, write_error
from .config import ModelConfig
from .header import CONFIG_KEY, DEFAULT_MODEL_PATH, check_model_path

log = logging.getLogger(__name__)
PathLike = Union[str, Path]


def check_model_output(
    path: PathLike, inputs: Sequence[PathLike] = (), overwrite: bool = False
) -> Path:
    """Refuse a model output whose file or JSON sidecar would replace an input or a file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise MapRefinerError(f"Model files end in .safetensors; got {path.name}.")
    check_output_path(path, inputs, overwrite)
    sidecar = path.with_suffix(".json")
    if any(Path(i).resolve() == sidecar.resolve() for i in inputs if i):
        raise MapRefinerError(
            f"Saving {path.name} would replace the input {sidecar.name} with the "
            "model's description; choose another model name."
        )
    return path


def build_model(config: ModelConfig) -> MapRefinerNet:
    net = MapRefinerNet(
        config.in_channels,
        config.num_classes,
        config.class_specific,
        detail=config.detail_iterations > 0,
    )
    parent = config.parent_config()
    if parent is not None:  # a correction round's parent, its own parent inside (gate.py)
        net.gate_parent = build_model(parent)
    return net


def write_safetensors(
    tensors: dict[str, torch.Tensor],
    path: PathLike,
    metadata: dict[str, str],
    overwrite: bool = True,
) -> None:
    """Write a safetensors file atomically; a full disk is a user error, not a traceback."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path, overwrite) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # an OSError inside: disk full, folder gone...
            raise write_error(path, exc) from exc


def save_model(
    model: MapRefinerNet, config: ModelConfig, path: PathLike, overwrite: bool = False
) -> Path:
    """Write ``path`` (.safetensors) and ``path.json`` atomically, the model first."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise MapRefinerError(f"Model files end in .safetensors; got {path.name}.")
    json_path = path.with_suffix(".json")
    check_output_path(path, overwrite=overwrite)
    check_output_path(json_path, overwrite=overwrite)  # may be someone's GeoJSON labels
    config.validate()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = non_finite(tensors)
    if bad:
        raise MapRefinerError(
            f"Nothing was saved: the trained weights are not finite (NaN or infinity in "
            f"{', '.join(bad[:3])}): the training diverged. Train again with a lower "
            "learning rate."
        )
    meta = {CONFIG_KEY: json.dumps(config.to_dict())}
    # Both written before either is renamed: a full disk leaves neither behind.
    with atomic_path(json_path, overwrite) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        write_safetensors(tensors, path, meta, overwrite)
    log.info("saved model %s", path)
    return path


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [
        k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]


def read_model_file(path: PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Parse a model file without building the network (safetensors only)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = check_model_path(Path(path))
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for bad headers
        raise MapRefinerError(
            f"{path.name} is not a readable Map Refiner model (expected a safetensors file; "
            "it may be truncated or of another format). Use a model saved by Map Refiner.",
            details=repr(exc),
        ) from exc
    if CONFIG_KEY not in meta:
        raise MapRefinerError(
            f"{path.name} is a safetensors file without a Map Refiner configuration; "
            "use a model saved by Map Refiner."
        )
    try:
        cfg_dict = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise MapRefinerError(f"The configuration inside {path.name} is not valid JSON.") from exc
    return ModelConfig.from_dict(cfg_dict), tensors


def load_model(
    path: PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[MapRefinerNet, ModelConfig]:
    """Build the network described by the file and load its weights (eval mode)."""
    path = Path(path) if path else DEFAULT_MODEL_PATH
    if path == DEFAULT_MODEL_PATH and not path.exists():
        raise MapRefinerError(
            "The bundled default model is missing from the plugin folder; reinstall the plugin "
            "or pass a model file."
        )
    config, tensors = read_model_file(path)
    bad = non_finite(tensors)
    if bad:
        raise MapRefinerError(
            f"{Path(path).name} holds weights that are not finite (NaN or infinity in "
            f"{', '.join(bad[:3])}); it would give a blank map. Use another model or train "
            "it again."
        )
    model = build_model(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise MapRefinerError(
            f"The weights in {Path(path).name} do not match its configuration "
            f"({config.num_classes} classes, {config.in_channels} bands); the file is damaged or "
            "was edited by hand.",
            details=str(exc),
        ) from exc
    model.to(device).eval()
    return model, config


def default_model_exists() -> bool:
    return DEFAULT_MODEL_PATH.exists() and os.path.getsize(DEFAULT_MODEL_PATH) > 0
