"""Reading a model file's configuration without torch and without loading weights.

A safetensors file starts with an 8-byte little-endian header length and a
JSON header; our config sits in its ``__metadata__``. This is what the QGIS
dialog uses to show a model's classes, so opening the dialog stays instant and
works even before torch is installed.
"""

from __future__ import annotations

import json
import stat
import struct
from pathlib import Path

from ..errors import MapRefinerError
from .config import ModelConfig

CONFIG_KEY = "map_refiner_config"
DEFAULT_MODEL_PATH = (
    Path(__file__).resolve().parents[2] / "resources" / "models" / "default.safetensors"
)
#: The bundled snap model: the default model with its RNN trained to move a wrong prior
#: map onto the image (dev/default_model/snap.py); ``refine --prior`` uses it unless a
#: model is given.
SNAP_MODEL_PATH = DEFAULT_MODEL_PATH.with_name("snap.safetensors")
#: The bundled general model: every layer retrained with turned and flipped patches, for
#: imagery unlike Austin's aerial photos (drones, satellites, other countries); it starts
#: higher than the default on sensors it never saw and lower on Austin's tiles
#: (resources/models/GENERAL_MODEL_CARD.md).
GENERAL_MODEL_PATH = DEFAULT_MODEL_PATH.with_name("general.safetensors")
#: Names the CLI and Processing accept for the bundled models instead of a path.
BUNDLED_MODELS = {"default": DEFAULT_MODEL_PATH, "general": GENERAL_MODEL_PATH}
MAX_HEADER_BYTES = 100 * 1024 * 1024


def model_for_refine(model: Path | None, with_prior: bool) -> Path | None:
    """The model file a refine uses: ``model`` when one is given; else, with a prior, the
    bundled snap model (trained to start from a prior; docs/results_prior_snap.md) when
    it is installed; else None, the bundled default model."""
    if model is None and with_prior and SNAP_MODEL_PATH.exists():
        return SNAP_MODEL_PATH
    return model


def check_model_path(path: Path) -> Path:
    """Refuse what is not a regular file before opening it: a FIFO or a device would
    block the read forever or stream without end."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MapRefinerError(
            f"Model file not found: {path}. Choose an existing .safetensors model."
        ) from None
    except OSError as exc:
        raise MapRefinerError(
            f"Cannot read the model file {path}: {exc.strerror}.", details=str(exc)
        ) from exc
    if stat.S_ISDIR(mode):
        raise MapRefinerError(f"{path} is a folder; choose a .safetensors model file.")
    if not stat.S_ISREG(mode):
        raise MapRefinerError(
            f"{path.name} is not a regular file (a pipe, socket or device); save the model "
            "as a file and choose that."
        )
    return path


def read_metadata(path: Path) -> dict:
    """The ``__metadata__`` of a safetensors file's header (no weights read); raises
    OSError, ValueError, struct.error or UnicodeDecodeError for what is not one."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n <= 1 or n > MAX_HEADER_BYTES:
            raise ValueError(f"implausible header length {n}")
        header = json.loads(f.read(n).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("the header's metadata is not a JSON object")
    return meta


def read_model_config(path: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` stored in ``path``'s safetensors header."""
    path = check_model_path(Path(path))
    try:
        cfg = json.loads(read_metadata(path)[CONFIG_KEY])
    except (OSError, ValueError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise MapRefinerError(
            f"{path.name} is not a Map Refiner model (expected a safetensors file with a Map "
            "Refiner configuration). Use a model saved by Map Refiner.",
            details=repr(exc),
        ) from exc
    return ModelConfig.from_dict(cfg)
