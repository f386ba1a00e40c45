"""dev/detail/rule_probe.py: the detail-pass rules it tries are what they say."""

from __future__ import annotations

import pytest
import torch

from map_refiner.dev.detail import rule_probe
from map_refiner.engine.refine import predict


def test_rules_parse_into_their_parts():
    assert rule_probe.parse_rule("as_is") == {}
    assert rule_probe.parse_rule("t2+band1.5") == {"t": 2.0, "band": 1.5}
    assert rule_probe.parse_rule("keep2") == {"keep": 2.0}
    with pytest.raises(SystemExit):
        rule_probe.parse_rule("wider3")


def test_the_band_holds_the_pixels_near_a_change_of_class():
    classes = torch.zeros(8, 12, dtype=torch.long)
    classes[:, 6:] = 1
    assert rule_probe.band_mask(classes, 0).nonzero()[:, 1].unique().tolist() == [5, 6]
    assert rule_probe.band_mask(classes, 2).nonzero()[:, 1].unique().tolist() == [3, 4, 5, 6, 7, 8]
    assert not rule_probe.band_mask(torch.zeros(4, 4, dtype=torch.long), 3).any()


def test_a_band_keeps_the_model_grid_away_from_outlines_and_is_undone_after():
    start = torch.zeros(2, 6, 12)
    start[1, :, 6:] = 0.5  # unsure everywhere: the sure rule alone keeps nothing
    start[0, :, :6] = 0.5
    out = torch.full((2, 6, 12), 7.0)
    original_keep, original_scores = predict.keep_sure, predict.detail_scores
    with rule_probe.detail_rule({"band": 1.0}) as state:
        assert predict.keep_sure is not original_keep
        state.update(res_m=0.5, temperature=1.0)  # what a detail pass at 0.5 m records
        kept = predict.keep_sure(start, out, predict.DETAIL_KEEPS_SURE)
    assert predict.keep_sure is original_keep and predict.detail_scores is original_scores
    changed = (kept != start).any(0)
    # within 1 m (2 px) of the outline pixels on either side (columns 5 and 6): the
    # detail pass's scores; beyond, the model grid's
    assert changed[:, 3:9].all()
    assert not changed[:, :3].any() and not changed[:, 9:].any()


def test_keep_judges_sureness_at_its_own_temperature():
    start = torch.zeros(2, 2, 2)
    start[0] = 1.5  # softmax 0.82 at the scores as they come (a fit's temperature 2 applied)
    out = torch.full((2, 2, 2), 7.0)
    with rule_probe.detail_rule({"keep": 1.0}) as state:
        state.update(res_m=0.5, temperature=2.0)  # judged undivided: margin 3, p = 0.95
        kept = predict.keep_sure(start, out, predict.DETAIL_KEEPS_SURE)
    assert torch.equal(kept, start)
    assert torch.equal(predict.keep_sure(start, out, predict.DETAIL_KEEPS_SURE), out)
