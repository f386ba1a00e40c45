"""The CPU inference path of the coarse CNN computes what the plain layers do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from map_refiner.engine.networks.coarse_cpu import coarse_forward_cpu, conv_as_shifted_sums
from map_refiner.engine.networks.inference import coarse_scores
from map_refiner.engine.networks.models import CoarseFCN


@pytest.mark.parametrize(
    "k,size,pad,h,w",
    [(2, 9, 4, 17, 23), (3, 9, 4, 1, 5), (1, 3, 1, 6, 4), (2, 5, 0, 9, 8), (4, 4, 2, 7, 7)],
)
def test_shifted_sums_equal_conv2d(k, size, pad, h, w):
    torch.manual_seed(size * 10 + k)
    conv = nn.Conv2d(16, k, size, padding=pad)
    x = torch.randn(1, 16, h, w)
    with torch.no_grad():
        ref = conv(x)
        for fmt in (torch.contiguous_format, torch.channels_last):
            got = conv_as_shifted_sums(x.contiguous(memory_format=fmt), conv)
            assert got.shape == ref.shape
            assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k", [2, 3])
def test_coarse_cpu_path_equals_layers(k):
    torch.manual_seed(k)
    net = CoarseFCN(3, k).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, 3, 52, 36)  # 13 x 9 after the stride: odd sides
    with torch.enable_grad():
        ref = net(x).detach()  # the plain layers (training path)
    with torch.inference_mode():
        assert torch.equal(net(x), ref)  # forward is the plain layers, with or without autograd
        fast = coarse_scores(net, x)  # dispatches to coarse_forward_cpu
    assert torch.allclose(coarse_forward_cpu(net, x), ref, atol=1e-4, rtol=1e-4)
    assert fast.shape == ref.shape and torch.allclose(fast, ref, atol=1e-4, rtol=1e-4)


def test_class_argmax_matches_torch_argmax():
    from map_refiner.engine.networks.inference import class_argmax

    torch.manual_seed(0)
    for k in (1, 2, 3, 7):
        s = torch.randn(k, 31, 17)
        s[:, 0, :5] = 1.0  # ties: the first class wins, like argmax
        got = class_argmax(s)
        assert got.dtype == torch.uint8
        assert torch.equal(got, s.argmax(0).to(torch.uint8))


def test_under_autocast_the_plain_layers_run_as_on_cuda():
    """bf16 autocast (the CUDA default, emulated on the CPU in the accuracy
    checks) must run the layers CUDA runs, not the shifted sums, whose 81
    additions would accumulate in bf16."""
    torch.manual_seed(5)
    net = CoarseFCN(3, 2).eval()
    x = torch.randn(1, 3, 40, 44, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = coarse_scores(net, x)
        plain = net(x)
    assert got.dtype == torch.bfloat16 and torch.equal(got, plain)
