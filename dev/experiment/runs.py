"""The three parts of the experiment, each returning plain JSON-able results:
the CNN on Xiamen's held-out tiles, the Austin table, the LoveDA three-class run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ...engine.modelfile.config import ModelConfig
from ...engine.networks.models import MapRefinerNet
from ...engine.scoring.metrics import Scores
from . import figures as figs
from .data import Scene, coarse_scores, load_scene, refine_scene, score_map, to_reference
from .guarded import guarded_rnn_row
from .loveda import load_loveda, loveda_config
from .plan import Plan
from .rows import Row, coarse_row, crf_row, guided_row, iteration_curve, learned_row, offsets_row
from .xiamen import evaluate_split

log = logging.getLogger(__name__)
AUSTIN_MAP = {0: 0, 255: 1}


def scores_dict(s: Scores) -> dict[str, object]:
    d = s.to_dict()
    d.pop("confusion_matrix")
    return d


def row_dict(row: Row) -> dict[str, object]:
    return {
        "name": row.name,
        "test": scores_dict(row.test),
        "train": scores_dict(row.train) if row.train else None,
        "settings": row.settings,
        "seconds": round(row.seconds, 1),
        "curve": row.curve,
    }


def run_xiamen(
    net: MapRefinerNet, config: ModelConfig, data: Path, plan: Plan
) -> dict[str, object]:
    t0 = time.perf_counter()
    x = data / "xiamen"
    s = evaluate_split(
        net,
        config,
        x / "xiamen_rgb.tif",
        x / "xiamen_osm_buildings_mask.tif",
        x / "evaluation.tiles",
        limit=plan.xiamen_tiles,
    )
    log.info(
        "Xiamen evaluation tiles (imprecise OSM labels): OA %.2f, mean IoU %.2f",
        100 * s.overall_accuracy,
        100 * s.mean_iou,
    )
    return {
        "evaluation": scores_dict(s),
        "seconds": round(time.perf_counter() - t0, 1),
        "tiles": plan.xiamen_tiles or "all",
    }


def _model_rgb(scene: Scene, config: ModelConfig) -> np.ndarray:
    mean = torch.tensor(config.mean)[:, None, None]
    std = torch.tensor(config.std)[:, None, None]
    rgb = (scene.image * std + mean).clamp(0, 255).round().to(torch.uint8)
    return rgb.permute(1, 2, 0).numpy()


def _learned(
    plan: Plan, kinds: list[str], enh: Scene, test: Scene, names: list[str], device: torch.device
) -> tuple:
    rows, modules = [], {}
    for kind in kinds:
        row, module = learned_row(kind, enh, test, names, plan.fit, device, progress=log.info)
        log.info("%s: test mean IoU %.2f (%.0f s)", row.name, 100 * row.test.mean_iou, row.seconds)
        rows.append(row)
        modules[kind] = module
    return rows, modules


def run_austin(
    net: MapRefinerNet,
    config: ModelConfig,
    data: Path,
    plan: Plan,
    device: torch.device,
    out_dir: Path,
) -> dict[str, object]:
    """The table of Fig. 7(a) on the Austin test tile, Fig. 7b, close-ups and filters."""
    d = data / "austin"
    names = config.class_names
    enh = load_scene(
        "austin_enh", d / "austin_enh_rgb.tif", d / "austin_enh_gt.tif", config, AUSTIN_MAP
    )
    test = load_scene(
        "austin_dev", d / "austin_dev_rgb.tif", d / "austin_dev_gt.tif", config, AUSTIN_MAP
    )
    for s in (enh, test):
        s.heat = coarse_scores(net, s.image)
    rows = [coarse_row(enh, test, names)]
    rows.append(offsets_row(enh, test, names, plan.logit_offsets))
    rows.append(crf_row(enh, test, names, plan.crf_grid))
    rows.append(guided_row(enh, test, names, plan.gf_radii, plan.gf_eps, plan.prob_offsets))
    for r in rows:
        log.info("%s: test mean IoU %.2f (%.0f s)", r.name, 100 * r.test.mean_iou, r.seconds)
    learned, modules = _learned(plan, plan.variants, enh, test, names, device)
    rows += learned
    extra = []
    if (config.training or {}).get("rnn"):
        t0 = time.perf_counter()
        maps = {
            s.name: to_reference(refine_scene(net.rnn, s, 5), s.grids).argmax(0).astype(np.uint8)
            for s in (enh, test)
        }
        rec = config.training["rnn"]
        extra.append(
            Row(
                f"bundled model's RNN ({rec.get('steps')} steps, batch "
                f"{rec.get('batch_size')}, on {rec.get('device')})",
                score_map(maps[test.name], test.reference, names),
                score_map(maps[enh.name], enh.reference, names),
                maps[test.name],
                seconds=time.perf_counter() - t0,
            )
        )
    curves = {}
    for kind in ("rnn", "agnostic"):
        if kind in modules:
            for s, tag in ((test, "test"), (enh, "train")):
                curves[f"{figs_label(kind)}, {tag}"] = iteration_curve(
                    modules[kind], s, names, plan.curve_iterations
                )
    if extra:
        curves["bundled RNN, test"] = iteration_curve(net.rnn, test, names, plan.curve_iterations)
    fig_dir = out_dir / "figures"
    files = _austin_figures(rows, curves, modules, test, config, plan, fig_dir)
    return {
        "enhancement_labelled_pixels": enh.labelled_pixels,
        "test_labelled_pixels": test.labelled_pixels,
        "model_grid": {
            "enh": [enh.grids.model_width, enh.grids.model_height],
            "test": [test.grids.model_width, test.grids.model_height],
        },
        "rows": [row_dict(r) for r in rows],
        "extra_rows": [row_dict(r) for r in extra],
        "iteration_curves": curves,
        "figures": files,
        "filter_rule": figs.FILTER_RULE,
    }


def figs_label(kind: str) -> str:
    return {"rnn": "RNN", "agnostic": "class-agnostic RNN", "unshared": "non-recurrent"}[kind]


def _austin_figures(
    rows: list[Row],
    curves: dict,
    modules: dict,
    test: Scene,
    config: ModelConfig,
    plan: Plan,
    fig_dir: Path,
) -> list[str]:
    colours = config.colours
    files = austin_curve_figures([row_dict(r) for r in rows], curves, plan.fit.iterations, fig_dir)
    by_name = {r.name: r for r in rows}
    wanted = ["CNN", "CNN + dense CRF", "CNN + guided filter", "CNN + RNN (the paper)"]
    maps = {n.replace("CNN + ", "+ "): by_name[n].test_map for n in wanted if n in by_name}
    maps["reference"] = test.reference
    size = 120
    windows = figs.pick_windows(test.reference, size, 3)
    files.append(
        figs.plot_closeups(
            test.rgb,
            maps,
            colours,
            windows,
            size,
            fig_dir / "austin_closeups.png",
            "Austin test tile (0.3 m reference grid, 36 m windows)",
        )
    )
    if "rnn" in modules:
        h, w = test.image.shape[-2:]
        heat = test.heat[:, :h, :w]
        window = figs.busiest_window(torch.softmax(heat, dim=0)[1].numpy(), 80)
        files.append(
            figs.plot_filters(
                modules["rnn"],
                test.image,
                _model_rgb(test, config),
                heat,
                1,
                window,
                fig_dir / "austin_filters.png",
                "Learned filters of the RNN (building heat map and image, "
                "Austin test tile, 0.6 m model grid)",
            )
        )
    return [str(Path(f).name) for f in files]


def austin_curve_figures(rows: list[dict], curves: dict, trained: int, fig_dir: Path) -> list[Path]:
    """Fig. 7b and the learning curves, from the results alone (``--report-only`` redraws them)."""
    files = [
        figs.plot_iteration_curves(
            curves,
            trained,
            fig_dir / "austin_iterations.png",
            "Austin: scores by RNN iteration (trained with "
            "5; test tile solid, enhancement tile dashed)",
        )
    ]
    learning = {}
    for r in rows:
        if r["curve"].get("step"):
            learning[f"{r['name']}, train"] = (r["curve"]["step"], r["curve"]["train"])
            learning[f"{r['name']}, test"] = (r["curve"]["step"], r["curve"]["test"])
    if learning:
        files.append(
            figs.plot_learning_curves(
                learning,
                fig_dir / "austin_learning_curves.png",
                "Austin: mean IoU during training (enhancement tile dashed, test tile solid)",
            )
        )
    return files


def run_loveda(data: Path, plan: Plan, device: torch.device, out_dir: Path) -> dict[str, object]:
    """Three classes: refiners trained on loveda_0 refine degraded maps of loveda_1."""
    config = loveda_config(data)
    names = config.class_names
    train, test, records = load_loveda(data, config, plan.degradation, plan.fit.seed)
    rows = [coarse_row(train, test, names, "degraded reference (coarse input)")]
    rows.append(crf_row(train, test, names, plan.loveda_crf_grid))
    rows.append(
        guided_row(
            train, test, names, plan.loveda_gf_radii, plan.loveda_gf_eps, plan.prob_offsets_3
        )
    )
    for r in rows:
        log.info("LoveDA %s: test mean IoU %.2f (%.0f s)", r.name, 100 * r.test.mean_iou, r.seconds)
    learned, modules = _learned(plan, plan.loveda_variants, train, test, names, device)
    rows += learned
    guarded = None
    if plan.loveda_guarded_draws:
        row, modules["guarded"], guarded = guarded_rnn_row(
            train, test, names, plan.fit, plan.degradation, plan.loveda_guarded_draws, device
        )
        rows.append(row)
        log.info(
            "LoveDA %s: test mean IoU %.2f (%.0f s)", row.name, 100 * row.test.mean_iou, row.seconds
        )
    for r in rows:
        r.name = r.name.replace("CNN + ", "coarse + ")
    curves = {}
    if "rnn" in modules:
        curves = {
            "RNN, test": iteration_curve(modules["rnn"], test, names, plan.curve_iterations),
            "RNN, train": iteration_curve(modules["rnn"], train, names, plan.curve_iterations),
        }
    if "guarded" in modules:
        curves["guarded RNN, test"] = iteration_curve(
            modules["guarded"], test, names, plan.curve_iterations
        )
    fig_dir = out_dir / "figures"
    colours = config.colours
    files = []
    if curves:
        files.append(
            figs.plot_iteration_curves(
                curves,
                plan.fit.iterations,
                fig_dir / "loveda_iterations.png",
                "LoveDA three classes: scores by RNN iteration (loveda_1 solid, loveda_0 dashed)",
            )
        )
    by_name = {r.name: r for r in rows}
    wanted = [
        "degraded reference (coarse input)",
        "coarse + dense CRF",
        "coarse + guided filter",
        "coarse + RNN (the paper)",
    ]
    maps = {
        n.replace("coarse + ", "+ ").replace(" (coarse input)", ""): by_name[n].test_map
        for n in wanted
        if n in by_name
    }
    if guarded:
        maps["+ guarded RNN"] = rows[-1].test_map
    maps["reference"] = test.reference
    size = 200
    windows = figs.pick_windows(np.where(test.reference == 2, 1, test.reference), size, 3)
    files.append(
        figs.plot_closeups(
            test.rgb,
            maps,
            colours,
            windows,
            size,
            fig_dir / "loveda_closeups.png",
            "LoveDA loveda_1 (background / building / road; 60 m windows)",
        )
    )
    return {
        "degradation": records,
        "rows": [row_dict(r) for r in rows],
        "train_labelled_pixels": train.labelled_pixels,
        "test_labelled_pixels": test.labelled_pixels,
        "iteration_curves": curves,
        "figures": [str(Path(f).name) for f in files],
        "guarded": guarded,
    }
