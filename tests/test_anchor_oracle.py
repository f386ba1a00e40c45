"""The anchor oracle of the correction study (dev/corrections/anchor_oracle.py): it counts
the anchors the base model gets wrong, per class, and its oracle fit learns the anchors'
labels from the reference while everything else stays the product's."""

from __future__ import annotations

import torch
from helpers_engine import random_model

from map_refiner.dev.corrections.anchor_oracle import MeasuredFit, OracleFit, anchor_line
from map_refiner.engine.labels.classes import IGNORE
from map_refiner.training.corrections.fit import CELL_CONTEXT, CorrectionFit, FitParams
from map_refiner.training.tile import TrainingTile


def _tile(reference: torch.Tensor) -> TrainingTile:
    gen = torch.Generator().manual_seed(3)
    labels = torch.full((64, 64), IGNORE, dtype=torch.uint8)
    labels[8:16, 8:16] = 1
    labels[40:48, 40:48] = 0
    tile = TrainingTile(torch.randn(3, 64, 64, generator=gen), labels)
    tile.reference = reference  # what the oracle's window loader attaches
    return tile


def _fit(cls: type[CorrectionFit], reference: torch.Tensor) -> CorrectionFit:
    net, _ = random_model(resolution_m=0.6, seed=4)
    # every undrawn pixel an anchor, whatever the random model's confidence
    params = FitParams(anchor_confidence=0.0)
    return cls(net, _tile(reference), params, torch.device("cpu"))


def test_the_anchor_line_counts_the_anchors_the_reference_contradicts() -> None:
    plain = _fit(CorrectionFit, torch.zeros(64, 64, dtype=torch.long))
    reference = plain.base.cpu().clone()
    reference[:, :32] = 1 - reference[:, :32]  # the left half of the base map is wrong
    a = plain.anchor
    wrong = float((plain.base.cpu()[a] != reference[a]).float().mean())
    assert 0.3 < wrong < 0.7
    line = anchor_line(plain, reference)
    assert line.startswith(f"anchors {int(a.sum())} at >= 0, {100 * wrong:.1f} % wrong")
    for c in torch.unique(plain.base.cpu()[a]).tolist():
        ac = a & (plain.base.cpu() == c)
        assert f"class {c}: {int(ac.sum())} anchors" in line


def test_the_oracle_fit_learns_the_reference_on_the_anchors_and_the_drawn_pixels_as_drawn(
    capsys,
) -> None:
    reference = torch.zeros(64, 64, dtype=torch.long)
    reference[:, 32:] = 1
    measured, oracle = _fit(MeasuredFit, reference), _fit(OracleFit, reference)
    assert "anchors" in capsys.readouterr().out
    labels = measured.labels
    t_measured, w_measured = measured.targets(labels)
    t_oracle, w_oracle = oracle.targets(labels)
    assert torch.equal(w_measured, w_oracle)  # the same pixels weigh the same
    pad = 4 * CELL_CONTEXT  # targets pads the window's top and left by this much
    window = (slice(pad, pad + 64), slice(pad, pad + 64))
    anchors = measured.anchor
    assert torch.equal(t_oracle[window][anchors], reference[anchors])
    assert torch.equal(t_measured[window][anchors], measured.base.cpu()[anchors])
    drawn = labels != IGNORE
    assert torch.equal(t_oracle[window][drawn], labels[drawn].long())
    assert torch.equal(oracle.base, measured.base)  # the base map is left as it was


def test_changes_that_change_nothing_leave_every_anchor_stable(monkeypatch) -> None:
    from map_refiner.dev.corrections import anchor_oracle

    reference = torch.zeros(64, 64, dtype=torch.long)
    fit = _fit(CorrectionFit, reference)
    same = ("contrast:1.0", "bright:0.0", "band0:0.0", "scale:1.0")
    for how in same:
        assert torch.equal(anchor_oracle.perturbed_classes(fit, how), fit.base.cpu())
    monkeypatch.setitem(anchor_oracle.PERTURBATIONS, "none", same)
    line = anchor_oracle.stability_line(fit, reference, "none")
    classes = torch.unique(fit.base.cpu()[fit.anchor]).tolist()
    assert line.count("100 % stable") == len(classes)
    # a brightness far outside the data changes the random networks' map somewhere
    flipped = anchor_oracle.perturbed_classes(fit, "bright:50")
    assert not torch.equal(flipped, fit.base.cpu())


def test_a_teacher_labels_the_right_half_s_anchors_and_the_left_half_keeps_the_base_s(
    capsys,
) -> None:
    from map_refiner.dev.corrections.anchor_oracle import TeacherFit

    net, _ = random_model(resolution_m=0.6, seed=4)
    tile = _tile(torch.zeros(64, 64, dtype=torch.long))
    teacher = torch.ones(64, 64, dtype=torch.long)
    teacher[:, :32] = -1  # no teacher on the left half
    tile.teacher = teacher
    fit = TeacherFit(net, tile, FitParams(anchor_confidence=0.0), torch.device("cpu"))
    assert "teacher:" in capsys.readouterr().out
    pad = 4 * CELL_CONTEXT
    t = fit.targets(fit.labels)[0][pad : pad + 64, pad : pad + 64]
    right = fit.anchor.clone()
    right[:, :32] = False
    left = fit.anchor & ~right
    assert not bool((fit.base.cpu()[right] == 1).all())  # the teacher changes something
    assert bool((t[right] == 1).all())
    assert torch.equal(t[left], fit.base.cpu()[left])
