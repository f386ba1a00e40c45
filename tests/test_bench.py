"""The benchmark's own logic: FLOP counts, mosaics, convergence, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers_engine import make_tif
from osgeo import gdal

from map_refiner.dev.benchmarks.bench import mosaic_vrt
from map_refiner.dev.benchmarks.bench_report import write_report
from map_refiner.dev.benchmarks.bench_train import converged_at
from map_refiner.dev.benchmarks.flops import (
    coarse_flops_per_pixel,
    rnn_executed_flops_per_pixel,
    rnn_flops_per_pixel,
)


def test_flop_counts_by_hand():
    # conv1 12*12*3*64, conv2 9*64*128, conv3 9*128*128, conv4 81*128*2, up 64*2*2; /16; x2
    assert coarse_flops_per_pixel(3, 2) == 2 * (27648 + 73728 + 147456 + 20736 + 256) / 16
    paper = rnn_flops_per_pixel(3, 2, 5)
    assert paper["image"] == 2 * 25 * 3 * 32
    assert paper["per_iteration"] == 2 * 2 * (25 * 32 + 64 * 32 + 32)
    done = rnn_executed_flops_per_pixel(3, 2, 5)
    assert done["image"] == 2 * 2 * 32 * 75 and done["total"] < paper["total"]


def test_mosaic_vrt_repeats_the_tile(tmp_path: Path):
    tile = make_tif(tmp_path / "t.tif", 40, 30)
    vrt = mosaic_vrt(tile, tmp_path / "m.vrt", 3)
    src = gdal.Open(str(tile)).ReadAsArray()
    big = gdal.Open(str(vrt)).ReadAsArray()
    assert big.shape == (3, 120, 90)
    assert np.array_equal(big[:, 80:120, 30:60], src)
    assert gdal.Open(str(vrt)).GetGeoTransform() == gdal.Open(str(tile)).GetGeoTransform()


def test_converged_at_is_the_first_point_near_the_best():
    assert converged_at([1.0, 0.5, 0.104, 0.101, 0.1]) == 2
    assert converged_at([0.3, 0.3]) == 0


def _figures() -> dict:
    return {
        "k": 2,
        "iterations": 5,
        "matmul_gflops": 300.0,
        "machine": "m",
        "commit": "c",
        "date": "d",
        "seconds": 60.0,
        "crop": {"pixels": [10, 10], "resolution_m": 0.5},
        "compute": {"model_mpix": 6.25, "cnn_s": 1.0, "rnn_s": 2.0, "model_grid": [2500, 2500]},
        "end_to_end_s": {"1024": 4.0},
        "crf": {"available": 1.0, "crf_s": 6.0},
        "levers": [{"part": "p", "before": 3.0, "after": 1.0, "how": "h"}],
        "scaling": [
            {"n": 1, "input_mpix": 10.0, "s": 5.0, "rss_mb": 600.0, "rss_after_import_mb": 250.0}
        ],
        "finetune": {
            "steps": 150.0,
            "polygons": 6.0,
            "seconds": 15.0,
            "fit_seconds": 14.0,
            "s_per_step": 0.1,
        },
        "rnn_training": {
            "steps": 100,
            "seconds": 20.0,
            "s_per_step": 0.2,
            "converged_step": 50,
            "converged_seconds": 10.0,
            "loss_first": 0.5,
            "loss_best": 0.1,
            "loss_curve": [(50, 0.1)],
        },
    }


def test_report_shows_ratios_from_the_figures(tmp_path: Path):
    res = _figures()
    text = write_report(res, tmp_path / "b.md")
    assert (tmp_path / "b.md").read_text() == text
    assert "**3.0x faster**" in text  # CRF 6 s against RNN 2 s
    cnn_rate = 33728 * 6.25e6 / 1.0 / 1e9
    assert f"{cnn_rate:.0f} G | {cnn_rate / 300:.0%}" in text
    assert "| p | 3.000 | 1.000 | 3.0x | h |" in text
    assert "| 1 x 1 | 10.0 | 5.0 | 0.500 | 600 | 250 |" in text
    # the figures the engine's comments point to are on the page after every run
    assert "One correction round" not in text  # no row without the round's figures
    res["correction_round"] = {
        "pixels": 4e6,
        "polygons": 16.0,
        "finetune_s": 20.0,
        "fit_s": 12.0,
        "steps": 40.0,
        "refine_s": 5.0,
        "round_s": 25.0,
        "adopted": 0.0,
    }
    text = write_report(res, tmp_path / "b.md")
    assert "px raster) in under 30 s: 25.0 s, **met**." in text
    assert "**25.0 s** (fine-tune 20.0 s of which 12.0 s fitting, 40 steps" in text
    assert text.rstrip().endswith("two `make bench` runs |")
    assert "## Figures behind the code" in text and "| `engine/refine/resample.py` |" in text


def test_a_new_run_keeps_the_session_notes(tmp_path: Path):
    """The report's hand-written section survives a run that rewrites the page."""
    out = tmp_path / "b.md"
    out.write_text(
        "# old\n\n## Session notes\n\nSession 99: 1.5 s.\n\n## Figures behind the code\n"
    )
    text = write_report(_figures(), out)
    assert "## Session notes\n\nSession 99: 1.5 s." in text
    assert text.index("Session 99") < text.index("## Figures behind the code")
    assert text.count("## Figures behind the code") == 1 and "# old" not in text
    assert write_report(_figures(), out) == text  # and again, unchanged


