"""The networks against the paper's section III, and the RNN against a naive version."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from map_refiner.engine.networks.models import (
    CoarseFCN,
    MapRefinerNet,
    RefinementRNN,
    count_parameters,
    pad_to_stride,
    receptive_radius,
)


def conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


@pytest.mark.parametrize("k", [2, 3])
def test_coarse_fcn_parameter_count_matches_paper(k: int) -> None:
    # 64 12x12 stride 4 on RGB -> 128 3x3 -> 128 3x3 -> K 9x9, then deconv K->K 8x8.
    expected = (
        conv_params(3, 64, 12)
        + conv_params(64, 128, 3)
        + conv_params(128, 128, 3)
        + conv_params(128, k, 9)
        + conv_params(k, k, 8)
    )
    assert expected == 27712 + 73856 + 147584 + 10369 * k + 64 * k * k + k
    assert count_parameters(CoarseFCN(3, k)) == expected


@pytest.mark.parametrize("k", [2, 3])
def test_rnn_parameter_count_matches_paper(k: int) -> None:
    m_filters = conv_params(1, 32, 5)  # 32 M_i 5x5 on one heat map, shared by classes
    n_filters = conv_params(3, 32, 5)  # 32 N_j 5x5 on the image
    mlp = (64 * 32 + 32) + (32 * 1 + 1)  # [M*u_k, N*I] -> 32 ReLU -> 1
    assert count_parameters(RefinementRNN(3, k)) == m_filters + n_filters + k * mlp
    agnostic = RefinementRNN(3, k, class_specific=False)
    assert count_parameters(agnostic) == m_filters + n_filters + mlp


@pytest.mark.parametrize("size", [(4, 4), (8, 12), (64, 36), (100, 132)])
def test_coarse_output_has_input_size(size) -> None:
    torch.manual_seed(0)
    net = CoarseFCN(3, 3)
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 3, *size)


def test_pad_to_stride_pads_bottom_right_with_zeros() -> None:
    x = torch.ones(1, 3, 7, 5)
    y = pad_to_stride(x)
    assert y.shape == (1, 3, 8, 8)
    assert torch.equal(y[..., :7, :5], x)
    assert y[..., 7:, :].abs().sum() == 0 and y[..., :, 5:].abs().sum() == 0


def test_upsampling_starts_as_bilinear_interpolation() -> None:
    torch.manual_seed(0)
    net = CoarseFCN(3, 3)
    coarse = torch.randn(1, 3, 10, 9)
    up = net.upsample(coarse)
    ref = F.interpolate(coarse, scale_factor=4, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape == (1, 3, 40, 36)
    # Away from the border (where the deconvolution sees zeros and interpolate clamps).
    torch.testing.assert_close(up[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-6, rtol=0)
    # No mixing between classes.
    w = net.upsample.weight
    off_diag = w.clone()
    for c in range(3):
        off_diag[c, c] = 0
    assert off_diag.abs().sum() == 0


def naive_step(rnn: RefinementRNN, heat: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Eqs. 6-8 literally.

    Per class: concat [M*u_k, N*I] -> Linear(64,32) -> ReLU -> Linear(32,1).
    """
    k_classes = heat.shape[1]
    n_img = rnn.image_conv(image)  # (B, 32, H, W)
    h = rnn.hidden
    out = []
    for k in range(k_classes):
        g = k if rnn.class_specific else 0
        m_u = rnn.heat_conv(heat[:, k : k + 1])  # (B, 32, H, W)
        feats = torch.cat([m_u, n_img], dim=1).permute(0, 2, 3, 1)  # (B, H, W, 64)
        w1 = torch.cat(
            [
                rnn.mlp_heat.weight[g * h : (g + 1) * h, :, 0, 0],
                rnn.mlp_image.weight[g * h : (g + 1) * h, :, 0, 0],
            ],
            dim=1,
        )
        b1 = rnn.mlp_heat.bias[g * h : (g + 1) * h]
        w2 = rnn.mlp_out.weight[g, :, 0, 0]
        b2 = rnn.mlp_out.bias[g]
        delta = F.relu(feats @ w1.T + b1) @ w2 + b2  # (B, H, W)
        out.append(heat[:, k] + delta)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("k,class_specific", [(2, True), (3, True), (3, False)])
