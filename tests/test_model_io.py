"""Model files: safetensors + JSON config round trip, and every way a bad file is refused."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import pickle
from pathlib import Path

import pytest
import torch
from helpers_engine import make_tif, random_model
from safetensors.torch import save_file

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import CONFIG_KEY, load_model, read_model_file, save_model
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

PACKAGE = Path(__file__).resolve().parents[1]


def test_save_load_round_trip(tmp_path: Path) -> None:
    net, cfg = random_model(("background", "building", "road"), resolution_m=0.6, seed=3)
    cfg.training = {"steps": 12, "note": "round trip"}
    path = save_model(net, cfg, tmp_path / "m.safetensors")
    assert path.exists()
    sidecar = tmp_path / "m.json"
    assert json.loads(sidecar.read_text()) == cfg.to_dict()
    loaded, cfg2 = load_model(path)
    assert cfg2 == cfg
    assert not loaded.training
    a, b = net.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not list(tmp_path.glob(".*partial*"))


def test_save_refuses_existing_file_unless_overwrite(tmp_path: Path) -> None:
    net, cfg = random_model()
    path = save_model(net, cfg, tmp_path / "m.safetensors")
    with pytest.raises(MapRefinerError, match="already exists"):
        save_model(net, cfg, path)
    save_model(net, cfg, path, overwrite=True)
    with pytest.raises(MapRefinerError, match=r"\.safetensors"):
        save_model(net, cfg, tmp_path / "m.pt")


def test_save_never_clobbers_a_json_beside_it(tmp_path: Path) -> None:
    # e.g. 'finetune img.tif corrections.json --out corrections.safetensors'
    labels = tmp_path / "corrections.json"
    labels.write_text('{"type": "FeatureCollection", "features": []}')
    net, cfg = random_model()
    with pytest.raises(MapRefinerError, match="corrections.json already exists"):
        save_model(net, cfg, tmp_path / "corrections.safetensors")
    assert labels.read_text().startswith('{"type": "FeatureCollection"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrections.json"]
    save_model(net, cfg, tmp_path / "corrections.safetensors", overwrite=True)
    assert json.loads(labels.read_text()) == cfg.to_dict()


class _Touch:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_renamed_to_safetensors_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled.marker"
    evil = tmp_path / "evil.safetensors"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Touch(marker)}, f)
    # The trap works: ordinary unpickling would create the marker.
    with open(evil, "rb") as f:
        pickle.load(f)  # noqa: S301 (deliberate, on our own file)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(MapRefinerError, match="not a readable Map Refiner model"):
        load_model(evil)
    assert not marker.exists()


def test_torch_zip_checkpoint_is_refused(tmp_path: Path) -> None:
    net, _ = random_model()
    path = tmp_path / "torch.safetensors"
    torch.save(net.state_dict(), path)
    with pytest.raises(MapRefinerError, match="not a readable Map Refiner model"):
        load_model(path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    net, cfg = random_model()
    path = save_model(net, cfg, tmp_path / "m.safetensors")
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(MapRefinerError, match="truncated"):
            load_model(bad)


def test_safetensors_without_our_config_is_refused(tmp_path: Path) -> None:
    net, _ = random_model()
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    with pytest.raises(MapRefinerError, match="without a Map Refiner configuration"):
        load_model(path)
    bad_json = tmp_path / "badjson.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad_json), metadata={CONFIG_KEY: "{not json"})
    with pytest.raises(MapRefinerError, match="not valid JSON"):
        load_model(bad_json)


def _with_config(tmp_path: Path, name: str, tensors, config: dict) -> Path:
    path = tmp_path / name
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(path),
        metadata={CONFIG_KEY: json.dumps(config)},
    )
    return path


@pytest.mark.parametrize(
    "change",
    [
        {"classes": [{"name": n, "colour": [0, 0, 0]} for n in ("a", "b", "c")]},
        {"bands": [1, 2, 3, 4], "mean": [0.0] * 4, "std": [1.0] * 4},
        {"class_specific": False},
    ],
)
def test_config_that_does_not_match_weights_is_refused(tmp_path: Path, change: dict) -> None:
    net, cfg = random_model()
    d = {**cfg.to_dict(), **change}
    path = _with_config(tmp_path, "mismatch.safetensors", net.state_dict(), d)
    with pytest.raises(MapRefinerError, match="do not match its configuration"):
        load_model(path)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"architecture": "unet"}, "Unsupported model architecture"),
        ({"format_version": 99}, "newer Map Refiner"),
        ({"classes": [{"name": "only"}]}, "incomplete or malformed"),
        ({"std": [64.0, 0.0, 64.0]}, "non-positive std"),
        ({"mean": [1.0, 2.0]}, "differ in length"),
        ({"ground_resolution_m": 0}, "ground resolution"),
    ],
)
def test_malformed_config_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    net, cfg = random_model()
    path = _with_config(tmp_path, "bad.safetensors", net.state_dict(), {**cfg.to_dict(), **change})
    with pytest.raises(MapRefinerError, match=message):
        read_model_file(path)


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MapRefinerError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(MapRefinerError, match="folder"):
        load_model(tmp_path)


def test_four_band_model_on_three_band_raster_is_a_clear_error(tmp_path: Path) -> None:
    net, cfg = random_model(bands=4)
    model_path = save_model(net, cfg, tmp_path / "m4.safetensors")
    image = make_tif(tmp_path / "rgb.tif", 32, 32)
    params = RefineParams(
        image=image, out=tmp_path / "out.tif", model_path=model_path, device="cpu"
    )
    with pytest.raises(MapRefinerError, match=r"has 3 band\(s\).*--bands"):
        refine_raster(params)
    # Choosing three bands for a four-band model is refused too, with the count.
    params.bands = [1, 2, 3]
    with pytest.raises(MapRefinerError, match="needs 4 bands"):
        refine_raster(params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m4.json", "m4.safetensors", "rgb.tif"]


def _unsafe_calls(source: str) -> list:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            if (name, node.func.attr) in {
                ("torch", "load"),
                ("pickle", "load"),
                ("pickle", "loads"),
                ("cPickle", "load"),
            }:
                found.append(f"{name}.{node.func.attr} line {node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "torch"):
            if any(a.name in ("load", "loads") for a in node.names):
                found.append(f"from {node.module} import load line {node.lineno}")
    return found


def test_no_code_in_the_package_unpickles() -> None:
    skip = {".venv", "tests", "out", ".git", "__pycache__", ".hypothesis"}
    sources = []
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in skip]
        sources += [Path(root) / f for f in files if f.endswith(".py")]
    assert len(sources) > 20
    offenders = {
        str(p.relative_to(PACKAGE)): bad
        for p in sources
        if (bad := _unsafe_calls(p.read_text(encoding="utf-8")))
    }
    assert offenders == {}
    # The scanner itself catches the forms it looks for.
    assert _unsafe_calls("import torch\ntorch.load('x')\n")
    assert _unsafe_calls("from pickle import loads\n")
