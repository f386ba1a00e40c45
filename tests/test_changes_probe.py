"""dev/corrections/changes_probe.py: what a round changed on the undrawn half, and gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_engine import random_model

from map_refiner.dev.corrections.changes_probe import judge, models_mode, table
from map_refiner.engine.modelfile.io import save_model
from map_refiner.training.corrections.finetune import with_gate


def test_judge_scores_the_changes_and_the_gates() -> None:
    ref = np.zeros((4, 8), bool)
    ref[:, 6:] = True  # buildings in the right half's last two columns
    before = np.zeros_like(ref)
    after = before.copy()
    after[:, 6] = True  # a right change (sure)
    after[:, 4] = True  # a wrong change (unsure)
    after[:, 0] = True  # on the left half: not scored
    sure = np.full(ref.shape, 0.95)
    sure[:, 4] = 0.65
    row = judge(before, after, sure, ref)
    assert row["before"] == 0.0 and row["after"] == 33.33  # 4 right of 12 in the union
    assert row["changed_share"] == 50.0 and row["changed_right"] == 50.0
    assert row["gate0.6"] == 33.33 and row["gate0.7"] == 50.0  # the unsure change goes
    rows = {"own/a": row, "own/b": {**row, "after": -1.0}}
    text = table(rows)
    assert "| own (2) |" in text and "| all (2) |" in text and "(1; -1.0)" in text


def test_a_gated_model_is_refused(tmp_path: Path) -> None:
    gated = with_gate(*random_model(seed=1), random_model(seed=2), 0.7)
    save_model(*gated, tmp_path / "austin_dev_largest_4_head+rnn_seed0.safetensors")
    with pytest.raises(SystemExit, match="gates its own changes"):
        models_mode(str(tmp_path / "*.safetensors"), Path("../shared/data"), tmp_path / "r.json")