def test_gpu_section_only_with_a_cuda_run(tmp_path: Path):
    from map_refiner.dev.benchmarks.bench_report import _gpu, _gpu_target

    assert _gpu(None) == [] and _gpu({"cuda": False}) == []
    assert "not measured by this run" in _gpu_target(None)
    gpu = {
        "cuda": True,
        "device": "NVIDIA X",
        "torch": "2.11",
        "seconds_fp32_2500px": 0.054,
        "seconds_bf16_2500px": 0.045,
        "mpix_per_s_fp32": 115.7,
        "mpix_per_s_bf16": 138.9,
        "argmax_agree_fp32_vs_cpu": 0.99998,
        "argmax_agree_bf16_vs_fp32": 0.9996,
        "mean_iou_fp32": 72.04,
        "mean_iou_bf16": 71.99,
        "iou_diff_points": 0.05,
    }
    text = "\n".join(_gpu(gpu))
    assert "## On a GPU: NVIDIA X" in text and "| fp32 | 0.0540 | 115.7 |" in text
    assert "within the 0.1-point" in text
    assert "**met**" in _gpu_target(gpu)


def test_mean_iou_of_the_gpu_check():
    from map_refiner.dev.benchmarks.cuda_check import mean_iou

    ref = np.array([[0, 0, 1, 1], [0, 255, 1, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 1, 1, 0]], dtype=np.int64)
    # class 0: hits 2, union 4 (pred 0 at 3 kept pixels, ref 0 at 3) -> 2/4; class 1: 3/5
    assert mean_iou(pred, ref, 2) == 100 * (0.5 + 0.6) / 2


def test_prefetch_probe_does_the_refine_s_work(tmp_path: Path):
    """The probe's prefetching loop writes what refine_raster writes, so its
    timing compares the same work."""
    from helpers_engine import random_model

    from map_refiner.dev.benchmarks.probes import _prefetched_refine
    from map_refiner.engine.refine.params import RefineParams
    from map_refiner.engine.refine.pipeline import refine_raster

    image = make_tif(tmp_path / "img.tif", 150, 130, seed=4)
    net, cfg = random_model(iterations=3)
    plain = refine_raster(
        RefineParams(image=image, out=tmp_path / "plain.tif", device="cpu", tile_size=48),
        model=(net, cfg),
    )
    assert plain.tiles > 4
    _prefetched_refine(net, cfg, image, tmp_path / "probe.tif", 3, 48)
    want = gdal.Open(str(tmp_path / "plain.tif")).ReadAsArray()
    got = gdal.Open(str(tmp_path / "probe.tif")).ReadAsArray()
    assert np.array_equal(got, want) and len(np.unique(want)) > 1
