"""``make bench-cluster``: the same VRT mosaic refined by one process and by a local
Dask scheduler with 1 and 2 single-threaded worker processes; time, each worker's
peak memory, the overhead per block, and on paper a county on 10-1000 workers.
Written to docs/benchmarks_cluster.md (and out/bench_cluster.json). Run it alone:
every run here uses both cores.

    python -m map_refiner.dev.benchmarks.cluster [--data ../shared/data] [--mosaic 4]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ...engine.rasters.read import open_raster
from .bench import ROOT, commit, machine, make_crop, mosaic_vrt, scaling_run
from .cluster_report import write_report

TILE = 1024  # model px: the engine's default
BLOCK_TILES = 2  # 2 x 2 tiles a block: enough blocks to keep two workers even

_CLUSTER_RUN = """
import json, sys, time
from pathlib import Path
from map_refiner.engine.cluster.driver import ClusterOptions, refine_on_cluster
from map_refiner.engine.refine.params import RefineParams

def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024

if __name__ == '__main__':
    image, out, scheduler, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t = time.perf_counter()
    run = refine_on_cluster(
        RefineParams(image=Path(image), out=Path(out), device='cpu', tile_size=int(sys.argv[5])),
        ClusterOptions(scheduler, block_tiles=block),
    )
    print(json.dumps({'s': time.perf_counter() - t, 'driver_rss_mb': hwm(),
                      'blocks': run.blocks, 'assemble_s': run.assemble_s,
                      'records': run.records}))
"""


def cluster_run(image: Path, out: Path, workers: int, tmp: Path) -> dict:
    """A cluster refine in a fresh driver process on ``local:workers``."""
    script = tmp / "cluster_run.py"
    script.write_text(_CLUSTER_RUN)
    res = subprocess.run(
        [sys.executable, str(script), str(image), str(out), f"local:{workers}"]
        + [str(BLOCK_TILES), str(TILE)],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    r = json.loads(res.stdout.strip().splitlines()[-1])
    recs = r.pop("records")
    per_worker: dict[int, float] = {}
    for rec in recs:
        per_worker[rec["pid"]] = max(per_worker.get(rec["pid"], 0.0), rec["peak_rss_mb"])
    r.update(
        workers=workers,
        worker_peak_rss_mb=sorted(per_worker.values()),
        task_s=sum(x["seconds"] for x in recs),
        tiles_s=sum(x["tiles_s"] for x in recs),
        open_s=sum(x["open_s"] for x in recs),
        tiles=sum(x["tiles"] for x in recs),
    )
    return r


def single_run(image: Path, out: Path, threads: int) -> dict:
    """``refine_raster`` in a fresh process with ``threads`` torch threads."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # engine.device.configure_threads keeps it
    try:
        r = scaling_run(image, out, TILE)
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = before
    return {**r, "threads": threads}


def county(res: dict, km2: float = 2000.0, res_m: float = 0.3) -> list[dict]:
    """On paper, from the 1-worker run: a county of ``km2`` at ``res_m`` on W workers.

    Work scales with the model grid's pixels (the model's 0.6 m, whatever the input's
    resolution); blocks of this run's shape; one block per worker at a time."""
    one = res["runs"]["local:1"]
    model_mpx = res["model_mpx"]
    s_per_model_mpx = one["tiles_s"] / model_mpx  # tiles through the networks, one thread
    overhead_block = (one["task_s"] - one["tiles_s"]) / one["blocks"]  # in the task
    block_model_mpx = (BLOCK_TILES * TILE) ** 2 / 1e6
    county_model_mpx = km2 * 1e6 / 0.6**2 / 1e6
    county_input_mpx = km2 * 1e6 / res_m**2 / 1e6
    blocks = math.ceil(county_model_mpx / block_model_mpx)
    block_s = block_model_mpx * s_per_model_mpx + overhead_block
    assemble_s_per_mpx = one["assemble_s"] / res["input_mpx"]
    rows = []
    for w in (10, 100, 1000):
        waves = math.ceil(blocks / w)
        rows.append(
            {
                "workers": w,
                "blocks": blocks,
                "waves": waves,
                "compute_s": waves * block_s,
                "assemble_s": county_input_mpx * assemble_s_per_mpx,
            }
        )
    res["county"] = {
        "km2": km2,
        "res_m": res_m,
        "input_gpx": county_input_mpx / 1e3,
        "model_gpx": county_model_mpx / 1e3,
        "s_per_model_mpx": s_per_model_mpx,
        "overhead_block_s": overhead_block,
        "block_model_mpx": block_model_mpx,
        "block_s": block_s,
        "assemble_s_per_input_mpx": assemble_s_per_mpx,
    }
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument(
        "--mosaic", type=int, default=6, help="n for an n x n mosaic of the crop (6: 275 Mpx)"
    )
    ap.add_argument("--crop-km", type=float, default=1.5, help="side of the Xiamen crop (km)")
    ap.add_argument(
        "--single-threads",
        default="2",
        help="torch threads of the single-process runs, e.g. '2,1' (1 on a busy machine: "
        "two threads then spin against the other work)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks_cluster.md")
    ap.add_argument("--json", type=Path, default=ROOT / "out" / "bench_cluster.json")
    ap.add_argument("--report-only", action="store_true", help="rewrite the page from --json")
    a = ap.parse_args(argv)
    if a.report_only:
        print(write_report(json.loads(a.json.read_text()), a.out))
        return 0
    if not (a.data / "xiamen" / "xiamen_rgb.tif").exists():
        print(f"needs {a.data}/xiamen/xiamen_rgb.tif (pass --data)", file=sys.stderr)
        return 2
    t0 = time.time()
    res: dict = {
        "machine": machine(),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": os.getloadavg(),
        "tile": TILE,
        "block_tiles": BLOCK_TILES,
        "runs": {},
    }
    out_root = ROOT / "out"
    out_root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_root) as td:
        tmp = Path(td)
        crop = make_crop(a.data, tmp / "xiamen_crop.tif", a.crop_km)
        vrt = mosaic_vrt(crop, tmp / "mosaic.vrt", a.mosaic)
        ds = open_raster(vrt)
        res["mosaic"], res["crop_km"] = a.mosaic, a.crop_km
        res["input_mpx"] = ds.RasterXSize * ds.RasterYSize / 1e6
        res["pixel_m"] = abs(ds.GetGeoTransform()[1])
        res["model_mpx"] = res["input_mpx"] * (res["pixel_m"] / 0.6) ** 2
        runs = res["runs"]
        for threads in map(int, a.single_threads.split(",")):
            name = f"single process, {threads} thread{'s' if threads > 1 else ''}"
            _step(name)
            runs[name] = single_run(vrt, tmp / "out.tif", threads)
            (tmp / "out.tif").unlink(missing_ok=True)
        for workers in (1, 2):
            _step(f"local:{workers}")
            runs[f"local:{workers}"] = cluster_run(vrt, tmp / "out.tif", workers, tmp)
            (tmp / "out.tif").unlink(missing_ok=True)
        _step("local:2 on the crop alone (peak memory against the raster's size)")
        res["small"] = cluster_run(crop, tmp / "small.tif", 2, tmp)
        small = open_raster(crop)
        res["small"]["input_mpx"] = small.RasterXSize * small.RasterYSize / 1e6
    res["county_rows"] = county(res)
    res["seconds"] = time.time() - t0
    res["load_at_end"] = os.getloadavg()
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=1))
    print(write_report(res, a.out))
    return 0


def _step(name: str) -> None:
    print(f"[bench-cluster] {time.strftime('%H:%M:%S')} {name}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