def test_rnn_step_equals_naive_per_class_mlp(k: int, class_specific: bool) -> None:
    torch.manual_seed(1)
    rnn = RefinementRNN(3, k, class_specific=class_specific)
    with torch.no_grad():
        for p in rnn.parameters():  # non-zero biases, so a mix-up of biases shows
            p.add_(0.1 * torch.randn_like(p))
        image = torch.randn(2, 3, 13, 11)
        heat = torch.randn(2, k, 13, 11)
        fast = rnn.step(heat, rnn.image_features(image))
        slow = naive_step(rnn, heat, image)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fast, heat, atol=1e-3)  # the update is not trivially zero


def test_class_specific_mlps_differ_per_class() -> None:
    torch.manual_seed(2)
    rnn = RefinementRNN(3, 2)
    heat = torch.randn(1, 1, 9, 9).repeat(1, 2, 1, 1)  # identical maps for both classes
    with torch.no_grad():
        out = rnn.step(heat, rnn.image_features(torch.randn(1, 3, 9, 9)))
    assert not torch.allclose(out[:, 0], out[:, 1], atol=1e-4)
    agnostic = RefinementRNN(3, 2, class_specific=False)
    with torch.no_grad():
        out = agnostic.step(heat, agnostic.image_features(torch.randn(1, 3, 9, 9)))
    torch.testing.assert_close(out[:, 0], out[:, 1])


@pytest.mark.parametrize("iterations", [0, 1, 3, 7])
def test_iterations_set_at_run_time_and_trajectory(iterations: int) -> None:
    torch.manual_seed(3)
    net = MapRefinerNet(3, 3).eval()
    image = torch.randn(1, 3, 24, 20)
    with torch.no_grad():
        heat = net.coarse(image)
        traj = net.rnn.trajectory(image, heat, iterations)
        final = net(image, iterations=iterations)
    assert len(traj) == iterations + 1
    torch.testing.assert_close(traj[0], heat)
    torch.testing.assert_close(traj[-1], final)
    for a, b in zip(traj, traj[1:]):  # each entry is one more step
        torch.testing.assert_close(b, net.rnn.step(a, net.rnn.image_features(image)))


