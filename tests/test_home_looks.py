"""dev/default_model/home_looks.py: a study row's adoption judged again with its own
flip-check overrides, as loop85 sums them."""

from __future__ import annotations

from map_refiner.dev.default_model.home_looks import after_rederived


def _row(**kw) -> dict:
    row = {
        "before": 17.0,
        "after": 17.0,  # as the study derived it, with the defaults of its day
        "after_fit": 42.0,
        "passed_held_out": True,
        "flip_ratio": 11.0,
        "tuned_score": 0.7,  # 3 x 0.2: 0.6 of the drawn share may change
        "sure_ratio": 0.87,
        "class_kept": None,
        "overrides": {"flip_sure_ratio": 0.85},
    }
    row.update(kw)
    return row


def test_a_fit_the_row_s_own_threshold_lets_through_is_counted() -> None:
    assert after_rederived(_row()) == 42.0  # 0.87 >= 0.85: the check stands aside
    assert after_rederived(_row(overrides={"flip_sure_ratio": 0.9})) == 17.0  # dropped
    assert after_rederived(_row(flip_ratio=0.5, overrides={"flip_sure_ratio": 0.9})) == 42.0


def test_fits_that_failed_or_erased_a_class_stay_as_the_row_says() -> None:
    assert after_rederived(_row(passed_held_out=False, after=17.0)) == 17.0
    assert after_rederived(_row(after_fit=None, after=17.0)) == 17.0
    assert after_rederived(_row(class_kept=0.05)) == 17.0
