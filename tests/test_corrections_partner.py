"""The bundled general model as a second opinion on a fit's anchors (training/corrections/
partner.py): who is whose partner, and that the anchors then hold only where both agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import random_model

from map_refiner.engine.modelfile.header import DEFAULT_MODEL_PATH, GENERAL_MODEL_PATH
from map_refiner.engine.modelfile.io import load_model
from map_refiner.training.corrections.fit import CorrectionFit, FitParams
from map_refiner.training.corrections.partner import partner_classes, partner_for
from map_refiner.training.tile import IGNORE, TrainingTile

BUNDLED = DEFAULT_MODEL_PATH.exists() and GENERAL_MODEL_PATH.exists()


@pytest.mark.skipif(not BUNDLED, reason="the bundled models are not in this checkout")
def test_the_default_model_s_lineage_takes_the_general_model_as_partner() -> None:
    """A fine-tune never changes conv1, so the lineage shows in it; a round of the default
    model (here: its head changed) still has the general model as partner, and a round of
    the general model the default (PARTNERS, session 28); a named file is taken instead,
    "" is none."""
    net, cfg = load_model(None, "cpu")
    assert partner_for(net, cfg) == GENERAL_MODEL_PATH
    with torch.no_grad():
        net.coarse.conv4.weight.add_(0.01)  # what a round changes
    assert partner_for(net, cfg) == GENERAL_MODEL_PATH
    assert partner_for(net, cfg, "") is None
    general, gcfg = load_model(GENERAL_MODEL_PATH, "cpu")
    assert partner_for(general, gcfg) == DEFAULT_MODEL_PATH
    with torch.no_grad():
        general.coarse.conv4.weight.add_(0.01)
        general.rnn.parameters().__next__().add_(0.01)
    assert partner_for(general, gcfg) == DEFAULT_MODEL_PATH
    assert partner_for(general, gcfg, "") is None
    assert partner_for(general, gcfg, str(GENERAL_MODEL_PATH)) == GENERAL_MODEL_PATH


@pytest.mark.skipif(not BUNDLED, reason="the bundled models are not in this checkout")
def test_a_model_of_another_lineage_or_grid_has_no_partner() -> None:
    own, cfg = random_model(resolution_m=0.6, seed=3)
    assert partner_for(own, cfg) is None  # a user's own model
    net, cfg = load_model(None, "cpu")
    cfg.ground_resolution_m = 0.3  # the partner could not read the same window
    assert partner_for(net, cfg) is None
    net, cfg = load_model(None, "cpu")
    cfg.normalisation = "image"
    assert partner_for(net, cfg) is None


@pytest.mark.skipif(not BUNDLED, reason="the bundled models are not in this checkout")
def test_the_partner_reads_the_window_in_its_own_normalisation() -> None:
    """The window comes normalised for the base model; the partner's classes are those it
    gives the same pixels normalised its own way, one per cell."""
    _, cfg = load_model(None, "cpu")
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(3, 48, 40, generator=gen) * 255
    mean = torch.tensor(cfg.mean)[:, None, None]
    std = torch.tensor(cfg.std)[:, None, None]
    tile = TrainingTile((raw - mean) / std, torch.full((48, 40), IGNORE, dtype=torch.uint8))
    got = partner_classes(GENERAL_MODEL_PATH, tile, cfg, torch.device("cpu"))
    assert got.shape == (48, 40) and got.dtype == torch.int64
    assert set(np.unique(got.numpy())) <= {0, 1}


def test_anchors_hold_only_where_the_partner_agrees() -> None:
    net, _ = random_model(resolution_m=0.6, seed=9)
    gen = torch.Generator().manual_seed(1)
    labels = torch.full((64, 64), IGNORE, dtype=torch.uint8)
    labels[10:18, 10:18] = 1
    tile = TrainingTile(torch.randn(3, 64, 64, generator=gen), labels)
    # every unlabelled pixel an anchor, and one the flip check guards
    params = FitParams(anchor_confidence=0.0, flip_confidence=0.0)
    alone = CorrectionFit(net, tile, params, torch.device("cpu"))
    assert alone.anchors_agreed is None
    agree = alone.base.clone()
    agree[:, :32] = 1 - agree[:, :32]  # the partner disagrees on the left half
    both = CorrectionFit(net, tile, params, torch.device("cpu"), agree)
    assert not both.anchor[:, :32].any()
    assert torch.equal(both.anchor[:, 32:], alone.anchor[:, 32:])
    assert alone.sure[:, :32].any() and not both.sure[:, :32].any()  # agreed pixels only
    assert torch.equal(both.sure[:, 32:], alone.sure[:, 32:])
    assert both.anchors_agreed == pytest.approx(
        float(alone.anchor[:, 32:].sum()) / float(alone.anchor.sum())
    )


@pytest.mark.skipif(not BUNDLED, reason="the bundled models are not in this checkout")
def test_a_round_of_the_bundled_model_records_its_partner_and_the_cli_can_turn_it_off(
    tmp_path: Path,
) -> None:
    """A round from the bundled default model anchors where the general model agrees and
    says so in its record; `finetune --no-anchor-partner` keeps every anchor."""
    from test_corrections_finetune import FOUR, corrections, write_rgb

    from map_refiner.cli import main
    from map_refiner.training.corrections.finetune import finetune

    rng = np.random.default_rng(0)
    img = rng.normal(90, 12, (3, 96, 96))
    for y, x, s in [(10, 12, 14), (50, 60, 20), (70, 8, 12), (20, 70, 10)]:
        img[:, y : y + s, x : x + s] += 80
    image = write_rgb(tmp_path / "img.tif", np.clip(img, 0, 255).astype(np.uint8))
    labels = corrections(tmp_path / "c.gpkg", FOUR)
    res = finetune(image, labels, tmp_path / "a.safetensors", None, FitParams(steps=4), "cpu")
    rec = load_model(res.model)[1].training["finetune"][-1]
    assert rec["anchor_partner"] == GENERAL_MODEL_PATH.name
    assert 0.0 <= rec["anchors_agreed"] <= 1.0
    # an adopted round says so in its message (the dialog's rounds list shows it)
    assert res.adopted, res.message  # 100 % of the held-out polygons, on this seed
    assert "held only where the bundled general model agrees" in res.message
    out = tmp_path / "b.safetensors"
    args = ["finetune", str(image), str(labels.path), "--class-field", "class"]
    args += ["--mode", "sparse", "--out", str(out), "--steps", "4", "--no-anchor-partner"]
    assert main(args) == 0
    assert "anchor_partner" not in load_model(out)[1].training["finetune"][-1]
