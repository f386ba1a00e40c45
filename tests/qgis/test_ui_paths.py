"""Default output names: beside the project or input, suffixed, never an existing file."""

from __future__ import annotations

from pathlib import Path

from map_refiner.ui.paths import output_beside, unique_path


def test_unique_path_adds_a_numeric_suffix(tmp_path: Path) -> None:
    first = tmp_path / "a_refined.tif"
    assert unique_path(first) == first
    first.touch()
    assert unique_path(first) == tmp_path / "a_refined_2.tif"
    (tmp_path / "a_refined_2.tif").touch()
    assert unique_path(first) == tmp_path / "a_refined_3.tif"


def test_project_folder_wins_over_the_input_folder(tmp_path: Path) -> None:
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir(), data.mkdir()
    source = data / "scene.tif"
    source.touch()
    assert output_beside(source, "_refined", ".tif", project) == project / "scene_refined.tif"
    assert output_beside(source, "_refined", ".tif", None) == data / "scene_refined.tif"


def test_read_only_input_folder_falls_back(tmp_path: Path) -> None:
    data, fallback = tmp_path / "data", tmp_path / "fallback"
    data.mkdir(), fallback.mkdir()
    source = data / "scene.tif"
    source.touch()
    data.chmod(0o555)
    try:
        assert output_beside(source, "_refined", ".tif", None, fallback).parent == fallback
    finally:
        data.chmod(0o755)


def test_never_the_input_itself(tmp_path: Path) -> None:
    source = tmp_path / "scene_refined.tif"  # an input that already has the default name
    source.touch()
    out = output_beside(tmp_path / "scene.tif", "_refined", ".tif")
    assert out != source and not out.exists()
