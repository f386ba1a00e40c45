"""docs/benchmarks.md from one ``make bench`` run's figures (out/bench.json)."""

from __future__ import annotations

from pathlib import Path

from ...training.corrections.fit import CPU_STEPS, FitParams
from .flops import coarse_flops_per_pixel, rnn_executed_flops_per_pixel, rnn_flops_per_pixel

HEADER = """# Benchmarks

Written by `make bench` (`python -m map_refiner.dev.benchmarks.bench`); every
figure on this page but the last section's comes from the one run described
here. Rerun it on your own machine: the ratios to the machine's own
matrix-multiply rate and to the dense CRF carry over, the seconds do not.
Timings are best-of-two where noted, otherwise single runs; a busy machine
(other torch processes on the same cores) makes every figure several times
worse.

A refine on a Dask cluster (`refine --scheduler`) has its own page, written by
`make bench-cluster`: [benchmarks_cluster.md](benchmarks_cluster.md).
"""

# Figures that decided how the engine's CPU paths are written: (module, what was
# compared, figure). The code says why; the figures live here.
DESIGN_FIGURES: list[tuple[str, str, str]] = [
    (
        "engine/networks/coarse_cpu.py",
        "oneDNN on the CNN's last layer (K = 2 or 3 outputs, 9x9)",
        "about a tenth of the matrix-multiply rate; as one GEMM plus 81 shifted sums the layer "
        "takes about a third of the time",
    ),
    (
        "engine/networks/coarse_cpu.py",
        "in-place ReLU against `F.relu`",
        "the CNN 11-17% faster on 1120² to 2500² windows",
    ),
    (
        "engine/networks/coarse_cpu.py",
        "the x4 transposed convolution",
        "about 4x faster on channels-last input; about 30x slower when a side is odd",
    ),
    (
        "engine/networks/models.py",
        "the RNN on the CPU as strips and a wavefront over the iterations",
        "about 3x faster, same numbers",
    ),
    (
        "engine/networks/rnn_wavefront.py",
        "a ring of 3 strips per intermediate level against whole levels",
        "about 40 MB less on a default tile (K = 2)",
    ),
    (
        "engine/networks/inference.py",
        "`torch.argmax` over the leading class dimension against K elementwise passes",
        "about 300x slower: 1.1 s against 3 ms on a 2500 x 2500 tile",
    ),
    (
        "engine/refine/resample.py",
        "a dense `(n_out, n_window)` matrix product against banded taps",
        "about 100x the arithmetic, 16% of a refine's time",
    ),
    (
        "engine/refine/resample.py",
        "a whole 2370 x 2370 window at once against blocks of 64 output rows",
        "4.5x slower (memory-bound)",
    ),
    (
        "engine/refine/resample.py",
        "gathering columns in place against rows through a transpose",
        "about 7x slower",
    ),
    (
        "engine/refine/resample.py",
        "`index_select` on a cropped view against a contiguous copy",
        "about 20x slower",
    ),
    (
        "ui/jobs/torch_library.py",
        "libtorch_cpu mapped by the C library's `dlopen` (GIL released) before a task's `import "
        "torch`, against the import alone (`tests/qgis/test_startup_imports.py`, "
        "`dev/benchmarks/event_loop_probe.py`)",
        "the main thread's longest wait while the task imports torch 257-375 ms -> 67-88 ms; "
        "Qt's C++ event loop away from its poll 319-405 ms in 7 of 10 runs -> 22-43 ms "
        "(offscreen), 535-874 ms -> 64-99 ms (the QGIS desktop under Xvfb, 3 runs each)",
    ),
    (
        "ui/jobs/torch_library.py (session 49)",
        "torch imported with garbage collection paused, then `gc.freeze`, libtorch_python "
        "mapped too, against libtorch_cpu mapped alone (`tests/qgis/test_startup_imports.py` 5 "
        "runs, `dev/benchmarks/event_loop_probe.py --runs 4`, each alone)",
        "the main thread's longest wait while the task imports torch 143-160 ms -> 40-51 ms; "
        "the import 1.95-2.12 s -> 1.65-1.84 s",
    ),
    (
        "training/corrections/fit.py (session 50)",
        "oneDNN's 9x9 layer of 128 -> 2 channels on a fit's batch of 8 patches (30 x 30 "
        "cells), padded against unpadded",
        "80 ms against 12 ms; the padded layer on a 2000 x 2000 px window without autograd "
        "2.4 s against `coarse_head_cpu`'s 0.35 s",
    ),
    (
        "engine/networks/models.py (session 50)",
        "`forward_within` on a fit's 48 px patches against the whole padded 72 px patch; "
        "mlp_out as one matmul per class against oneDNN's grouped 1x1 convolution",
        "with fit.py's unpadded head, the fit's 90 steps on austin_dev (K=4) 22 s -> 14 s; "
        "the 1x1 layer's backward 15.6 ms against 7.0 ms on 64 x 64 patches (3.5 against 1.7 "
        "on 60 x 60)",
    ),
    (
        "training/adam.py (session 50)",
        "torch.optim.Adam against the same arithmetic written out",
        "2.0-2.4 s of every fine-tune (the optimiser's import of torch._dynamo) against "
        "none; steps equal bit for bit",
    ),
    (
        "engine/device.py",
        "bf16 autocast on an NVIDIA H200 (`dev/benchmarks/cuda_check.py`)",
        "the networks' compute on the 2.25 km² crop from 54 to 45 ms, class maps equal to fp32 on "
        "99.96% of pixels",
    ),
    (
        "engine/device.py",
        "bf16 against fp32 on this project's CPUs (`dev/benchmarks/probes.py`)",
        "about 2x slower",
    ),
    (
        "engine/device.py",
        "denormal floats on x86 cores",
        "about 100x slower arithmetic; the backward pass 3x slower in a degenerate fit (labels "
        "all one class, loss -> 0); 1.0x and 1.1x on real `austin_enh` patches in two `make "
        "bench` runs",
    ),
]


