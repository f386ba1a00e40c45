"""Fitting a model to a user's correction polygons (torch only, no GDAL).

What a few polygons can teach safely, and how:

* **What changes** (``adapt``): the refinement RNN together with the coarse CNN's
  last layer and upsampling (``head+rnn``, the default: on new imagery the CNN is
  what is wrong), the paper's RNN alone (``rnn``), also the CNN's third layer
  (``deep+rnn``), or its second and third (``deeper+rnn``; the first layer never
  learns: partner.py tells a model's lineage by it). The frozen part of the CNN is
  computed once over the window; every step then runs only what learns.
  ``norm+head+rnn`` also learns the input's normalisation: a scale and a
  shift per band (InputNorm), what a new sensor's colours would need and too few
  numbers to learn the drawn roofs' own look. The whole CNN then runs at every step;
  a saved round folds them into the model's mean and std (fold_input_norm), so its
  weights and file format stay those of any model.
* **Anchors**: pixels no polygon covers, where the base model is sure of itself
  (``anchor_confidence``), keep its map as their label with a small weight
  (``anchor_weight``). Without them a few polygons of one class teach
  "everything is that class"; limited to the sure pixels they leave the model
  free to change where it hesitated. How sure is chosen per round from the drawn
  pixels themselves (``anchor_threshold``): a base model that was rarely sure where the
  user says it is wrong earns anchors down to 0.7, one that was often sure and wrong
  only at 0.9. How much they weigh too: 0.3 (``anchor_weight``), but only 0.1
  (``anchor_weight_unsure``) where the base model was as sure of the drawn pixels it
  gets wrong as of the whole window (``sure_ratio``): imagery new to it, whose sure
  map holds its errors.
* **Class balance**: each drawn class weighs alike, however many pixels it has.
* **The image's own orientation** (``augment``): a fit learns one scene, so its patches
  are neither turned nor mirrored (shadows and roofs keep their direction).
* **A stable optimiser**: Adam at 1e-3 with gradient clipping. AdaGrad at 0.01
  (the paper's rate for training from scratch) takes the first step's loss from
  0.2 to 11 on a pretrained model.
* **Held-out polygons**: the fit is scored every ``eval_every`` steps on polygons
  it does not learn from, and the best state is kept (early stopping).

The comparison of these choices on every shared scene is docs/results_corrections.md.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ...engine.errors import MapRefinerError
from ...engine.modelfile.config import ModelConfig
from ...engine.networks.coarse_cpu import coarse_head_cpu
from ...engine.networks.inference import (
    class_argmax,
    coarse_scores,
    cpu_fast_path,
    refine_heat,
)
from ...engine.networks.models import MapRefinerNet, RefinementRNN, pad_to_stride
from ...engine.progress import Reporter
from ...engine.vocabulary import (
    CHANGE_GATE,
    CHANGES_TO_DRAWN,
    EDGE_BAND_M,
    FINETUNE_FOLDS,
    MAX_EDGE_BAND_M,
    MAX_FOLDS,
    OUTLINE_EDGES,
    SNAP_OUTLINES,
)
from ..adam import Adam
from ..tile import IGNORE, TrainingTile
from .holdout import REFIT_SHARE, balanced_accuracy
from .temperature import MATCHES

#: What a fine-tune may change, and how many CNN layers stay frozen before it.
ADAPT_MODES: dict[str, int] = {
    "rnn": 4,
    "head+rnn": 3,
    "deep+rnn": 2,
    "deeper+rnn": 1,
    "norm+head+rnn": 3,
}
#: The modes that also learn the input's normalisation (InputNorm).
NORM_PREFIX = "norm+"
#: Steps of the held-out phase on a CPU, so that a round (fit, refit, refine) stays
#: under 30 s on the 2-core development machine (the `make bench` row). A fixed count
#: rather than a time budget: under a budget the same round gave +3.2 and -5.7 points
#: in two runs, as the machine's load changed the steps it got. Session 7 doubled it
#: from 30 (with 48 px patches instead of 64, so a step costs about two thirds): on
#: imagery the starting model never saw (docs/results_corrections_unseen.md) the 18
#: largest-errors K=4/16 runs gained +169 points summed, none worse, against +124 and
#: one loss at 30 steps of 64 px; fits that had not learnt the user's kind of error in
#: 30 steps (kampala K=4, vaihingen K=16) pass the held-out check at 60. Tried beside
#: it and not taken: batch 4 (+136, one fit adopted at -6.4); 30 steps at twice the
#: rate (stopped after 9 of the 18 runs: kampala K=4 +4 instead of +17).
CPU_STEPS = 60
#: The same on a GPU, where a step takes milliseconds.
GPU_STEPS = 150
#: FitParams.anchor_balance: a rare class's anchors weigh at most this many times
#: anchor_weight (a class holding 1 % of two classes' anchors would otherwise get 50).
ANCHOR_BALANCE_CAP = 10.0
#: Anchors hold where the base model is at least this sure (``FitParams.anchor_confidence``
#: None: chosen by ``anchor_threshold``) ...
ANCHOR_CONFIDENCE = 0.9
#: ... or this sure, when its confidence held up on the user's drawn pixels: of the drawn
#: pixels it gets wrong, at most ``SURE_AND_WRONG_AT_MOST`` were ones it was
#: ANCHOR_CONFIDENCE sure of. More anchors keep more of a good map while a few polygons
#: teach; on a map that is confidently wrong they hold its errors in place. Session 10,
#: the largest-errors study at K=4/16 with three starting models (docs/results_anchors.md):
#: anchors at 0.7 in every round took the bundled model from +4.9 points summed (losses
#: -6.7) to +4.9 (-2.9) and the session-9 trunk candidate from +5.4 (-27.1) to +35.7
#: (-0.9), but a model new to the imagery (the previous bundled one) from +169.4 to +70.7.
#: That model was at least 0.9 sure of 41-94 % of the drawn pixels it got wrong, the two
#: fitted to the scenes of 5-36 % in most rounds (dev/corrections/sure_and_wrong.py).
#: With this rule (0.4 chosen on those rows, so not validated on others): bundled +8.2
#: (-2.9), candidate +27.6 (-9.0), the new model +169.4 (none; every round at 0.9).
TRUSTED_ANCHOR_CONFIDENCE = 0.7
SURE_AND_WRONG_AT_MOST = 0.4
#: A class the base map shows on fewer undrawn window pixels than this is not checked for
#: being erased by a one-class fit (kept_share): a few pixels swing its share.
MIN_CLASS_PIXELS = 100
#: Context, in model pixels, the RNN needs around a patch (2 px per iteration + 2).
RNN_CONTEXT = 12
#: Context, in cells of the CNN's stride-4 grid, the trained CNN layers need.
CELL_CONTEXT = 9


#: How the fit's patches are turned: quarter turns and mirroring, mirroring, none.
AUGMENTS = ("turns", "mirror", "none")


@dataclass
class FitParams:
    adapt: str = "head+rnn"
    steps: int | None = None  # held-out phase; None: CPU_STEPS on a CPU, GPU_STEPS elsewhere
    lr: float = 1e-3
    batch_size: int = 8
    patch_size: int = 48  # see CPU_STEPS
    iterations: int = 5
    anchor_margin: int | None = None  # model px around the polygons where anchors hold
    # (None: the whole window)
    anchor_clear_px: int = 0  # no anchor (nor flip-check pixel) within this many model px
    # of a drawn pixel, so that a polygon covering part of its object (a click's outline)
    # is not anchored to the base model's wrong class right beside it (session 44,
    # opt-in and off: 5 px gave click outlines +14.9 against +9.1 and cost traced
    # polygons, +240.1 against +415.7 over 48 rounds; docs/results_corrections.md)
    anchor_weight: float = 0.3  # an anchor pixel counts this much against a drawn one,
    # where the base model's sureness means something (sure_ratio under flip_sure_ratio;
    # elsewhere anchor_weight_unsure). 0.3 until session 17, 0.1 for every round in
    # sessions 17-26, 0.3 here again since session 27: with the anchors' partner the
    # anchors kept are mostly right, and on the bundled model's nine scenes (largest
    # errors, K=4/16, seeds 0-1) 0.3 gives +27.9 against +13.8 with 4 rounds worse against
    # 8, and a user who draws every error of the left half +8.8 against -4.6;
    # docs/results_corrections.md "Session 27"
    anchor_weight_unsure: float = 0.1  # the anchors' weight where the base model was as
    # sure of the drawn pixels it gets wrong as of the whole window (sure_ratio at least
    # flip_sure_ratio): imagery new to it, whose sure map holds its errors (building
    # anchors 23-96 % wrong on the new user's scenes, dev/corrections/anchor_oracle.py).
    # Session 17 found 0.1 better than 0.3 there (+720.2 against +588.9 over five seeds);
    # session 27: on 48 never-seen rounds 0.3 for every round +1010.6, this rule +1113.2,
    # 0.1 for every round +1102.7
    anchor_confidence: float | None = None  # anchor only where the base model is at least
    # this sure (None: ANCHOR_CONFIDENCE or TRUSTED_ANCHOR_CONFIDENCE, see anchor_threshold)
    anchor_partner: str = "bundled"  # anchors only where a second model's map of the
    # window agrees with the base model's (partner.py): "bundled", the other bundled model
    # for a base of either bundled model's lineage (none for others); a model file's path
    # (studies); "" none. Since session 26 for the default's lineage, session 28 for the
    # general model's (docs/results_corrections.md "Session 26", "Session 28")
    flip_partner: bool = True  # the flip check counts only the sure pixels the anchors'
    # partner agrees with (where it disagrees the starting map is often wrong, so a change
    # there is not damage). Session 26: on 84 rounds one changed, adopted (Nepal never
    # seen, K=4, +16.1 instead of dropped); docs/results_corrections.md "Session 26"
    partner_check: bool = True  # a round with nothing to hold out (one polygon per class)
    # still fits when the anchors have a partner and the base model's sureness means
    # something (sure_ratio under flip_sure_ratio), and is adopted only when the partner's
    # map agrees with at least half of what the fit changed (finetune.PARTNER_AGREES_AT_LEAST).
    # Session 27: docs/results_corrections.md
    flip_confidence: float = 0.9  # the flip check counts the undrawn pixels this sure
    balance: bool = True  # drawn classes weigh alike, whatever their pixel counts
    flip_per_score: float = 3.0  # see finetune.FLIP_PER_SCORE (inf: no flip check)
    flip_sure_ratio: float = 0.85  # the flip check judges a fit only when the base model
    # was sure on the drawn pixels it gets wrong less often than this times on the whole
    # window (CorrectionFit.sure_ratio; inf: always); also where the anchors weigh
    # anchor_weight_unsure. 0.9 until session 37. See finetune.FLIP_SURE_RATIO
    eval_every: int = 10
    folds: int = FINETUNE_FOLDS  # held-out phases on different splits of the polygons (holdout.py
    # fold_holdouts); their mean score decides whether a fit is adopted
    fold_networks: str = "first"  # what an adopted round keeps: the first fold's networks
    # refitted on every polygon ("first": the one-split round's own networks), or every
    # fold's refitted and averaged ("mean")
    detail: bool = False  # also fit the detail RNN where a refine of the image runs it
    # (detail_stage.py; finetune --detail-fit). Off by default: over four fine-tune seeds
    # on the five scenes finer than the model's grid it moved the loop by +7.9, -3.5,
    # -0.3 and -1.0 points summed and doubled a fine round's time (docs/results_corrections.md
    # "Session 13")
    detail_temperature: bool = True  # an adopted fit's detail pass gets the temperature
    # at which its map is as often sure as its parent's (temperature.py)
    detail_lr: float = 1e-3  # the detail stage's Adam rate (3e-4, the detail RNN's own
    # training rate, was worse: docs/results_corrections.md "Session 13")
    clip: float = 1.0
    augment: str = "none"  # the fit's patches: "turns" (quarter turns and mirroring, as
    # until session 26), "mirror" (mirroring only), "none" (the image's own orientation:
    # a fit learns one scene, whose shadows fall one way). Session 27, with the anchors'
    # weight rule: the bundled model's nine scenes +29.3 against +13.8 (3 rounds worse
    # against 8), a user who draws every error +24.5 against -4.6, 48 never-seen rounds
    # +1121.2 against +1102.7 (none worse); docs/results_corrections.md "Session 27"
    anchor_balance: bool = False  # anchors of each class carry the same total weight
    # (a class's anchor pixels weigh anchor_weight / (classes x its share of the anchors),
    # at most ANCHOR_BALANCE_CAP times anchor_weight), so a rare class the user did not draw
    # is held as firmly as the common one. Session 28, opt-in: see
    # docs/results_corrections.md "Session 28"
    seed: int = 0
    max_seconds: float | None = None  # an optional wall-clock stop: makes a round's outcome
    # depend on the machine's speed and load, so nothing sets it by default
    trunk_lr_scale: float = 1.0  # the CNN's second and third layers (deep+rnn, deeper+rnn)
    # learn at this times lr (the layers nearer the image keep more of what they know)
    norm_lr_scale: float = 10.0  # the input's per-band scale and shift (norm+ modes) learn
    # at this times lr: at 1e-3 the 120 steps of a round move a band by at most 0.12 of
    # its spread, less than a new sensor's colours are off
    partner_flip_check: bool = True  # a round judged by the partner (nothing to hold out)
    # is dropped, as a held-out fit is, when it changes more of the sure map than
    # flip_per_score x (the partner's agreement - 0.5) times the drawn share (session 53:
    # finetune.PARTNER_AGREES_AT_LEAST's comment); False: the agreement alone decides
    class_kept_at_least: float = 0.1  # a fit on polygons all of one class is not adopted
    # when another class keeps under this share of its undrawn pixels in the window
    # (CorrectionFit.kept_share: the fit erased a class nobody drew); 0: no such check.
    # Session 29: docs/results_corrections.md
    edge_band_m: float = EDGE_BAND_M  # the loss leaves out the drawn pixels within this
    # many metres of a polygon's outline (interior.interior; a polygon with nothing that
    # far inside keeps all), where a hand-drawn outline may be off; they stay labelled (no
    # anchors) and the held-out check scores them. Off by default: session 31 found it
    # gives rough outlines their gain back on imagery the model reads and costs on imagery
    # new to it (docs/results_corrections.md "Session 31")
    outline_edges: bool = OUTLINE_EDGES  # the loss leaves out the drawn pixels between an
    # object's outline drawn past its edge and that edge, where the image shows one clearly
    # inside the outline (overdrawn.py), and the held-out check does not score them; an
    # outline on its edge or inside it, and a background polygon, keep every pixel
    # (session 32: docs/results_corrections.md)
    outline_side_m: float = 0.0  # with outline_edges, each stretch of outline at least
    # this many metres long judged on its own (overdrawn.py's stretch rule, MIN_SIDE_M 2
    # as measured); 0: each polygon as a whole. Off: session 33 measured less gain with it
    # (docs/results_corrections.md "Session 33")
    snap_outlines: bool = SNAP_OUTLINES  # the fit learns each object polygon with its outline
    # moved onto the image's edges (snap_outlines.snapped_kept, as `map-refiner
    # snap-outlines` moves them), while the polygons a refine burns stay as drawn
    # (session 34: docs/results_corrections.md)
    record_detail_held_out: bool = False  # an adopted fit of a model with a detail pass
    # also scores the held-out polygons through it at several temperatures
    # (FinetuneResult.detail_held_out): a study's diagnostic (session 35), a few detail
    # passes over the polygons' crops that a user's round does not need
    detail_temperature_by: str = "sure_share"  # how an adopted fit's detail temperature is
    # matched to its parent's: "sure_share" (temperature.matched_temperature) or "margin"
    # (temperature.margin_temperature; session 35's trial)
    change_gate: float = CHANGE_GATE  # an adopted fit's map keeps a change from its
    # parent's map only where the fitted networks are at least this sure of the new class
    # (the parent's networks go into the round's file: engine/networks/gate.py); 0: no gate
    from_image_start: bool = True  # a round on an image the base model was already
    # fine-tuned on fits the networks that image's rounds started from, on every polygon
    # drawn there so far (image_start.py; session 52: six rounds on four scenes at two
    # seeds); False: the base model's own networks, as before session 52
    change_to_drawn: bool = CHANGES_TO_DRAWN  # with the gate, a round whose polygons are all of one
    # class (of fewer classes than the model's) keeps changes to that class (those) only
    # (ModelConfig.change_to; session 39, engine/networks/gate.py)
    average: float = 0.0  # the weights the fit scores and keeps are an exponential moving
    # average of its steps' (this decay per step; 0: each step's own), started from the
    # fit's starting weights (WeightAverage). Meant to damp what the last few patches drawn
    # taught, which makes a round depend on its seed. Session 43, the new user's study
    # (the previous bundled model, nine scenes, K=4/16, seeds 0-2): 0.9 narrowed a round's
    # spread over the seeds (mean standard deviation 5.54 -> 3.68 points) but learnt less
    # (+313.6 against +415.7 summed over 48 rounds, 3 worse either way): opt-in, not the
    # default (docs/results_corrections.md "Session 43")
    refit_share: float = REFIT_SHARE  # an adopted round's refit on every polygon runs this
    # share of the held-out phase's best step count; 0: no refit, the round keeps the
    # checked state itself (networks that never learnt the held-out polygons; a refine
    # still burns them in). Session 43, the same study as ``average``: no refit +343.9
    # against +415.7, 5 rounds worse against 3 (Kampala K=4's checked states lose 5-13
    # points, which the refit repairs on two seeds of three): the default refits
    refit_mean: bool = False  # an adopted round's refit (every polygon, from the held-out
    # phase's best state) keeps the plain mean of its states, that best state and each
    # step's after it, instead of its last step's: the checked state stays in the mix, so
    # the mean lags no check. Session 43, the same study as ``average``: +388.4 against
    # +415.7, 6 rounds worse against 3 (spread 3.85): not the default

    def steps_on(self, device: torch.device) -> int:
        """The held-out phase's step count: a fixed number per kind of device, so that a
        round gives the same model on any machine of that kind, whatever its load."""
        if self.steps is not None:
            return self.steps
        return CPU_STEPS if device.type == "cpu" else GPU_STEPS

    def check(self) -> None:
        if self.detail_temperature_by not in MATCHES:
            raise MapRefinerError(
                f"Unknown detail temperature match {self.detail_temperature_by!r}; "
                f"use {' or '.join(MATCHES)}."
            )
        if self.adapt not in ADAPT_MODES:
            raise MapRefinerError(
                f"Unknown adapt mode {self.adapt!r}; use one of {', '.join(ADAPT_MODES)}."
            )
        if self.steps is not None and self.steps < 1:
            raise MapRefinerError("A fine-tune needs at least one step.")
        for name in ("anchor_confidence", "flip_confidence"):
            value = getattr(self, name)
            if value is not None and not (0 <= value <= 1):
                raise MapRefinerError(f"{name} must be between 0 and 1, not {value}.")
        if self.fold_networks not in ("first", "mean"):
            raise MapRefinerError(
                f"fold_networks must be 'first' or 'mean', not {self.fold_networks!r}."
            )
        if not (1 <= self.folds <= MAX_FOLDS):
            raise MapRefinerError(f"folds must be between 1 and {MAX_FOLDS}, not {self.folds}.")
        if not (0 <= self.class_kept_at_least <= 1):
            raise MapRefinerError(
                f"class_kept_at_least must be between 0 and 1, not {self.class_kept_at_least}."
            )
        if not (0 <= self.anchor_clear_px <= 64):
            raise MapRefinerError(
                f"anchor_clear_px must be between 0 and 64 pixels, not {self.anchor_clear_px}."
            )
        if not (0 <= self.edge_band_m <= MAX_EDGE_BAND_M):
            raise MapRefinerError(
                f"edge_band_m must be between 0 and {MAX_EDGE_BAND_M:g} metres, "
                f"not {self.edge_band_m}."
            )
        if not (0 < self.norm_lr_scale <= 100):
            raise MapRefinerError(
                f"norm_lr_scale must be above 0 and at most 100, not {self.norm_lr_scale}."
            )
        if not (0 <= self.trunk_lr_scale <= 1):
            raise MapRefinerError(
                f"trunk_lr_scale must be between 0 and 1, not {self.trunk_lr_scale}."
            )
        if not (0 < self.lr < 1):
            raise MapRefinerError(f"The learning rate must be between 0 and 1, not {self.lr}.")
        if not (0 <= self.change_gate < 1):
            raise MapRefinerError(
                f"change_gate must be at least 0 and under 1, not {self.change_gate}."
            )
        if not (0 <= self.refit_share <= 2):
            raise MapRefinerError(f"refit_share must be between 0 and 2, not {self.refit_share}.")
        if not (0 <= self.average < 1):
            raise MapRefinerError(f"average must be at least 0 and under 1, not {self.average}.")
        if self.augment not in AUGMENTS:
            raise MapRefinerError(
                f"augment must be one of {', '.join(AUGMENTS)}, not {self.augment!r}."
            )


def average_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts of one network (integer entries: the first's).
    Fine-tunes of the same start for a few steps stay close enough for their mean to be a
    network that does what each does (Wortsman et al. 2022, "Model soups")."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = torch.stack([s[key] for s in states]).mean(0)
        else:
            out[key] = first.clone()
    return out


@dataclass
class FitOutcome:
    """The best state seen (by held-out score, or the last one without held-out pixels)."""

    state: dict[str, torch.Tensor]
    score: float | None
    step: int
    steps: int
    seconds: float
    history: list[float] = field(default_factory=list)  # the loss at every step
    scores: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out score)


class InputNorm(torch.nn.Module):
    """A learnt scale and shift per band of the normalised image (identity at first):
    ``x * exp(log_scale) + shift`` where the window holds the image, 0 elsewhere (the
    zero padding and canvas gaps of the model's own normalisation)."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.log_scale = torch.nn.Parameter(torch.zeros(bands))
        self.shift = torch.nn.Parameter(torch.zeros(bands))

    def forward(self, x: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        scale = self.log_scale.exp()[:, None, None]
        return (x * scale + self.shift[:, None, None]) * inside

    def key(self) -> tuple[float, ...]:
        """The current values (what the cached features were computed for)."""
        return tuple(torch.cat([self.log_scale, self.shift]).detach().cpu().tolist())


def fold_input_norm(net: MapRefinerNet, config: ModelConfig) -> tuple[MapRefinerNet, ModelConfig]:
    """``net`` without its fit's InputNorm and ``config`` with it folded into the model's
    mean and std (copies; both as given when the net has none): with ``a`` the scale and
    ``b`` the shift, ``a (x - m) / s + b = (x - m') / s'`` for ``s' = s / a`` and
    ``m' = m - b s'``. The round last recorded in the config (``training["finetune"]``)
    gets ``input_norm``: the scale and shift it learnt."""
    norm = getattr(net, "input_norm", None)
    if norm is None:
        return net, config
    a = norm.log_scale.detach().exp().cpu().double()
    b = norm.shift.detach().cpu().double()
    cfg = copy.deepcopy(config)
    std = torch.tensor(config.std, dtype=torch.float64) / a
    mean = torch.tensor(config.mean, dtype=torch.float64) - b * std
    cfg.std, cfg.mean = [float(v) for v in std], [float(v) for v in mean]
    rounds = cfg.training.get("finetune") or []
    if rounds and isinstance(rounds[-1], dict):  # the round just recorded says what it learnt
        rounds[-1]["input_norm"] = {
            "scale": [round(float(v), 4) for v in a],
            "shift": [round(float(v), 4) for v in b],
        }
    plain = copy.deepcopy(net)
    del plain.input_norm
    return plain, cfg


def _trunk(net: MapRefinerNet, x: torch.Tensor, frozen: int) -> torch.Tensor:
    """The frozen CNN layers' output (for ``frozen`` = 4: the whole CNN's heat map)."""
    c = net.coarse
    if frozen == 4:
        return coarse_scores(c, x)
    x = F.relu(c.conv1(x))
    if frozen >= 2:
        x = F.relu(c.conv2(x))
    if frozen >= 3:
        x = F.relu(c.conv3(x))
    return x


def _trunk_within(net: MapRefinerNet, x: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """The first three CNN layers on patches (with autograd), each layer's output zero on
    the cells outside the window (``inside``: ``(B, 1, h, w)`` 0/1), as the window's own
    pass sees them: features computed over the whole window, padded with zeros."""
    c = net.coarse
    x = F.relu(c.conv1(x)) * inside
    x = F.relu(c.conv2(x)) * inside
    return F.relu(c.conv3(x)) * inside


def _head(
    net: MapRefinerNet,
    f: torch.Tensor,
    frozen: int,
    inside: torch.Tensor | None = None,
    unpadded: bool = False,
) -> torch.Tensor:
    """The trained CNN layers after the frozen trunk (nothing for ``frozen`` = 4). On
    patches cut from a window's features, ``inside`` (0/1 per cell) zeroes each trained
    layer's output beyond the window, as the window's own pass has it. The head's own
    output is not zeroed there: the x4 upsampling then moves the window's outer two
    pixels a little (up to 0.06), and zeroing it too lost on both sets of rounds
    (session 30: own scenes +125.0 against +162.5, never seen +1105.5 against +1121.2;
    docs/results_corrections.md "Session 30").

    ``unpadded``: the last layer without its zero padding, so the map starts
    :func:`head_shift` pixels in and is that much smaller on each side, its values there
    the padded layer's. oneDNN runs the padded 9x9 layer of 128 -> 2 channels on a fit's
    patches about 6 times slower than the unpadded one (session 50, 80 ms against 12 ms a
    batch on this CPU), and a patch needs only its centre (:meth:`CorrectionFit.patches`)."""
    c = net.coarse
    if frozen == 4:
        return f
    if frozen < 2:
        f = F.relu(c.conv2(f))
        f = f if inside is None else f * inside
    if frozen < 3:
        f = F.relu(c.conv3(f))
        f = f if inside is None else f * inside
    if unpadded:
        return c.upsample(F.conv2d(f, c.conv4.weight, c.conv4.bias))
    if not torch.is_grad_enabled() and cpu_fast_path(f):
        # a refine's own path (the same sums): oneDNN's padded layer took 2.4 s of a
        # 2000 x 2000 px window against 0.35 s (session 50), twice a fine-tune
        return coarse_head_cpu(c, list(f.split(1)))
    return c.upsample(c.conv4(f))


def head_shift(net: MapRefinerNet) -> int:
    """Pixels by which :func:`_head`'s unpadded map starts in from the padded one's
    corner: the x4 upsampling of a map whose first cell is the padding's width in."""
    pad = net.coarse.conv4.padding
    assert isinstance(pad, tuple)
    return 4 * int(pad[0])


def sure_and_wrong(confidence: torch.Tensor, base: torch.Tensor, labels: torch.Tensor) -> float:
    """Of the drawn pixels whose class the base model gets wrong, the share it was at least
    ANCHOR_CONFIDENCE sure of (0 when it gets every drawn pixel right)."""
    wrong = (labels != IGNORE) & (base != labels)
    if not bool(wrong.any()):
        return 0.0
    return float((confidence[wrong] >= ANCHOR_CONFIDENCE).float().mean())


def anchor_threshold(share_sure_and_wrong: float) -> float:
    """How sure the base model must be for its map to anchor a fit: 0.7 when its
    confidence held up on the drawn pixels, else 0.9 (see TRUSTED_ANCHOR_CONFIDENCE)."""
    if share_sure_and_wrong <= SURE_AND_WRONG_AT_MOST:
        return TRUSTED_ANCHOR_CONFIDENCE
    return ANCHOR_CONFIDENCE


class WeightAverage:
    """An exponential moving average of ``params`` over a fit's steps (FitParams.average),
    started from their values when made; with ``decay`` 0 it is the parameters
    themselves and costs nothing; with ``decay`` None the plain mean of the values when
    made and after each update (FitParams.refit_mean)."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float | None) -> None:
        self.params, self.decay, self.count = params, decay, 1
        self.mean = [p.detach().clone() for p in params] if decay != 0 else []

    def update(self) -> None:
        """Fold the parameters' current values in (after an optimiser step)."""
        if not self.mean:
            return
        self.count += 1
        keep = self.decay if self.decay is not None else 1.0 - 1.0 / self.count
        with torch.no_grad():
            for m, p in zip(self.mean, self.params):
                m.mul_(keep).add_(p.detach(), alpha=1.0 - keep)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold the average inside the block, their own values after."""
        if not self.mean:
            yield
            return
        own = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for m, p in zip(self.mean, self.params):
                p.copy_(m)
        try:
            yield
        finally:
            with torch.no_grad():
                for o, p in zip(own, self.params):
                    p.copy_(o)


class CorrectionFit:
    """A model, the frozen part of its CNN over a tile, and what its fit learns from."""

    def __init__(
        self,
        net: MapRefinerNet,
        tile: TrainingTile,
        params: FitParams,
        device: torch.device,
        agree: torch.Tensor | None = None,
    ) -> None:
        """``agree``: a second model's class on each cell of the window (partner.py); the
        anchors then hold only where it gives the base model's class."""
        params.check()
        self.net, self.params, self.device = net.to(device), params, device
        self.frozen = ADAPT_MODES[params.adapt]
        self.labels = tile.labels.long()
        self.h, self.w = self.labels.shape
        # drawn pixels the loss leaves out (FitParams.edge_band_m)
        self.unweighted = (
            tile.unweighted.bool()
            if tile.unweighted is not None
            else torch.zeros((self.h, self.w), dtype=torch.bool)
        )
        # where the window holds the image (a canvas of several windows has gaps)
        self.valid = (
            tile.valid.bool()
            if tile.valid is not None
            else torch.ones((self.h, self.w), dtype=torch.bool)
        )
        self.image = tile.image.to(device)
        self.x = pad_to_stride(self.image[None])
        self.norm: InputNorm | None = None
        if params.adapt.startswith(NORM_PREFIX):
            if self.net.coarse.conv1.in_channels != self.image.shape[0]:
                raise MapRefinerError("The window's bands differ from the model's.")
            self.norm = InputNorm(int(self.image.shape[0])).to(device)
            self.net.input_norm = self.norm  # in the net's state: kept, restored, averaged
            self.inside = pad_to_stride(self.valid.float().to(device)[None, None])
            self._norm_key: tuple[float, ...] | None = None
        net.eval()
        with torch.no_grad():
            self.trunk = _trunk(net, self.x, self.frozen)
            base = self.logits()
            self.base_scores = base  # (K, h, w): the starting networks' scores
            self.base = class_argmax(base).long()
            confidence = torch.softmax(base, 0).max(0).values.cpu()
        self.sure_and_wrong = sure_and_wrong(confidence, self.base.cpu(), self.labels)
        # how often the base was sure on the drawn pixels it gets wrong, relative to how
        # often it is sure on the whole window: near 1 its sureness says nothing of where
        # it is right, and the flip check, which guards its sure map, has nothing to guard
        sure_share = float((confidence[self.valid] >= ANCHOR_CONFIDENCE).float().mean())
        self.sure_ratio = self.sure_and_wrong / sure_share if sure_share > 0 else 0.0
        self.anchor_weight = (
            params.anchor_weight
            if self.sure_ratio < params.flip_sure_ratio
            else params.anchor_weight_unsure
        )
        self.anchor_confidence = (
            params.anchor_confidence
            if params.anchor_confidence is not None
            else anchor_threshold(self.sure_and_wrong)
        )
        self.anchor = self._anchor_mask(confidence, self.anchor_confidence)
        self.sure = self._anchor_mask(confidence, params.flip_confidence)
        self.anchors_agreed: float | None = None  # the share of anchors a partner kept
        if agree is not None:
            agreed = agree.to(self.anchor.device) == self.base.to(self.anchor.device)
            before = int(self.anchor.sum())
            self.anchor &= agreed
            self.anchors_agreed = int(self.anchor.sum()) / before if before else 1.0
            if params.flip_partner:  # the flip check guards agreed pixels only, too
                self.sure &= agreed
        self.groups = self._trained_groups()
        self.trained = [p for params, _ in self.groups for p in params]
        norm_params = set() if self.norm is None else set(self.norm.parameters())
        self.networks_trained = [p for p in self.trained if p not in norm_params]
        self.rng = np.random.default_rng(params.seed)
        self._pad()

    # -- what is learnt -------------------------------------------------------------
    def _anchor_mask(self, confidence: torch.Tensor, at_least: float) -> torch.Tensor:
        """Unlabelled pixels within ``anchor_margin`` of the polygons' bounding box where
        the base model is at least ``at_least`` sure, none within ``anchor_clear_px`` of a
        drawn pixel."""
        m = self.params.anchor_margin
        box = torch.zeros_like(self.labels, dtype=torch.bool)
        if m is None:
            box[:] = True
        else:
            ys, xs = torch.nonzero(self.labels != IGNORE, as_tuple=True)
            box[
                max(0, int(ys.min()) - m) : int(ys.max()) + 1 + m,
                max(0, int(xs.min()) - m) : int(xs.max()) + 1 + m,
            ] = True
        anchor = box & (self.labels == IGNORE) & self.valid
        if at_least > 0:
            anchor &= confidence >= at_least
        c = self.params.anchor_clear_px
        if c > 0:  # a ring round each polygon left to the drawn pixels
            drawn = (self.labels != IGNORE).float()[None, None]
            anchor &= ~(F.max_pool2d(drawn, 2 * c + 1, stride=1, padding=c)[0, 0] > 0)
        return anchor

    def _trained_groups(self) -> list[tuple[list[torch.nn.Parameter], float]]:
        """The parameters that learn, each group with its rate's factor of params.lr: the
        RNN and the CNN's head at 1, the CNN's trunk layers (deep+rnn, deeper+rnn) at
        trunk_lr_scale; the rest of the network frozen."""
        c = self.net.coarse
        head: list[torch.nn.Module] = [self.net.rnn]
        if self.frozen <= 3:
            head += [c.conv4, c.upsample]
        trunk: list[torch.nn.Module] = []
        if self.frozen <= 2:
            trunk.append(c.conv3)
        if self.frozen <= 1:
            trunk.append(c.conv2)
        for p in self.net.parameters():
            p.requires_grad_(False)
        groups = []
        norm: list[torch.nn.Module] = [] if self.norm is None else [self.norm]
        for layers, scale in (
            (head, 1.0),
            (trunk, self.params.trunk_lr_scale),
            (norm, self.params.norm_lr_scale),
        ):
            params = [p for layer in layers for p in layer.parameters()]
            for p in params:
                p.requires_grad_(True)
            if params:
                groups.append((params, scale))
        return groups

    def _pad(self) -> None:
        """Padded copies, so that a patch near the window's edge is a plain slice."""
        p, cc = self.params.patch_size, CELL_CONTEXT
        px = 4 * cc
        self.img_pad = F.pad(self.image, (px, px + p, px, px + p))
        if self.norm is not None:
            self.inside_pad = F.pad(self.valid.float().to(self.device), (px, px + p, px, px + p))
        if self.frozen < 4:  # the cells the window's own features cover (trunk_pad's zeros)
            hc, wc = self.trunk.shape[-2:]
            cells = torch.ones((hc, wc), device=self.device)
            self.cells_pad = F.pad(cells, (cc, cc + p // 4, cc, cc + p // 4))
        if self.frozen == 4:
            heat = self.trunk[0, :, : self.h, : self.w]
            self.trunk_pad = F.pad(heat[None], (px, px + p, px, px + p), mode="replicate")[0]
        else:
            self.trunk_pad = F.pad(self.trunk[0], (cc, cc + p // 4, cc, cc + p // 4))

    # -- inference ----------------------------------------------------------------------
    def logits(self, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Scores over the window, or over ``box`` (y0, y1, x0, x1) of it, computed from
        the frozen trunk with just the context the trained layers need."""
        self._refresh()
        if box is None:
            heat = _head(self.net, self.trunk, self.frozen)
            out = refine_heat(self.net.rnn, self.x, heat, self.params.iterations)
            return out[0, :, : self.h, : self.w]
        y0, y1, x0, x1 = box
        hp, wp = self.x.shape[-2:]
        # The crop stops at the window's edges, where the full pass pads the same way.
        ya, yb = max(0, (y0 - RNN_CONTEXT) // 4 * 4), min(hp, y1 + RNN_CONTEXT)
        xa, xb = max(0, (x0 - RNN_CONTEXT) // 4 * 4), min(wp, x1 + RNN_CONTEXT)
        img = self.x[:, :, ya:yb, xa:xb]
        if self.frozen == 4:
            heat = self.trunk[:, :, ya:yb, xa:xb]
        else:
            hc, wc = self.trunk.shape[-2:]
            ca, cb = max(0, ya // 4 - CELL_CONTEXT), min(hc, -(-yb // 4) + CELL_CONTEXT)
            da, db = max(0, xa // 4 - CELL_CONTEXT), min(wc, -(-xb // 4) + CELL_CONTEXT)
            heat = _head(self.net, self.trunk[:, :, ca:cb, da:db], self.frozen)
            heat = heat[:, :, ya - 4 * ca : yb - 4 * ca, xa - 4 * da : xb - 4 * da]
        out = refine_heat(self.net.rnn, img, heat, self.params.iterations)
        return out[0, :, y0 - ya : y1 - ya, x0 - xa : x1 - xa]

    def _refresh(self) -> None:
        """With a learnt input normalisation, the image and frozen features the current
        values give (recomputed only when they changed: a step, or a state loaded)."""
        if self.norm is None or self._norm_key == self.norm.key():
            return
        with torch.no_grad():
            self.x = self.norm(pad_to_stride(self.image[None])[0], self.inside[0])[None]
            self.trunk = _trunk(self.net, self.x, self.frozen)
        self._norm_key = self.norm.key()

    def on_image(self, scores: torch.Tensor) -> torch.Tensor:
        """``(K, h, w)`` scores over the window, without the gaps of a canvas of several
        windows (``(K, n)`` then)."""
        return scores if bool(self.valid.all()) else scores[:, self.valid.to(scores.device)]

    def predict(self, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return class_argmax(self.logits(box)).long()

    def flip_ratio(self, scores: torch.Tensor | None = None) -> float:
        """How much of the base model's sure map (undrawn pixels where the base is at least
        ``flip_confidence`` sure) the current networks change, as a multiple of the
        drawn share of the window. 0 for the base networks themselves. ``scores``: the
        current networks' logits over the window, when already computed."""
        sure = int(self.sure.sum())
        drawn = float((self.labels != IGNORE).sum()) / max(1, int(self.valid.sum()))
        if not sure or drawn <= 0:
            return 0.0
        pred = self.predict() if scores is None else class_argmax(scores).long()
        flipped = int(((pred.cpu() != self.base.cpu()) & self.sure).sum())
        return flipped / sure / drawn

    def kept_share(self, scores: torch.Tensor, drawn: set[int]) -> tuple[int, float] | None:
        """Of the classes nobody drew, the one the fitted ``scores`` keep least of on the
        window's undrawn pixels, and that share (pixels the fit gives the class / pixels the
        base map gives it); None when the base map shows no such class on at least
        MIN_CLASS_PIXELS of them."""
        undrawn = (self.labels == IGNORE) & self.valid
        base, new = self.base.cpu()[undrawn], class_argmax(scores).long().cpu()[undrawn]
        least: tuple[int, float] | None = None
        for c in range(int(scores.shape[0])):
            had = int((base == c).sum())
            if c in drawn or had < MIN_CLASS_PIXELS:
                continue
            share = int((new == c).sum()) / had
            if least is None or share < least[1]:
                least = (c, share)
        return least

    # -- training --------------------------------------------------------------------
    def targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel target and weight: drawn pixels 1 (0 in the band along the outlines,
        ``self.unweighted``), anchors ``self.anchor_weight``."""
        anchor = self.anchor & (labels == IGNORE)
        tgt = torch.where(
            labels != IGNORE, labels, torch.where(anchor, self.base, torch.full_like(labels, 0))
        )
        drawn = self._weighted(labels)
        weight = drawn.float() + self.anchor_weight * anchor.float()
        if self.params.anchor_balance and bool(anchor.any()):
            kinds = torch.unique(self.base[anchor]).tolist()
            total = float(anchor.sum())
            for c in kinds:
                sel = anchor & (self.base == c)
                factor = min(ANCHOR_BALANCE_CAP, total / (len(kinds) * float(sel.sum())))
                weight[sel] = self.anchor_weight * factor
        if self.params.balance:
            present = [c for c in torch.unique(labels[drawn]).tolist()]
            n = float(drawn.sum())
            for c in present:
                sel = drawn & (labels == c)
                weight[sel] = n / (len(present) * float(sel.sum()))
        pad = 4 * CELL_CONTEXT
        p = self.params.patch_size
        return (
            F.pad(tgt, (pad, pad + p, pad, pad + p)).to(self.device),
            F.pad(weight, (pad, pad + p, pad, pad + p)).to(self.device),
        )

    def _weighted(self, labels: torch.Tensor) -> torch.Tensor:
        """The drawn pixels of ``labels`` the loss counts (not in the band along an
        outline, ``self.unweighted``)."""
        return (labels != IGNORE) & ~self.unweighted

    def _pools(self, labels: torch.Tensor) -> list[np.ndarray]:
        """Where patches are centred: the drawn pixels of each class, then the area the
        anchors cover (``(n, 2)`` row/column arrays)."""
        drawn = self._weighted(labels).numpy()
        lab = labels.numpy()
        pools = [np.argwhere(drawn & (lab == c)) for c in np.unique(lab[drawn])]
        return pools + [np.argwhere((self.anchor | (labels != IGNORE)).numpy())]

    def _corners(self, pools: list[np.ndarray]) -> list[tuple[int, int]]:
        """Patch corners on the stride-4 lattice: half around drawn pixels (each class
        as often), half anywhere in the area the anchors cover."""
        p, rng = self.params.patch_size, self.rng
        by_class, area = pools[:-1], pools[-1]
        out = []
        for b in range(self.params.batch_size):
            pool = by_class[rng.integers(len(by_class))] if (b % 2 == 0 and by_class) else area
            cy, cx = pool[rng.integers(len(pool))]
            jitter = rng.integers(-p // 4, p // 4 + 1, size=2)
            y = int(np.clip(cy - p // 2 + jitter[0], 0, max(0, self.h - p // 2))) // 4 * 4
            x = int(np.clip(cx - p // 2 + jitter[1], 0, max(0, self.w - p // 2))) // 4 * 4
            out.append((y, x))
        return out

    def held_out_score(
        self, held_out: torch.Tensor, boxes: list[tuple[int, int, int, int]]
    ) -> float:
        """Balanced accuracy on the held-out pixels, each polygon's box scored alone."""
        pred = torch.full_like(self.labels, -1)
        for y0, y1, x0, x1 in boxes:
            pred[y0:y1, x0:x1] = self.predict((y0, y1, x0, x1))
        return balanced_accuracy(pred, self.labels, held_out)

    def _cells_inside(self, corners: list[tuple[int, int]]) -> torch.Tensor:
        """``(B, 1, cells, cells)``: 1 on the patches' cells the window's features cover."""
        cells = self.params.patch_size // 4 + 2 * CELL_CONTEXT
        return torch.stack(
            [self.cells_pad[y // 4 : y // 4 + cells, x // 4 : x // 4 + cells] for y, x in corners]
        )[:, None]

    def patches(self, corners: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The image and the RNN's starting heat maps around the patches at ``corners``
        (each ``(B, ., p + 2 RNN_CONTEXT, ...)``), through the layers that learn: the
        frozen features are cut from the window's, the rest runs here (with autograd)."""
        p, rc, cc = self.params.patch_size, RNN_CONTEXT, CELL_CONTEXT
        side, cells = p + 8 * cc, p // 4 + 2 * cc
        imgs = torch.stack([self.img_pad[:, y : y + side, x : x + side] for y, x in corners])
        if self.norm is not None:  # the whole CNN runs on the renormalised patches
            inside = torch.stack([self.inside_pad[y : y + side, x : x + side] for y, x in corners])[
                :, None
            ]
            imgs = self.norm(imgs, inside)
            feats = _trunk_within(self.net, imgs, self._cells_inside(corners))
            heat = _head(self.net, feats, self.frozen, unpadded=True)
        elif self.frozen == 4:
            heat = torch.stack([self.trunk_pad[:, y : y + side, x : x + side] for y, x in corners])
        else:
            feats = torch.stack(
                [
                    self.trunk_pad[:, y // 4 : y // 4 + cells, x // 4 : x // 4 + cells]
                    for y, x in corners
                ]
            )
            # conv3 (and conv2) run here: zero beyond the window
            inside = self._cells_inside(corners) if self.frozen < 3 else None
            heat = _head(self.net, feats, self.frozen, inside, unpadded=True)
        o = 4 * cc - rc
        oh = o if self.frozen == 4 else o - head_shift(self.net)  # the unpadded head's map
        return (
            imgs[:, :, o : o + p + 2 * rc, o : o + p + 2 * rc],
            heat[:, :, oh : oh + p + 2 * rc, oh : oh + p + 2 * rc],
        )

    def _loss(
        self, tgt: torch.Tensor, weight: torch.Tensor, pools: list[np.ndarray]
    ) -> torch.Tensor:
        p, cc = self.params.patch_size, CELL_CONTEXT
        corners = self._corners(pools)
        imgs, heat = self.patches(corners)
        t = torch.stack(
            [tgt[y + 4 * cc : y + 4 * cc + p, x + 4 * cc : x + 4 * cc + p] for y, x in corners]
        )
        w = torch.stack(
            [weight[y + 4 * cc : y + 4 * cc + p, x + 4 * cc : x + 4 * cc + p] for y, x in corners]
        )
        k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
        if self.params.augment != "turns":  # drawn all the same: one random stream
            k, flip = 0, flip and self.params.augment == "mirror"
        imgs, heat, t, w = (torch.rot90(v, k, (-2, -1)) for v in (imgs, heat, t, w))
        if flip:
            imgs, heat, t, w = (v.flip(-1) for v in (imgs, heat, t, w))
        out = self._rnn_centre(imgs, heat)
        ce = F.cross_entropy(out, t, reduction="none")
        return (ce * w).sum() / w.sum().clamp(min=1e-6)

    def _rnn_centre(self, imgs: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
        """The RNN's maps on the patches' centres (``RNN_CONTEXT`` in from each side),
        computed only where the iterations reach them (RefinementRNN.forward_within)."""
        p, rc, iterations = self.params.patch_size, RNN_CONTEXT, self.params.iterations
        rnn = self.net.rnn
        m = rc - iterations * rnn.pad if isinstance(rnn, RefinementRNN) else -1
        if m < 0:  # another network, or more iterations than the context covers
            return rnn(imgs, heat, iterations)[:, :, rc : rc + p, rc : rc + p]
        side = p + 2 * iterations * rnn.pad
        crop = (slice(None), slice(None), slice(m, m + side), slice(m, m + side))
        return rnn.forward_within(imgs[crop], heat[crop], iterations)

    def fit(
        self,
        labels: torch.Tensor,
        steps: int,
        rep: Reporter,
        held_out: torch.Tensor | None = None,
        boxes: list[tuple[int, int, int, int]] | None = None,
        time_left: float | None = None,
        mean_of_steps: bool = False,
    ) -> FitOutcome:
        """``steps`` Adam steps on ``labels`` (IGNORE = not drawn); with ``held_out``
        (a mask of drawn pixels left out of ``labels``, inside ``boxes``), keep the
        best-scoring state. ``mean_of_steps``: the state kept is the plain mean of the
        starting state and every step's (FitParams.refit_mean); else FitParams.average's."""
        if not (labels != IGNORE).any():
            raise MapRefinerError("No drawn pixel is left to learn from.")
        opt = Adam(
            [{"params": params, "lr": self.params.lr * scale} for params, scale in self.groups]
        )
        tgt, weight = self.targets(labels)
        pools = self._pools(labels)
        t0 = time.perf_counter()
        best = FitOutcome(copy.deepcopy(self.net.state_dict()), None, 0, 0, 0.0)
        average = WeightAverage(self.trained, None if mean_of_steps else self.params.average)
        history: list[float] = []
        scores: list[tuple[int, float]] = []
        step = 0
        for step in range(1, steps + 1):
            rep.check()
            self.net.train()
            loss = self._loss(tgt, weight, pools)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # the input's scale and shift are clipped on their own: their gradients sum
            # over every pixel and would otherwise shrink the networks' steps
            torch.nn.utils.clip_grad_norm_(self.networks_trained, self.params.clip)
            if self.norm is not None:
                torch.nn.utils.clip_grad_norm_(self.norm.parameters(), self.params.clip)
            opt.step()
            average.update()
            history.append(float(loss.detach()))
            rep.report(step / steps)
            out_of_time = time_left is not None and time.perf_counter() - t0 > time_left
            if held_out is not None and (
                step % self.params.eval_every == 0 or step == steps or out_of_time
            ):
                with average.applied():
                    score = self.held_out_score(held_out, boxes or [(0, self.h, 0, self.w)])
                    state = self.net.state_dict()
                    if best.score is None or score > best.score:
                        best = FitOutcome(copy.deepcopy(state), score, step, 0, 0.0)
                scores.append((step, score))
            if out_of_time:
                break
        if held_out is None:
            with average.applied():
                best = FitOutcome(copy.deepcopy(self.net.state_dict()), None, step, 0, 0.0)
        best.steps, best.seconds, best.history = step, time.perf_counter() - t0, history
        best.scores = scores
        self.net.eval()
        return best