def test_more_iterations_change_the_result() -> None:
    torch.manual_seed(4)
    net = MapRefinerNet(3, 2).eval()
    image = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        outs = [net(image, iterations=t) for t in (0, 1, 5)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


@pytest.mark.parametrize("iterations", [0, 3])
def test_receptive_radius_bounds_the_influence_of_a_pixel(iterations: int) -> None:
    torch.manual_seed(5)
    net = MapRefinerNet(3, 2).eval()
    image = torch.randn(1, 3, 160, 160)
    poked = image.clone()
    poked[..., 81, 78] += 5.0
    with torch.no_grad():
        diff = (net(poked, iterations) - net(image, iterations)).abs().amax(dim=(0, 1))
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    reach = max((ys - 81).abs().max().item(), (xs - 78).abs().max().item())
    assert reach <= receptive_radius(iterations)
    assert reach >= receptive_radius(iterations) - 8  # the bound is not wildly loose


def test_inference_fast_path_equals_autograd_path() -> None:
    """``forward`` is the paper's computation, with or without autograd; inference
    runs other code: on the CPU in float32 the wavefront, elsewhere (CUDA, or
    float64 here) the channels-last path. Both give forward's numbers."""
    from map_refiner.engine.networks.inference import refine_heat, rnn_steps

    torch.manual_seed(3)
    rnn = RefinementRNN(3, 3)
    for p in rnn.parameters():
        torch.nn.init.normal_(p, std=0.1)
    image, heat = torch.randn(2, 3, 40, 36), torch.randn(2, 3, 40, 36)
    slow = rnn(image, heat, 4).detach()
    slow_traj = [t.detach() for t in rnn.trajectory(image, heat, 4)]
    with torch.no_grad():
        assert torch.equal(rnn(image, heat, 4), slow)  # forward does not switch paths
        fast = refine_heat(rnn, image, heat, 4)
        fast_traj = rnn_steps(rnn, image, heat, 4, keep_all=True)
        feats = rnn.image_features(image, channels_last=True)
        cl_traj = rnn.iterate_channels_last(feats, heat, 4, keep_all=True)
        cl_last = rnn.iterate_channels_last(feats, heat, 4, keep_all=False)
        rnn64 = RefinementRNN(3, 3).double()
        rnn64.load_state_dict(rnn.state_dict())
        via_dispatch = refine_heat(rnn64, image.double(), heat.double(), 4)
        agnostic = RefinementRNN(3, 3, class_specific=False)
        plain_agnostic = agnostic(image, heat, 4)
        fast_agnostic = refine_heat(agnostic.double(), image.double(), heat.double(), 4)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert len(fast_traj) == 5 and torch.equal(fast_traj[-1], fast)
    assert torch.equal(fast_traj[0], heat)
    assert len(cl_traj) == 5 and len(cl_last) == 1 and torch.equal(cl_traj[0], heat)
    for got, want in zip(cl_traj, slow_traj):
        assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(cl_last[0], slow, atol=1e-5)
    assert torch.allclose(via_dispatch.float(), slow, atol=1e-5)
    assert torch.allclose(fast_agnostic.float(), plain_agnostic, atol=1e-5)


def test_training_sees_the_autograd_path() -> None:
    """forward keeps gradients whatever the device and dtype; inference has none."""
    from map_refiner.engine.networks.inference import coarse_scores, refine_heat

    torch.manual_seed(4)
    net = MapRefinerNet(3, 2)
    image = torch.randn(1, 3, 16, 16)
    out = net(image, iterations=2)
    assert out.requires_grad and out.grad_fn is not None
    out.sum().backward()
    assert net.rnn.mlp_out.weight.grad is not None and net.coarse.conv1.weight.grad is not None
    heat = coarse_scores(net.coarse, image)
    assert not heat.requires_grad and not refine_heat(net.rnn, image, heat, 2).requires_grad


@pytest.mark.parametrize("iterations, class_specific", [(1, True), (5, True), (3, False)])
def test_forward_within_is_forward_away_from_the_edges(
    iterations: int, class_specific: bool
) -> None:
    """``forward_within`` gives ``forward``'s maps and gradients on the pixels its
    padding never reaches (a fit's patch centres), ``pad`` fewer per side and iteration."""
    torch.manual_seed(6)
    rnn = RefinementRNN(3, 3, class_specific=class_specific).double()  # no float rounding
    for p in rnn.parameters():
        torch.nn.init.normal_(p, std=0.2)
    image, heat = torch.randn(2, 3, 30, 26).double(), torch.randn(2, 3, 30, 26).double()
    m = iterations * rnn.pad
    full = rnn(image, heat, iterations)
    (full[..., m:-m, m:-m] ** 2).sum().backward()
    grads = [p.grad.clone() for p in rnn.parameters()]
    rnn.zero_grad()
    within = rnn.forward_within(image, heat, iterations)
    (within**2).sum().backward()
    assert within.shape == (2, 3, 30 - 2 * m, 26 - 2 * m)
    torch.testing.assert_close(within, full[..., m:-m, m:-m], atol=1e-10, rtol=1e-10)
    for want, p in zip(grads, rnn.parameters()):
        torch.testing.assert_close(p.grad, want, atol=1e-9, rtol=1e-10)
