"""Adam as ``torch.optim.Adam`` computes it, without importing ``torch.optim``'s machinery.

Making any ``torch.optim`` optimiser imports ``torch._dynamo`` (its methods are wrapped
to keep the compiler out): 2.0-2.4 s on this 2-core CPU, a tenth of a correction round
that a user waits for (session 50, cProfile of ``map-refiner finetune``). This class runs
the arithmetic of ``torch.optim.Adam``'s single-tensor path, the one CPU tensors take
(no weight decay, AMSGrad or the other options, which the fits here never use), so a
fit on the CPU takes torch's steps bit for bit (tests/test_adam.py). On CUDA torch
takes its multi-tensor path, whose results differ from these by float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class Adam:
    """``torch.optim.Adam(groups, lr, betas, eps)``: ``step`` and ``zero_grad``, with
    ``param_groups`` (each a ``params`` list and an ``lr``) as torch names them."""

    def __init__(
        self,
        groups: Iterable[Any],  # parameters, or dicts of params and lr
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        listed = list(groups)
        if not listed:
            raise ValueError("Adam was given no parameters")
        if not isinstance(listed[0], dict):
            listed = [{"params": listed}]
        self.param_groups: list[dict[str, Any]] = [
            {"params": list(g["params"]), "lr": float(g.get("lr", lr))} for g in listed
        ]
        self.betas, self.eps = betas, eps
        # per parameter: steps taken, first and second moment
        self.state: dict[torch.Tensor, tuple[list[int], torch.Tensor, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                count, exp_avg, exp_avg_sq = self._state_of(p)
                count[0] += 1
                grad = p.grad
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = lr / (1 - beta1 ** count[0])
                bias_correction2_sqrt = (1 - beta2 ** count[0]) ** 0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)

    def _state_of(self, p: torch.Tensor) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        if p not in self.state:
            zeros = torch.zeros_like(p, memory_format=torch.preserve_format)
            self.state[p] = ([0], zeros, zeros.clone())
        return self.state[p]
