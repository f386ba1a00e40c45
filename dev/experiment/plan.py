"""What the experiment runs: training length, tuning grids, the degradation.

``full_plan`` is the committed experiment; ``quick_plan`` is a smoke run of
the same code with tiny step counts and one-point grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .degrade import Degradation
from .fit import FitSpec


@dataclass
class Plan:
    fit: FitSpec
    crf_grid: dict[str, Sequence[float]]
    gf_radii: Sequence[int]
    gf_eps: Sequence[float]
    logit_offsets: Sequence[float]  # CNN + class offsets (two classes)
    prob_offsets: Sequence[float]  # guided filter output (two classes)
    prob_offsets_3: Sequence[float]  # guided filter output (three classes)
    curve_iterations: int = 10  # Fig. 7b: 0..10
    xiamen_tiles: int = 0  # 0: all evaluation tiles
    degradation: Degradation = field(default_factory=Degradation)
    variants: list[str] = field(default_factory=lambda: ["rnn", "agnostic", "unshared"])
    loveda_variants: list[str] = field(default_factory=lambda: ["rnn"])
    # LoveDA tiles are 4x larger with 3 classes: smaller grids keep the CRF/filter search short.
    loveda_crf_grid: dict[str, Sequence[float]] = field(default_factory=dict)
    loveda_gf_radii: Sequence[int] = ()
    loveda_gf_eps: Sequence[float] = ()
    # The guarded LoveDA RNN (dev/experiment/guarded.py): how many degradations
    # of loveda_0 it trains on; 0 leaves the row out.
    loveda_guarded_draws: int = 8


def full_plan() -> Plan:
    return Plan(
        fit=FitSpec(
            steps=600, batch_size=16, patch_size=64, iterations=5, lr=0.01, seed=0, eval_every=100
        ),
        # DeepLab's search: appearance kernel weight and widths; smoothness kernel fixed (3, 3).
        crf_grid={
            "w_app": [3.0, 5.0, 10.0],
            "theta_alpha": [10.0, 30.0, 80.0],
            "theta_beta": [3.0, 5.0, 10.0, 20.0],
            "w_smooth": [3.0],
            "theta_gamma": [3.0],
        },
        gf_radii=[2, 4, 8, 16],
        gf_eps=[1e-3, 1e-2, 1e-1],
        logit_offsets=[float(v) for v in np.linspace(-3, 3, 25)],
        prob_offsets=[float(v) for v in np.linspace(-0.5, 0.5, 21)],
        prob_offsets_3=[float(v) for v in np.linspace(-0.3, 0.3, 7)],
        loveda_crf_grid={
            "w_app": [3.0, 10.0],
            "theta_alpha": [10.0, 30.0, 80.0],
            "theta_beta": [5.0, 20.0],
            "w_smooth": [3.0],
            "theta_gamma": [3.0],
        },
        loveda_gf_radii=[4, 8, 16],
        loveda_gf_eps=[1e-2, 1e-1],
    )


def quick_plan() -> Plan:
    return Plan(
        fit=FitSpec(
            steps=4, batch_size=2, patch_size=32, iterations=5, lr=0.01, seed=0, eval_every=2
        ),
        crf_grid={
            "w_app": [5.0],
            "theta_alpha": [30.0],
            "theta_beta": [10.0],
            "w_smooth": [3.0],
            "theta_gamma": [3.0],
        },
        gf_radii=[4],
        gf_eps=[1e-2],
        logit_offsets=[0.0, 1.0],
        prob_offsets=[0.0, 0.1],
        prob_offsets_3=[0.0],
        curve_iterations=3,
        xiamen_tiles=1,
        loveda_crf_grid={
            "w_app": [5.0],
            "theta_alpha": [30.0],
            "theta_beta": [10.0],
            "w_smooth": [3.0],
            "theta_gamma": [3.0],
        },
        loveda_gf_radii=[4],
        loveda_gf_eps=[1e-2],
        loveda_guarded_draws=2,
    )
