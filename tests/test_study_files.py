"""dev/corrections/study.py keeps a round's fitted model under the round's name."""

from __future__ import annotations

from pathlib import Path

from map_refiner.dev.corrections.study import keep_model, round_name


def test_a_kept_model_is_named_after_its_round_with_its_config(tmp_path: Path):
    model = tmp_path / "work" / "largest_4_head+rnn.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    model.with_suffix(".json").write_text("{}")
    row = {"scene": "nepal_drone", "user": "largest", "k": 4, "variant": "head+rnn"}
    row["overrides"] = {"seed": 1, "anchor_partner": "x"}
    kept = keep_model(tmp_path / "kept", row, model)
    assert kept.name == "nepal_drone_largest_4_head+rnn_seed1.safetensors"
    assert kept.read_bytes() == b"weights" and kept.with_suffix(".json").read_text() == "{}"
    assert round_name({**row, "overrides": {}}).endswith("_seed0")
