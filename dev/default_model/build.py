"""Build the bundled default model, in three steps that can run on two machines.

``prepare`` (needs GDAL) reads the real data onto the model grid and stores it
in a small folder; ``fit`` (torch only: runs on a GPU box without GDAL) trains
the coarse CNN on Xiamen's imprecise labels, then the RNN on Austin's accurate
enhancement tile; ``card`` (needs GDAL) scores the result on the Austin test
tile and writes the model card. ``all`` runs the three here.

    python -m map_refiner.dev.default_model.build all --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ...engine.modelfile.config import ModelConfig, make_classes
from ...engine.modelfile.io import build_model, save_model
from ...engine.progress import make_reporter
from ...training.coarse_fit import CoarseParams, coarse_record, fit_coarse, identity_rnn
from ...training.rnn_fit import RnnParams, fit_rnn, rnn_record
from ...training.tile import LabelSource, TrainingTile

log = logging.getLogger(__name__)
RESOLUTION_M = 0.6
CLASSES = ["background", "building"]
XIAMEN = dict(
    image="xiamen/xiamen_rgb.tif",
    labels="xiamen/xiamen_osm_buildings_mask.tif",
    value_map={"0": 0, "1": 1},
    split="xiamen/training.tiles",
)
AUSTIN_ENH = dict(
    image="austin/austin_enh_rgb.tif",
    labels="austin/austin_enh_gt.tif",
    value_map={"0": 0, "255": 1},
)
AUSTIN_DEV = dict(image="austin/austin_dev_rgb.tif", labels="austin/austin_dev_gt.tif")


def prepare(data: Path, work: Path) -> None:
    """Model-grid image and labels (PNG, lossless) for both tiles + the config.

    The large Xiamen image is stored as JPEG (quality 95; the source mosaic is
    JPEG-compressed already) so the folder stays small enough to ship to a GPU box.
    """
    from osgeo import gdal

    from ...engine.rasters.read import open_raster
    from ...training.data import band_statistics, load_training_tile
    from ..webtiles import split_mask

    work.mkdir(parents=True, exist_ok=True)
    image = data / XIAMEN["image"]
    mean, std = band_statistics(image, [1, 2, 3])
    config = ModelConfig(
        classes=make_classes(CLASSES),
        mean=mean,
        std=std,
        ground_resolution_m=RESOLUTION_M,
        name="Map Refiner default (buildings)",
    )
    (work / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    ignore = ~split_mask(open_raster(image), data / XIAMEN["split"])
    for name, spec, extra in (("xiamen", XIAMEN, ignore), ("austin_enh", AUSTIN_ENH, None)):
        src = LabelSource(path=data / spec["labels"], value_map=spec["value_map"])
        tile = load_training_tile(data / spec["image"], src, config, extra_ignore=extra)
        raw = tile.image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
        rgb = raw.round().clamp(0, 255).to(torch.uint8).numpy()
        _write_image(work / f"{name}_image.{'jpg' if name == 'xiamen' else 'png'}", rgb)
        _write_image(work / f"{name}_labels.png", tile.labels.numpy()[None])
        log.info(
            "%s: %s model pixels, %d labelled", name, tuple(rgb.shape[1:]), tile.labelled_pixels
        )
    del gdal


def _write_image(path: Path, arr: np.ndarray) -> None:
    from osgeo import gdal

    mem = gdal.GetDriverByName("MEM").Create("", arr.shape[2], arr.shape[1], arr.shape[0])
    for i in range(arr.shape[0]):
        mem.GetRasterBand(i + 1).WriteArray(arr[i])
    if path.suffix == ".jpg":
        gdal.GetDriverByName("JPEG").CreateCopy(str(path), mem, options=["QUALITY=95"])
    else:
        gdal.GetDriverByName("PNG").CreateCopy(str(path), mem, options=["ZLEVEL=9"])
    Path(str(path) + ".aux.xml").unlink(missing_ok=True)


def _read_image(path: Path) -> np.ndarray:
    """PNG/JPEG to ``(C, H, W)`` uint8 without GDAL (Pillow), for the GPU box."""
    try:
        from PIL import Image
    except ImportError:  # here: GDAL reads PNG too
        from osgeo import gdal

        a = gdal.Open(str(path)).ReadAsArray()
        return a if a.ndim == 3 else a[None]
    Image.MAX_IMAGE_PIXELS = None
    a = np.asarray(Image.open(path))
    return a.transpose(2, 0, 1) if a.ndim == 3 else a[None]


def _tile(work: Path, name: str, config: ModelConfig) -> TrainingTile:
    path = next(p for p in (work / f"{name}_image.png", work / f"{name}_image.jpg") if p.exists())
    rgb = torch.from_numpy(_read_image(path).astype(np.float32))
    mean = torch.tensor(config.mean)[:, None, None]
    std = torch.tensor(config.std)[:, None, None]
    labels = torch.from_numpy(_read_image(work / f"{name}_labels.png")[0].copy())
    return TrainingTile((rgb - mean) / std, labels)


def fit(
    work: Path,
    out: Path,
    coarse_steps: int,
    rnn_steps: int,
    device: str,
    seed: int,
    rnn_batch: int,
    coarse_seconds: float | None = None,
    rnn_seconds: float | None = None,
) -> dict[str, object]:
    """Train both networks from the prepared folder; writes ``out`` and a coarse-only model."""
    from ...engine.device import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    config = ModelConfig.from_dict(json.loads((work / "config.json").read_text()))
    net = build_model(config)
    xiamen = _tile(work, "xiamen", config)
    cp = CoarseParams(
        image=Path(XIAMEN["image"]),
        labels=LabelSource(Path(XIAMEN["labels"])),
        out=out,
        ground_resolution_m=config.ground_resolution_m,
        steps=coarse_steps,
        seed=seed,
        checkpoint_every=0,
        resume=False,
        max_seconds=coarse_seconds,
    )
    t0 = time.perf_counter()
    res_c = fit_coarse(net.coarse, xiamen, cp, dev, make_reporter(), None)
    identity_rnn(net)
    config.training = {"coarse": coarse_record(cp, res_c, dev), "rnn": None}
    config.default_iterations = 0
    coarse_out = out.with_name(out.stem + "_coarse_only.safetensors")
    save_model(net.cpu(), config, coarse_out, overwrite=True)
    enh = _tile(work, "austin_enh", config)
    torch.manual_seed(seed)
    net.rnn = type(net.rnn)(config.in_channels, config.num_classes)
    rp = RnnParams(
        image=Path(AUSTIN_ENH["image"]),
        labels=LabelSource(Path(AUSTIN_ENH["labels"])),
        out=out,
        steps=rnn_steps,
        batch_size=rnn_batch,
        seed=seed,
        checkpoint_every=0,
        resume=False,
        max_seconds=rnn_seconds,
    )
    res_r = fit_rnn(net, enh, rp, dev, make_reporter(), None)
    config.training["rnn"] = rnn_record(rp, enh, res_r, dev)
    config.default_iterations = rp.iterations
    save_model(net.cpu(), config, out, overwrite=True)
    summary = {
        "coarse_steps": res_c.steps,
        "rnn_steps": res_r.steps,
        "coarse_loss_history": res_c.history,
        "rnn_loss_history": res_r.history,
        "seconds": round(time.perf_counter() - t0, 1),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
    }
    out.with_suffix(".fit.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("step", choices=["prepare", "fit", "card", "all"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--work", type=Path, default=Path("out/default_model_data"))
    ap.add_argument("--out", type=Path, default=Path("resources/models/default.safetensors"))
    ap.add_argument("--coarse-steps", type=int, default=8000)
    ap.add_argument("--rnn-steps", type=int, default=3000)
    ap.add_argument("--rnn-batch", type=int, default=16)
    ap.add_argument("--coarse-seconds", type=float, help="time budget for the CNN")
    ap.add_argument("--rnn-seconds", type=float, help="time budget for the RNN")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if a.step in ("prepare", "all"):
        prepare(a.data, a.work)
    if a.step in ("fit", "all"):
        fit(
            a.work,
            a.out,
            a.coarse_steps,
            a.rnn_steps,
            a.device,
            a.seed,
            a.rnn_batch,
            a.coarse_seconds,
            a.rnn_seconds,
        )
    if a.step in ("card", "all"):
        from .model_card import write_card

        write_card(a.out, a.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
