"""The experiment's figures (matplotlib, Agg): iteration curves, learning curves,
before/after close-ups and learned filter responses (the paper's Figs. 6-8, 7b, 11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from ...engine.labels.classes import IGNORE  # noqa: E402
from ...engine.networks.models import RefinementRNN  # noqa: E402

Curve = dict[str, list[float]]
DATA_NOTE = (
    "Imagery: Austin, Inria Aerial Image Labeling dataset (attribution: Inria); "
    "LoveDA (CC BY-NC-SA 4.0)."
)


def colourise(classes: np.ndarray, colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Class map (H, W) to RGB; IGNORE pixels black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for i, c in enumerate(colours):
        lut[i] = c
    return lut[classes]


def _colour(label: str, palette: dict[str, str]) -> str:
    """One colour per method, shared by its train (dashed) and test (solid) lines."""
    method = label.rsplit(", ", 1)[0]
    if method not in palette:
        palette[method] = f"C{len(palette)}"
    return palette[method]


def plot_iteration_curves(
    curves: Mapping[str, Curve], trained: int, path: Path, title: str
) -> Path:
    """Scores against RNN iterations 0..T (Fig. 7b); ``curves[label][metric]`` in percent."""
    metrics = [
        m
        for m in ("overall accuracy", "mean IoU", "IoU building", "IoU road")
        if any(m in c for c in curves.values())
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    palette: dict[str, str] = {}
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for label, curve in curves.items():
            if metric in curve:
                ys = curve[metric]
                ax.plot(
                    range(len(ys)),
                    ys,
                    marker="o",
                    ms=3,
                    label=label,
                    color=_colour(label, palette),
                    ls="--" if "train" in label else "-",
                )
        ax.axvline(trained, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("RNN iteration")
        ax.set_title(metric + " (%)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curves(
    curves: Mapping[str, tuple[list[int], list[float]]], path: Path, title: str
) -> Path:
    """Mean IoU (percent) against training steps, train tile dashed, test tile solid."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    palette: dict[str, str] = {}
    for label, (steps, values) in curves.items():
        ax.plot(
            steps,
            values,
            marker="o",
            ms=3,
            label=label,
            color=_colour(label, palette),
            ls="--" if "train" in label else "-",
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("mean IoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pick_windows(
    reference: np.ndarray, size: int, count: int, cls: int = 1
) -> list[tuple[int, int]]:
    """``count`` non-overlapping windows with the most reference pixels of ``cls``
    (a fixed rule, not a choice by result)."""
    h, w = reference.shape
    step = size // 2
    cands = []
    for y in range(0, max(1, h - size + 1), step):
        for x in range(0, max(1, w - size + 1), step):
            cands.append(((reference[y : y + size, x : x + size] == cls).sum(), y, x))
    cands.sort(key=lambda t: (-t[0], t[1], t[2]))
    chosen: list[tuple[int, int]] = []
    for _, y, x in cands:
        if all(abs(y - cy) >= size or abs(x - cx) >= size for cy, cx in chosen):
            chosen.append((y, x))
        if len(chosen) == count:
            break
    return chosen


def plot_closeups(
    rgb: np.ndarray,
    maps: Mapping[str, np.ndarray],
    colours: Sequence[tuple[int, int, int]],
    windows: Sequence[tuple[int, int]],
    size: int,
    path: Path,
    title: str,
) -> Path:
    """Rows of close-ups: the image, then each class map (reference last, by the caller)."""
    cols = 1 + len(maps)
    fig, axes = plt.subplots(
        len(windows), cols, figsize=(2.1 * cols, 2.2 * len(windows)), squeeze=False
    )
    for r, (y, x) in enumerate(windows):
        sl = (slice(y, y + size), slice(x, x + size))
        panels = [("image", rgb[sl])] + [(k, colourise(v[sl], colours)) for k, v in maps.items()]
        for c, (name, img) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.text(0.01, 0.005, DATA_NOTE, fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def busiest_window(prob: np.ndarray, size: int, step: int = 10) -> tuple[int, int, int]:
    """``(y, x, size)`` of the window where the coarse probability varies most (most edges
    for the heat filters to act on): a rule on the input, not on the result."""
    h, w = prob.shape
    best = max(
        (
            (float(prob[y : y + size, x : x + size].std()), y, x)
            for y in range(0, max(1, h - size + 1), step)
            for x in range(0, max(1, w - size + 1), step)
        ),
        key=lambda t: (t[0], -t[1], -t[2]),
    )
    return best[1], best[2], size


def filter_responses(
    rnn: RefinementRNN, image: torch.Tensor, heat: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Responses of the heat filters ``M_i`` to each class map ``(K, F, h, w)`` and of
    the image filters ``N_j`` to the image ``(F, h, w)``."""
    with torch.no_grad():
        pad = rnn.heat_conv.padding[0]
        k = heat.shape[0]
        hp = F.pad(heat[:, None], (pad,) * 4, mode="replicate")
        m = F.conv2d(hp, rnn.heat_conv.weight, rnn.heat_conv.bias)
        n = rnn.image_conv(image[None])[0]
    return m.reshape(k, -1, *heat.shape[-2:]).numpy(), n.numpy()


def strongest(responses: np.ndarray, count: int) -> list[int]:
    """Indices of the filters whose responses vary most (the informative ones)."""
    spread = responses.reshape(responses.shape[0], -1).std(axis=1)
    return [int(i) for i in np.argsort(-spread)[:count]]


def most_derivative(kernels: np.ndarray, count: int) -> list[int]:
    """Indices of the kernels closest to derivative operators: smallest ``|sum k| / sum |k|``
    (a derivative filter sums to zero; a smoothing one does not)."""
    flat = kernels.reshape(kernels.shape[0], -1)
    ratio = np.abs(flat.sum(axis=1)) / np.maximum(np.abs(flat).sum(axis=1), 1e-12)
    return [int(i) for i in np.argsort(ratio)[:count]]


FILTER_RULE = (
    "(on the 48 m window where the coarse building probability varies most) "
    "the three heat-map filters `M_i` closest to derivative operators (smallest "
    "|sum of weights| / sum of |weights|) and the three image filters `N_j` whose "
    "responses vary most"
)


def plot_filters(
    rnn: RefinementRNN,
    image: torch.Tensor,
    rgb: np.ndarray,
    heat: torch.Tensor,
    cls: int,
    window: tuple[int, int, int],
    path: Path,
    title: str,
    count: int = 3,
) -> Path:
    """Fig. 11 in spirit: a heat map and image fragment, responses to a few learned
    filters (red high, blue low), and the 5x5 kernels themselves."""
    y, x, s = window
    m, n = filter_responses(rnn, image, heat)
    mi = most_derivative(rnn.heat_conv.weight[:, 0].detach().numpy(), count)
    nj = strongest(n, count)
    prob = torch.softmax(heat, dim=0)[cls].numpy()
    fig, axes = plt.subplots(4, count + 1, figsize=(2.3 * (count + 1), 9.2))
    sl = (slice(y, y + s), slice(x, x + s))
    axes[0, 0].imshow(prob[sl], cmap="magma", vmin=0, vmax=1)
    axes[0, 0].set_title("coarse P(class)", fontsize=8)
    axes[2, 0].imshow(rgb[sl])
    axes[2, 0].set_title("image", fontsize=8)
    for c, i in enumerate(mi, start=1):
        _signed(axes[0, c], m[cls, i][sl], f"M{i} * u")
        _signed(axes[1, c], rnn.heat_conv.weight[i, 0].detach().numpy(), f"kernel M{i}")
    for c, j in enumerate(nj, start=1):
        _signed(axes[2, c], n[j][sl], f"N{j} * I")
        kern = rnn.image_conv.weight[j].detach().numpy()  # (3, 5, 5)
        _signed(axes[3, c], np.concatenate(list(kern), axis=1), f"kernel N{j} (R|G|B)")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, 0].axis("off")
    axes[3, 0].axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _signed(ax: plt.Axes, a: np.ndarray, title: str) -> None:
    lim = float(np.abs(a).max()) or 1.0
    ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_title(title, fontsize=8)


def ignore_black(classes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The class map with the reference's unscored pixels shown as IGNORE."""
    return np.where(reference == IGNORE, IGNORE, classes).astype(np.uint8)
