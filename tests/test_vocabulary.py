"""The choice lists and the value-map syntax are defined once (engine/vocabulary.py),
read by the command line as by the dialog and Processing, old spellings included."""

from __future__ import annotations

import subprocess
import sys

import pytest

from map_refiner.cli import build_parser
from map_refiner.engine import vocabulary as vocab
from map_refiner.engine.errors import MapRefinerError


def test_value_maps_in_either_spelling() -> None:
    assert vocab.parse_value_map("0:0,255:1") == {"0": 0, "255": 1}
    assert vocab.parse_value_map("0=0, 255=1") == {"0": 0, "255": 1}  # Processing's, until now
    assert vocab.parse_value_map(" residential : 1,road:2 ") == {"residential": 1, "road": 2}
    assert vocab.parse_value_map("a:b:3") == {"a:b": 3}  # the index follows the last colon
    assert vocab.parse_value_map("") is None and vocab.parse_value_map(None) is None
    for bad in ("0>0", "0:", ":1", "x:-1", "0:0,,255:1"):
        with pytest.raises(MapRefinerError, match="value:class pairs such as 0:0,255:1"):
            vocab.parse_value_map(bad)


def test_label_modes_read_the_old_name() -> None:
    assert (
        vocab.label_mode("tile") == vocab.label_mode("full") == vocab.label_mode("Full") == "tile"
    )
    assert vocab.label_mode("sparse") == "sparse" and vocab.label_mode(None) == "sparse"
    assert set(vocab.LABEL_MODE_TEXT) == set(vocab.LABEL_MODES)
    with pytest.raises(
        MapRefinerError, match="Unknown label mode 'dense'; use one of sparse, tile"
    ):
        vocab.label_mode("dense")


def test_the_command_line_takes_its_choices_from_the_vocabulary() -> None:
    parser = build_parser()
    args = parser.parse_args(["refine", "in.tif", "--out", "o.tif", "--device", "cuda"])
    assert (args.device, args.precision) == ("cuda", "auto")
    args = parser.parse_args(
        ["train-coarse", "in.tif", "l.gpkg", "--out", "m.safetensors", "--mode", "full"]
    )
    assert args.mode == "tile"
    args = parser.parse_args(
        ["train-rnn", "in.tif", "l.tif", "--out", "m.safetensors", "--value-map", "0=0,255=1"]
    )
    assert args.value_map == {"0": 0, "255": 1}
    actions = {
        a.dest: a.choices for a in parser._subparsers._group_actions[0].choices["refine"]._actions
    }
    assert tuple(actions["device"]) == vocab.DEVICES
    assert tuple(actions["precision"]) == vocab.PRECISIONS


def test_adapt_modes_are_the_fits() -> None:
    from map_refiner.training.corrections.fit import ADAPT_MODES

    assert vocab.ADAPT_MODES == tuple(ADAPT_MODES)


def test_the_vocabulary_needs_no_torch() -> None:
    code = "import sys, map_refiner.engine.vocabulary; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_raster_value_map_needs_whole_number_values() -> None:
    assert vocab.parse_raster_value_map("0:0, 255:1", "--prior-value-map") == {0: 0, 255: 1}
    assert vocab.parse_raster_value_map("  ", "--prior-value-map") is None
    with pytest.raises(MapRefinerError, match="PRIOR_VALUE_MAP maps raster values"):
        vocab.parse_raster_value_map("building:1", "PRIOR_VALUE_MAP")
