"""The whole-model retrain's patch draws (dev/default_model/trunk.py): balanced by
class, and, once a mining model is given, centred on what it gets wrong."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from map_refiner.dev.default_model import trunk
from map_refiner.dev.default_model.trunk import SIZE, Source
from map_refiner.engine.labels.classes import IGNORE

H = W = 48


def _scene() -> Source:
    """A scene whose image bands carry each pixel's row and column, so a patch's
    centre says where it was drawn."""
    labels = torch.zeros((H, W), dtype=torch.uint8)
    labels[10:20, 10:20] = 1  # a building the mining model finds
    labels[30:34, 30:34] = 1  # one it misses
    labels[0:4, :] = IGNORE
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    image = torch.stack([yy, xx, torch.zeros_like(yy)]).float()
    return Source.of("synthetic", image, labels, True, 1.0)


def _miner(net: object, crop: torch.Tensor, iterations: int) -> torch.Tensor:
    """A stand-in for the engine's inference reading each pixel's position from the
    bands: finds the first building, misses the second, and calls a background strip
    (row 5) and the unlabelled rows building."""
    assert iterations == 5
    y, x = crop[0], crop[1]
    truth = ((y >= 10) & (y < 20) & (x >= 10) & (x < 20)) | (y == 5) | (y < 4)
    truth = truth.float()
    return torch.stack([1 - truth, truth])


@pytest.fixture(autouse=True)
def _stand_in_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trunk, "infer", _miner)


def _wrong() -> np.ndarray:
    wrong = np.zeros((H, W), bool)
    wrong[30:34, 30:34] = True
    wrong[5, :] = True
    return wrong


def _centre(src: Source, rng: np.random.Generator, hard: bool) -> tuple[int, int]:
    img, lab = src.patch(rng, SIZE, hard)
    assert img.shape == (3, SIZE, SIZE) and lab.shape == (SIZE, SIZE)
    c = SIZE // 2
    return int(img[0, c, c]), int(img[1, c, c])


def test_mining_records_exactly_the_labelled_pixels_the_model_gets_wrong() -> None:
    src = _scene()
    assert src.mine(None, 5) == 16 + W
    assert set(src.wrong.tolist()) == set(np.flatnonzero(_wrong()).tolist())


def test_mining_in_windows_equals_mining_whole() -> None:
    whole, windows = _scene(), _scene()
    whole.mine(None, 5)
    windows.mine(None, 5, window=16)
    assert np.array_equal(np.sort(whole.wrong), np.sort(windows.wrong))


def test_hard_patches_centre_on_mined_pixels() -> None:
    src = _scene()
    src.mine(None, 5)
    rng = np.random.default_rng(0)
    wrong = _wrong()
    centres = [_centre(src, rng, hard=True) for _ in range(300)]
    assert all(wrong[y, x] for y, x in centres)
    assert any(y == 5 for y, _ in centres) and any(y >= 30 for y, _ in centres)


def test_plain_patches_balance_the_classes_and_ignore_mining() -> None:
    for mined in (False, True):
        src = _scene()
        if mined:
            src.mine(None, 5)
        rng = np.random.default_rng(1)
        labels = src.labels[SIZE:-SIZE, SIZE:-SIZE]
        on_building = [int(labels[_centre(src, rng, hard=False)]) for _ in range(400)]
        assert 0.4 < np.mean(on_building) < 0.6


def test_hard_draw_without_mining_is_a_plain_one() -> None:
    src = _scene()
    rng = np.random.default_rng(2)
    labels = src.labels[SIZE:-SIZE, SIZE:-SIZE]
    on_building = [int(labels[_centre(src, rng, hard=True)]) for _ in range(400)]
    assert 0.4 < np.mean(on_building) < 0.6


def test_a_restyled_patch_takes_the_drawn_band_statistics_and_keeps_its_content() -> None:
    """--restyle: a scene recoloured as another sensor shows it. The scene's own band
    means and spreads go to ones drawn within RESTYLE_MEAN/RESTYLE_STD (raw scale), a
    pixel keeps its place within its band (the mapping is increasing and affine), and
    augmented() recolours only when asked."""
    gen = torch.Generator().manual_seed(0)
    image = 0.5 + 0.8 * torch.randn((3, H, W), generator=gen)  # normalised, off-centre
    src = Source.of("synthetic", image, torch.zeros((H, W), dtype=torch.uint8), True, 1.0)
    assert torch.allclose(src.band_mean, image.flatten(1).mean(1), atol=1e-5)
    norm = (np.array([90.0, 88.0, 85.0]), np.array([42.0, 40.0, 40.0]))
    rng = np.random.default_rng(3)
    seen_means = []
    for _ in range(200):
        out = trunk.restyled(image, src, rng, norm)
        raw = out * torch.tensor(norm[1])[:, None, None].float()
        raw = raw + torch.tensor(norm[0])[:, None, None].float()
        means, stds = raw.flatten(1).mean(1), raw.flatten(1).std(1)
        (lo, hi), (flo, fhi) = trunk.RESTYLE_MEAN
        assert (means >= lo * flo - 1e-3).all() and (means <= hi * fhi + 1e-3).all()
        (lo, hi), (flo, fhi) = trunk.RESTYLE_STD
        assert (stds >= lo * flo - 1e-3).all() and (stds <= hi * fhi + 1e-3).all()
        # the same pixels are the brightest: content kept, colours changed
        assert torch.equal(out[0].argmax(), image[0].argmax())
        seen_means.append(float(means.mean()))
    assert max(seen_means) - min(seen_means) > 60  # a wide range of looks is drawn

    def stream(restyle: float) -> list[torch.Tensor]:
        rng = np.random.default_rng(5)
        return [
            trunk.augmented(src, rng, 1.5, (0.7, 1.4), restyle=restyle, norm=norm)[0]
            for _ in range(3)
        ]

    plain, recoloured = stream(0.0), stream(1.0)
    assert not any(torch.equal(a, b) for a, b in zip(plain, recoloured))


def test_decoloured_patches_are_grey_or_shuffled() -> None:
    """--grey turns a patch's bands into their mean; --band-shuffle reorders them; at 0
    the patch is untouched."""
    img = torch.stack([torch.full((4, 4), v) for v in (1.0, 2.0, 6.0)])
    rng = np.random.default_rng(0)
    assert torch.equal(trunk.decoloured(img, rng, 0.0, 0.0), img)
    grey = trunk.decoloured(img, rng, 1.0, 0.0)
    assert torch.equal(grey, torch.full((3, 4, 4), 3.0))
    orders = {
        tuple(float(b[0, 0]) for b in trunk.decoloured(img, rng, 0.0, 1.0)) for _ in range(40)
    }
    assert orders <= set(itertools.permutations((1.0, 2.0, 6.0)))
    assert len(orders) == 6
