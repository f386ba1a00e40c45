"""The two networks of Maggiori et al. 2017, section III, as plain nn.Modules.

* :class:`CoarseFCN`: a fully convolutional version of Mnih's network:
  64 12x12 stride-4 filters -> 128 3x3 -> 128 3x3 -> K 9x9, ReLU between,
  then a learned x4 upsampling (transposed convolution) back to the input grid.
* :class:`RefinementRNN`: the learned PDE-like update (eqs. 6-8). 32 5x5
  filters ``M_i`` applied to every class heat map (shared by the classes),
  32 5x5 filters ``N_j`` applied to the image once, and one MLP per class
  (32 hidden ReLU units, linear output) giving ``delta u_k`` which is added to
  ``u_k``. The same weights are used at every iteration (unrolled T times).

Shapes: images are ``(B, C, H, W)`` normalised floats, heat maps are
``(B, K, H, W)`` unnormalised class scores (softmax gives probabilities).
``H`` and ``W`` must be multiples of 4 for the coarse network.

``forward`` is the paper's computation, with autograd, on any device: what
training calls. Inference goes through :mod:`.inference`, which picks the
CPU and GPU paths that compute the same numbers faster.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Border (in pixels at the model's resolution) that influences an output pixel.
COARSE_RECEPTIVE_RADIUS = 36
#: Each RNN iteration widens the receptive field by the 5x5 heat-map filters.
RNN_RADIUS_PER_ITERATION = 2
#: The coarse network's output grid is aligned to multiples of its stride.
COARSE_STRIDE = 4


class CoarseFCN(nn.Module):
    """Mnih-style fully convolutional network with learned x4 upsampling."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=12, stride=4, padding=4)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(128, 128, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(128, num_classes, kernel_size=9, padding=4)
        # x4 learned upsampling; kernel 8 / stride 4 / padding 2 gives exactly
        # 4x the size, centred on the stride-4 lattice of conv1.
        self.upsample = nn.ConvTranspose2d(
            num_classes, num_classes, kernel_size=8, stride=4, padding=2
        )
        self._init_upsample_bilinear()

    def _init_upsample_bilinear(self) -> None:
        """Start the learned upsampling as bilinear interpolation (as FCN does)."""
        k = self.upsample.kernel_size[0]
        factor = (k + 1) // 2
        center = factor - 0.5 if k % 2 == 0 else factor - 1
        og = torch.arange(k, dtype=torch.float32)
        filt1d = 1 - torch.abs(og - center) / factor
        filt = filt1d[:, None] * filt1d[None, :]
        with torch.no_grad():
            self.upsample.weight.zero_()
            for c in range(self.upsample.in_channels):
                self.upsample.weight[c, c] = filt
            _bias(self.upsample).zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(image))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = self.conv4(x)
        return self.upsample(x)


