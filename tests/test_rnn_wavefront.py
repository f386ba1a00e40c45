"""The cache-friendly CPU inference path of the RNN computes what step() does."""

from __future__ import annotations

import pytest
import torch

from map_refiner.engine.networks.models import RefinementRNN
from map_refiner.engine.networks.rnn_wavefront import iterate_wavefront


def _stepwise(rnn: RefinementRNN, image, heat, iterations):
    """The training path (autograd-friendly ``step``), used as the reference."""
    with torch.enable_grad():
        feats = rnn.image_features(image)
        out = [heat]
        for _ in range(iterations):
            out.append(rnn.step(out[-1], feats))
    return [o.detach() for o in out]


def _trained_like(rnn: RefinementRNN, seed: int) -> RefinementRNN:
    """Non-zero biases everywhere, so a wrong bias path cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in rnn.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return rnn.eval()


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal up to float32 rounding at the tensor's own scale.

    With random weights the heat maps grow to ~1e4 over 9 iterations; the two
    paths sum in other orders, so a pixel near 0 beside pixels near 1e4 can
    differ by ~1e-3 while every relative error stays ~1e-6. An elementwise
    rtol made this test fail on about half of the random draws.
    """
    return bool((got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item()))


@pytest.mark.parametrize("k,specific", [(2, True), (3, True), (3, False), (1, True)])
@pytest.mark.parametrize(
    "h,w,strip", [(37, 53, 64), (10, 7, 8), (5, 41, 41), (2, 3, 1), (64, 16, 200)]
)
def test_wavefront_equals_step(k, specific, h, w, strip):
    rnn = _trained_like(RefinementRNN(3, k, class_specific=specific), seed=k * 100 + h)
    g = torch.Generator().manual_seed(h * w)
    image = torch.randn(2, 3, h, w, generator=g)
    heat = torch.randn(2, k, h, w, generator=g) * 3
    ref = _stepwise(rnn, image, heat, 5)
    got = iterate_wavefront(rnn, image, heat, 5, keep_all=True, strip_pixels=strip)
    assert len(got) == 6
    for t, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape
        assert _close(a, b), f"iteration {t}"
    last = iterate_wavefront(rnn, image, heat, 5, keep_all=False, strip_pixels=strip)
    assert len(last) == 1 and torch.equal(last[0], got[-1])


@pytest.mark.parametrize("iterations", [0, 1, 2, 9])
def test_wavefront_any_iteration_count(iterations):
    """More iterations than strips, fewer, none: the ring of image features holds."""
    rnn = _trained_like(RefinementRNN(3, 2), seed=iterations)
    g = torch.Generator().manual_seed(100 + iterations)
    image, heat = torch.randn(1, 3, 23, 19, generator=g), torch.randn(1, 2, 23, 19, generator=g)
    ref = _stepwise(rnn, image, heat, iterations)
    got = iterate_wavefront(rnn, image, heat, iterations, keep_all=True, strip_pixels=40)
    assert [tuple(g.shape) for g in got] == [tuple(r.shape) for r in ref]
    assert all(_close(a, b) for a, b in zip(got, ref))
    assert torch.equal(got[0], heat)
    # Without the trajectory the levels in between live in rings of 3 strips.
    last = iterate_wavefront(rnn, image, heat, iterations, keep_all=False, strip_pixels=40)
    assert len(last) == 1 and torch.equal(last[0], got[-1])


def test_inference_uses_wavefront_and_leaves_input_alone():
    """Inference on the CPU (the wavefront) gives the step() result, and the
    caller's heat map is not modified."""
    from map_refiner.engine.networks.inference import refine_heat

    rnn = _trained_like(RefinementRNN(3, 2), seed=7)
    g = torch.Generator().manual_seed(8)
    image, heat = torch.randn(1, 3, 40, 44, generator=g), torch.randn(1, 2, 40, 44, generator=g)
    keep = heat.clone()
    with torch.inference_mode():
        out = refine_heat(rnn, image, heat, 5)
    assert torch.equal(heat, keep)
    assert _close(out, _stepwise(rnn, image, heat, 5)[-1])
