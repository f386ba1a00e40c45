"""dev/corrections/looking_user.py: the simulated user who judges a fit on one undrawn
quarter of the map and is scored on the other."""

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
        "top_before": 20.0,
        "top_fit": 30.0,
        "bottom_before": 10.0,
        "bottom_fit": 25.0,
    }
    row.update(kw)
    return row


def test_a_fit_is_judged_on_the_top_quarter_and_scored_on_the_bottom() -> None:
    assert looking_gain(_row("a"), 0.0) == (0.0, 15.0, "took")  # dropped, looks better
    better_below = _row("a", top_fit=19.0, bottom_fit=40.0)  # better where scored only
    assert looking_gain(better_below, 0.0) == (0.0, 0.0, "left")  # the scored part never decides
    assert looking_gain(_row("a", top_fit=22.0), 5.0) == (0.0, 0.0, "left")  # under the margin
    adopted = _row("a", adopted=True, bottom_fit=18.0)
    assert looking_gain(adopted, 0.0) == (8.0, 8.0, "kept")
    looks_worse = _row("a", adopted=True, bottom_fit=18.0, top_fit=17.0)
    assert looking_gain(looks_worse, 0.0) == (8.0, 0.0, "undid")  # Undo round: the start again
    assert looking_gain(looks_worse, 5.0) == (8.0, 8.0, "kept")  # within the margin: kept
    failed = _row("a", passed_held_out=False)  # nothing saved to take
    assert looking_gain(failed, 0.0) == (0.0, 0.0, "")


def test_the_table_sums_both_users_and_leaves_loveda_0_out(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                _row("rio"),
                _row("enh", top_fit=10.0, bottom_fit=-5.0),
                _row("loveda_0", bottom_fit=100.0),
                {k: v for k, v in _row("old").items() if not k.startswith(("top", "bottom"))},
            )
        )
    )
    text = table([rows], 0.0)
    assert "+0.0 / +15.0 (took it)" in text and "(left it: -15.0)" in text
    assert "| old |" not in text  # rows from before the fields are left out
    assert text.strip().splitlines()[-1].endswith("+0.0 / +15.0; 0 / 0 |")
