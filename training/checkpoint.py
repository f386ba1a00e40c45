"""Resumable training state in safetensors (never pickle): model + optimiser + step.

A run writes, reads and deletes only a checkpoint it can prove is one: a file at the
checkpoint's path that is not (a user's model called ``x.ckpt.safetensors``, the
run's own base model, anything else) is never written over, loaded or deleted; the
run then goes without a checkpoint and says so.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.errors import MapRefinerError
from ..engine.modelfile.header import read_metadata
from ..engine.modelfile.io import write_safetensors

log = logging.getLogger(__name__)
META_KEY = "map_refiner_checkpoint"


def checkpoint_path(out_model: Path) -> Path:
    """Where training toward ``out_model`` keeps its resumable state."""
    return out_model.with_name(out_model.stem + ".ckpt.safetensors")


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a regular file holding a Map Refiner training checkpoint (its
    safetensors header names one); reads only the header."""
    try:
        return path.is_file() and META_KEY in read_metadata(path)
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


def checkpoint_for(out_model: Path, inputs: Sequence[Path | None] = ()) -> Path | None:
    """The checkpoint path of a run toward ``out_model``, or None when that path is taken
    by a file the run must not touch: one of its ``inputs`` or anything that is not a
    checkpoint. Then the run cannot be resumed, but nothing of the user's is lost."""
    path = checkpoint_path(out_model)
    for i in inputs:
        if i is not None and _same_file(path, Path(i)):
            log.warning(
                "%s is an input of this run, so the run keeps no checkpoint (cannot resume); "
                "choose another output name to have one",
                path.name,
            )
            return None
    if (path.exists() or path.is_symlink()) and not is_checkpoint(path):
        log.warning(
            "%s exists and is not a Map Refiner checkpoint: it is left alone and the run keeps "
            "no checkpoint (cannot resume)",
            path.name,
        )
        return None
    return path


def remove_checkpoint(path: Path | None) -> None:
    """Delete ``path`` once its run is done, only if it is a checkpoint."""
    if path is not None and is_checkpoint(path):
        path.unlink(missing_ok=True)


def _optimizer_tensors(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, scalars


def save_checkpoint(
    path: Path, module: nn.Module, opt: torch.optim.Optimizer, step: int, meta: dict[str, Any]
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    opt_t, opt_s = _optimizer_tensors(opt)
    tensors.update(opt_t)
    info = {"step": step, "opt_scalars": opt_s, **meta}
    write_safetensors(tensors, path, {META_KEY: json.dumps(info)})


def load_checkpoint(
    path: Path, module: nn.Module, opt: torch.optim.Optimizer, fingerprint: str | None = None
) -> dict[str, Any] | None:
    """Restore ``module`` and ``opt`` from ``path``; None when there is none.

    A checkpoint made with other settings (another ``fingerprint``) is deleted
    before anything is loaded from it, so the run starts from its fresh weights.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {})[META_KEY])
        tensors = load_file(str(path))
    except Exception as exc:
        raise MapRefinerError(
            f"The checkpoint {path.name} is unreadable; delete it to start over.", details=repr(exc)
        ) from exc
    if fingerprint is not None and info.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s was made with other settings; starting over", path.name)
        path.unlink()
        return None
    sd = opt.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for k, v in info.get("opt_scalars", {}).items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    sd["state"] = state
    try:
        module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt.load_state_dict(sd)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise MapRefinerError(
            f"The checkpoint {path.name} does not fit this model; delete it to start over.",
            details=repr(exc),
        ) from exc
    return info
