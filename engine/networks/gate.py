"""A correction round's change gate: its map keeps a change from its parent's map only
where the round's networks are sure of the new class.

A fine-tune on a few polygons changes the map far from them too, and on the bundled
model's own imagery about half of those changes are wrong (the stop check's austin_dev
rounds: 51-52 % of the pixels they changed on the undrawn half are right). The changes a
round is sure of are right more often: on the 86 adopted rounds of session 36, keeping a
change only where the round gives its new class at least 0.7 left 7 rounds below their
start instead of 15 (the worst -1.4 instead of -10.5) and summed +1186.7 points of
building IoU on the undrawn halves instead of +1176.8 (docs/results_corrections.md
"Session 38", dev/corrections/changes_probe.py).

A round whose fit is adopted therefore keeps its parent's networks in its file
(MapRefinerNet.gate_parent, ModelConfig.gate_parent) and a gate (ModelConfig.change_gate):
each tile is refined by both, and where their classes differ the round's scores stand
only where its top probability reaches the gate, the parent's elsewhere. A parent that is
itself a gated round is refined through its own gate, so a chain of rounds costs one
more pass of the networks per round.

A round whose polygons are all of one class (a user who drew only missed roofs) keeps
changes to that class only (ModelConfig.change_to): nothing the user drew showed it
where that class is wrong, so it takes none of it away elsewhere (session 39,
docs/results_corrections.md: a round on never-seen Kampala's four largest errors, all
missed roofs, erased real roofs with the gate's sureness, 44.5 -> 39.3 building IoU on
the undrawn half, 49.8 with the rule; over 251 adopted rounds of sessions 36-39 -5.2
points summed, 23 rounds below their start instead of 24).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..modelfile.config import ModelConfig
from .inference import class_argmax
from .models import MapRefinerNet


@dataclass
class Gate:
    """The parent a round's scores are gated against, and the gate."""

    net: MapRefinerNet  # the parent's networks
    config: ModelConfig  # the parent's configuration, as this raster is fed to it
    at_least: float  # the round's ModelConfig.change_gate
    parent: Gate | None = None  # the parent's own gate (a chain of rounds)
    to_classes: tuple[int, ...] = ()  # the round's ModelConfig.change_to (empty: any)


def gate_chain(
    net: MapRefinerNet,
    config: ModelConfig,
    for_image: Callable[[ModelConfig], ModelConfig],
    device: torch.device | None = None,
) -> Gate | None:
    """The gates of ``net`` and of its parents (None: not a gated round); ``for_image``
    turns a parent's configuration into the one this raster is fed with
    (predict.for_image), ``device`` is where the parents' networks run."""
    parent_config = config.parent_config()  # of the model's grid, bands and classes: validate
    if config.change_gate <= 0 or net.gate_parent is None or parent_config is None:
        return None
    parent = net.gate_parent
    share_trunk(net, parent)
    if device is not None:
        parent.to(device).eval()
    fed = for_image(parent_config)
    return Gate(
        parent,
        fed,
        config.change_gate,
        gate_chain(parent, fed, for_image, device),
        tuple(config.change_to),
    )


def share_trunk(net: MapRefinerNet, parent: MapRefinerNet) -> bool:
    """Make ``parent`` use ``net``'s first three CNN layers where their weights are the
    same (a fit that leaves the trunk frozen, the default head+rnn), so that a tile runs
    them once for both (inference.coarse_scores' memo); whether it did."""
    layers = ("conv1", "conv2", "conv3")
    mine = [getattr(net.coarse, n) for n in layers]
    theirs = [getattr(parent.coarse, n) for n in layers]
    if not all(
        torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
        for a, b in zip(mine, theirs)
    ):
        return False
    for name, layer in zip(layers, mine):
        setattr(parent.coarse, name, layer)
    return True


def gated_result(
    gate: Gate | None,
    scores: torch.Tensor,
    predict: Callable[[MapRefinerNet, ModelConfig], torch.Tensor],
    kept: Callable[[MapRefinerNet, ModelConfig], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """``scores`` (a round's logits on a tile, ``(K, h, w)`` or ``(T, K, h, w)``) with its
    changes from the parent's map kept only where ``gate`` lets them through;
    ``predict(net, config)`` gives a parent's logits on the same tile, ``kept(net,
    config)`` a parent's gated logits a refine before computed (map_cache.py), or None."""
    if gate is None:
        return scores
    parent = kept(gate.net, gate.config) if kept is not None else None
    if parent is None:
        parent = gated_result(gate.parent, predict(gate.net, gate.config), predict, kept)
    return gate_changes(scores, parent.to(scores.device), gate.at_least, gate.to_classes)


def gate_changes(
    scores: torch.Tensor,
    parent: torch.Tensor,
    at_least: float,
    to_classes: Sequence[int] = (),
) -> torch.Tensor:
    """``scores`` where its class is the parent's, or its top softmax probability is at
    least ``at_least`` and (``to_classes`` given) its class one of them; ``parent``
    elsewhere. Both ``(K, h, w)`` or ``(T, K, h, w)``."""
    if scores.shape != parent.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and parent {tuple(parent.shape)} differ")
    if scores.dim() == 4:
        return torch.stack(
            [gate_changes(s, p, at_least, to_classes) for s, p in zip(scores, parent)]
        )
    parent = parent.to(scores.dtype)
    cls = class_argmax(scores)
    sure = top_probability(scores) >= at_least
    if to_classes:
        allowed = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
        allowed[list(to_classes)] = True
        sure &= allowed[cls.long()]
    keep = (cls == class_argmax(parent)) | sure
    return torch.where(keep[None], scores, parent)


def top_probability(scores: torch.Tensor) -> torch.Tensor:
    """The largest softmax probability over the classes of ``(K, h, w)`` logits, class
    by class (torch's reductions over a short leading dimension are slow on the CPU:
    inference.class_argmax)."""
    s = scores.float()
    top = s[0].clone()
    for k in range(1, s.shape[0]):
        torch.maximum(top, s[k], out=top)
    total = torch.zeros_like(top)
    for k in range(s.shape[0]):
        total += torch.exp(s[k] - top)
    return total.reciprocal_()


__all__: Sequence[str] = ["Gate", "gate_chain", "gate_changes", "gated_result", "share_trunk"]