class RefinementRNN(nn.Module):
    """Iterative heat-map refinement guided by the image (eqs. 6-8).

    The per-class MLP's first layer reads the concatenation ``[M * u_k, N * I]``;
    it is stored as two 1x1 convolutions (heat part, grouped by class, and image
    part) whose sum is exactly that layer. The image part does not depend on the
    iteration, so it is computed once per forward pass, as the paper notes.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        heat_filters: int = 32,
        image_filters: int = 32,
        hidden: int = 32,
        filter_size: int = 5,
        class_specific: bool = True,
    ) -> None:
        super().__init__()
        pad = filter_size // 2
        #: Replicate padding of the heat-map and image filters: a map keeps its size.
        self.pad = pad
        self.num_classes = num_classes
        self.heat_filters = heat_filters
        self.hidden = hidden
        self.class_specific = class_specific
        # M_i: one single-channel filter bank applied to every class map.
        self.heat_conv = nn.Conv2d(
            1, heat_filters, filter_size, padding=pad, padding_mode="replicate"
        )
        # N_j: applied to the image once; independent of the iteration.
        self.image_conv = nn.Conv2d(
            in_channels, image_filters, filter_size, padding=pad, padding_mode="replicate"
        )
        # One MLP per class (or one shared MLP): hidden = relu(A_k (M*u_k) + B_k (N*I) + b_k),
        # delta u_k = c_k . hidden + d_k. Run for all classes at once as grouped 1x1 convs.
        groups = num_classes if class_specific else 1
        self.mlp_heat = nn.Conv2d(heat_filters * groups, hidden * groups, 1, groups=groups)
        self.mlp_image = nn.Conv2d(image_filters, hidden * groups, 1, bias=False)
        self.mlp_out = nn.Conv2d(hidden * groups, groups, 1, groups=groups)
        self._init_weights()

    def _init_weights(self) -> None:
        """Glorot initialisation, as the paper ([32]); zero biases."""
        for conv in (self.heat_conv, self.image_conv):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(_bias(conv))
        # The MLP's first layer has fan-in heat_filters + image_filters.
        fan_in = self.mlp_heat.in_channels // self.mlp_heat.groups + self.mlp_image.in_channels
        bound = (6.0 / (fan_in + self.hidden)) ** 0.5
        for conv in (self.mlp_heat, self.mlp_image):
            nn.init.uniform_(conv.weight, -bound, bound)
        nn.init.zeros_(_bias(self.mlp_heat))
        nn.init.xavier_uniform_(self.mlp_out.weight)
        nn.init.zeros_(_bias(self.mlp_out))

    def image_features(self, image: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """``B (N * I + n)``: the image filters mapped into the MLPs' hidden layer.

        Computed once per image (it does not depend on the iteration), as one
        5x5 convolution whose weights compose ``N`` with the MLPs' image part.
        ``channels_last``: the image in the memory layout inference runs in.
        """
        weight, bias = self.fused_image_filters()
        pad = self.pad
        padded = F.pad(image, (pad, pad, pad, pad), mode="replicate")
        if channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)
        return F.conv2d(padded, weight, bias)

    def fused_image_filters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``B N``: the image filters composed with the MLPs' image weights,
        ``(G*H, C, 5, 5)`` and bias ``(G*H,)``."""
        b = self.mlp_image.weight[:, :, 0, 0]  # (G*H, F)
        weight = torch.einsum("of,fcxy->ocxy", b, self.image_conv.weight)
        return weight, b @ _bias(self.image_conv)

    def fused_heat_filters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``A_k M``: the heat filters composed with the MLPs' heat weights.

        ``A_k (M * u + m) + a_k = (A_k M) * u + (A_k m + a_k)``: one 5x5
        convolution per class replaces the 32 shared filters followed by a 1x1
        layer. Same function and parameters, about half the work.
        """
        groups = self.mlp_heat.groups
        m = self.heat_conv.weight[:, 0]  # (F, 5, 5)
        a = self.mlp_heat.weight.reshape(groups, self.hidden, self.heat_filters)
        weight = torch.einsum("goi,ixy->goxy", a, m).reshape(groups * self.hidden, 1, *m.shape[1:])
        bias = _bias(self.mlp_heat) + (a @ _bias(self.heat_conv)).reshape(-1)
        return weight, bias

    def step(self, heat: torch.Tensor, image_hidden: torch.Tensor) -> torch.Tensor:
        """One iteration: ``u_{t+1} = u_t + f_k(M * u_t, N * I)``."""
        pad = self.pad
        return heat + self._delta(F.pad(heat, (pad, pad, pad, pad), mode="replicate"), image_hidden)

    def _delta(self, padded: torch.Tensor, image_hidden: torch.Tensor) -> torch.Tensor:
        """``f_k(M * u, N * I)`` on the pixels ``pad`` inside ``padded``'s edges (the 5x5
        filters unpadded); ``image_hidden`` is :meth:`image_features` on those pixels."""
        b, k, hp, wp = padded.shape
        h, w = hp - 2 * self.pad, wp - 2 * self.pad
        weight, bias = self.fused_heat_filters()
        if self.class_specific:
            hidden = F.relu(F.conv2d(padded, weight, bias, groups=k) + image_hidden)
        else:
            hidden = F.conv2d(padded.reshape(b * k, 1, hp, wp), weight, bias)
            hidden = F.relu(hidden.reshape(b, k, self.hidden, h, w) + image_hidden.unsqueeze(1))
        # mlp_out as one matrix product per class: oneDNN's grouped 1x1 convolution
        # takes twice as long, its backward pass up to 15 ms a batch of 64 x 64 patches
        # (session 50); the same sums.
        groups = self.mlp_out.out_channels
        out = torch.matmul(
            self.mlp_out.weight.view(groups, 1, self.hidden),
            hidden.reshape(b, k, self.hidden, h * w),
        )
        return (out + _bias(self.mlp_out).view(groups, 1, 1)).view(b, k, h, w)

    def forward_within(
        self, image: torch.Tensor, heat: torch.Tensor, iterations: int
    ) -> torch.Tensor:
        """``u_T`` on the pixels the map's edges never reach: ``pad`` pixels fewer on each
        side per iteration (``(B, K, H - 2 T pad, W - 2 T pad)``).

        Each 5x5 filter runs unpadded, so an iteration computes only what the next one
        reads. The values equal :meth:`forward`'s there (up to float rounding): its
        replicate padding changes the pixels within ``pad`` of the edge at each
        iteration, and the change spreads ``pad`` further inward per iteration, which is
        what this leaves out. A fit scores only a patch's centre (training/corrections/
        fit.py), and this spends 39 % less work on its 48 px patches.
        """
        weight, bias = self.fused_image_filters()
        feats = F.conv2d(image, weight, bias)
        pad = self.pad
        for t in range(iterations):
            f = feats[..., t * pad : feats.shape[-2] - t * pad, t * pad : feats.shape[-1] - t * pad]
            heat = heat[..., pad:-pad, pad:-pad] + self._delta(heat, f)
        return heat

    def reference_step(self, heat: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The paper's iteration written out literally (for tests): per class,
        ``f_k([M * u_k, N * I])`` with ``f_k`` a 64-32-1 MLP."""
        b, k, h, w = heat.shape
        feats_img = self.image_conv(image)
        out = []
        for c in range(k):
            g = c if self.class_specific else 0
            phi = torch.cat([self.heat_conv(heat[:, c : c + 1]), feats_img], dim=1)
            w1 = torch.cat(
                [
                    self.mlp_heat.weight[g * self.hidden : (g + 1) * self.hidden],
                    self.mlp_image.weight[g * self.hidden : (g + 1) * self.hidden],
                ],
                dim=1,
            )
            b1 = _bias(self.mlp_heat)[g * self.hidden : (g + 1) * self.hidden]
            hid = F.relu(F.conv2d(phi, w1, b1))
            w2 = self.mlp_out.weight[g : g + 1]
            b2 = _bias(self.mlp_out)[g : g + 1]
            out.append(heat[:, c : c + 1] + F.conv2d(hid, w2, b2))
        return torch.cat(out, dim=1)

    def iterate_channels_last(
        self, feats: torch.Tensor, heat: torch.Tensor, iterations: int, keep_all: bool
    ) -> list[torch.Tensor]:
        """GPU inference (class-specific MLPs, no autograd): the arithmetic of
        :meth:`step` in channels-last memory with in-place activation.

        ``feats`` are :meth:`image_features`; engine/networks/inference.py calls it
        on a GPU, and CPU tests check it (tests/test_models.py).
        """
        cl = torch.channels_last
        weight, bias = self.fused_heat_filters()
        weight = weight.contiguous(memory_format=cl)
        out_weight = self.mlp_out.weight.contiguous(memory_format=cl)
        feats = feats.contiguous(memory_format=cl)
        pad, k = self.pad, heat.shape[1]
        out = [heat]
        for _ in range(iterations):
            padded = F.pad(heat, (pad, pad, pad, pad), mode="replicate").contiguous(
                memory_format=cl
            )
            hidden = F.conv2d(padded, weight, bias, groups=k)
            hidden.add_(feats).relu_()
            delta = F.conv2d(hidden, out_weight, self.mlp_out.bias, groups=k)
            heat = (heat + delta).contiguous()
            if keep_all:
                out.append(heat)
        return out if keep_all else [heat]

    def forward(self, image: torch.Tensor, heat: torch.Tensor, iterations: int = 5) -> torch.Tensor:
        """``u_T``: ``iterations`` steps from the heat maps ``u_0``."""
        return self.trajectory(image, heat, iterations)[-1]

    def trajectory(
        self, image: torch.Tensor, heat: torch.Tensor, iterations: int
    ) -> list[torch.Tensor]:
        """Heat maps at iterations 0..``iterations`` (for plots and training)."""
        feats = self.image_features(image)
        out = [heat]
        for _ in range(iterations):
            heat = self.step(heat, feats)
            out.append(heat)
        return out