def _rate(flop_per_px: float, mpix: float, seconds: float) -> float:
    return flop_per_px * mpix * 1e6 / seconds / 1e9


def write_report(res: dict, out: Path) -> str:
    k, it = int(res["k"]), int(res["iterations"])
    mm = float(res["matmul_gflops"])
    comp = res["compute"]
    mp = float(comp["model_mpix"])
    cnn_f = coarse_flops_per_pixel(k=k)
    rnn_f = rnn_flops_per_pixel(k=k, iterations=it)["total"]
    rnn_x = rnn_executed_flops_per_pixel(k=k, iterations=it)["total"]
    cnn_rate = _rate(cnn_f, mp, comp["cnn_s"])
    rnn_rate = _rate(rnn_f, mp, comp["rnn_s"])
    rnn_xrate = _rate(rnn_x, mp, comp["rnn_s"])
    e2e = {int(t): s for t, s in res["end_to_end_s"].items()}
    lines: list[str] = [HEADER]
    crop = res["crop"]
    lines += [
        "## The run",
        "",
        f"- machine: {res['machine']}",
        f"- commit: {res['commit']}; date: {res['date']}; whole run {res['seconds'] / 60:.1f} min",
        f"- model: the bundled default (K = {k} classes, {it} RNN iterations), fp32",
        f"- input: a {crop['pixels'][0]} x {crop['pixels'][1]} px crop of "
        f"`xiamen/xiamen_rgb.tif` ({crop['resolution_m']:.3f} m pixels, 2.25 km²), "
        f"{comp['model_grid'][0]} x {comp['model_grid'][1]} "
        f"= {mp:.2f} Mpx on the model's 0.6 m grid",
        "",
        "## Throughput on the 2.25 km² crop",
        "",
        "| part | seconds | Mpx/s (model grid) | FLOP/s | share of matmul rate |",
        "|---|---:|---:|---:|---:|",
        f"| fp32 matrix multiply (torch, 2048³) | | | {mm:.0f} G | 100% |",
        f"| coarse CNN (compute) | {comp['cnn_s']:.2f} | {mp / comp['cnn_s']:.2f} | "
        f"{cnn_rate:.0f} G | {cnn_rate / mm:.0%} |",
        f"| RNN, {it} iterations (compute), paper's FLOPs | {comp['rnn_s']:.2f} | "
        f"{mp / comp['rnn_s']:.2f} | {rnn_rate:.0f} G | {rnn_rate / mm:.0%} |",
        "| RNN, FLOPs actually executed (composed filters) "
        f"| | | {rnn_xrate:.0f} G | {rnn_xrate / mm:.0%} |",
        f"| CNN + RNN (compute) | {comp['cnn_s'] + comp['rnn_s']:.2f} | "
        f"{mp / (comp['cnn_s'] + comp['rnn_s']):.2f} | | |",
    ]
    for t in sorted(e2e):
        lines.append(
            f"| end to end, GeoTIFF in -> GeoTIFF out, tiles of {t} px (best of 2) | "
            f"{e2e[t]:.2f} | {mp / e2e[t]:.2f} | | |"
        )
    lines += [
        "",
        f"FLOPs per model pixel, counted from the architecture "
        f"(`dev/benchmarks/flops.py`): coarse CNN {cnn_f / 1e3:.1f} k; RNN in the paper's form "
        f"{rnn_f / 1e3:.1f} k ({it} iterations, image filters once). The CPU path computes "
        f"the same function with {rnn_x / 1e3:.1f} k (heat filters composed with each "
        "class's MLP weights, image filters with the MLPs' image weights), so the RNN's "
        "rate is given both ways.",
    ]
    lines += [
        "",
        "## What made it fast: before and after, same process",
        "",
        "Each lever measured in this run on the same input (a 1248 x 1248 model-pixel "
        'square of the crop; the training step on real `austin_enh` patches). "Before" '
        "is the plain PyTorch formulation, which the training path still uses.",
        "",
        "| part | before (s) | after (s) | speed-up | how |",
        "|---|---:|---:|---:|---|",
    ]
    for r in res.get("levers", []):
        lines.append(
            f"| {r['part']} | {r['before']:.3f} | {r['after']:.3f} | "
            f"{r['before'] / r['after']:.1f}x | {r['how']} |"
        )
    lines += [
        "",
        "Tried and not used, each measured before/after in one process by "
        "`python -m map_refiner.dev.benchmarks.probes` (figures in docs/STATUS.md): bfloat16 "
        "on the CPU (slower here: no AMX units) and a thread reading the next tile while "
        "the networks run (slower on 2 cores: it competes with torch's threads).",
    ]
    lines += _targets(res, e2e, cnn_rate / mm, rnn_rate / mm, rnn_xrate / mm)
    lines += _gpu(res.get("gpu"))
    crf = res["crf"]
    lines += ["", "## Against the dense CRF", ""]
    if crf.get("available"):
        lines += [
            f"pydensecrf2, 5 mean-field iterations, on the same crop and the same coarse "
            f"scores (model grid): {crf['crf_s']:.2f} s; our RNN ({it} iterations, compute): "
            f"{comp['rnn_s']:.2f} s, i.e. **{crf['crf_s'] / comp['rnn_s']:.1f}x faster**. "
            "On quality, the experiment (docs/results.md) has the dense CRF below the "
            "coarse CNN on the Austin test tile and the RNN far above it."
        ]
    else:
        lines += [
            "pydensecrf2 is not installed; `make bench` installs it "
            "(requirements-experiment.txt). No CRF figure in this run."
        ]
    lines += [
        "",
        "## Scaling: virtual mosaics of the crop",
        "",
        "Each refine runs in a fresh process over a GDAL VRT that repeats the crop n x n "
        "(no copy on disk), with the engine's default tile size; peak resident memory "
        "is the process's own high-water mark (VmHWM), torch and the model included.",
        "",
        "| mosaic | input Mpx | seconds | s per input Mpx | "
        "peak RSS (MiB) | RSS after importing torch (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["scaling"]:
        lines.append(
            f"| {r['n']} x {r['n']} | {r['input_mpix']:.1f} | "
            f"{r['s']:.1f} | {r['s'] / r['input_mpix']:.3f} | "
            f"{r['rss_mb']:.0f} | {r['rss_after_import_mb']:.0f} |"
        )
    sc = res["scaling"]
    if len(sc) > 1:
        per = [r["s"] / r["input_mpix"] for r in sc]
        peak = [r["rss_mb"] for r in sc]
        lines += [
            "",
            f"From {sc[0]['input_mpix']:.0f} to {sc[-1]['input_mpix']:.0f} Mpx "
            f"({sc[-1]['input_mpix'] / sc[0]['input_mpix']:.0f}x the pixels) the time per Mpx "
            f"stays between {min(per):.3f} and {max(per):.3f} s (linear), and the peak "
            f"memory between {min(peak):.0f} and {max(peak):.0f} MiB "
            f"({'under' if max(peak) < 2048 else 'over'} 2 GiB): tiles stream through GDAL "
            "windowed reads and writes; what grows at first is GDAL's block cache, capped at "
            "128 MB while refining (engine/refine/memory.py).",
        ]
    ft, tr = res["finetune"], res["rnn_training"]
    cr = res.get("correction_round")
    round_line = (
        []
        if cr is None
        else [
            f"- One round of the correction loop as a user lives it "
            "(`dev/benchmarks/bench_corrections.py`): fine-tune on "
            f"{cr['polygons']:.0f} polygons (8 OpenStreetMap buildings and 8 background "
            f"squares) over a {cr['pixels'] / 1e6:.0f} Mpx crop of the Xiamen mosaic, then "
            f"refine it again: **{cr['round_s']:.1f} s** (fine-tune {cr['finetune_s']:.1f} s "
            f"of which {cr['fit_s']:.1f} s fitting, {cr['steps']:.0f} steps; refine "
            f"{cr['refine_s']:.1f} s"
            + (
                f"; the changes against the map before, {cr['changes_s']:.2f} s"
                if "changes_s" in cr
                else ""
            )
            + f"; fit {'adopted' if cr['adopted'] else 'not adopted'})."
        ]
    )
    fit = FitParams()
    lines += [
        "",
        "## Training",
        "",
        f"- Fine-tune as the plugin runs it (`training.corrections.finetune`, its defaults: "
        f"the RNN and the CNN's last layer, batch {fit.batch_size} of {fit.patch_size} px "
        f"patches, {it} unrolled iterations, held-out and flip checks, {CPU_STEPS} "
        "held-out-phase steps on a CPU, then half the best step again on every polygon) on "
        f"{ft['polygons']:.0f} correction polygons (3 buildings near the centre of "
        f"`austin_dev` with their background rings, copied from the reference): "
        f"**{ft['seconds']:.1f} s** from the call to the saved model file "
        f"({ft['fit_seconds']:.1f} s fitting, {ft['steps']:.0f} steps, "
        f"{ft['s_per_step'] * 1000:.0f} ms per step).",
        f"- A fresh RNN on `austin_enh` (CNN frozen; the paper's AdaGrad, lr 0.01, batch 8 "
        f"of 64 px): {tr['steps']} steps in {tr['seconds']:.0f} s "
        f"({tr['s_per_step'] * 1000:.0f} ms per step). Its loss (moving average) went "
        f"from {tr['loss_first']:.3f} to {tr['loss_best']:.3f}; it came within 5% of "
        f"the run's best after {tr['converged_step']} steps, "
        f"**{tr['converged_seconds']:.0f} s** (loss by step: "
        + ", ".join(f"{s}: {v}" for s, v in tr["loss_curve"])
        + ").",
        *round_line,
    ]
    if res.get("rendered"):
        lines += [
            "",
            f"(Rendered from this run's figures at commit {res['rendered']}; no figure "
            "recomputed.)",
        ]
    lines += _session_notes(out)
    lines += _design_figures()
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(text)
    tmp.replace(out)
    return text


SESSION_NOTES = "## Session notes"


def _session_notes(out: Path) -> list[str]:
    """The report's hand-written section, kept from the file a new run replaces (each
    session's figures measured by hand: a run of the benchmark must not lose them)."""
    if not out.exists():
        return []
    text = out.read_text()
    start = text.find(SESSION_NOTES)
    if start < 0:
        return []
    end = text.find("## Figures behind the code", start)
    return ["", text[start : end if end >= 0 else len(text)].rstrip()]


def _design_figures() -> list[str]:
    lines = [
        "",
        "## Figures behind the code",
        "",
        "Measured once, when the code they explain was written (on the 2-core CPU of the "
        "run above unless the row says otherwise), not by this run. The modules say why "
        "they are written as they are; these are the figures that decided it.",
        "",
        "| module | what was compared | figure |",
        "|---|---|---|",
    ]
    lines += [f"| `{module}` | {what} | {figure} |" for module, what, figure in DESIGN_FIGURES]
    return lines


def _targets(
    res: dict, e2e: dict[int, float], cnn_share: float, rnn_share: float, rnn_exec_share: float
) -> list[str]:
    """The speed targets against this run's figures."""
    default = res.get("default_tile", 1024)
    t = e2e.get(default, min(e2e.values()))
    crf = res["crf"]
    ft = res["finetune"]["seconds"]

    def mark(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    lines = [
        "",
        "## Targets",
        "",
        f"- 2.25 km² refine, GeoTIFF to GeoTIFF, in at most 15 s on this CPU: {t:.2f} s with "
        f"the default {default} px tiles, {mark(t <= 15)}.",
        f"- Convolution-heavy parts at 50% or more of the matmul rate, FLOPs counted from "
        f"the architecture: coarse CNN {cnn_share:.0%}, {mark(cnn_share >= 0.5)}; RNN "
        f"{rnn_share:.0%}, {mark(rnn_share >= 0.5)}. Counting only what the RNN's CPU path "
        f"executes (composed filters: less than half the architecture's arithmetic) it runs at "
        f"{rnn_exec_share:.0%}: its 5x5 filters read one heat map each (25-long dot products, "
        "32 outputs), too little work per pixel for the GEMM kernels to reach their peak.",
    ]
    if crf.get("available"):
        r = crf["crf_s"] / res["compute"]["rnn_s"]
        lines.append(
            f"- Faster than the dense CRF on the same input: {r:.1f}x, {mark(r > 1)}; and "
            "better (docs/results.md)."
        )
    cr = res.get("correction_round")
    if cr is not None:
        lines.append(
            f"- One correction round (16 polygons, fine-tune and refine again of a 2000 x 2000 "
            f"px raster) in under 30 s: {cr['round_s']:.1f} s, {mark(cr['round_s'] < 30)}."
        )
    lines += [
        f"- Fine-tune on a few correction polygons in under 30 s: {ft:.1f} s, {mark(ft < 30)}.",
        _gpu_target(res.get("gpu")),
    ]
    return lines


def _gpu_target(gpu) -> str:
    default = (
        "The engine runs bf16 mixed precision on CUDA by default (`--precision auto`); "
        "under CPU autocast it moves the Austin tile's mean IoU by 0.006 points through "
        "the whole pipeline (72.124 fp32, 72.118 bf16; tests/test_default_model.py) and "
        "by 0.06 on the model grid (72.04, 71.98; dev/benchmarks/cuda_check.py)."
    )
    if gpu and gpu.get("cuda"):
        s32, s16 = gpu.get("seconds_fp32_2500px"), gpu.get("seconds_bf16_2500px")
        used = s16 if s16 is not None else s32
        ok = used is not None and used < 1
        return (
            f"- On a GPU ({gpu.get('device')}), the 2.25 km² refine in under 1 s of compute: "
            f"{s32:.3f} s fp32, {s16:.3f} s bf16, **{'met' if ok else 'not met'}** (below). "
            + default
        )
    return (
        "- On a GPU, the 2.25 km² refine in under 1 s of compute: not measured by this run "
        "(no GPU here; `dev/device_bench.sh` does it on a lent one); dev/benchmarks/cuda_check.py "
        "on an NVIDIA H200 gave 54 ms (fp32) and 45 ms (bf16 autocast, class "
        "maps equal to fp32 on 99.96% of pixels) for CNN + 5 RNN iterations on the same "
        "2500 x 2500 crop (README, Development notes). " + default
    )


def _gpu(gpu) -> list[str]:
    """The GPU section, from dev/device_bench.sh's cuda_check.json (out/bench_gpu.json)."""
    if not gpu or not gpu.get("cuda"):
        return []
    lines = [
        "",
        f"## On a GPU: {gpu.get('device')}",
        "",
        "`dev/device_bench.sh` (dev/benchmarks/cuda_check.py) on a lent GPU box, the same "
        "2500 x 2500 model-pixel crop and the bundled model, CNN + 5 RNN iterations, compute "
        f"only (torch {gpu.get('torch')}):",
        "",
        "| precision | seconds | Mpx/s |",
        "|---|---:|---:|",
    ]
    for p in ("fp32", "bf16"):
        if f"seconds_{p}_2500px" in gpu:
            lines.append(
                f"| {p} | {gpu[f'seconds_{p}_2500px']:.4f} | {gpu.get(f'mpix_per_s_{p}')} |"
            )
    lines += [
        "",
        f"fp32 GPU class maps agree with the CPU's on "
        f"{100 * gpu.get('argmax_agree_fp32_vs_cpu', float('nan')):.3f}% of pixels, bf16 with "
        f"fp32 on {100 * gpu.get('argmax_agree_bf16_vs_fp32', float('nan')):.3f}%.",
    ]
    if "mean_iou_fp32" in gpu:
        lines.append(
            f"On the Austin test tile (model grid): mean IoU {gpu['mean_iou_fp32']} fp32, "
            f"{gpu['mean_iou_bf16']} bf16, {gpu['iou_diff_points']} points apart "
            f"({'within' if gpu['iou_diff_points'] <= 0.1 else 'outside'} the 0.1-point "
            "budget for mixed precision)."
        )
    return lines
