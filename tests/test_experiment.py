"""The experiment's own code on tiny synthetic arrays: baselines (guided filter,
dense CRF, offsets, grid search), the seeded degradation, the iteration curve,
the GDAL-free fit; and a --quick smoke run of the whole command on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_data import real_data

from map_refiner.dev.experiment.baselines import (
    CrfParams,
    best_offsets,
    box_mean,
    dense_crf,
    grid_search,
    guided_filter,
    offset_grid,
)
from map_refiner.dev.experiment.data import (
    Scene,
    refine_scene,
    score_logits,
    score_map,
    softmax,
    to_reference,
)
from map_refiner.dev.experiment.degrade import (
    Degradation,
    block_mean,
    degrade_reference,
    displacement_field,
    drop_objects,
    warp,
)
from map_refiner.dev.experiment.figures import pick_windows
from map_refiner.dev.experiment.fit import FitSpec, fit_refiner
from map_refiner.dev.experiment.rows import iteration_curve
from map_refiner.engine.labels.classes import IGNORE
from map_refiner.engine.networks.models import RefinementRNN, UnsharedRefinement
from map_refiner.engine.refine.tiling import Grids

NAMES = ["background", "building"]


def _guided_reference(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter written with per-pixel matrix inverses."""
    g = np.moveaxis(guide, -1, 0)
    mg = box_mean(g, r)
    cov = box_mean(g[:, None] * g[None, :], r) - mg[:, None] * mg[None, :]
    inv = np.linalg.inv(np.moveaxis(cov, (0, 1), (-2, -1)) + eps * np.eye(3))
    out = []
    for p in src:
        mp = box_mean(p, r)
        a = np.einsum("hwij,jhw->ihw", inv, box_mean(g * p, r) - mg * mp)
        b = mp - (a * mg).sum(0)
        out.append((box_mean(a, r) * g).sum(0) + box_mean(b, r))
    return np.stack(out)


def test_guided_filter_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(0)
    guide, src = rng.random((20, 24, 3)), rng.random((2, 20, 24))
    np.testing.assert_allclose(
        guided_filter(guide, src, 2, 1e-2), _guided_reference(guide, src, 2, 1e-2), atol=1e-5
    )


def test_guided_filter_keeps_constants_and_follows_guide_edges() -> None:
    guide = np.zeros((32, 32, 3))
    guide[:, 16:] = 1.0  # a sharp vertical edge
    const = np.full((1, 32, 32), 0.3)
    np.testing.assert_allclose(guided_filter(guide, const, 3, 1e-3), const, atol=1e-5)
    step = np.zeros((1, 32, 32))
    step[0, :, 16:] = 1.0  # scores agreeing with the edge
    out = guided_filter(guide, step, 4, 1e-4)[0]
    box = box_mean(step[0], 4)
    assert np.abs(out - step[0]).max() < 0.01  # edge kept
    assert np.abs(box - step[0]).max() > 0.3  # a plain box blur smears it


def test_dense_crf_returns_marginals_and_smooths_an_isolated_pixel() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    rgb = np.full((24, 24, 3), 120, dtype=np.uint8)
    probs = np.zeros((2, 24, 24), dtype=np.float32)
    probs[0], probs[1] = 0.8, 0.2
    probs[:, 12, 12] = (0.45, 0.55)  # a lone, unsure "building" pixel
    q = dense_crf(rgb, probs, CrfParams(w_app=5, theta_alpha=10, theta_beta=10), 5)
    assert q.shape == probs.shape
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-4)
    assert q.argmax(0)[12, 12] == 0
    weak = dense_crf(rgb, probs, CrfParams(w_app=0, theta_alpha=1, theta_beta=1, w_smooth=0), 5)
    assert weak.argmax(0)[12, 12] == 1  # no pairwise terms: unaries decide


def test_offsets_and_grid_search_pick_the_best_mean_iou() -> None:
    ref = np.zeros((10, 10), dtype=np.uint8)
    ref[2:8, 2:8] = 1
    scores = np.stack([np.full((10, 10), 0.6), np.where(ref == 1, 0.5, 0.1)])  # building too weak
    assert [list(o) for o in offset_grid(3, [0.0, 1.0])][:2] == [[0, 0, 0], [0, 0, 1]]
    off, s = best_offsets(scores, lambda c: score_map(c, ref, NAMES), [-0.2, 0.0, 0.2])
    assert off.tolist() == pytest.approx([0.0, 0.2]) and s.mean_iou == pytest.approx(1.0)
    best, s, tried = grid_search(
        {"t": [0.0, 0.2, 0.4]},
        lambda p: score_map((scores[1] + p["t"] > scores[0]).astype(np.uint8), ref, NAMES),
    )
    assert best == {"t": 0.2} and len(tried) == 3 and s.mean_iou == pytest.approx(1.0)


