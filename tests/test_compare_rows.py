"""The settings comparison of correction-study rows (dev/corrections/compare_rows.py)."""

from __future__ import annotations

from pathlib import Path

from helpers_rows import study_row as _row
from helpers_rows import write_rows as _write

from map_refiner.dev.corrections.compare_rows import table


def test_gains_losses_and_dropped_fits_per_setting(tmp_path: Path) -> None:
    a = _write(
        tmp_path / "a.jsonl",
        [
            _row("kampala", 4, 50.0, 45.0),
            _row("nepal", 4, 40.0, 52.0),
            _row("loveda_0", 4, 0.0, 100.0),  # not summed: a few pixels swing it
            _row("nepal", 4, 40.0, 10.0, variant="rnn"),  # another variant: not shown
        ],
    )
    b = _write(
        tmp_path / "b.jsonl",
        [
            # the flip check drops this fit as the product does now: the base stays
            _row("kampala", 4, 50.0, 45.0, flip_ratio=9.0, tuned_score=0.6),
            _row("nepal", 4, 40.0, 40.0, adopted=False, passed_held_out=False),
        ],
    )
    out = table([("a", a, None), ("b", b, None)]).splitlines()
    assert out[0] == "| scene | K | start | a | b |"
    assert "| kampala | 4 | 50.0 | -5.0 | +0.0 (dropped) |" in out
    assert "| nepal | 4 | 40.0 | +12.0 | +0.0 (kept base) |" in out
    assert "| loveda_0 | 4 | 0.0 | +100.0 | – |" in out
    assert "| *sum of gains* | | | +7.0 | +0.0 |" in out
    assert "| *sum of losses* | | | -5.0 | +0.0 |" in out
    assert "| *runs worse* | | | 1 | 0 |" in out


def test_a_file_may_name_its_own_variant(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", [_row("nepal", 4, 40.0, 52.0)])
    b = _write(
        tmp_path / "b.jsonl",
        [_row("nepal", 4, 40.0, 45.0), _row("nepal", 4, 40.0, 60.0, variant="deep+rnn")],
    )
    out = table([("a", a, None), ("b", b, "deep+rnn")]).splitlines()
    assert "| nepal | 4 | 40.0 | +12.0 | +20.0 |" in out


def test_a_one_class_fit_that_erased_a_class_is_rederived_as_dropped(tmp_path: Path) -> None:
    """A row recording class_kept under FitParams.class_kept_at_least counts as the
    starting map (report.rederive), as the product would have kept it."""
    rows = _write(
        tmp_path / "a.jsonl",
        [
            _row("loveda_1", 4, 30.0, 18.0, class_kept=0.01),
            _row("nepal", 4, 40.0, 58.0, class_kept=0.19),
        ],
    )
    out = table([("a", rows, None)]).splitlines()
    assert "| loveda_1 | 4 | 30.0 | +0.0 (dropped) |" in out
    assert "| nepal | 4 | 40.0 | +18.0 |" in out


def test_a_partner_judged_round_is_rederived_under_its_flip_check(tmp_path: Path) -> None:
    """A round with nothing to hold out records the partner's agreement and what its fit
    changed of the sure map (session 53): report.rederive drops it as the product now does
    when that change passes 3 x (agreement - 0.5) times the drawn share."""
    rows = _write(
        tmp_path / "a.jsonl",
        [
            _row("austin_enh", 1, 66.0, 62.0, partner_agreement=0.5, partner_flip_ratio=17.8),
            _row("loveda_1", 1, 27.0, 27.9, partner_agreement=0.8, partner_flip_ratio=0.3),
        ],
    )
    out = table([("a", rows, None)]).splitlines()
    assert "| austin_enh | 1 | 66.0 | +0.0 (dropped) |" in out
    assert "| loveda_1 | 1 | 27.0 | +0.9 |" in out
