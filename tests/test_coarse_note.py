"""Imagery far coarser than the model's grid gets a note with its map (limits.coarse_note,
session 40): what is lost, and what maps it better; printed by the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_engine import make_tif, random_model

from map_refiner import cli
from map_refiner.engine.limits import COARSE_NOTE, coarse_note
from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster


def test_the_note_starts_at_coarse_note_times_the_model_s_pixels() -> None:
    assert coarse_note(0.3, 0.3, 0.6) == ""
    assert coarse_note(1.79, 1.79, 0.6) == ""
    note = coarse_note(2.4, 2.3, 0.6)
    assert note.startswith("the image's pixels are 2.4 m, 4x the model's 0.6 m")
    assert "train-coarse, train-rnn" in note
    assert coarse_note(COARSE_NOTE * 0.6, 0.6, 0.6) != ""  # the larger side counts


@pytest.mark.parametrize(("pixel_m", "noted"), [(0.6, False), (2.4, True)])
def test_a_refine_and_the_cli_say_it(tmp_path: Path, capsys, pixel_m: float, noted: bool) -> None:
    gt = (500000.0, pixel_m, 0.0, 4000000.0, 0.0, -pixel_m)
    image = make_tif(tmp_path / "img.tif", 40, 48, seed=2, geotransform=gt)
    net, config = random_model(resolution_m=0.6, seed=5, iterations=2)
    model = save_model(net, config, tmp_path / "m.safetensors")
    res = refine_raster(RefineParams(image=image, out=tmp_path / "a.tif", model_path=model))
    assert bool(res.scale_note) == noted
    assert (
        cli.main(["refine", str(image), "--model", str(model), "--out", str(tmp_path / "b.tif")])
        == 0
    )
    out = capsys.readouterr().out
    assert ("note: the image's pixels are 2.4 m, 4x" in out) == noted
