"""``make bench``: throughput, FLOP rate against the machine's own matmul rate,
the dense-CRF peer, scaling to large mosaics, and training times.

All figures come from one run on one machine and are written to
docs/benchmarks.md. Timings here are measurements, never test assertions.

    python -m map_refiner.dev.benchmarks.bench [--data ../shared/data] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ...engine.device import configure_threads
from ...engine.modelfile.io import load_model
from ...engine.networks.inference import coarse_scores, refine_heat
from ...engine.networks.models import pad_to_stride
from ...engine.rasters.read import ground_resolution, open_raster, raster_info
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.refine.predict import model_image
from ...engine.refine.tiling import make_grids
from ..provenance import git_state
from .bench_corrections import correction_round
from .bench_levers import levers, training_step
from .bench_report import write_report
from .bench_train import finetune_time, rnn_training_time

ROOT = Path(__file__).resolve().parents[2]
#: Tile size (model pixels) of the scaling runs: the engine's default.
DEFAULT_TILE = RefineParams.tile_size


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate with torch, best of ``repeat``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_crop(data: Path, out: Path, km: float = 1.5) -> Path:
    """A ``km`` x ``km`` crop (2.25 km² by default) of the Xiamen mosaic, fully covered."""
    from osgeo import gdal

    src = data / "xiamen" / "xiamen_rgb.tif"
    rx, _ = ground_resolution(raster_info(open_raster(src)))
    side = int(round(km * 1000 / rx))
    gdal.Translate(
        str(out),
        str(src),
        srcWin=[3800, 2600, side, side],
        creationOptions=["TILED=YES", "COMPRESS=DEFLATE"],
    )
    return out


def _on_model_grid(cfg, crop: Path):
    """The crop's model grid and its normalised image on that grid."""
    ds = open_raster(crop)
    info = raster_info(ds)
    rx, ry = ground_resolution(info)
    g = make_grids(info.width, info.height, rx, ry, cfg.ground_resolution_m)
    img = model_image(
        ds, cfg.bands, g, cfg, 0, 0, g.model_width, g.model_height, torch.device("cpu")
    )
    return g, img


def compute_only(model, crop: Path, iterations: int) -> dict[str, float]:
    """CNN and RNN on the whole crop already on the model grid (no I/O)."""
    net, cfg = model
    g, img = _on_model_grid(cfg, crop)
    x = pad_to_stride(img.unsqueeze(0))
    with torch.inference_mode():
        coarse_scores(net.coarse, x[..., :256, :256])
        t_cnn = _timed(lambda: coarse_scores(net.coarse, x))
        heat = coarse_scores(net.coarse, x)
        t_rnn = _timed(lambda: refine_heat(net.rnn, x, heat, iterations))
    mp = g.model_width * g.model_height / 1e6
    return {
        "model_mpix": mp,
        "cnn_s": t_cnn,
        "rnn_s": t_rnn,
        "model_grid": [g.model_width, g.model_height],
    }


def lever_rows(model, crop: Path, iterations: int, data: Path) -> list[dict[str, object]]:
    """Before/after of each speed lever on a 1248 x 1248 square of the crop."""
    net, cfg = model
    g, img = _on_model_grid(cfg, crop)
    rows = levers(net, img[:, :1248, :1248], iterations, g.scale_x)
    rows.append(training_step(net, cfg, data, iterations))
    return rows


def crf_peer(model, crop: Path, iterations: int = 5) -> dict[str, float]:
    """pydensecrf2 (5 mean-field iterations) on the same crop and coarse scores."""
    try:
        import pydensecrf.densecrf as dcrf  # provided by pydensecrf2
    except ImportError:
        return {"available": 0.0}
    net, cfg = model
    g, img = _on_model_grid(cfg, crop)
    with torch.inference_mode():
        x = pad_to_stride(img.unsqueeze(0))
        heat = coarse_scores(net.coarse, x)[0, :, : g.model_height, : g.model_width]
        prob = torch.softmax(heat, 0).numpy()
    rgb = img * torch.tensor(cfg.std)[:, None, None] + torch.tensor(cfg.mean)[:, None, None]
    rgb = np.ascontiguousarray(rgb.clamp(0, 255).byte().permute(1, 2, 0).numpy())
    k, h, w = prob.shape

    def run() -> None:
        d = dcrf.DenseCRF2D(w, h, k)
        d.setUnaryEnergy(np.ascontiguousarray(-np.log(np.clip(prob, 1e-6, 1)).reshape(k, -1)))
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=50, srgb=13, rgbim=rgb, compat=5)
        d.inference(iterations)

    return {"available": 1.0, "crf_s": _timed(run)}


def end_to_end(crop: Path, tmp: Path, tile: int, repeat: int = 2) -> float:
    """GeoTIFF in to GeoTIFF out, best of ``repeat``."""
    out = tmp / f"refined_{tile}.tif"
    return min(
        _timed(
            lambda: refine_raster(
                RefineParams(image=crop, out=out, device="cpu", tile_size=tile, overwrite=True)
            )
        )
        for _ in range(repeat)
    )


