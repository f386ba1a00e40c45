"""dev/default_model/snap.py --looks: training patches given another imagery's look
(exposure, colour cast, haze, contrast) on the raw 8-bit scale, the rest untouched."""

from __future__ import annotations

import numpy as np
import torch

from map_refiner.dev.default_model.snap import looked

NORM = (np.array([90.0, 88.0, 85.0]), np.array([42.0, 40.0, 40.0]))


def _raw(x: torch.Tensor) -> torch.Tensor:
    return (
        x * torch.tensor(NORM[1]).float()[:, None, None]
        + torch.tensor(NORM[0]).float()[:, None, None]
    )


def _batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand((16, 3, 20, 20), generator=gen) * 200 + 20  # an 8-bit image's range
    mean = torch.tensor(NORM[0]).float()[:, None, None]
    return (raw - mean) / torch.tensor(NORM[1]).float()[:, None, None]


def test_no_share_changes_nothing_and_every_patch_changes_at_full_share() -> None:
    imgs = _batch()
    same = looked(imgs, np.random.default_rng(0), NORM, 0.0)
    assert torch.equal(same, imgs)
    changed = looked(imgs, np.random.default_rng(0), NORM, 1.0)
    assert all(not torch.allclose(changed[i], imgs[i]) for i in range(len(imgs)))
    assert torch.equal(imgs, _batch())  # the input is not changed in place


def test_a_look_stays_an_8_bit_image_and_keeps_the_patch_content() -> None:
    imgs = _batch()
    out = looked(imgs, np.random.default_rng(1), NORM, 1.0)
    for i in range(len(imgs)):
        raw = _raw(out[i])
        assert raw.min() >= -1e-3 and raw.max() <= 255 + 1e-3  # clipped, never wrapped
        # each band is an increasing map of the original (brightest pixel kept unless
        # clipping ties it)
        for b in range(3):
            orig, new = _raw(imgs[i])[b].flatten(), raw[b].flatten()
            order = torch.argsort(orig)
            assert (new[order][1:] - new[order][:-1] >= -1e-3).all()


def test_half_the_patches_take_a_look_on_average() -> None:
    imgs = _batch()
    rng = np.random.default_rng(2)
    changed = 0
    for _ in range(20):
        out = looked(imgs, rng, NORM, 0.5)
        changed += sum(not torch.equal(out[i], imgs[i]) for i in range(len(imgs)))
    assert 0.4 < changed / (20 * len(imgs)) < 0.6
