"""The correction rounds of the current project: what each fine-tune made, from which
model, how it scored on the user's held-out polygons; the last one can be undone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Round:
    model: Path  # the round's model file (kept on disk when the round is undone)
    name: str  # the model's own name: "<image> — round N (K corrections)"
    image: Path
    parent: Path | None  # the model it started from; None: the bundled one
    adopted: bool  # the fitted networks were kept (else only the drawn polygons)
    tuned_score: float | None  # held-out polygons right, the fitted networks
    base_score: float | None  # the same, the starting model
    flip_ratio: float | None = None  # sure pixels the fit changed / drawn share; only
    # measured for a fit that passed the held-out check

    def describe(self) -> str:
        """Two short lines for the dialog's list, the model's name and how the round did
        (details() is the line's tooltip)."""
        if self.tuned_score is None or self.base_score is None:
            score = "not checked (too few polygons to hold one out)"
        else:
            score = (
                f"held out: {100 * self.tuned_score:.0f} % right "
                f"(start {100 * self.base_score:.0f} %)"
            )
        if self.adopted:
            kept = "fit adopted"
        elif self.flip_ratio is not None:  # passed the held-out check, not the flip check
            kept = "fit dropped: changed too much elsewhere"
        else:
            kept = "fit dropped"
        return f"{self.name}\n{score}, {kept}"

    def details(self) -> str:
        """The whole story of the round, for the line's tooltip."""
        if self.tuned_score is None or self.base_score is None:
            score = "not checked (too few polygons to hold one out)"
        else:
            score = (
                f"{100 * self.tuned_score:.0f} % of your held-out polygons right "
                f"(the starting model: {100 * self.base_score:.0f} %)"
            )
        if self.adopted:
            kept = "the fitted networks adopted"
        elif self.flip_ratio is not None:
            kept = (
                "the starting networks kept (the fit changed too much elsewhere); your "
                "polygons are shown"
            )
        else:
            kept = "the starting networks kept; your polygons are shown"
        return (
            f"{self.name}, fine-tuned on {self.image.name} from {self.parent_label()}: "
            f"{score}; {kept}.\nModel file: {self.model}"
        )

    def parent_label(self) -> str:
        return self.parent.name if self.parent is not None else "the bundled model"