class UnsharedRefinement(nn.Module):
    """Ablation of the paper: each iteration has its own weights (not recurrent)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, iterations: int = 5) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            RefinementRNN(in_channels, num_classes) for _ in range(iterations)
        )

    def forward(self, image: torch.Tensor, heat: torch.Tensor, iterations: int = 5) -> torch.Tensor:
        if iterations > len(self.stages):
            raise ValueError(f"this variant has only {len(self.stages)} trained stages")
        for stage in self.stages[:iterations]:
            assert isinstance(stage, RefinementRNN)
            heat = stage.step(heat, stage.image_features(image))
        return heat


class MapRefinerNet(nn.Module):
    """Coarse CNN followed by the refinement RNN; the unit a model file holds. With
    ``detail``, a second RNN of the same shape, trained on a grid finer than the
    model's, runs the detail iterations (engine/refine/predict.detail_scores)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        class_specific: bool = True,
        detail: bool = False,
    ) -> None:
        super().__init__()
        self.coarse = CoarseFCN(in_channels, num_classes)
        self.rnn = RefinementRNN(in_channels, num_classes, class_specific=class_specific)
        self.detail_rnn: RefinementRNN | None = (
            RefinementRNN(in_channels, num_classes, class_specific=class_specific)
            if detail
            else None
        )
        # A correction round's parent, whose map the round's changes are gated against
        # (ModelConfig.change_gate, engine/networks/gate.py); None: no gate.
        self.gate_parent: MapRefinerNet | None = None

    @property
    def fine_rnn(self) -> RefinementRNN:
        """The RNN for the detail grid: the detail RNN when the model has one."""
        return self.detail_rnn if self.detail_rnn is not None else self.rnn

    def forward(self, image: torch.Tensor, iterations: int = 5) -> torch.Tensor:
        return self.rnn(image, self.coarse(image), iterations)


def _bias(layer: nn.Conv2d | nn.ConvTranspose2d) -> torch.Tensor:
    """The layer's bias; every layer built here has one except ``mlp_image``."""
    if layer.bias is None:
        raise ValueError(f"{layer} has no bias")
    return layer.bias


def pad_to_stride(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad (the normalised mean) the bottom/right edge to a multiple of the stride."""
    h, w = x.shape[-2:]
    ph = (-h) % COARSE_STRIDE
    pw = (-w) % COARSE_STRIDE
    return F.pad(x, (0, pw, 0, ph)) if (ph or pw) else x


def receptive_radius(iterations: int) -> int:
    """Pixels of context, at model resolution, that an output pixel depends on."""
    return COARSE_RECEPTIVE_RADIUS + RNN_RADIUS_PER_ITERATION * (iterations + 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
