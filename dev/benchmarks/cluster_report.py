"""docs/benchmarks_cluster.md from one ``make bench-cluster`` run (out/bench_cluster.json)."""

from __future__ import annotations

from pathlib import Path


def _mib(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def _hms(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s"


def write_report(res: dict, out: Path) -> str:
    runs = res["runs"]
    name, single = next((k, v) for k, v in runs.items() if "threads" in v)
    lines = [
        "# Benchmarks: a refine on a Dask cluster",
        "",
        "Written by `make bench-cluster` (`python -m map_refiner.dev.benchmarks.cluster`) "
        "from one run; the page [benchmarks.md](benchmarks.md) has the single-process "
        "figures. local:2 (and one process with two threads) use both cores of this "
        "machine, so the page is only meaningful from a run with nothing else running.",
        "",
        "## The run",
        "",
        f"- machine: {res['machine']}",
        f"- commit: {res['commit']}; date: {res['date']}; whole run "
        f"{res['seconds'] / 60:.1f} min; load average at the start "
        f"{res['load_at_start'][0]:.2f}, at the end {res['load_at_end'][0]:.2f}",
        f"- input: a {res['mosaic']} x {res['mosaic']} VRT mosaic of a "
        f"{res['crop_km'] ** 2:.2f} km² Xiamen crop "
        f"({res['input_mpx']:.1f} Mpx at {res['pixel_m']:.3f} m, {res['model_mpx']:.1f} Mpx on "
        "the model's 0.6 m grid)",
        f"- tiles of {res['tile']} model px; a block (one Dask task) is "
        f"{res['block_tiles']} x {res['block_tiles']} tiles; workers are `local:N`: N "
        "worker processes of one thread each (one torch thread each); `refine` in one "
        "process uses 2 torch threads on this machine",
        *(
            [
                "",
                "**Taken under load**: other torch work ran on the same two cores (load "
                f"average {res['load_at_start'][0]:.1f} at the start); every time here is "
                "longer than on a quiet machine, the runs of this page compare with each "
                "other only roughly, and not with benchmarks.md.",
            ]
            if res["load_at_start"][0] > 1.0
            else []
        ),
        "",
        "## Time and memory",
        "",
        f"| run | seconds | s per input Mpx | speed against the {name} | blocks | "
        "peak RSS per worker (MiB) | driver peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    mpx = res["input_mpx"]
    for run_name, r in runs.items():
        is_single = "threads" in r
        lines.append(
            f"| {run_name} | {r['s']:.1f} | {r['s'] / mpx:.3f} | {single['s'] / r['s']:.2f}x | "
            f"{'' if is_single else r['blocks']} | "
            f"{'(one process)' if is_single else _mib(r['worker_peak_rss_mb'])} | "
            f"{r['rss_mb'] if is_single else r['driver_rss_mb']:.0f} |"
        )
    small = res["small"]
    big = runs["local:2"]
    one = runs["local:1"]
    c = res["county"]
    in_task = (one["task_s"] - one["tiles_s"]) / one["blocks"]
    outside = (one["s"] - one["task_s"] - one["assemble_s"]) / one["blocks"]
    lines += [
        "",
        f"Peak memory per worker does not follow the raster: local:2 on the crop alone "
        f"({small['input_mpx']:.1f} Mpx, {small['blocks']} blocks) peaked at "
        f"{_mib(small['worker_peak_rss_mb'])} MiB per worker, on the mosaic "
        f"({mpx:.0f} Mpx, {big['blocks']} blocks) at {_mib(big['worker_peak_rss_mb'])} MiB "
        "(each a worker's VmHWM: Python, Dask, torch, the model and one block's tiles).",
        "",
        "## Overhead per block",
        "",
        f"From the 1-worker run ({one['blocks']} blocks, {one['tiles']} tiles): the tiles "
        f"took {one['tiles_s']:.1f} s of the tasks' {one['task_s']:.1f} s; the rest of a task "
        f"(opening the raster and the model, {one['open_s']:.1f} s in all as a worker opens "
        f"them once, and placing the part and its marker) is **{in_task:.2f} s per block**. "
        f"Outside the tasks (starting the local cluster's worker, planning, scheduling) "
        f"**{outside:.2f} s per block** ({one['s'] - one['task_s'] - one['assemble_s']:.1f} s "
        f"in all), and the driver's assembly of the parts into one GeoTIFF "
        f"{one['assemble_s']:.1f} s ({one['assemble_s'] / mpx * 1000:.1f} ms per input Mpx, "
        "serial on the driver; `--format vrt` skips it).",
        "",
        f"Two single-threaded workers against the {name}: "
        f"{single['s'] / big['s']:.2f}x; against one single-threaded worker: "
        f"{one['s'] / big['s']:.2f}x.",
        "",
        "## On paper: a county",
        "",
        f"A county of {c['km2']:.0f} km² at {c['res_m']} m is {c['input_gpx']:.1f} Gpx of input "
        f"and {c['model_gpx']:.2f} Gpx on the model's 0.6 m grid, where the work is. From the "
        f"1-worker run: {c['s_per_model_mpx']:.2f} s per model-grid Mpx on one thread, "
        f"{c['overhead_block_s']:.2f} s of overhead in each task; a block of "
        f"{res['block_tiles']} x {res['block_tiles']} tiles ({c['block_model_mpx']:.1f} model "
        f"Mpx) then takes {c['block_s']:.1f} s. One block per worker at a time. Not in these "
        "figures: reading and resampling 4x the input pixels of a 0.3 m image (here the "
        "input was on the model's grid), reading it over a network, starting the workers.",
        "",
        "| workers | blocks | rounds of blocks | compute | assembling one GeoTIFF |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in res["county_rows"]:
        lines.append(
            f"| {row['workers']} | {row['blocks']} | {row['waves']} | {_hms(row['compute_s'])} "
            f"| {_hms(row['assemble_s'])} |"
        )
    lines += [
        "",
        "The assembly is serial on the driver at this run's rate; past a few dozen workers "
        "it takes longer than the refine, so a county on many workers wants `--format vrt` "
        "(a VRT over the parts, nothing copied), and with 1,000 workers blocks of one tile "
        "(`--block-tiles 1`) keep every worker busy.",
        "",
    ]
    text = "\n".join(lines)
    out.write_text(text)
    return text
