"""dev/default_model/soup.py: the uniform average of several models' weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_engine import random_model

from map_refiner.dev.default_model.soup import soup
from map_refiner.engine.modelfile.io import save_model


def _saved(tmp_path: Path, name: str, **kwargs) -> Path:
    net, cfg = random_model(**kwargs)
    return save_model(net, cfg, tmp_path / f"{name}.safetensors")


def test_soup_is_the_mean_of_every_weight(tmp_path: Path) -> None:
    paths = [_saved(tmp_path, f"m{s}", seed=s) for s in (1, 2, 3)]
    net, config = soup(paths)
    states = [random_model(seed=s)[0].state_dict() for s in (1, 2, 3)]
    for k, v in net.state_dict().items():
        expected = sum(s[k].double() for s in states) / 3
        torch.testing.assert_close(v, expected.float(), rtol=0, atol=1e-7)
    assert config.training["soup"]["models"] == [
        "m1.safetensors",
        "m2.safetensors",
        "m3.safetensors",
    ]


def test_soup_refuses_models_that_do_not_mix(tmp_path: Path) -> None:
    a = _saved(tmp_path, "a", seed=1)
    with pytest.raises(SystemExit, match="classes, resolution or inputs"):
        soup([a, _saved(tmp_path, "other_classes", classes=("background", "road"))])
    with pytest.raises(SystemExit, match="classes, resolution or inputs"):
        soup([a, _saved(tmp_path, "other_grid", resolution_m=1.0)])
    with pytest.raises(SystemExit, match="another architecture"):
        soup([a, _saved(tmp_path, "shared_mlp", class_specific=False)])
    with pytest.raises(SystemExit, match="at least two"):
        soup([a])
