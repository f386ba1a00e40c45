"""dev/corrections/looking_user.py: the simulated user who judges a dropped fit on the
part of the image they looked at, scored on the part they did not."""

from __future__ import annotations

import json
from pathlib import Path

from map_refiner.dev.corrections.looking_user import looking_gain, table


def _row(scene: str, **kw: object) -> dict:
    row = {
        "scene": scene,
        "k": 4,
        "before": 10.0,
        "after": 10.0,
        "after_fit": 25.0,
        "adopted": False,
        "passed_held_out": True,
        "flip_ratio": None,  # report.rederive leaves such a row as it is
        "tuned_score": 0.9,
        "left_before": 20.0,
        "left_fit": 30.0,
    }
    row.update(kw)
    return row


def test_a_dropped_fit_is_taken_only_when_better_where_the_user_looked() -> None:
    assert looking_gain(_row("a"), 0.0) == (15.0, "took")  # better on the left: taken
    worse_left = _row("a", left_fit=19.0, after_fit=40.0)  # better on the right only
    assert looking_gain(worse_left, 0.0) == (0.0, "left")  # the scored half never decides
    assert looking_gain(_row("a", left_fit=22.0), 5.0) == (0.0, "left")  # under the margin
    adopted = _row("a", adopted=True, after=18.0)  # better on the left: kept
    assert looking_gain(adopted, 0.0) == (8.0, "kept")
    looks_worse = _row("a", adopted=True, after=18.0, left_fit=17.0)
    assert looking_gain(looks_worse, 0.0) == (0.0, "undid")  # Undo round: the start again
    assert looking_gain(looks_worse, 5.0) == (8.0, "kept")  # within the margin: kept
    failed = _row("a", passed_held_out=False)  # nothing saved to take
    assert looking_gain(failed, 0.0) == (0.0, "")
    old = {k: v for k, v in _row("a").items() if not k.startswith("left_")}
    assert looking_gain(old, 0.0) == (0.0, "")  # rows from before the fields: no judgement


def test_the_table_sums_both_users_and_leaves_loveda_0_out(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                _row("rio"),
                _row("enh", left_fit=10.0, after_fit=-5.0),
                _row("loveda_0", after_fit=100.0),
            )
        )
    )
    text = table([rows], 0.0)
    assert "+0.0 / +15.0 (took it)" in text and "(left it: -15.0)" in text
    assert text.strip().splitlines()[-1].endswith("+0.0 / +15.0; 0 / 0 |")
