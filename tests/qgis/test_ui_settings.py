"""Dialog defaults persist under the one "map_refiner/" QgsSettings prefix."""

from __future__ import annotations

from qgis.core import QgsSettings

from map_refiner.ui.settings import PREFIX, DialogDefaults, load_defaults, save_defaults


def test_defaults_when_nothing_was_saved() -> None:
    assert load_defaults() == DialogDefaults()


def test_round_trip_under_the_prefix() -> None:
    saved = DialogDefaults(
        model_path="/models/a.safetensors",
        iterations=7,
        device="cpu",
        output_dir="/tmp/out",
        write_scores=True,
        label_mode="tile",
        label_field="label",
    )
    save_defaults(saved)
    assert load_defaults() == saved
    settings = QgsSettings()
    settings.beginGroup(PREFIX.rstrip("/"))
    try:
        assert set(settings.childKeys()) == set(saved.__dataclass_fields__)
    finally:
        settings.endGroup()
    assert QgsSettings().value(PREFIX + "iterations", type=int) == 7


def test_unknown_label_mode_falls_back_to_sparse() -> None:
    QgsSettings().setValue(PREFIX + "label_mode", "bogus")
    assert load_defaults().label_mode == "sparse"


def test_old_spellings_in_settings_are_read() -> None:
    """The dialog saved a fully labelled tile as "full" before the modes had one name."""
    QgsSettings().setValue(PREFIX + "label_mode", "full")
    assert load_defaults().label_mode == "tile"
