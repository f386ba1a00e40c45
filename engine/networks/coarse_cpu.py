"""CPU inference for the coarse CNN: channels-last memory, and the last layer
(128 -> K channels, 9x9) as one matrix multiply plus shifted sums.

oneDNN runs a convolution with only K (2 or 3) output channels and a 9x9
kernel far below the machine's matrix-multiply rate. Written as ``Z = W' X``
(all 81 kernel offsets x K outputs at once: one large, efficient GEMM over the
128 input channels) followed by 81 shifted additions of K-channel planes, the
same layer takes a fraction of the time (figures: docs/benchmarks.md). Same
arithmetic up to float rounding (tests/test_coarse_cpu.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from .models import CoarseFCN


def conv_as_shifted_sums(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a stride-1, zero-padded, ungrouped ``conv`` with few outputs.

    ``x`` is (1, C, H, W); channels-last memory avoids a copy.
    """
    if isinstance(conv.padding, str) or conv.bias is None:
        raise ValueError("conv_as_shifted_sums needs numeric padding and a bias")
    weight = conv.weight
    k, cin, kh, kw = weight.shape
    ph, pw = conv.padding
    _, _, h, w = x.shape
    flat = x[0].permute(1, 2, 0).reshape(h * w, cin)
    z = torch.mm(weight.permute(2, 3, 0, 1).reshape(kh * kw * k, cin), flat.t())
    z = z.view(kh, kw, k, h, w)
    # Input pixel (y, x) seen through kernel offset (dy, dx) lands on output
    # (y - dy + ph, x - dx + pw); ``acc`` is the output grown by the kernel's reach.
    acc = torch.zeros(k, h + kh - 1, w + kw - 1, dtype=x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            acc[:, kh - 1 - dy : kh - 1 - dy + h, kw - 1 - dx : kw - 1 - dx + w] += z[dy, dx]
    oh, ow = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    out = acc[:, kh - 1 - ph : kh - 1 - ph + oh, kw - 1 - pw : kw - 1 - pw + ow]
    return (out + conv.bias.view(k, 1, 1)).unsqueeze(0)


@torch.no_grad()
def coarse_forward_cpu(net: CoarseFCN, image: torch.Tensor) -> torch.Tensor:
    """``CoarseFCN.forward`` for inference on the CPU, one image at a time."""
    return coarse_head_cpu(net, coarse_trunk_cpu(net, image))


@torch.no_grad()
def coarse_trunk_cpu(net: CoarseFCN, image: torch.Tensor) -> list[torch.Tensor]:
    """The first three layers' features of each image (channels-last), which a
    correction round and its parents share when their trunks are one
    (engine/networks/gate.py)."""
    outs = []
    for one in image.split(1):
        x = one.contiguous(memory_format=torch.channels_last)
        # In-place ReLU: no fresh 64/128-channel maps to allocate and fault in.
        x = net.conv1(x).relu_()
        x = net.conv2(x).relu_()
        outs.append(net.conv3(x).relu_())
    return outs


@torch.no_grad()
def coarse_head_cpu(net: CoarseFCN, features: list[torch.Tensor]) -> torch.Tensor:
    """The last layer and the x4 upsampling on :func:`coarse_trunk_cpu`'s features (read,
    not changed)."""
    outs = []
    for feats in features:
        x = conv_as_shifted_sums(feats, net.conv4)
        # The transposed convolution is much faster on channels-last input, and
        # much slower when a side is odd: pad with zeros (which add nothing to
        # any output) to even sides, then crop back to 4x the size.
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2)).contiguous(memory_format=torch.channels_last)
        up = net.upsample(x)[..., : 4 * h, : 4 * w]
        outs.append(up.contiguous())
    return torch.cat(outs)
