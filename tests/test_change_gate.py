"""A correction round's change gate (engine/networks/gate.py): its map keeps a change from its
parent's only where the round is sure; the parent travels in the round's file, rounds nest,
and a fine-tune whose fit is adopted writes the gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import make_tif, random_model
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.modelfile.io import load_model, save_model
from map_refiner.engine.networks.gate import gate_changes, top_probability
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.training.corrections.finetune import with_gate
from map_refiner.training.corrections.fit import CHANGE_GATE, FitParams


def logits(probs_of_class_1: list[float]) -> torch.Tensor:
    """Two-class logits ``(2, 1, n)`` whose softmax gives class 1 these probabilities."""
    p = torch.tensor(probs_of_class_1)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))])[:, None, :]


def test_a_change_stands_only_where_the_round_is_sure() -> None:
    # round: class 0 (p 0.9), then class 1 at 0.55, 0.65, 0.99; parent: 0, 0, 0, 1
    round_ = logits([0.1, 0.55, 0.65, 0.99])
    parent = logits([0.2, 0.3, 0.4, 0.8])
    out = gate_changes(round_, parent, 0.6)
    assert torch.equal(out[..., 0], round_[..., 0])  # same class: the round's scores
    assert torch.equal(out[..., 1], parent[..., 1])  # a change at 0.55: the parent's
    assert torch.equal(out[..., 2], round_[..., 2])  # a change at 0.65 stands
    assert torch.equal(out[..., 3], round_[..., 3])
    trajectory = gate_changes(torch.stack([round_, parent]), torch.stack([parent, parent]), 0.6)
    assert torch.equal(trajectory[0], out) and torch.equal(trajectory[1], parent)
    three = torch.randn(3, 5, 7)
    assert torch.allclose(top_probability(three), torch.softmax(three, 0).max(0).values)


def test_a_gated_round_keeps_its_parents_in_its_file(tmp_path: Path) -> None:
    """Round 2 of round 1 of a model: each file holds its parent (format 3), loaded back
    weight for weight; a trained RNN or a damaged gate is refused or dropped."""
    base, round1, round2 = (random_model(resolution_m=0.6, seed=s) for s in (1, 2, 3))
    net1, cfg1 = with_gate(*round1, base, 0.6)
    save_model(net1, cfg1, tmp_path / "r1.safetensors")
    loaded1 = load_model(tmp_path / "r1.safetensors")
    net2, cfg2 = with_gate(*round2, loaded1, 0.7)
    save_model(net2, cfg2, tmp_path / "r2.safetensors")
    net, cfg = load_model(tmp_path / "r2.safetensors")
    assert cfg.format_version == 3 and cfg.change_gate == 0.7
    assert cfg.parent_config().change_gate == 0.6  # round 1's own gate, inside
    assert net.gate_parent is not None and net.gate_parent.gate_parent is not None
    expected = {
        **round2[0].state_dict(),
        **{f"gate_parent.{k}": v for k, v in net1.state_dict().items()},
    }
    got = net.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert round2[1].change_gate == 0.0 and round2[0].gate_parent is None  # not changed
    cfg.gate_parent = {}
    with pytest.raises(MapRefinerError, match="no parent"):
        cfg.validate()
    cfg1.change_gate = 1.0
    with pytest.raises(MapRefinerError, match="change gate"):
        cfg1.validate()


def test_the_parent_inside_a_round_keeps_no_drawn_polygons() -> None:
    """A round's own polygons hold every earlier round's (kept.to_config); its parent's
    copy inside would make a chain of rounds over a survey's tiles grow with the square
    of their number."""
    base, round1 = random_model(resolution_m=0.6, seed=1), random_model(resolution_m=0.6, seed=2)
    base[1].corrections = {"image": "a.tif", "shapes": [], "width": 1}
    _, cfg = with_gate(*round1, base, 0.7)
    assert cfg.gate_parent["corrections"] == {}
    assert base[1].corrections  # the parent's own configuration is left as it was


@pytest.mark.parametrize("to_classes", [(), (1,)])
def test_a_gated_refine_is_the_round_s_map_where_it_is_sure_else_the_parent_s(
    tmp_path: Path, to_classes: tuple[int, ...]
) -> None:
    """With ``to_classes`` (the direction rule, ModelConfig.change_to) only the sure
    changes to those classes stand."""
    image = make_tif(tmp_path / "img.tif", 120, 140, seed=4)
    parent = save_model(*random_model(resolution_m=0.6, seed=7), tmp_path / "p.safetensors")
    fitted = random_model(resolution_m=0.6, seed=8)
    child = save_model(*fitted, tmp_path / "c.safetensors")
    gated = save_model(
        *with_gate(*fitted, load_model(parent), 0.6, to_classes), tmp_path / "g.safetensors"
    )

    def run(model: Path, scores: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        out = tmp_path / f"{model.stem}.tif"
        s = tmp_path / f"{model.stem}_scores.tif" if scores else None
        refine_raster(RefineParams(image=image, out=out, model_path=model, scores=s, device="cpu"))
        read = gdal.Open(str(out)).ReadAsArray()
        return read, None if s is None else gdal.Open(str(s)).ReadAsArray()

    a, _ = run(parent)
    b, probs = run(child, scores=True)
    g, _ = run(gated)
    top = probs.max(0)
    allowed = np.isin(b, to_classes) if to_classes else np.ones_like(b, dtype=bool)
    expected = np.where((a == b) | ((top >= 0.6) & allowed), b, a)
    clear = np.abs(top - 0.6) > 1e-4  # away from the gate itself, where rounding may tip it
    assert (a != b).sum() > 100 and ((a != b) & (top < 0.6)).sum() > 10  # a real test
    assert ((a != b) & (top >= 0.6) & ~allowed).sum() > 10 or not to_classes  # blocked ones
    assert (g[clear] == expected[clear]).all()


def _round(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    adopted: bool,
    gate: float,
    classes: tuple[str, ...] = ("building", "building", "background", "background"),
    bands: list[int] | None = None,
    **params: object,
):
    """A four-step fine-tune of a random model on four squares of ``classes`` (two of
    each by default), adopted or not as asked (the held-out and flip checks forced)."""
    from helpers_data import box_wkt, write_vector
    from osgeo import ogr

    from map_refiner.training.corrections import finetune as ft
    from map_refiner.training.tile import LabelSource

    monkeypatch.setattr(ft, "should_adopt", lambda base, tuned: adopted)
    monkeypatch.setattr(ft, "flip_cap", lambda score, per_score: float("inf"))
    image = make_tif(tmp_path / "img.tif", 96, 96, seed=2, geotransform=GT, epsg=32633)
    base = save_model(*random_model(resolution_m=0.6, seed=5), tmp_path / "base.safetensors")
    squares = [(5, 5, 20, 20), (60, 60, 80, 80), (30, 30, 45, 45), (5, 60, 15, 75)]
    boxes = list(zip(squares, classes))
    feats = [
        (
            box_wkt(GT[0] + x0 * 0.6, GT[3] - y1 * 0.6, GT[0] + x1 * 0.6, GT[3] - y0 * 0.6),
            {"class": c},
        )
        for (x0, y0, x1, y1), c in boxes
    ]
    write_vector(tmp_path / "c.gpkg", feats, epsg=32633, fields={"class": ogr.OFTString})
    return base, ft.finetune(
        image,
        LabelSource(tmp_path / "c.gpkg", class_field="class", mode="sparse"),
        tmp_path / "round.safetensors",
        base,
        FitParams(steps=4, eval_every=2, flip_sure_ratio=float("inf"), change_gate=gate, **params),
        device="cpu",
        bands=bands,
    )


GT = (500000.0, 0.6, 0.0, 4000000.0, 0.0, -0.6)


@pytest.mark.parametrize("adopted, gate", [(True, CHANGE_GATE), (False, CHANGE_GATE), (True, 0.0)])
def test_an_adopted_fit_is_saved_with_its_parent_and_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adopted: bool, gate: float
) -> None:
    base, res = _round(tmp_path, monkeypatch, adopted, gate)
    assert res.adopted is adopted
    net, cfg = load_model(res.model)
    base_net, base_cfg = load_model(base)
    if adopted and gate > 0:
        assert cfg.change_gate == CHANGE_GATE and cfg.gate_parent == base_cfg.to_dict()
        parent = net.gate_parent.state_dict()
        assert all(torch.equal(parent[k], v) for k, v in base_net.state_dict().items())
    else:  # the base's networks (not adopted) or no gate asked for: nothing to gate
        assert cfg.change_gate == 0.0 and net.gate_parent is None and cfg.format_version < 3


def test_change_gate_is_checked() -> None:
    with pytest.raises(MapRefinerError, match="change_gate"):
        FitParams(change_gate=1.0).check()


def test_the_cli_passes_the_change_gate_and_any_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from map_refiner import cli
    from map_refiner.engine import vocabulary as vocab
    from map_refiner.training.corrections import finetune as ft

    seen: list[tuple[float, bool]] = []

    def stop(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        params = args[4] if len(args) > 4 else kwargs["params"]
        seen.append((params.change_gate, params.change_to_drawn))
        raise MapRefinerError("stopped here")

    monkeypatch.setattr(ft, "finetune", stop)
    args = ["finetune", str(tmp_path / "i.tif"), str(tmp_path / "c.gpkg")]
    args += ["--class-field", "class", "--mode", "sparse", "--out", str(tmp_path / "m.safetensors")]
    assert cli.main(args) == 2 and cli.main(args + ["--change-gate", "0"]) == 2
    assert cli.main(args + ["--any-change"]) == 2
    assert seen == [(vocab.CHANGE_GATE, True), (0.0, True), (vocab.CHANGE_GATE, False)]
    assert cli.main(args + ["--change-gate", "1"]) == 2 and len(seen) == 3  # refused first


def test_a_round_of_a_gated_round_nests_and_refines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 2 fine-tuned from round 1's networks (``from_image_start`` off: the way before
    session 52, tests/test_image_start.py has the default) holds round 1 (with the base
    inside) as its gate parent, and refines; the base file is never touched."""
    from map_refiner.training.corrections import finetune as ft
    from map_refiner.training.tile import LabelSource

    base, first = _round(tmp_path, monkeypatch, True, CHANGE_GATE)
    before = base.read_bytes()
    second = ft.finetune(
        tmp_path / "img.tif",
        LabelSource(tmp_path / "c.gpkg", class_field="class", mode="sparse"),
        tmp_path / "round2.safetensors",
        first.model,
        FitParams(steps=4, eval_every=2, flip_sure_ratio=float("inf"), from_image_start=False),
        device="cpu",
    )
    assert second.adopted and base.read_bytes() == before
    net, cfg = load_model(second.model)
    assert cfg.parent_config().name == load_model(first.model)[1].name
    assert net.gate_parent.gate_parent is not None and cfg.parent_config().gate_parent
    out = tmp_path / "map.tif"
    refine_raster(RefineParams(image=tmp_path / "img.tif", out=out, model_path=second.model))
    assert gdal.Open(str(out)).ReadAsArray().max() <= 1


