"""CUDA path check (torch only, no GDAL): the networks on a real image crop on
the GPU, fp32 and mixed precision, against the CPU result; compute timings.

    python -m map_refiner.dev.benchmarks.cuda_check --model M --image CROP.jpg|png \
        [--eval-image TILE.png --eval-labels LABELS.png]

The inputs come from ``python -m map_refiner.dev.benchmarks.gpu_prepare`` (GDAL,
here); dev/device_bench.sh runs this on a lent GPU box.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ...engine.modelfile.io import load_model
from ...engine.networks.inference import infer
from ...engine.networks.models import pad_to_stride
from ...engine.scoring.scores import Scores, confusion_matrix


def _load_crop(path: Path, size: int | None = None) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    a = np.asarray(Image.open(path))[:size, :size]
    return a.transpose(2, 0, 1).astype(np.float32)


def _model_input(raw: np.ndarray, cfg) -> torch.Tensor:
    """``(1, C, H, W)``: the image normalised as the engine does."""
    mean = np.asarray(cfg.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(cfg.std, dtype=np.float32)[:, None, None]
    return torch.from_numpy((raw - mean) / std)[None]


def _run(net, x: torch.Tensor, iterations: int, amp: bool) -> torch.Tensor:
    """The engine's own inference call (inference.infer, as a refine makes it) on
    a (1, C, H, W) image: fp32, or bf16 autocast as refines on CUDA default to."""
    return infer(net, x[0], iterations, autocast=torch.bfloat16 if amp else None)[None]


def _time(fn, device: torch.device, repeat: int = 5) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def mean_iou(pred: np.ndarray, ref: np.ndarray, k: int) -> float:
    """Mean IoU (percent) over the classes present in either map (ref 255 ignored),
    scored as ``map-refiner evaluate`` scores (engine/scoring/scores.py)."""
    return (
        100
        * Scores.from_confusion(confusion_matrix(pred, ref, k), [str(c) for c in range(k)]).mean_iou
    )


def iou_check(net, cfg, image: Path, labels: Path, dev: torch.device) -> dict:
    """fp32 and bf16-autocast class maps of a labelled tile on ``dev``: mean IoU of each."""
    from PIL import Image

    ref = np.asarray(Image.open(labels))
    h, w = ref.shape
    x = _model_input(_load_crop(image), cfg).to(dev)
    out = {}
    for amp in (False, True):
        pred = _run(net, x, cfg.default_iterations, amp)[0].argmax(0)[:h, :w].cpu().numpy()
        out["mean_iou_" + ("bf16" if amp else "fp32")] = round(
            mean_iou(pred, ref, cfg.num_classes), 3
        )
    out["iou_diff_points"] = round(abs(out["mean_iou_bf16"] - out["mean_iou_fp32"]), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--image", type=Path, required=True, help="RGB crop at the model's resolution")
    ap.add_argument("--size", type=int, default=2500, help="crop side in model pixels")
    ap.add_argument("--cpu-size", type=int, default=512, help="crop side for the CPU reference")
    ap.add_argument("--eval-image", type=Path, help="labelled tile on the model grid (PNG)")
    ap.add_argument("--eval-labels", type=Path, help="its labels (PNG, class indices, 255 ignored)")
    a = ap.parse_args()
    net, cfg = load_model(a.model)
    x = pad_to_stride(_model_input(_load_crop(a.image, a.size), cfg))
    report = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    it = cfg.default_iterations
    small = x[..., : a.cpu_size, : a.cpu_size]
    ref = _run(net, small, it, False)
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        report["device"] = torch.cuda.get_device_name(0)
        net_g = net.to(dev)
        g32 = _run(net_g, small.to(dev), it, False).cpu()
        g16 = _run(net_g, small.to(dev), it, True).cpu()
        report["max_abs_diff_fp32_vs_cpu"] = float((g32 - ref).abs().max())
        report["argmax_agree_fp32_vs_cpu"] = float((g32.argmax(1) == ref.argmax(1)).float().mean())
        report["argmax_agree_bf16_vs_fp32"] = float((g16.argmax(1) == g32.argmax(1)).float().mean())
        xg = x.to(dev)
        mp = x.shape[-1] * x.shape[-2] / 1e6
        for amp in (False, True):
            s = _time(partial(_run, net_g, xg, it, amp), dev)
            report[f"seconds_{'bf16' if amp else 'fp32'}_{a.size}px"] = round(s, 4)
            report[f"mpix_per_s_{'bf16' if amp else 'fp32'}"] = round(mp / s, 1)
        report["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if a.eval_image and a.eval_labels:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        report["iou_check_device"] = str(dev)
        report.update(iou_check(net.to(dev), cfg, a.eval_image, a.eval_labels, dev))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
