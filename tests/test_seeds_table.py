"""The correction loop over fine-tune seeds (dev/corrections/seeds_table.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_rows import study_row
from helpers_rows import write_rows as _write

from map_refiner.dev.corrections.seeds_table import main, rows_of, table


def _row(scene: str, k: int, before: float, after_fit: float, **kw: object) -> dict:
    """A round the flip check judges (sure ratio 0.3) and keeps (0.5 against 1.2)."""
    return study_row(
        scene,
        k,
        before,
        after_fit,
        **{"tuned_score": 0.9, "flip_ratio": 0.5, "sure_ratio": 0.3, **kw},
    )


def test_seeds_side_by_side_and_the_flip_check_on_every_fit(tmp_path: Path) -> None:
    # seed 0: a fit the flip check judges and keeps, and one it stands aside from
    # (the base was as sure on its errors as anywhere: sure_ratio 1.0, flip ratio 9)
    _write(
        tmp_path / "m_seed0.jsonl",
        [
            _row("rio", 4, 10.0, 30.0),
            _row("kampala", 4, 20.0, 50.0, flip_ratio=9.0, sure_ratio=1.0),
            _row("loveda_0", 4, 0.0, 100.0),  # not summed
        ],
    )
    # seed 1: a fit that failed the held-out check, one the flip check drops
    _write(
        tmp_path / "m_seed1.jsonl",
        [
            _row("rio", 4, 10.0, 10.0, adopted=False, passed_held_out=False),
            _row("kampala", 4, 20.0, 50.0, flip_ratio=9.0, sure_ratio=0.2),
            _row("rio", 4, 10.0, 0.0, variant="rnn"),  # another variant: not shown
        ],
    )
    rows = rows_of(str(tmp_path / "m_seed*.jsonl"), "head+rnn", "largest")
    out = table([("m", rows)]).splitlines()
    # each scene and K: the seeds' changes and their spread (standard deviation)
    assert "| m | rio | 4 | 10.0 | +20.0 / +0.0 n | 14.1 | 20.0 |" in out
    assert "| m | kampala | 4 | 20.0 | +30.0 / +0.0 d | 21.2 | 35.0 |" in out
    # summed without loveda_0: +50 now (2 of 4 adopted); with the check on every fit
    # the kampala fit at sure_ratio 1.0 is dropped as well: +20, 1 adopted; each seed's
    # (rows file's) sum, and the spread averaged over rio and kampala
    assert "| m | 4 | +50.0 | 0 | 2 | +20.0, 0, 1 | +50.0 / +0.0 | 17.68 |" in out


def test_a_pattern_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no rows file"):
        main([f"m={tmp_path}/none_*.jsonl"])
