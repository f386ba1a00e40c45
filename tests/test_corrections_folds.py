"""Cross-validated fine-tunes (FitParams.folds): which polygons each fold holds out, the
averaged networks, and a round with several folds end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_engine import random_model
from test_corrections_finetune import FOUR, corrections, scene  # noqa: F401 (fixture)

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import load_model
from map_refiner.training.corrections.finetune import finetune
from map_refiner.training.corrections.fit import FitParams, average_states
from map_refiner.training.corrections.holdout import fold_holdouts, held_out_features


def test_the_first_fold_is_the_single_split() -> None:
    classes = {0: 1, 1: 1, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1}
    for seed in range(10):
        assert fold_holdouts(classes, seed, 3)[0] == held_out_features(classes, seed)
        assert fold_holdouts(classes, seed, 1) == [held_out_features(classes, seed)]


def test_folds_hold_out_other_polygons_and_never_a_class_s_last() -> None:
    classes = {f: f % 2 for f in range(16)}  # 8 of each class
    for seed in range(10):
        folds = fold_holdouts(classes, seed, 2)
        assert len(folds) == 2
        assert not set(folds[0]) & set(folds[1])  # enough polygons: disjoint
        for fold in folds:
            assert len(fold) == len(folds[0])  # as many held out in each
            left = {c for f, c in classes.items() if f not in fold}
            assert left == {0, 1} and {classes[f] for f in fold} == {0, 1}
    # four polygons of one class: each fold holds out one other polygon
    one_class = {f: 0 for f in range(4)}
    folds = fold_holdouts(one_class, 0, 3)
    assert len(folds) == 3 and len({f for fold in folds for f in fold}) == 3
    # two polygons of a class: two folds at most, then repeats are left out
    assert sorted(fold_holdouts({0: 1, 1: 1}, 0, 4)) == [[0], [1]]
    assert fold_holdouts({0: 1, 1: 0}, 0, 3) == []  # nothing can be held out


def test_averaged_networks_are_the_element_wise_mean() -> None:
    a, _ = random_model(resolution_m=0.6, seed=1)
    b, _ = random_model(resolution_m=0.6, seed=2)
    sa, sb = a.state_dict(), b.state_dict()
    mean = average_states([sa, sb])
    assert mean.keys() == sa.keys()
    for key, value in mean.items():
        torch.testing.assert_close(value, (sa[key] + sb[key]) / 2)
    one = average_states([sa])
    assert all(torch.equal(one[k], sa[k]) for k in sa)


def test_folds_are_bounded() -> None:
    for bad in (0, 6):
        with pytest.raises(MapRefinerError, match="folds"):
            FitParams(folds=bad).check()


def test_a_round_with_two_folds_checks_each_and_records_them(
    scene: dict,  # noqa: F811
    tmp_path: Path,
) -> None:
    labels = corrections(tmp_path / "c.gpkg", FOUR)
    one = finetune(
        scene["image"],
        labels,
        tmp_path / "one.safetensors",
        scene["model"],
        FitParams(steps=6, eval_every=2),
        device="cpu",
    )
    two = finetune(
        scene["image"],
        labels,
        tmp_path / "two.safetensors",
        scene["model"],
        FitParams(steps=6, eval_every=2, folds=2),
        device="cpu",
    )
    # two polygons of each class: one of each held out per fold, the other in the next
    assert one.held_out == 2 and two.held_out == 4
    assert two.steps >= 2 * 6  # both folds' held-out phases ran
    rec = load_model(two.model)[1].training["finetune"][-1]
    assert rec["folds"] == 2 and rec["held_out"] == 4
    if not two.adopted:  # not adopted: the base networks, unchanged
        base = load_model(scene["model"])[0].state_dict()
        new = load_model(two.model)[0].state_dict()
        assert all(torch.equal(base[k], new[k]) for k in base)


def test_the_first_fold_s_networks_are_the_one_split_round_s(
    scene: dict,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fold_networks="first": the second fold only adds evidence to the decision; the
    networks kept are those a one-split round fits (its own patch stream)."""
    import map_refiner.training.corrections.finetune as ft

    monkeypatch.setattr(ft, "should_adopt", lambda base, tuned: True)
    labels = corrections(tmp_path / "c.gpkg", FOUR)
    common = dict(steps=6, eval_every=2, flip_per_score=float("inf"))
    rounds = {
        name: finetune(
            scene["image"],
            labels,
            tmp_path / f"{name}.safetensors",
            scene["model"],
            FitParams(**common, **extra),  # type: ignore[arg-type]
            device="cpu",
        )
        for name, extra in (
            ("one", {"folds": 1}),
            ("first", {"folds": 2, "fold_networks": "first"}),
            ("mean", {"folds": 2, "fold_networks": "mean"}),
        )
    }
    assert all(r.adopted for r in rounds.values())
    w = {name: load_model(r.model)[0].state_dict() for name, r in rounds.items()}
    base = load_model(scene["model"])[0].state_dict()
    learnt = [k for k in base if not torch.equal(base[k], w["one"][k])]
    assert learnt, "the round learnt something"
    assert all(torch.equal(w["one"][k], w["first"][k]) for k in base)
    assert any(not torch.equal(w["one"][k], w["mean"][k]) for k in learnt)
    with pytest.raises(MapRefinerError, match="fold_networks"):
        FitParams(fold_networks="best").check()
