"""Figures and the Markdown section for the "draw here next" experiment."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from osgeo import gdal

from ...training.corrections.fit import CPU_STEPS

if TYPE_CHECKING:
    from .experiment import Setup

UNIT_TEXT = {
    "polygon": "a building polygon with a 2.4 m background ring, or a 6 m background square",
    "cell": "a 12 m cell of the region grid, labelled inside as the reference says",
}
LABEL_TEXT = {
    "sparse": "fine-tuned as the dialog's Fine-tune does from a correction layer: the "
    "polygons' labels, and the model's own map for the pixels no polygon covers in "
    "the window read around them",
    "anchored": "fine-tuned on the bundled model's own map with the corrections burned over it "
    "(a label raster)",
}


def _values(result: dict, prefix: str, metric: str, gain: bool = False) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for run in result["runs"].values():
        if run["strategy"].startswith(prefix) and run["k"] in result["ks"]:
            value = run["tuned"][metric] - (run["base"][metric] if gain else 0.0)
            out.setdefault(run["k"], []).append(100 * value)
    return dict(sorted(out.items()))


def write_figures(
    results: dict[str, dict], setups: dict[str, Setup], curve: list[dict], folder: Path
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "active_curve.png"]
    keys = list(results)
    fig, axes = plt.subplots(len(keys), 2, figsize=(10, 3.4 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        _curve_panel(axes[row][0], results[key], False, f"building IoU (%)\n{key}")
        _curve_panel(
            axes[row][1],
            results[key],
            True,
            f"gain in building IoU over the\nbundled model, same pixels ({key})",
        )
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Austin dev tile: fine-tuned on K corrections, scored off them", fontsize=10)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    for unit in dict.fromkeys(results[key]["unit"] for key in keys):
        key = next(k for k in keys if results[k]["unit"] == unit)
        paths.append(folder / f"active_selection_{unit}.png")
        _selection_figure(results[key], setups[key], paths[-1], plt)
    paths.append(folder / "active_iterations.png")
    _iterations_figure(curve, paths[-1], plt)
    return paths


def _curve_panel(ax, result: dict, gain: bool, title: str) -> None:  # noqa: ANN001
    metric = "building_iou"
    unc = _values(result, "uncertainty", metric, gain)
    rnd = _values(result, "random", metric, gain)
    ax.plot(
        list(unc), [v[0] for v in unc.values()], "o-", color="#c0392b", label="uncertainty ranking"
    )
    ax.plot(
        list(rnd),
        [np.mean(v) for v in rnd.values()],
        "s--",
        color="#2c3e50",
        label=f"random points (mean of {max(len(v) for v in rnd.values())})",
    )
    for k, vals in rnd.items():
        ax.scatter([k] * len(vals), vals, s=10, color="#7f8c8d", alpha=0.6)
    ax.axhline(
        0.0 if gain else 100 * result["base_whole_tile"][metric],
        color="#888",
        ls=":",
        label="bundled model, no correction",
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(unc))
    ax.set_xticklabels([str(k) for k in unc])
    ax.set_xlabel("corrections drawn (K)")
    ax.set_ylabel(title, fontsize=9)
    ax.grid(alpha=0.3)


def _selection_figure(result: dict, setup: Setup, path: Path, plt) -> None:  # noqa: ANN001
    rgb = np.moveaxis(gdal.Open(str(setup.image)).ReadAsArray()[:3], 0, -1)
    kmax = max(result["ks"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
    axes[0].imshow(rgb)
    shown = axes[0].imshow(setup.unc, cmap="magma", alpha=0.65, vmin=0, vmax=1)
    for r in setup.regions[:10]:
        axes[0].add_patch(
            plt.Rectangle((r.x0, r.y0), r.x1 - r.x0, r.y1 - r.y0, fill=False, ec="cyan", lw=1.2)
        )
        axes[0].text(r.x0 + 2, r.y0 + 12, str(r.rank), color="cyan", fontsize=8)
    fig.colorbar(shown, ax=axes[0], fraction=0.046, pad=0.02)
    axes[0].set_title("uncertainty (entropy), 10 top regions", fontsize=9)
    for ax, name in ((axes[1], "uncertainty"), (axes[2], "random0")):
        drawn = setup.cands.mask(result["orders"][name][:kmax])
        ax.imshow(rgb)
        overlay = np.zeros(drawn.shape + (4,))
        overlay[drawn & setup.ref] = (0.9, 0.2, 0.15, 0.75)
        overlay[drawn & ~setup.ref] = (0.2, 0.5, 0.9, 0.6)
        ax.imshow(overlay)
        ax.contour(setup.ref, levels=[0.5], colors="white", linewidths=0.5)
        who = "the uncertainty ranking" if name == "uncertainty" else "random points (seed 0)"
        ax.set_title(
            f"{kmax} corrections by {who}\nred: labelled building, blue: background", fontsize=9
        )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _iterations_figure(curve: list[dict], path: Path, plt) -> None:  # noqa: ANN001
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    its = [c["iteration"] for c in curve]
    ax.plot(
        its,
        [100 * c["building_iou"] for c in curve],
        "o-",
        color="#c0392b",
        label="building IoU (%)",
    )
    ax.plot(its, [100 * c["mean_iou"] for c in curve], "s-", color="#2c3e50", label="mean IoU (%)")
    ax.set_xlabel("RNN iteration (the model was trained with 5)")
    twin = ax.twinx()
    twin.plot(
        its, [c["mean_uncertainty"] for c in curve], "^:", color="#8e44ad", label="mean uncertainty"
    )
    twin.set_ylabel("mean normalised entropy")
    ax.legend(loc="lower right", fontsize=8)
    twin.legend(loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(values: dict[int, list[float]], k: int, spread: bool) -> str:
    v = values.get(k, [])
    if not v:
        return "n/a"
    if not spread:
        return f"{v[0]:.1f}"
    return f"{np.mean(v):.1f} ± {np.std(v):.1f}"


def _summary(result: dict) -> str:
    """What the table says, computed from it (so a rerun cannot leave stale prose)."""
    ks = result["ks"]
    unc = _values(result, "uncertainty", "building_iou")
    rnd = _values(result, "random", "building_iou")
    ug = _values(result, "uncertainty", "building_iou", gain=True)
    rg = _values(result, "random", "building_iou", gain=True)
    both = [k for k in ks if k in unc and k in rnd]
    wins = sum(ug[k][0] > np.mean(rg[k]) for k in both)
    diff = np.mean([ug[k][0] - np.mean(rg[k]) for k in both]) if both else float("nan")
    raw = np.mean([unc[k][0] - np.mean(rnd[k]) for k in both]) if both else float("nan")
    below_u = sum(ug[k][0] < 0 for k in both)
    below_r = sum(np.mean(rg[k]) < 0 for k in both)
    return (
        f"Gain in building IoU over the bundled model on the same pixels (the fair "
        f"comparison: each user's corrected pixels leave the score, and the uncertainty user's "
        f"are the hard ones): the uncertainty-guided user is ahead of the random users' mean "
        f"at {wins} of {len(both)} K, by {diff:+.1f} points on average (in raw building IoU "
        f"by {raw:+.1f}). The fine-tuned model is worse than doing nothing at {below_u} of "
        f"{len(both)} K with uncertainty-guided corrections and at {below_r} of {len(both)} "
        "K with random ones."
    )


def _reading(results: dict[str, dict], curve: list[dict]) -> list[str]:
    """The findings in three bullets, each computed from the numbers below it."""
    lines = ["**Reading.**", ""]
    for key, result in results.items():
        gains = [
            100 * (r["tuned"]["building_iou"] - r["base"]["building_iou"])
            for r in result["runs"].values()
        ]
        shares = [100 * r["predicted_building_fraction"] for r in result["runs"].values()]
        ug = _values(result, "uncertainty", "building_iou", gain=True)
        rg = _values(result, "random", "building_iou", gain=True)
        ahead = np.mean([ug[k][0] - np.mean(rg[k]) for k in result["ks"] if k in ug and k in rg])
        lines.append(
            f"- *{key}*: fine-tuning changes building IoU on the rest of the tile by "
            f"{min(gains):+.1f} to {max(gains):+.1f} points against the bundled model; the "
            f"predicted building share ranges {min(shares):.1f}–{max(shares):.1f} % (reference "
            f"{100 * result['reference_building_fraction']:.1f} %). Uncertainty-guided "
            f"corrections average {ahead:+.1f} points of gain over random ones."
        )
    peak = max(curve, key=lambda c: c["building_iou"])
    last = curve[-1]
    lines += [
        f"- Iterations: building IoU peaks at iteration {peak['iteration']} "
        f"({100 * peak['building_iou']:.1f} %) and is {100 * last['building_iou']:.1f} % at "
        f"{last['iteration']}, while the mean uncertainty keeps falling "
        f"({curve[0]['mean_uncertainty']:.3f} at 0, {last['mean_uncertainty']:.3f} at "
        f"{last['iteration']}): past the trained iterations the RNN grows surer, not "
        "better.",
        "",
    ]
    return lines


def _unit_section(result: dict, first_of_unit: bool) -> list[str]:
    seeds = len([n for n in result["orders"] if n.startswith("random")])
    unit, labels = result["unit"], result.get("labels", "sparse")
    lines = [
        f"### {unit} / {labels}: {UNIT_TEXT[unit]}; {LABEL_TEXT[labels]}",
        "",
        "| K | building IoU: uncertainty | random (mean ± sd) | gain over base on the same "
        "pixels: uncertainty | random | mean IoU: uncertainty | random | corrections with a "
        "building: unc. / random | predicted building share, unc. / random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    b = [_values(result, p, "building_iou") for p in ("uncertainty", "random")]
    g = [_values(result, p, "building_iou", gain=True) for p in ("uncertainty", "random")]
    m = [_values(result, p, "mean_iou") for p in ("uncertainty", "random")]
    for k in result["ks"]:
        runs = [r for r in result["runs"].values() if r["k"] == k]
        unc = [r for r in runs if r["strategy"] == "uncertainty"]
        rnd = [r for r in runs if r["strategy"].startswith("random")]
        lines.append(
            f"| {k} | {_cell(b[0], k, False)} | {_cell(b[1], k, True)} | "
            f"{_cell(g[0], k, False)} | {_cell(g[1], k, True)} | {_cell(m[0], k, False)} | "
            f"{_cell(m[1], k, True)} | {unc[0]['with_building'] if unc else '?'} / "
            f"{', '.join(str(r['with_building']) for r in rnd)} | "
            f"{100 * unc[0]['predicted_building_fraction']:.1f} / "
            f"{np.mean([100 * r['predicted_building_fraction'] for r in rnd]):.1f} % |"
        )
    lines += ["", _summary(result)]
    lines += [
        "",
        f"({seeds} random users; {result['candidates']} candidates; reference building "
        f"share {100 * result['reference_building_fraction']:.1f} %, bundled model "
        f"{100 * result['base_building_fraction']:.1f} %.)",
        "",
    ]
    if first_of_unit:
        lines += [f"![what each user drew](figures/active_selection_{unit}.png)", ""]
    return lines


def write_report(
    results: dict[str, dict],
    curve: list[dict],
    path: Path,
    figures: Sequence[Path],
    command: str,
    seconds: float,
) -> None:
    first = next(iter(results.values()))
    base = first["base_whole_tile"]
    all_runs = [r for result in results.values() for r in result["runs"].values()]
    runs = len(all_runs)
    lines = [
        "## Where to draw next: uncertainty-guided corrections",
        "",
        "A simulated user on `../shared/data/austin/austin_dev_*` copies K corrections from the "
        "reference, fine-tunes the bundled model on them with the plugin's *Fine-tune* "
        "(`training.corrections.finetune` with its defaults: the RNN and the CNN's last layer, "
        "held-out and flip checks, the anchors' partner, "
        + (
            f"{first['steps']} steps"
            if first["steps"]
            else f"the product's CPU step count ({CPU_STEPS}, then the refit)"
        )
        + ", seed 0; labels per section), and the "
        "result is scored on the rest of the tile (the corrected pixels are left out; the bundled "
        "model is scored on the same pixels for the gain column). *Uncertainty*: the plugin's "
        "ranking (normalised entropy of the bundled model at "
        f"{first['iterations']} iterations, {first['cell_m']:.0f} m cells), and in each ranked "
        "region the candidate holding the most uncertainty. *Random*: the candidate under a "
        "uniformly random point. Sets are nested (the K=2 set holds the K=1 correction).",
        "",
        "Bundled model, no correction, whole tile: building IoU "
        f"{100 * base['building_iou']:.1f} %, mean IoU "
        f"{100 * base['mean_iou']:.1f} %, overall accuracy "
        f"{100 * base['accuracy']:.1f} %.",
        "",
        "![IoU against K, both strategies](figures/active_curve.png)",
        "",
    ]
    lines += _reading(results, curve)
    seen = set()
    for result in results.values():
        lines += _unit_section(result, result["unit"] not in seen)
        seen.add(result["unit"])
    lines += [
        "### How many iterations to keep",
        "",
        "The trajectory the dock's slider shows, scored at every iteration (bundled model, "
        "whole tile):",
        "",
        "![IoU and uncertainty against RNN iteration](figures/active_iterations.png)",
        "",
        "| iteration | " + " | ".join(str(c["iteration"]) for c in curve) + " |",
        "|---|" + "---|" * len(curve),
        "| building IoU % | " + " | ".join(f"{100 * c['building_iou']:.1f}" for c in curve) + " |",
        "| mean IoU % | " + " | ".join(f"{100 * c['mean_iou']:.1f}" for c in curve) + " |",
        "| mean uncertainty | " + " | ".join(f"{c['mean_uncertainty']:.3f}" for c in curve) + " |",
        "",
        f"Reproduce: `.venv/bin/python -m map_refiner.dev.active.experiment {command}`"
        f". {runs} fine-tune-and-score runs on this repository's 2-core CPU, on average "
        + "; ".join(
            f"{key} {sum(r['seconds'] for r in res['runs'].values()) / len(res['runs']):.0f} s"
            for key, res in results.items()
            if res["runs"]
        )
        + " each (runs made at different times: finished runs are kept in `out/active/` "
        "and skipped on a rerun; delete a unit's folder there to recompute it).",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
