"""Resumable training state in safetensors (never pickle): model + optimiser + step."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.errors import MapRefinerError
from ..engine.modelfile.io import write_safetensors

log = logging.getLogger(__name__)
META_KEY = "map_refiner_checkpoint"


def checkpoint_path(out_model: Path) -> Path:
    """Where training toward ``out_model`` keeps its resumable state."""
    return out_model.with_name(out_model.stem + ".ckpt.safetensors")


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
