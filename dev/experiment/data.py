"""The experiment's tiles in memory: image and labels on the model grid, the
reference on its own grid, and the way back from one grid to the other.

Everything after :func:`load_scene` is GDAL-free, so every method of the table
(CNN, CRF, guided filter, the RNN variants) is scored the same way: logits on
the model grid -> bilinear resampling to the reference grid -> arg-max ->
confusion matrix against the reference, as the engine's pipeline does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...engine.labels.classes import IGNORE
from ...engine.labels.rasterize import downsample_labels, grid_of, read_label_raster
from ...engine.modelfile.config import ModelConfig
from ...engine.networks import inference
from ...engine.networks.models import MapRefinerNet, RefinementRNN, pad_to_stride
from ...engine.rasters.read import open_raster
from ...engine.refine.predict import model_image
from ...engine.refine.resample import axis_band, resample_window
from ...engine.refine.tiling import Grids
from ...engine.scoring.metrics import Scores, confusion_matrix
from ...training.data import model_grids


@dataclass
class Scene:
    """One tile: model-grid image/labels (training), reference-grid RGB/labels (scoring)."""

    name: str
    image: torch.Tensor  # (C, h, w) normalised, model grid
    labels: torch.Tensor  # (h, w) uint8 class indices, IGNORE where unlabelled
    rgb: np.ndarray  # (H, W, 3) uint8 on the reference grid (CRF, guided filter, figures)
    reference: np.ndarray  # (H, W) uint8 class indices, IGNORE where not scored
    grids: Grids
    heat: torch.Tensor | None = None  # (K, h4, w4) coarse scores, padded to the CNN's stride

    @property
    def labelled_pixels(self) -> int:
        return int((self.labels != IGNORE).sum())


def load_scene(
    name: str,
    image_path: Path,
    labels_path: Path,
    config: ModelConfig,
    value_map: dict[int, int],
    input_resolution_m: float | None = None,
) -> Scene:
    """Read a tile (GDAL) onto the model grid, keeping its reference grid for scoring."""
    ds = open_raster(image_path)
    grids = model_grids(ds, config, input_resolution_m)
    reference = read_label_raster(labels_path, grid_of(ds), value_map)
    labels = downsample_labels(reference, grids.model_width, grids.model_height)
    image = model_image(
        ds,
        list(config.bands),
        grids,
        config,
        0,
        0,
        grids.model_width,
        grids.model_height,
        torch.device("cpu"),
    )
    rgb = np.stack([ds.GetRasterBand(b).ReadAsArray() for b in config.bands[:3]], axis=-1)
    return Scene(name, image, torch.from_numpy(labels), rgb.astype(np.uint8), reference, grids)


def coarse_scores(net: MapRefinerNet, image: torch.Tensor) -> torch.Tensor:
    """The frozen CNN's logits on a whole model-grid image padded to the stride,
    ``(K, h4, w4)``: the RNN then sees what it sees in the engine's pipeline."""
    with torch.inference_mode():
        return inference.coarse_scores(net.coarse.eval(), pad_to_stride(image[None]))[0].clone()


def cropped_heat(scene: Scene) -> torch.Tensor:
    """The scene's heat maps on its own ``(h, w)`` model grid."""
    h, w = scene.image.shape[-2:]
    return scene.heat[:, :h, :w]


def refine_scene(
    refiner: torch.nn.Module, scene: Scene, iterations: int, trajectory: bool = False
) -> torch.Tensor:
    """Refined logits on the model grid, ``(K, h, w)`` or ``(T+1, K, h, w)``.

    Like the engine's ``run_networks``: image and heat padded to the CNN's
    stride, the RNN run on the padded window, the result cropped.
    """
    h, w = scene.image.shape[-2:]
    x = pad_to_stride(scene.image[None])
    heat = scene.heat[None]
    with torch.inference_mode():
        refiner.eval()
        if isinstance(refiner, RefinementRNN):  # the engine's inference paths
            steps = inference.rnn_steps(refiner, x, heat, iterations, keep_all=trajectory)
        elif trajectory:
            steps = refiner.trajectory(x, heat, iterations)
        else:
            steps = [refiner(x, heat, iterations)]
        if trajectory:
            return torch.stack([s[0, :, :h, :w] for s in steps])
        return steps[-1][0, :, :h, :w].clone()


def to_reference(logits: torch.Tensor, grids: Grids) -> np.ndarray:
    """Model-grid logits ``(..., h, w)`` resampled bilinearly to the reference grid."""
    rows = axis_band(
        0, grids.height, 1.0 / grids.scale_y, 0, grids.model_height, grids.model_height
    )
    cols = axis_band(0, grids.width, 1.0 / grids.scale_x, 0, grids.model_width, grids.model_width)
    return resample_window(logits.float(), rows, cols).numpy()


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def score_map(classes: np.ndarray, reference: np.ndarray, class_names: Sequence[str]) -> Scores:
    """Scores of a class map against a reference on the same grid."""
    return Scores.from_confusion(
        confusion_matrix(classes, reference, len(class_names)), class_names
    )


def score_logits(logits_ref: np.ndarray, scene: Scene, class_names: Sequence[str]) -> Scores:
    """Arg-max of reference-grid scores, scored against the scene's reference."""
    return score_map(logits_ref.argmax(axis=0).astype(np.uint8), scene.reference, class_names)


def score_model_logits(logits: torch.Tensor, scene: Scene, class_names: Sequence[str]) -> Scores:
    return score_logits(to_reference(logits, scene.grids), scene, class_names)
