"""A gated round whose polygons are all of one class keeps changes to that class only
(ModelConfig.change_to, engine/networks/gate.py; session 39): the gate's rule, the drawn
classes, and the refusals (what a fine-tune writes, a limited refine and the CLI's --any-change:
tests/test_change_gate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_engine import random_model

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.labels.burn import Shape
from map_refiner.engine.labels.kept import KeptCorrections
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.networks.gate import gate_changes
from map_refiner.engine.rasters.grid import GridSpec
from map_refiner.training.corrections.finetune import change_classes, with_gate


def logits(probs_of_class_1: list[float]) -> torch.Tensor:
    """Two-class logits ``(2, 1, n)`` whose softmax gives class 1 these probabilities."""
    p = torch.tensor(probs_of_class_1)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))])[:, None, :]


def test_only_changes_to_the_drawn_classes_stand() -> None:
    # round: sure of class 0, sure of class 1, unsure of 1; parent: 1, 0, 0
    round_ = logits([0.05, 0.95, 0.6])
    parent = logits([0.9, 0.2, 0.3])
    to_building = gate_changes(round_, parent, 0.7, (1,))
    assert torch.equal(to_building[..., 0], parent[..., 0])  # a sure change to 0: not drawn
    assert torch.equal(to_building[..., 1], round_[..., 1])  # a sure change to 1 stands
    assert torch.equal(to_building[..., 2], parent[..., 2])  # unsure: the gate as before
    to_background = gate_changes(round_, parent, 0.7, (0,))
    assert torch.equal(to_background[..., 0], round_[..., 0])
    assert torch.equal(to_background[..., 1], parent[..., 1])
    assert torch.equal(gate_changes(round_, parent, 0.7, (0, 1)), gate_changes(round_, parent, 0.7))
    same = logits([0.1, 0.9, 0.2])  # the parent's classes: the round's scores, whatever to
    assert torch.equal(gate_changes(same, logits([0.3, 0.6, 0.4]), 0.7, (0,)), same)
    trajectory = gate_changes(
        torch.stack([round_, round_]), torch.stack([parent, parent]), 0.7, (1,)
    )
    assert torch.equal(trajectory[1], to_building)


def _kept(classes: list[int]) -> KeptCorrections:
    grid = GridSpec(10, 10, (0.0, 1.0, 0.0, 10.0, 0.0, -1.0), "")
    wkt = "POLYGON ((1 1,2 1,2 2,1 2,1 1))"
    return KeptCorrections(grid, [Shape(c, i, wkt) for i, c in enumerate(classes)])


def test_the_drawn_classes_limit_only_when_some_class_was_not_drawn() -> None:
    assert change_classes(_kept([1, 1, 1]), 2) == (1,)
    assert change_classes(_kept([0]), 2) == (0,)
    assert change_classes(_kept([1, 0, 1]), 2) == ()  # every class drawn: any change
    assert change_classes(_kept([2, 0, 2]), 3) == (0, 2)
    assert change_classes(_kept([]), 2) == ()


def test_a_limited_round_is_written_as_format_4_and_refused_when_damaged(tmp_path: Path) -> None:
    parent = random_model(resolution_m=0.6, seed=1)
    net, cfg = with_gate(*random_model(resolution_m=0.6, seed=2), parent, 0.7, (1,))
    loaded = load_model(save_model(net, cfg, tmp_path / "r.safetensors"))[1]
    assert loaded.change_to == [1] and loaded.format_version == 4
    _, plain = with_gate(*random_model(resolution_m=0.6, seed=2), parent, 0.7)
    plain.validate()
    assert plain.change_to == [] and plain.format_version == 3
    for bad in ([2], [1, 1], [-1], ["building"]):
        hostile = load_model(tmp_path / "r.safetensors")[1]
        hostile.change_to = bad  # type: ignore[assignment]
        with pytest.raises(MapRefinerError, match="class"):
            hostile.validate()
    hostile = load_model(tmp_path / "r.safetensors")[1]
    hostile.change_gate = 0.0
    with pytest.raises(MapRefinerError, match="change gate"):
        hostile.validate()
