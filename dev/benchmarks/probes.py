"""Levers that were tried and are not used, each measured before/after in one process.

    python -m map_refiner.dev.benchmarks.probes [--data ../shared/data]

- ``bf16``: bfloat16 on the CPU (the coarse CNN and a 2048^3 matrix multiply).
  Without AMX units, torch's bf16 GEMM on avx512_bf16 runs at about half the
  fp32 rate, so the engine stays in fp32 on the CPU.
- ``prefetch``: reading and resampling the next tile in a second thread while
  the networks run on this one (overlapping I/O with compute). On a 2-core CPU
  the reader competes with torch's OpenMP threads for the cores and the refine
  gets slower; on a GPU machine it would likely pay, which is why it is kept
  here to be measured again there.

Prints a table; nothing is written. Timings are measurements, never test
assertions (see docs/STATUS.md for the figures of the last run).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ...engine.device import configure_threads
from ...engine.modelfile.io import load_model
from ...engine.networks.inference import coarse_scores, run_networks
from ...engine.rasters.read import ground_resolution, open_raster, raster_info, read_window
from ...engine.rasters.write import CLASS_NODATA, refined_writer
from ...engine.refine.params import RefineParams
from ...engine.refine.pipeline import refine_raster
from ...engine.refine.predict import classes_and_probs, model_image
from ...engine.refine.resample import axis_band, resample_window
from ...engine.refine.tiling import make_grids, plan_tiles
from .bench import DEFAULT_TILE, make_crop
from .bench_levers import best_time


def bf16_rows(net) -> list[dict[str, object]]:
    a = torch.randn(2048, 2048)
    a16 = a.bfloat16()
    x = torch.randn(1, 3, 1248, 1248)
    cnn16 = (
        copy.deepcopy(net.coarse).to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
    )
    x16 = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return [
            {
                "what": "matrix multiply 2048^3",
                "fp32": best_time(lambda: a @ a, 3),
                "tried": best_time(lambda: a16 @ a16, 3),
            },
            {
                "what": "coarse CNN, 1248^2 model px (fp32: the engine's CPU path)",
                "fp32": best_time(lambda: coarse_scores(net.coarse, x), 3),
                "tried": best_time(lambda: cnn16(x16), 3),
            },
        ]


def _prefetched_refine(net, cfg, crop: Path, out: Path, iterations: int, tile_px: int) -> None:
    """refine_raster's loop with the next tile read and resampled in a second thread."""
    ds = open_raster(crop)
    info = raster_info(ds)
    g = make_grids(info.width, info.height, *ground_resolution(info), cfg.ground_resolution_m)
    tiles = list(plan_tiles(g, iterations, tile_px))
    bands, cpu, local = list(cfg.bands), torch.device("cpu"), threading.local()

    def load(t):
        if not hasattr(local, "ds"):  # a GDAL dataset is used by one thread only
            local.ds = open_raster(crop)
        img = model_image(local.ds, bands, g, cfg, t.mx0, t.my0, t.mx1, t.my1, cpu)
        return img, read_window(local.ds, bands, t.x0, t.y0, t.x1 - t.x0, t.y1 - t.y0)[1]

    colours = cfg.colours
    with (
        ThreadPoolExecutor(1) as pool,
        refined_writer(info, out, cfg.class_names, colours, None, "probe") as writer,
    ):
        pending = pool.submit(load, tiles[0])
        for i, t in enumerate(tiles):
            img, valid = pending.result()
            if i + 1 < len(tiles):
                pending = pool.submit(load, tiles[i + 1])
            with torch.inference_mode():
                logits = run_networks(net, img, iterations)
            back = resample_window(
                logits,
                axis_band(t.y0, t.y1, 1.0 / g.scale_y, t.my0, t.my1, g.model_height),
                axis_band(t.x0, t.x1, 1.0 / g.scale_x, t.mx0, t.mx1, g.model_width),
            )
            writer.write(t.x0, t.y0, classes_and_probs(back, valid, CLASS_NODATA, False)[0])


def prefetch_rows(net, cfg, crop: Path, tmp: Path) -> list[dict[str, object]]:
    it, tile = cfg.default_iterations, DEFAULT_TILE
    params = RefineParams(image=crop, out=tmp / "plain.tif", device="cpu", overwrite=True)
    return [
        {
            "what": "refine of the 2.25 km² crop, GeoTIFF to GeoTIFF",
            "fp32": best_time(lambda: refine_raster(params, model=(net, cfg)), 2),
            "tried": best_time(
                lambda: _prefetched_refine(net, cfg, crop, tmp / "prefetched.tif", it, tile), 2
            ),
        }
    ]


def main(argv: list[str] = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    a = ap.parse_args(argv)
    if not (a.data / "xiamen" / "xiamen_rgb.tif").exists():
        print(
            f"the probes need the shared data: {a.data}/xiamen/xiamen_rgb.tif is missing "
            "(pass --data)",
            file=sys.stderr,
        )
        return 2
    configure_threads()
    net, cfg = load_model()
    net.eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| lever tried | what | now (s) | with the lever (s) | ratio |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as td:
        crop = make_crop(a.data, Path(td) / "crop.tif")
        for name, rows in (
            ("bf16 on the CPU", bf16_rows(net)),
            ("prefetch thread", prefetch_rows(net, cfg, crop, Path(td))),
        ):
            for r in rows:
                print(
                    f"| {name} | {r['what']} | {r['fp32']:.3f} | {r['tried']:.3f} | "
                    f"{r['tried'] / r['fp32']:.2f}x the time |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
