"""Correction-study rows for the tests of the scripts that read them
(dev/corrections/compare_rows.py, seeds_table.py)."""

from __future__ import annotations

import json
from pathlib import Path


def study_row(scene: str, k: int, before: float, after_fit: float, **kw: object) -> dict:
    """One round of the largest-errors user, head+rnn: a fit adopted that moved the
    undrawn half's building IoU from ``before`` to ``after_fit``; ``kw`` overrides."""
    row = {
        "scene": scene,
        "k": k,
        "user": "largest",
        "variant": "head+rnn",
        "before": before,
        "after": after_fit,
        "after_fit": after_fit,
        "acc_before": 90.0,
        "acc_after": 90.0,
        "adopted": True,
        "passed_held_out": True,
        "tuned_score": 1.0,
        "flip_ratio": 0.1,
    }
    row.update(kw)
    return row


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
