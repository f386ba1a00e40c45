"""dev/corrections/study.py judges the flip check with the study's own FitParams overrides."""

from __future__ import annotations

from map_refiner.dev.corrections.study import flip_dropped


def test_the_flip_check_is_judged_with_the_defaults_without_overrides():
    # held-out score 0.7: 3 x 0.2 = 0.6 of the drawn share may change; sure ratio 0.8
    # is under the default 0.85 at which the check stands aside
    assert flip_dropped(True, 11.0, 0.7, 0.8)
    assert not flip_dropped(True, 0.5, 0.7, 0.8)
    assert not flip_dropped(False, 11.0, 0.7, 0.8)  # not adopted: nothing to drop
    assert not flip_dropped(True, 11.0, 0.7, 0.87)  # the check stands aside (session 37)


def test_a_study_s_overrides_move_the_check_as_they_move_the_fine_tune_s():
    assert flip_dropped(True, 11.0, 0.7, 0.87, {"flip_sure_ratio": 0.9, "seed": 1})
    assert not flip_dropped(True, 11.0, 0.7, 0.87, {"flip_per_score": float("inf")})
    assert flip_dropped(True, 0.5, 0.7, 0.95, {"flip_sure_ratio": 1.0, "flip_per_score": 1.0})
