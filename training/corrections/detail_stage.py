"""The fine-tune's detail stage: the detail RNN fitted to the drawn polygons on the fine
grid, after the model grid's networks (fit.py) are settled.

On imagery finer than the model's grid a refine ends with the detail RNN's iterations
(predict.detail_scores), so the map the user sees is the detail RNN's. Fitted on the
model grid only, a fine-tune's learning can be overruled there: on the Nepal drone
scene 4 drawn polygons took the model grid's map of the undrawn half from 55.1 to 58.7
building IoU, and the detail pass then took it to 56.0, below the 58.6 the starting
model showed (docs/results_corrections.md, "Session 12"). This stage learns as the model
grid's fit does, on what the refine hands the detail RNN:

* **inputs**: the settled networks' scores over the correction window, upsampled onto
  each polygon's crop of the fine grid (fine_data.py), and the image read there;
* **targets**: the drawn classes on the fine grid (each drawn class weighs alike), and
  anchors where the *starting* model's final map (its networks and its detail RNN) was
  at least the round's anchor confidence sure, outside the polygons, at the fit's
  anchor weight: away from the corrections the detail pass keeps doing what it did;
* **output** as a refine makes it: where the model grid's map is DETAIL_KEEPS_SURE sure
  its scores stay (predict.keep_sure), so only the unsure pixels are learnt;
* **held-out polygons** (the fit's own split): every ``eval_every`` steps the final map
  is scored on them, the best state kept; the fitted detail RNN is adopted only when it
  gets more of them right than the starting detail RNN does on the same maps and clears
  ADOPT_AT_LEAST, then it learns from every polygon for REFIT_SHARE of its best step
  count. Otherwise the starting detail RNN stays.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ...engine.networks.models import RefinementRNN
from ...engine.progress import Reporter
from ...engine.refine.predict import DETAIL_KEEPS_SURE, keep_sure
from ...engine.refine.resample import resample_window
from ..adam import Adam
from ..detail_fit import context
from ..tile import IGNORE
from .fine_data import FineCorrections
from .fit import FitParams
from .holdout import ADOPT_AT_LEAST, REFIT_SHARE, balanced_accuracy

#: Fine pixels a side of the patches the detail stage learns on (plus the RNN's context).
PATCH = 96


@dataclass
class DetailOutcome:
    adopted: bool
    base_score: float  # held-out fine pixels right, the starting detail RNN (balanced)
    tuned_score: float | None  # the same, the best fitted state
    steps: int  # the held-out phase's best step, then also the refit's
    seconds: float


class DetailFit:
    """The starting detail RNN, the fine crops, and what its fit learns from."""

    def __init__(
        self,
        rnn: RefinementRNN,
        fine: FineCorrections,
        base_window: torch.Tensor,
        params: FitParams,
        anchor_confidence: float,
        device: torch.device,
    ) -> None:
        """``rnn``: the starting detail RNN (copied; the fit changes ``self.rnn``).
        ``base_window``: the starting networks' model-grid scores over the correction
        window ``(K, h, w)``; with ``rnn`` they give the map the user saw, whose sure
        pixels anchor the fit."""
        self.params, self.device = params, device
        self.iterations = fine.detail.iterations
        self.crops = fine.crops
        self.c = context(self.iterations)
        self.base_rnn = copy.deepcopy(rnn).to(device).eval()
        self.rnn = copy.deepcopy(rnn).to(device).eval()
        self.rng = np.random.default_rng(params.seed)
        self.images = [c.image.to(device) for c in self.crops]
        self.labels = [c.labels for c in self.crops]
        self.anchor: list[torch.Tensor] = []
        self.anchor_class: list[torch.Tensor] = []
        for img, start, crop in zip(self.images, self._starts(base_window), self.crops):
            scores = self._final(self.base_rnn, img, start)
            prob = torch.softmax(scores, 0).cpu()
            sure = (prob.max(0).values >= anchor_confidence) & (crop.labels == IGNORE)
            self.anchor.append(self._inside(sure))
            self.anchor_class.append(prob.argmax(0))
        self.starts: list[torch.Tensor] = []

    # -- maps ------------------------------------------------------------------------
    def _starts(self, window_scores: torch.Tensor) -> list[torch.Tensor]:
        """The model grid's scores upsampled onto each crop, as a refine hands them over."""
        w = window_scores.detach().float().cpu()
        return [resample_window(w, c.rows, c.cols).to(self.device) for c in self.crops]

    def _final(self, rnn: RefinementRNN, img: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = rnn(img[None], start[None], self.iterations)[0]
        return keep_sure(start, out, DETAIL_KEEPS_SURE)

    def _inside(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` without the crop's outer ring, where the RNN's context is cut."""
        out = torch.zeros_like(mask)
        c = self.c
        out[c:-c, c:-c] = mask[c:-c, c:-c]
        return out

    def set_starts(self, window_scores: torch.Tensor) -> None:
        """The settled networks' model-grid scores over the correction window."""
        self.starts = self._starts(window_scores)

    def score(self, rnn: RefinementRNN, held: list[int]) -> float:
        """Balanced accuracy of the final map on the held-out polygons' fine pixels."""
        preds, labs = [], []
        for img, start, crop in zip(self.images, self.starts, self.crops):
            mask = torch.isin(crop.features, torch.tensor(held, dtype=torch.long)) & (
                crop.labels != IGNORE
            )
            if not bool(mask.any()):
                continue
            preds.append(self._final(rnn, img, start).argmax(0).cpu()[mask])
            labs.append(crop.labels[mask])
        if not preds:
            return 0.0
        lab = torch.cat(labs)
        return balanced_accuracy(torch.cat(preds), lab, torch.ones_like(lab, dtype=torch.bool))

    # -- training --------------------------------------------------------------------
    def _targets(self, held: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per crop, target and weight: drawn pixels (not held out) balanced by class,
        anchors at the fit's anchor weight."""
        drawn = [
            self._inside(
                (c.labels != IGNORE) & ~torch.isin(c.features, torch.tensor(held, dtype=torch.long))
            )
            for c in self.crops
        ]
        counts: dict[int, int] = {}
        for d, lab in zip(drawn, self.labels):
            for cls, n in zip(*torch.unique(lab[d], return_counts=True)):
                counts[int(cls)] = counts.get(int(cls), 0) + int(n)
        total = sum(counts.values())
        tgts, weights = [], []
        for d, lab, anchor, ac in zip(drawn, self.labels, self.anchor, self.anchor_class):
            anchor = anchor & ~d
            tgt = torch.where(d, lab, torch.where(anchor, ac, torch.zeros_like(lab)))
            weight = self.params.anchor_weight * anchor.float()
            for cls, n in counts.items():
                sel = d & (lab == cls)
                weight[sel] = total / (len(counts) * n) if self.params.balance else 1.0
            tgts.append(tgt)
            weights.append(weight)
        return tgts, weights

    def _pools(
        self, tgts: list[torch.Tensor], weights: list[torch.Tensor]
    ) -> list[list[tuple[int, int, int]]]:
        """Where patches are centred, as (crop, row, column): the drawn pixels of each
        class, then (last) the pixels the fit learns from, drawn or anchored (at most
        about 4096 a crop)."""
        classes: dict[int, list[tuple[int, int, int]]] = {}
        area: list[tuple[int, int, int]] = []
        for i, (t, w) in enumerate(zip(tgts, weights)):
            for y, x in np.argwhere((w > 0).numpy())[:: max(1, int((w > 0).sum()) // 4096)]:
                area.append((i, int(y), int(x)))
            drawn = (w > 0) & (self.labels[i] != IGNORE)
            for cls in torch.unique(t[drawn]).tolist():
                sel = np.argwhere((drawn & (t == cls)).numpy())
                classes.setdefault(int(cls), []).extend((i, int(y), int(x)) for y, x in sel)
        return list(classes.values()) + [area]

    def _batch(
        self,
        tgts: list[torch.Tensor],
        weights: list[torch.Tensor],
        pools: list[list[tuple[int, int, int]]],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches centred half on drawn pixels (each class as often), half anywhere the
        fit learns."""
        p, c, rng = PATCH, self.c, self.rng
        side = p + 2 * c
        by_class, area = pools[:-1], pools[-1]
        imgs, heats, ts, ws = [], [], [], []
        for b in range(self.params.batch_size):
            pool = by_class[rng.integers(len(by_class))] if (b % 2 == 0 and by_class) else area
            i, cy, cx = pool[rng.integers(len(pool))]
            h, w = self.labels[i].shape
            jy, jx = rng.integers(-p // 4, p // 4 + 1, size=2)
            y0 = int(np.clip(cy - p // 2 + jy, -p // 2, h - p // 2))
            x0 = int(np.clip(cx - p // 2 + jx, -p // 2, w - p // 2))
            imgs.append(_cut(self.images[i], y0 - c, x0 - c, side))
            heats.append(_cut(self.starts[i], y0 - c, x0 - c, side))
            ts.append(_cut(tgts[i][None], y0, x0, p)[0])
            ws.append(_cut(weights[i][None], y0, x0, p)[0])
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        out = [torch.rot90(torch.stack(v), k, (-2, -1)) for v in (imgs, heats, ts, ws)]
        if flip:
            out = [v.flip(-1) for v in out]
        return out[0], out[1], out[2].to(self.device), out[3].to(self.device)

    def fit(
        self, held: list[int], steps: int, rep: Reporter, evaluate: bool = True
    ) -> tuple[dict[str, torch.Tensor], float | None, int, list[float]]:
        """``steps`` Adam steps on the drawn pixels not in ``held`` and the anchors; with
        ``evaluate``, the best state on the held-out polygons, its score and step."""
        tgts, weights = self._targets(held)
        pools = self._pools(tgts, weights)
        for q in self.rnn.parameters():
            q.requires_grad_(True)
        opt = Adam(self.rnn.parameters(), lr=self.params.detail_lr)
        best_state, best_score, best_step = copy.deepcopy(self.rnn.state_dict()), None, 0
        losses: list[float] = []
        c, p = self.c, PATCH
        for step in range(1, steps + 1):
            rep.check()
            self.rnn.train()
            img, heat, t, w = self._batch(tgts, weights, pools)
            out = self.rnn(img, heat, self.iterations)[:, :, c : c + p, c : c + p]
            start = heat[:, :, c : c + p, c : c + p]  # keep_sure wants the classes first
            out = keep_sure(start.transpose(0, 1), out.transpose(0, 1), DETAIL_KEEPS_SURE)
            out = out.transpose(0, 1)
            ce = F.cross_entropy(out, t, reduction="none")
            loss = (ce * w).sum() / w.sum().clamp(min=1e-6)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.rnn.parameters(), self.params.clip)
            opt.step()
            losses.append(float(loss.detach()))
            rep.report(step / steps)
            if evaluate and (step % self.params.eval_every == 0 or step == steps):
                self.rnn.eval()
                s = self.score(self.rnn, held)
                if best_score is None or s > best_score:
                    best_state, best_score, best_step = (
                        copy.deepcopy(self.rnn.state_dict()),
                        s,
                        step,
                    )
        self.rnn.eval()
        for q in self.rnn.parameters():
            q.requires_grad_(False)
        if not evaluate:
            best_state, best_step = copy.deepcopy(self.rnn.state_dict()), steps
        return best_state, best_score, best_step, losses


def _cut(t: torch.Tensor, y0: int, x0: int, side: int) -> torch.Tensor:
    """``t[:, y0:y0+side, x0:x0+side]`` with zeros where it leaves ``t``."""
    _, h, w = t.shape
    out = torch.zeros((t.shape[0], side, side), dtype=t.dtype, device=t.device)
    ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
    if ya < yb and xa < xb:
        out[:, ya - y0 : yb - y0, xa - x0 : xb - x0] = t[:, ya:yb, xa:xb]
    return out


def held_out_phase(
    stage: DetailFit, window_scores: torch.Tensor, held: list[int], steps: int, rep: Reporter
) -> DetailOutcome:
    """Fit the detail RNN, without the held-out polygons, on the maps of the networks the
    model grid's held-out phase settled on (``window_scores``: they never saw those
    polygons either); adopted when it beats the starting detail RNN on them and clears
    ADOPT_AT_LEAST. The best state stays in ``stage.rnn`` when adopted, else the start."""
    t0 = time.perf_counter()
    stage.set_starts(window_scores)
    base_score = stage.score(stage.base_rnn, held)
    state, tuned, best_step, _ = stage.fit(held, steps, rep)
    adopted = tuned is not None and tuned > base_score and tuned > ADOPT_AT_LEAST
    stage.rnn.load_state_dict(state if adopted else stage.base_rnn.state_dict())
    return DetailOutcome(adopted, base_score, tuned, best_step, time.perf_counter() - t0)


def refit(
    stage: DetailFit, outcome: DetailOutcome, window_scores: torch.Tensor, rep: Reporter
) -> None:
    """An adopted detail RNN learns from every polygon for REFIT_SHARE of its best step
    count, on the maps of the networks the model file keeps (``window_scores``)."""
    t0 = time.perf_counter()
    stage.set_starts(window_scores)
    more = max(1, int(round(REFIT_SHARE * outcome.steps)))
    stage.fit([], more, rep, evaluate=False)
    outcome.steps += more
    outcome.seconds += time.perf_counter() - t0