def mosaic_vrt(crop: Path, out: Path, n: int) -> Path:
    """An n x n VRT mosaic repeating ``crop`` side by side (a large virtual raster)."""
    from osgeo import gdal

    ds = open_raster(crop)
    w, h = ds.RasterXSize, ds.RasterYSize
    gt = ds.GetGeoTransform()
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}">'
        + "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{crop}</SourceFilename>'
            f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{i * w}" yOff="{j * h}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            for i in range(n)
            for j in range(n)
        )
        + "</VRTRasterBand>"
        for b in (1, 2, 3)
    )
    out.write_text(
        f'<VRTDataset rasterXSize="{n * w}" rasterYSize="{n * h}">'
        f"<SRS>{gdal.EscapeString(ds.GetProjection(), gdal.CPLES_XML)}</SRS>"
        f"<GeoTransform>{', '.join(map(str, gt))}</GeoTransform>{bands}</VRTDataset>"
    )
    return out


def scaling_run(
    vrt: Path, out: Path, tile: int, detail_iterations: int | None = None
) -> dict[str, float]:
    """Refine in a fresh process; its own wall time and peak resident memory
    (``detail_iterations`` as RefineParams takes it; None: the model's own).

    Peak memory is the process's VmHWM (Linux), not ``ru_maxrss``: the latter
    inherits the parent's peak across fork + exec."""
    code = (
        "import sys, time, json\n"
        "from pathlib import Path\n"
        "from map_refiner.engine.refine.pipeline import RefineParams, refine_raster\n"
        "import torch\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) / 1024\n"
        "base = hwm()\n"
        "t = time.perf_counter()\n"
        f"refine_raster(RefineParams(image=Path({str(vrt)!r}), "
        f"out=Path({str(out)!r}), device='cpu', tile_size={tile}, overwrite=True, "
        f"detail_iterations={detail_iterations!r}))\n"
        "print(json.dumps({'s': time.perf_counter() - t, "
        "'rss_mb': hwm(), 'rss_after_import_mb': base}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{name}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads"
    )


def commit() -> str:
    state = git_state(untracked=False)
    return state["commit"] + (" (with uncommitted changes)" if state["dirty"] == "yes" else "")


def main(argv: list[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--json", type=Path, default=ROOT / "out" / "bench.json")
    ap.add_argument("--tiles", default="512,1024,2048", help="tile sizes for the end-to-end runs")
    ap.add_argument("--mosaics", default="1,2,4,8", help="n for n x n mosaics of the 2.25 km² crop")
    ap.add_argument("--rnn-steps", type=int, default=1500, help="RNN training steps to time")
    ap.add_argument("--quick", action="store_true", help="no mosaics above 25 MP, 200 RNN steps")
    ap.add_argument(
        "--gpu-json",
        type=Path,
        default=ROOT / "out" / "bench_gpu.json",
        help="cuda_check.json from dev/device_bench.sh, added with --report-only",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite docs/benchmarks.md from --json without measuring anything",
    )
    a = ap.parse_args(argv)
    if a.report_only:
        res = json.loads(a.json.read_text())
        res["rendered"] = commit()
        if a.gpu_json.exists():
            res["gpu"] = json.loads(a.gpu_json.read_text())
        print(write_report(res, a.out))
        return 0
    if not (a.data / "xiamen" / "xiamen_rgb.tif").exists():
        print(
            f"make bench needs the shared data: {a.data}/xiamen/xiamen_rgb.tif is missing "
            "(pass --data)",
            file=sys.stderr,
        )
        return 2
    configure_threads()
    model = load_model()
    it = model[1].default_iterations
    t_start = time.time()
    res: dict[str, object] = {
        "machine": machine(),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "iterations": it,
        "k": model[1].num_classes,
        "default_tile": DEFAULT_TILE,
    }
    mosaics = [int(v) for v in a.mosaics.split(",")]
    if a.quick:
        mosaics, a.rnn_steps = [n for n in mosaics if n <= 2], min(a.rnn_steps, 200)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        crop = make_crop(a.data, tmp / "xiamen_2_25km2.tif")
        ds = open_raster(crop)
        res["crop"] = {
            "pixels": [ds.RasterXSize, ds.RasterYSize],
            "resolution_m": ground_resolution(raster_info(ds))[0],
        }
        _step("matmul")
        res["matmul_gflops"] = matmul_gflops()
        _step("compute")
        res["compute"] = compute_only(model, crop, it)
        _step("levers")
        res["levers"] = lever_rows(model, crop, it, a.data)
        _step("end to end")
        res["end_to_end_s"] = {t: end_to_end(crop, tmp, t) for t in map(int, a.tiles.split(","))}
        _step("dense CRF")
        res["crf"] = crf_peer(model, crop)
        res["scaling"] = []
        for n in mosaics:
            _step(f"mosaic {n}x{n}")
            vrt = crop if n == 1 else mosaic_vrt(crop, tmp / f"mosaic_{n}.vrt", n)
            r = scaling_run(vrt, tmp / f"mosaic_{n}.tif", DEFAULT_TILE)
            src = open_raster(vrt)
            r["input_mpix"] = src.RasterXSize * src.RasterYSize / 1e6
            r["n"] = n
            res["scaling"].append(r)
            (tmp / f"mosaic_{n}.tif").unlink(missing_ok=True)
        _step("fine-tune")
        res["finetune"] = finetune_time(a.data, tmp)
        _step("correction round")
        res["correction_round"] = correction_round(a.data, tmp)
        _step("RNN training")
        res["rnn_training"] = rnn_training_time(a.data, tmp, a.rnn_steps)
    res["seconds"] = time.time() - t_start
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1))
    text = write_report(res, a.out)
    print(text)
    return 0


def _step(name: str) -> None:
    print(f"[bench] {time.strftime('%H:%M:%S')} {name}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
