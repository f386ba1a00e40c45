"""training/adam.py takes torch.optim.Adam's steps on the CPU, bit for bit, without
importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import torch

from map_refiner.training.adam import Adam


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))


def test_steps_are_torch_adams_bit_for_bit() -> None:
    ours, theirs = _net(0), _net(0)
    groups = lambda n: [  # noqa: E731
        {"params": list(n[0].parameters()), "lr": 1e-3},
        {"params": list(n[2].parameters()), "lr": 3e-4},
    ]
    a, b = Adam(groups(ours)), torch.optim.Adam(groups(theirs))
    torch.manual_seed(1)
    for step in range(25):
        x = torch.randn(2, 3, 9, 9)
        for net, opt in ((ours, a), (theirs, b)):
            opt.zero_grad(set_to_none=True)
            loss = (net(x) ** 2).mean() + (0.0 if step % 2 else (net(x)[:, 0] ** 3).mean())
            loss.backward()
            if step == 3:  # a parameter without a gradient is left alone, as torch does
                net[2].bias.grad = None
            opt.step()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(p, q), step
    assert any(p.grad is not None for p in ours.parameters())
    a.zero_grad()
    assert all(p.grad is None for p in ours.parameters())


def test_a_step_does_not_import_the_compiler() -> None:
    code = (
        "import sys, torch\n"
        "from map_refiner.training.adam import Adam\n"
        "w = torch.nn.Parameter(torch.ones(3))\n"
        "opt = Adam([w], lr=0.1)\n"
        "(w ** 2).sum().backward(); opt.step()\n"
        "assert float(w[0]) < 1.0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
