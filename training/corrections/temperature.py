"""The score temperature a fine-tuned model hands its detail pass.

A fine-tune sharpens the model grid's map: on the drone scenes the share of pixels it
is at least 0.9 sure of went from 81 % to 92-97 % (dev/corrections/fitted_start_probe.py),
and the detail RNN, trained on starting maps, moves such sure scores less, so the
fitted map gained 1-2 points less from the detail pass than the starting one, or lost
(docs/results_corrections.md, "Session 13"). The fitted model's scores are divided by
the temperature at which its map over the correction window is as often sure as its
parent's (at the parent's own temperature) before the detail iterations
(ModelConfig.detail_temperature, predict.detail_scores).
"""

from __future__ import annotations

import torch

from ...engine.refine.predict import DETAIL_KEEPS_SURE

#: The range searched; a fit rarely needs more than a few.
MAX_TEMPERATURE = 16.0


def sure_share(scores: torch.Tensor, temperature: float, level: float = DETAIL_KEEPS_SURE) -> float:
    """Share of the pixels of ``(K, h, w)`` scores divided by ``temperature`` whose top
    class probability reaches ``level``."""
    prob = torch.softmax(scores.float() / temperature, 0).max(0).values
    return float((prob >= level).float().mean())


def margin(scores: torch.Tensor) -> torch.Tensor:
    """Each pixel's top score minus its second of ``(K, h, w)`` scores."""
    top = torch.topk(scores.float(), 2, dim=0).values
    return top[0] - top[1]


def margin_temperature(
    parent: torch.Tensor, fitted: torch.Tensor, parent_temperature: float = 1.0
) -> float:
    """The parent's temperature times how much the fit scaled the scores' median margin
    (top score minus the second) over the window, at least the parent's and at most
    MAX_TEMPERATURE: a measure of how much surer the fit made the map that does not
    saturate where the parent is already sure of nearly every pixel (session 35: matching
    the sure share there took 7-12)."""
    floor = max(1.0, parent_temperature)
    before = float(margin(parent).median())
    if before <= 0:
        return floor
    ratio = float(margin(fitted).median()) / before
    return round(min(MAX_TEMPERATURE, max(floor, parent_temperature * ratio)), 3)


def matched_temperature(
    parent: torch.Tensor, fitted: torch.Tensor, parent_temperature: float = 1.0
) -> float:
    """The temperature in [``parent_temperature``, MAX_TEMPERATURE] at which ``fitted``
    scores are as often sure as ``parent`` scores at ``parent_temperature`` (the parent's
    when the fitted map is no surer: a fit never has the detail pass trust its map more
    than the parent's was trusted; session 35, with the bundled models at 2, measured
    +31.5 over 48 never-seen rounds for that floor, docs/results_corrections.md)."""
    floor = max(1.0, parent_temperature)
    target = sure_share(parent, parent_temperature)
    if sure_share(fitted, floor) <= target:
        return floor
    if sure_share(fitted, MAX_TEMPERATURE) >= target:
        return MAX_TEMPERATURE
    lo, hi = floor, MAX_TEMPERATURE  # share(lo) > target >= share(hi); it falls as T grows
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        if sure_share(fitted, mid) > target:
            lo = mid
        else:
            hi = mid
    return round(hi, 3)


#: How a fit's detail temperature may be matched to its parent's (FitParams.detail_temperature_by).
MATCHES = {"sure_share": matched_temperature, "margin": margin_temperature}


def fitted_temperature(
    by: str, parent: torch.Tensor, fitted: torch.Tensor, parent_temperature: float
) -> float:
    """A fit's detail temperature, matched ``by`` one of MATCHES."""
    return MATCHES[by](parent, fitted, parent_temperature)