def _labels() -> np.ndarray:
    lab = np.zeros((64, 64), dtype=np.uint8)
    lab[8:24, 8:24] = 1
    lab[40:56, 30:50] = 1
    lab[30:34, :] = 2
    lab[0, 0] = 255
    return lab


def test_degradation_is_seeded_and_deterministic() -> None:
    spec = Degradation()
    a, rec_a = degrade_reference(_labels(), 3, (32, 32), spec, seed=7)
    b, rec_b = degrade_reference(_labels(), 3, (32, 32), spec, seed=7)
    c, _ = degrade_reference(_labels(), 3, (32, 32), Degradation(drop=0.0), seed=8)
    assert a.shape == (3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert rec_a == rec_b and rec_a["objects"] == 3
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(np.exp(a).sum(axis=0), 1.0, atol=1e-5)
    assert np.exp(a).min() >= spec.smoothing / 3 - 1e-6


def test_degradation_without_noise_keeps_the_map_and_steps_do_what_they_say() -> None:
    lab = _labels()
    heat, rec = degrade_reference(lab, 3, (32, 32), Degradation(blur=0.1, max_shift=0, drop=0.0), 0)
    assert rec["mean_shift_px"] == 0 and rec["dropped"] == 0
    coarse = np.where(lab == 255, 0, lab)[::2, ::2]
    assert (heat.argmax(0) == coarse).mean() > 0.9
    gone, total, dropped = drop_objects(lab, 3, 1.0, np.random.default_rng(0))
    assert (gone == 0).all() and total == dropped == 3
    assert block_mean(np.arange(16.0).reshape(4, 4), 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    down = np.stack([np.ones((3, 3)), np.zeros((3, 3))])  # dy = 1: one pixel down
    moved = warp(np.arange(9.0).reshape(1, 3, 3), down)
    assert moved[0].tolist() == [[0, 1, 2], [0, 1, 2], [3, 4, 5]]
    field = displacement_field((40, 50), 3.0, 4, np.random.default_rng(0))
    assert field.shape == (2, 40, 50) and np.abs(field).max() <= 3.0
    assert np.abs(np.diff(field, axis=1)).max() <= 2 * 3.0 / (
        39 / 4
    )  # smooth: bilinear between knots


def _scene(rng: np.random.Generator, size: int = 24) -> Scene:
    ref = np.zeros((2 * size, 2 * size), dtype=np.uint8)
    ref[10:30, 12:34] = 1
    image = torch.from_numpy(rng.normal(0, 1, (3, size, size)).astype(np.float32))
    image[:, 5:15, 6:17] += 2.0
    lab = torch.from_numpy(ref[::2, ::2].copy())
    heat = torch.zeros(2, size, size)
    heat[1, 4:16, 4:16] = 1.0
    return Scene(
        "tiny",
        image,
        lab,
        np.zeros((2 * size, 2 * size, 3), np.uint8),
        ref,
        Grids(2 * size, 2 * size, size, size),
        heat,
    )


def test_iteration_curve_of_an_identity_rnn_is_flat() -> None:
    scene = _scene(np.random.default_rng(0))
    rnn = RefinementRNN(3, 2)
    with torch.no_grad():
        rnn.mlp_out.weight.zero_()
        rnn.mlp_out.bias.zero_()
    curve = iteration_curve(rnn, scene, NAMES, 4)
    assert set(curve) == {"overall accuracy", "mean IoU", "IoU building"}
    assert len(curve["mean IoU"]) == 5 and len(set(curve["mean IoU"])) == 1
    first = score_logits(to_reference(scene.heat, scene.grids), scene, NAMES)
    assert curve["mean IoU"][0] == pytest.approx(100 * first.mean_iou)


def test_fit_refiner_is_seeded_and_learns() -> None:
    rng = np.random.default_rng(1)
    scene = _scene(rng)
    spec = FitSpec(
        steps=30, batch_size=4, patch_size=16, iterations=2, lr=0.05, seed=3, eval_every=10
    )
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        rnn = RefinementRNN(3, 2)
        seen = []
        out = fit_refiner(
            rnn, scene.image, scene.heat, scene.labels, spec, torch.device("cpu"), seen.append
        )
        runs.append((rnn, out))
    assert seen == [10, 20, 30] and runs[0][1].steps == 30
    for p, q in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(p, q)
    assert runs[0][1].loss_history[-1] < runs[0][1].loss_history[0]
    unshared = UnsharedRefinement(3, 2, 2)
    fit_refiner(
        unshared,
        scene.image,
        scene.heat,
        scene.labels,
        FitSpec(steps=2, batch_size=2, patch_size=16, iterations=2),
        torch.device("cpu"),
    )
    assert refine_scene(unshared, scene, 2).shape == (2, 24, 24)


def test_to_reference_and_softmax() -> None:
    logits = torch.zeros(2, 4, 4)
    logits[1, :, 2:] = 3.0
    ref = to_reference(logits, Grids(8, 8, 4, 4))
    assert ref.shape == (2, 8, 8)
    assert (ref.argmax(0)[:, :3] == 0).all() and (ref.argmax(0)[:, 5:] == 1).all()
    np.testing.assert_allclose(softmax(ref).sum(axis=0), 1.0, atol=1e-6)


def test_pick_windows_is_a_fixed_rule() -> None:
    ref = np.zeros((100, 100), dtype=np.uint8)
    ref[60:90, 60:90] = 1
    ref[5:15, 5:15] = 1
    wins = pick_windows(ref, 40, 2)
    assert wins == pick_windows(ref, 40, 2) and len(wins) == 2
    assert wins[0] == (60, 60)


def test_quick_experiment_runs_end_to_end(tmp_path: Path) -> None:
    """The whole command on real data with tiny step counts (LoveDA skipped to stay short)."""
    pytest.importorskip("pydensecrf.densecrf")
    data = real_data("austin", "austin_dev_rgb.tif").parents[1]
    from map_refiner.dev.experiment.run import main

    assert (
        main(
            [
                "--quick",
                "--skip-loveda",
                "--data",
                str(data),
                "--out-dir",
                str(tmp_path),
                "--work",
                str(tmp_path / "work"),
            ]
        )
        == 0
    )
    text = (tmp_path / "results.md").read_text()
    assert "CNN + RNN (the paper)" in text and "Xiamen evaluation tiles" in text
    assert (tmp_path / "figures" / "austin_iterations.png").exists()
    assert (tmp_path / "work" / "results.json").exists()


def test_fit_refiner_takes_turns_over_several_coarse_maps() -> None:
    """Two identical maps train exactly like one; a different second map changes the fit."""
    scene = _scene(np.random.default_rng(2))
    spec = FitSpec(steps=6, batch_size=2, patch_size=16, iterations=2, lr=0.05, seed=1)
    other = scene.heat.flip(-1)

    def fit(heats):
        torch.manual_seed(0)
        rnn = RefinementRNN(3, 2)
        fit_refiner(rnn, scene.image, heats, scene.labels, spec, torch.device("cpu"))
        return [p.detach().clone() for p in rnn.parameters()]

    one, same, mixed = fit(scene.heat), fit([scene.heat, scene.heat]), fit([scene.heat, other])
    assert all(torch.equal(a, b) for a, b in zip(one, same))
    assert not all(torch.equal(a, b) for a, b in zip(one, mixed))


def test_guarded_split_holds_out_the_bottom_rows() -> None:
    from map_refiner.dev.experiment.guarded import split_rows

    scene = _scene(np.random.default_rng(3))
    fit_part, held = split_rows(scene, 0.25)
    h, H = scene.labels.shape[0], scene.reference.shape[0]
    assert (fit_part.labels[18:] == IGNORE).all() and torch.equal(
        fit_part.labels[:18], scene.labels[:18]
    )
    assert (held.reference[:36] == IGNORE).all()
    assert np.array_equal(held.reference[36:], scene.reference[36:])
    assert (h, H) == (24, 48) and fit_part.image is scene.image
    assert scene.labels[18:].ne(IGNORE).all()  # the original scene is untouched