def test_a_round_shares_its_parent_s_frozen_trunk_and_the_map_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head+rnn fit leaves the CNN's first three layers as they were: the tile runs them
    once for the round and its parent (the image read once too), and the scores are those
    of running each network on its own, to the bit."""
    import copy

    from map_refiner.engine.networks import gate

    parent = random_model(resolution_m=0.6, seed=7)
    net = copy.deepcopy(parent[0])
    with torch.no_grad():
        net.coarse.conv4.weight.mul_(1.5)
        for p in net.rnn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fitted = with_gate(net, copy.deepcopy(parent[1]), parent, 0.7)
    model = save_model(*fitted, tmp_path / "g.safetensors")
    loaded, _ = load_model(model)
    assert gate.share_trunk(loaded, loaded.gate_parent)
    assert loaded.gate_parent.coarse.conv3 is loaded.coarse.conv3
    other = random_model(resolution_m=0.6, seed=8)[0]
    assert not gate.share_trunk(other, loaded.gate_parent)  # another trunk: not shared
    image = make_tif(tmp_path / "img.tif", 150, 130, seed=3)

    def scores(name: str) -> np.ndarray:
        out, s = tmp_path / f"{name}.tif", tmp_path / f"{name}_scores.tif"
        refine_raster(RefineParams(image=image, out=out, model_path=model, scores=s, device="cpu"))
        return gdal.Open(str(s)).ReadAsArray()

    shared = scores("shared")
    monkeypatch.setattr(gate, "share_trunk", lambda net, parent: False)
    assert np.array_equal(shared, scores("apart"))


def test_a_gate_parent_of_another_grid_or_classes_is_refused() -> None:
    for parent in (
        random_model(resolution_m=0.5, seed=2),
        random_model(resolution_m=0.6, seed=2, classes=("background", "building", "road")),
    ):
        _, cfg = with_gate(*random_model(resolution_m=0.6, seed=1), parent, 0.7)
        with pytest.raises(MapRefinerError, match="other classes, bands or grid"):
            cfg.validate()


@pytest.mark.parametrize(
    "classes, params, limited",
    [
        (("building",) * 4, {}, [1]),
        (("background",) * 4, {}, [0]),
        (("building", "building", "background", "background"), {}, []),
        (("building",) * 4, {"change_to_drawn": False}, []),
    ],
)
def test_a_round_of_one_class_keeps_changes_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, classes, params, limited
) -> None:  # noqa: ANN001
    """The direction rule (ModelConfig.change_to; tests/test_change_direction.py): a round
    whose polygons are all of one class keeps changes to that class only, and says so."""
    _, res = _round(tmp_path, monkeypatch, True, CHANGE_GATE, classes, **params)
    assert load_model(res.model)[1].change_to == limited
    said = "the only class your polygons carry"
    assert (said in res.message) is bool(limited)
    if limited:
        name = ("background", "building")[limited[0]]
        assert f"only a change to {name}, {said}" in res.message


def test_a_round_fitted_on_chosen_bands_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bands chosen for a fine-tune (--bands, Processing's BANDS) go into the round's file
    (and its gate parent's), so a refine that names none, the dialog's, reads them too."""
    _, res = _round(tmp_path, monkeypatch, True, CHANGE_GATE, bands=[3, 2, 1])
    _, cfg = load_model(res.model)
    assert cfg.bands == [3, 2, 1] and cfg.parent_config().bands == [3, 2, 1]
    maps = []
    for name, bands in (("named", [3, 2, 1]), ("own", None)):
        out = tmp_path / f"map_{name}.tif"
        refine_raster(
            RefineParams(image=tmp_path / "img.tif", out=out, model_path=res.model, bands=bands)
        )
        maps.append(gdal.Open(str(out)).ReadAsArray())
    assert np.array_equal(maps[0], maps[1])


def test_a_gate_chain_is_cut_to_a_number_of_parents() -> None:
    """finetune.cut_gate_chain: round 3 of a chain keeps round 2 (and, with 2, round 1)
    inside, the last one kept without a gate of its own; the round's own networks and
    the kept parents' weights are untouched."""
    from map_refiner.training.corrections.finetune import cut_gate_chain

    base, r1, r2, r3 = (random_model(resolution_m=0.6, seed=s) for s in (1, 2, 3, 4))
    chain = with_gate(*r3, with_gate(*r2, with_gate(*r1, base, 0.7), 0.7), 0.7)
    for parents in (0, 1, 2, 3, 9):
        net, cfg = cut_gate_chain(*chain, parents)
        cfg.validate()
        depth, here, level = 0, net, cfg
        while here.gate_parent is not None:
            assert level.change_gate == 0.7
            here, level, depth = here.gate_parent, level.parent_config(), depth + 1
        assert depth == min(parents, 3) and level.change_gate == 0.0 and not level.gate_parent
        assert all(torch.equal(a, b) for a, b in zip(net.rnn.parameters(), r3[0].rnn.parameters()))
    assert chain[0].gate_parent.gate_parent.gate_parent is not None  # the chain as it was
