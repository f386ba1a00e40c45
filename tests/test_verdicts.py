"""dev/corrections/verdicts.py: a person's verdicts on a map's error regions, matched to the
regions again, and what the judged study leaves undrawn and unscored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from map_refiner.dev.corrections.verdicts import (
    bbox_of,
    carved,
    judged,
    load_verdicts,
    model_sha,
    regions_of,
    roof_areas,
)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 60 x 100 map and reference: on the left half a roof the reference lacks (the map's
    building at rows 5-15), a false building (rows 30-35) and a missed reference building
    (rows 45-55); on the right half a roof the reference lacks (rows 5-20)."""
    pred = np.zeros((60, 100), bool)
    ref = np.zeros((60, 100), bool)
    pred[5:15, 5:25] = True  # 200 px, the reference has nothing
    pred[30:35, 5:15] = True  # 50 px, the reference has nothing
    ref[45:55, 20:35] = True  # 150 px, the map missed it
    pred[5:20, 60:80] = True  # 300 px on the right half
    return pred, ref


def _row(half: str, cls: int, bbox: list[int], verdict: str, sha: str = "abc") -> dict:
    return {
        "scene": "s",
        "model_sha": sha,
        "half": half,
        "class": cls,
        "bbox": bbox,
        "verdict": verdict,
    }


def test_regions_of_each_half_largest_first_with_their_class() -> None:
    pred, ref = _scene()
    left = regions_of(pred, ref, None, "left")
    assert [(size, cls) for size, _, cls in left] == [(200, 0), (150, 1), (50, 0)]
    assert bbox_of(left[0][1]) == [5, 5, 25, 15]
    right = regions_of(pred, ref, None, "right")
    assert [(size, cls) for size, _, cls in right] == [(300, 0)]
    assert bbox_of(right[0][1]) == [60, 5, 80, 20]  # back on the image's own columns
    assert len(regions_of(pred, ref, 2, "left")) == 2
    with pytest.raises(ValueError):
        regions_of(pred, ref, 1, "middle")


def test_roofs_are_left_undrawn_on_the_left_and_unscored_on_the_right() -> None:
    pred, ref = _scene()
    verdicts = [
        _row("left", 0, [5, 5, 25, 15], "roof"),
        _row("left", 0, [5, 30, 15, 35], "error"),
        _row("left", 1, [20, 45, 35, 55], "unclear"),
        _row("right", 0, [60, 5, 80, 20], "roof"),
        _row("left", 0, [5, 5, 25, 15], "roof", sha="other"),  # another model's map
    ]
    skip, ignore, matched = judged(verdicts, "s", "abc", pred, ref)
    assert matched == 4
    assert len(skip) == 1 and bbox_of(skip[0]) == [5, 5, 25, 15]
    assert ignore.sum() == 300 and ignore[5:20, 60:80].all()


def test_a_map_that_is_not_the_judged_one_is_refused() -> None:
    pred, ref = _scene()
    with pytest.raises(ValueError, match="no verdicts"):
        judged([_row("left", 0, [5, 5, 25, 15], "roof")], "s", "zzz", pred, ref)
    moved = [_row("left", 0, [6, 5, 25, 15], "roof")]  # a bounding box this map lacks
    with pytest.raises(ValueError, match="match no region"):
        judged(moved, "s", "abc", pred, ref)


def test_verdict_files_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([_row("left", 0, [5, 5, 25, 15], "roof")]))
    assert load_verdicts(good)[0]["verdict"] == "roof"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([_row("left", 0, [5, 5, 25, 15], "house")]))
    with pytest.raises(ValueError, match="unknown verdict"):
        load_verdicts(unknown)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([{"scene": "s", "verdict": "roof"}]))
    with pytest.raises(ValueError, match="lacks"):
        load_verdicts(partial)


def test_the_shared_verdicts_name_their_models_and_say_only_known_things() -> None:
    """The committed verdicts (session 45) hold for the bundled models as shipped: a
    retrained model makes them stale, which this test then says."""
    root = Path(__file__).resolve().parents[1]
    rows = load_verdicts(root / "dev/corrections/reference_verdicts.json")
    shas = {row["model"]: row["model_sha"] for row in rows}
    for name, sha in shas.items():
        assert model_sha(root / "resources/models" / f"{name}.safetensors") == sha, (
            f"resources/models/{name}.safetensors changed since its map was judged: judge "
            "the new map (python -m map_refiner.dev.corrections.reference_audit) or drop "
            "its verdicts"
        )


def test_the_judged_score_leaves_the_judged_roofs_out_of_the_right_half() -> None:
    from map_refiner.dev.corrections.study import iou, judged_scores

    ref = np.zeros((10, 20), bool)
    ref[2:5, 12:16] = True
    pred = ref.copy()
    pred[6:8, 12:14] = True  # a roof the reference lacks, judged so
    scored = np.ones((10, 10), bool)
    scored[6:8, 2:4] = False
    assert iou(pred[:, 10:], ref[:, 10:]) == 0.75
    assert judged_scores({"before": pred, "after": ref}, ref, scored) == {
        "before_judged": 100.0,
        "after_judged": 100.0,
    }


def test_judged_roofs_are_areas_another_model_s_user_does_not_paint_as_background() -> None:
    """The roofs judged on one model's map, carved out of another map's background
    corrections: a region mostly roof disappears, a larger one keeps the rest."""
    pred, ref = _scene()
    verdicts = [_row("left", 0, [5, 5, 25, 15], "roof"), _row("right", 0, [60, 5, 80, 20], "roof")]
    areas = roof_areas(verdicts, "s", {"abc": pred, "zzz": pred}, ref)
    assert areas.sum() == 200 + 300
    other = np.zeros_like(pred)  # another model's false building over the roof and beyond
    other[3:18, 3:40] = True
    regions = [(int(other.sum()), (other, 0)), (150, (ref, 1))]
    (size, (mask, cls)), missed = carved(regions, areas, 20)
    assert cls == 0 and size == other.sum() - 200 and not (mask & areas).any()
    assert missed[1][1] == 1 and missed[1][0] is ref  # a missed building is drawn whole
    small = np.zeros_like(pred)
    small[6:8, 6:10] = True  # inside the roof: nothing left to draw
    assert carved([(8, (small, 0))], areas, 20) == []
    with pytest.raises(ValueError, match="no judged map"):
        roof_areas(verdicts, "s", {"zzz": pred}, ref)
