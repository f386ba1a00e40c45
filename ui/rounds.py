"""The correction rounds of the current project: what each fine-tune made, from which
model, how it scored on the user's held-out polygons; the last one can be undone."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    # for a fit that passed the held-out check, or one the partner judged and then dropped
    dropped_fit: Path | None = None  # the networks the flip check dropped, saved beside
    # (finetune.dropped_fit_path); None: no such fit, or the user took it already
    first_model: Path | None = None  # the round's own model file, when the user took its
    # dropped fit instead (``model`` is then the dropped fit's file)
    unguarded: bool = False  # adopted without the flip check: the starting model was as
    # sure on the drawn errors as elsewhere (training/corrections/finetune.flip_check_applies)
    partner_agreement: float | None = None  # nothing could be held out: the share of the
    # fit's changes the partner model agreed with (finetune.partner_agreement)
    partner: str = "general"  # which bundled model that was (FinetuneResult.partner)
    erased: str | None = None  # a fit on one class dropped because it erased this class
    # elsewhere (FinetuneResult.erased, class_kept); None: not so
    fitted_from: str | None = None  # a later round on the image: the model the image's
    # rounds started from, which it was fitted from (FinetuneResult.fitted_from)
    changes: str | None = None  # what the round's first map changed against the map
    # before it ("Its map, against the map of round 1, outside the drawn polygons, 2.1 %
    # of the map changed: ..."); None: no map of the round yet, or nothing to compare

    @property
    def took_dropped_fit(self) -> bool:
        return self.first_model is not None

    def files(self) -> set[Path]:
        """The model files this round made that the project may show maps of."""
        return {self.model} | ({self.first_model} if self.first_model is not None else set())

    def with_dropped_fit(self, name: str) -> Round:
        """The same round with the fit the flip check dropped taken instead (``name``: that
        model's own name)."""
        if self.dropped_fit is None:
            raise ValueError(f"{self.name} has no dropped fit")
        return replace(
            self,
            model=self.dropped_fit,
            name=name,
            adopted=True,
            dropped_fit=None,
            first_model=self.model,
        )

    def describe(self) -> str:
        """Two short lines for the dialog's list, the model's name and how the round did
        (details() is the line's tooltip)."""
        if self.partner_agreement is not None:
            score = (
                f"checked by the {self.partner} model: {100 * self.partner_agreement:.0f} % agree"
            )
        elif self.tuned_score is None or self.base_score is None:
            score = "not checked (too few polygons to hold one out)"
        else:
            score = (
                f"held out: {100 * self.tuned_score:.0f} % right "
                f"(start {100 * self.base_score:.0f} %)"
            )
        if self.took_dropped_fit:
            kept = "dropped fit taken by you"
        elif self.adopted and self.unguarded:
            kept = "fit adopted, check the undrawn map"
        elif self.adopted:
            kept = "fit adopted"
        elif self.erased is not None:
            kept = f"fit dropped: it erased most {self.erased} pixels"
        elif self.flip_ratio is not None:  # passed the held-out check, not the flip check
            kept = "fit dropped: changed too much elsewhere"
        else:
            kept = "fit dropped"
        return f"{self.name}\n{score}, {kept}"

    def details(self) -> str:
        """The whole story of the round, for the line's tooltip."""
        if self.partner_agreement is not None:
            score = (
                "too few polygons to hold one out, so the fit was checked against the bundled "
                f"{self.partner} model: it agrees with {100 * self.partner_agreement:.0f} % of "
                "what the fit changed (at least half is needed)"
                + (
                    ". Look at the map where you did not draw; “Undo round” goes back"
                    if self.adopted
                    else ""
                )
            )
        elif self.tuned_score is None or self.base_score is None:
            score = "not checked (too few polygons to hold one out)"
        else:
            score = (
                f"{100 * self.tuned_score:.0f} % of your held-out polygons right "
                f"({'that' if self.fitted_from else 'the starting'} model: "
                f"{100 * self.base_score:.0f} %)"
            )
        changed = (
            f"changed {self.flip_ratio:.1f} times as much of the starting model's sure map "
            "as you drew"
            if self.flip_ratio is not None
            else ""
        )
        # the networks a round not adopted keeps: a later round's are the last round's
        # (image_start.py), a first round's its starting model's
        base = "the last round's networks" if self.fitted_from else "the starting networks"
        if self.took_dropped_fit:
            what = self._erasure() if self.erased is not None else changed
            kept = (
                f"the fit the checks had dropped ({what}) taken at your request; the "
                f"round's own model, with {base}: {self.first_model}"
            )
        elif self.adopted and self.unguarded:
            kept = (
                "the fitted networks adopted without the check of how much of the starting "
                "model's sure map they change: it was as sure on the errors you drew as on the "
                "rest of the map, so its sure map is no guide here. Look at the map where you "
                "did not draw; “Undo round” goes back"
            )
            if self.flip_ratio is not None:
                kept += f" (the fit {changed})"
        elif self.adopted:
            kept = "the fitted networks adopted"
        elif self.erased is not None or self.flip_ratio is not None:
            why = (
                f"every polygon is of one class and the fit {self._erasure()}"
                if self.erased is not None
                else f"the fit {changed}"
            )
            kept = f"{base} kept ({why}); your polygons are shown"
            if self.dropped_fit is not None:
                kept += (
                    f". The dropped fit is saved as {self.dropped_fit.name}: “Use dropped "
                    "fit” selects it, to look at what it does"
                )
        else:
            kept = f"{base} kept; your polygons are shown"
        start = ""
        if self.fitted_from:  # a later round on the image (image_start.py)
            start = (
                f" (fitted again, on every polygon drawn so far, from {self.fitted_from}, "
                "where this image's rounds started)"
            )
        changes = f"\n{self.changes}" if self.changes else ""
        return (
            f"{self.name}, fine-tuned on {self.image.name} from {self.parent_label()}{start}: "
            f"{score}; {kept}.{changes}\nModel file: {self.model}"
        )

    def _erasure(self) -> str:
        return f"removed nearly all {self.erased} pixels elsewhere in the area you drew in"

    def parent_label(self) -> str:
        return self.parent.name if self.parent is not None else "the bundled model"
