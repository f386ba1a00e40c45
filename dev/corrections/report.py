"""docs/results_corrections.md from the study's rows (every number comes from them).

python -m map_refiner.dev.corrections.report [--rows out/corrections/rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from ...training.corrections.finetune import (
    FLIP_PER_SCORE,
    FLIP_SURE_RATIO,
    flip_allowance,
    partner_flip_drops,
)
from ...training.corrections.fit import CPU_STEPS, GPU_STEPS, FitParams
from ..provenance import commit_label

ROOT = Path(__file__).resolve().parents[2]


def load(path: Path) -> list[dict]:
    return [rederive(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def rederive(r: dict, sure_ratio_at_least: float = FLIP_SURE_RATIO) -> dict:
    """The row under the flip check as it is now (a row records the fit, its held-out
    score and its ratio; which fits the check drops changed between sessions), and under
    the one-class fit's erased-class check where the row records its share. A dropped
    fit leaves the base networks, whose undrawn half is the starting map: the drawn
    polygons all lie on the other half. ``sure_ratio_at_least``: from which sure ratio
    the check stands aside (math.inf: it judges every fit, the rule before session 20)."""
    partner = r.get("partner_flip_ratio")  # a round the partner judged (session 53)
    if not r.get("passed_held_out") or (r.get("flip_ratio") is None and partner is None):
        return r
    if partner is not None:  # the partner's agreement as its score (partner_flip_check)
        adopted = not partner_flip_drops(
            r.get("partner_agreement"), partner, check=FitParams().partner_flip_check
        )
    else:
        allowance = flip_allowance(
            r.get("tuned_score"), r.get("sure_ratio"), at_least=sure_ratio_at_least
        )
        kept = r.get("class_kept")  # a one-class fit's least-kept undrawn class (session 29)
        erased = kept is not None and kept < FitParams().class_kept_at_least
        adopted = r["flip_ratio"] <= allowance and not erased
    fitted_acc = r.get("acc_after_fit", r["acc_after"] if r["adopted"] else None)
    return {
        **r,
        "adopted": adopted,
        "after": r["after_fit"] if adopted else r["before"],
        "acc_after": (fitted_acc if adopted else r["acc_before"]),
    }


def _gain(r: dict) -> float:
    return r["after"] - r["before"]


def _adopted(r: dict) -> str:
    """yes / no / dropped by the flip check (with its ratio)."""
    if r["adopted"]:
        return f"yes ({r['flip_ratio']:.2f})" if r.get("flip_ratio") is not None else "yes"
    if r.get("passed_held_out"):
        acc = f", {r['acc_after_fit']:.1f} % acc." if "acc_after_fit" in r else ""
        return f"dropped ({r['flip_ratio']:.2f}; fit {r['after_fit']:.1f}{acc})"
    return "no"


def _cases(rs: list[dict], fit: bool = False) -> str:
    """``scene user K=k variant +gain (ratio)`` for each row; ``fit``: the dropped fit's gain."""
    out = []
    for r in rs:
        gain = r["after_fit"] - r["before"] if fit else _gain(r)
        out.append(
            f"{r['scene']} {r['user']} K={r['k']} {r['variant']} {gain:+.1f} "
            + (
                f"(ratio {r['flip_ratio']:.2f})"
                if r.get("flip_ratio") is not None
                else "(judged by the partner: nothing held out)"
            )
        )
    return ", ".join(out) or "none"


def _acc(r: dict) -> str:
    """Pixel accuracy (building vs the rest) of the undrawn half, before → after."""
    if "acc_before" not in r:
        return "–"
    if r.get("acc_after") is None:
        return f"{r['acc_before']:.1f} → –"
    return f"{r['acc_before']:.1f} → {r['acc_after']:.1f}"


def curve_figure(rows: list[dict], out: Path) -> Path | None:
    """Building IoU of the undrawn half against K, one panel per scene (largest user)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    by_scene: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["user"] == "largest":
            by_scene[r["scene"]].append(r)
    if not by_scene:
        return None
    n = len(by_scene)
    cols = min(5, n)
    fig, axes = plt.subplots(
        (n + cols - 1) // cols,
        cols,
        figsize=(3.2 * cols, 2.8 * ((n + cols - 1) // cols)),
        squeeze=False,
    )
    for ax, (scene, rs) in zip(axes.flat, sorted(by_scene.items())):
        before = rs[0]["before"]
        ks = sorted({r["k"] for r in rs})
        ax.plot([0] + ks, [before] * (len(ks) + 1), "k:", label="no fine-tune")
        for variant, style in (("rnn", "o-"), ("head+rnn", "s--")):
            pts = sorted((r["k"], r["after"]) for r in rs if r["variant"] == variant)
            if pts:
                ax.plot(
                    [0] + [k for k, _ in pts], [before] + [v for _, v in pts], style, label=variant
                )
        ax.set_title(scene, fontsize=9)
        ax.set_xlabel("K corrections", fontsize=8)
        ax.set_ylabel("building IoU, undrawn half", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


TITLE = "Corrections that teach: the correction loop on every shared scene"


def write(
    rows: list[dict],
    out: Path,
    figure: Path | None,
    title: str = TITLE,
    about: str | None = None,
) -> str:
    lines = [
        f"# {title}",
        "",
        "Generated by `python -m map_refiner.dev.corrections.study` then "
        "`python -m map_refiner.dev.corrections.report` "
        f"({commit_label()}; "
        "this 2-core CPU; each fine-tune as a user gets it, with the product's fixed CPU "
        "step count, so a row does not depend on the machine's load; *steps* counts the "
        "held-out phase and the refit).",
        "",
        "Protocol: the starting model refines the scene; a simulated user draws K "
        "corrections on the **left half** (copied from the accurate reference: a missed "
        "building traced whole, a false building outlined as background; "
        "dev/corrections/users.py); `finetune` runs as the CLI runs it, the scene is "
        "refined again with the new model, and building IoU is scored on the **right "
        "half**, which nobody drew on. *honoured*: share of the drawn pixels that show the "
        "drawn class afterwards. *adopted*: the fitted networks passed the held-out check "
        "and the flip check (the number in brackets: the share of the base model's sure "
        f"pixels the fit changed, over the drawn share; above {FLIP_PER_SCORE:g} x (its "
        "held-out score - 0.5) the fit is *dropped*, and "
        "*fit* is what it would have given); else the base networks were kept and only the "
        "drawn polygons are burned in.",
        "",
    ]
    models = sorted({r.get("model", "Map Refiner default (buildings)") for r in rows})
    bases = sorted({r.get("base_model") or "" for r in rows})
    where = "the bundled one" if bases == [""] else ", ".join(b or "the bundled one" for b in bases)
    lines += [f"Starting model: {', '.join(models)} ({where}).", ""]
    if about:
        lines += [about, ""]
    if figure is not None:
        fig_path = figure.relative_to(out.parent).as_posix()
        lines += [
            f"![building IoU of the undrawn half against K]({fig_path})",
            "",
        ]
    by_scene: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_scene[r["scene"]].append(r)
    lines += [
        "## Largest errors first (the acceptance check's user)",
        "",
        "| scene | start | variant | K | drawn (bldg/bg) | after | gain | adopted "
        "| held-out right, base → fit | honoured | accuracy | steps | fine-tune s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scene in sorted(by_scene):
        for r in sorted(
            (r for r in by_scene[scene] if r["user"] == "largest"),
            key=lambda r: (r["variant"], r["k"]),
        ):
            nb = sum(r["classes"])
            held = (
                "–"
                if r["base_score"] is None
                else f"{100 * r['base_score']:.0f} → {100 * r['tuned_score']:.0f} % "
                f"({r['held_out']})"
            )
            lines.append(
                f"| {scene} | {r['before']:.1f} | {r['variant']} | {r['k']} | "
                f"{r['drawn']} ({nb}/{r['drawn'] - nb}) | {r['after']:.1f} | "
                f"{_gain(r):+.1f} | {_adopted(r)} | {held} | "
                f"{r['honoured']:.1f} | {_acc(r)} | {r['steps']} | {r['finetune_s']:.0f} |"
            )
    users = sorted({r["user"] for r in rows})
    if len(users) > 1:
        lines += [
            "",
            "## Which corrections: largest errors, the uncertainty list, random",
            "",
            "| scene | variant | K | " + " | ".join(users) + " |",
            "|---|---|---|" + "---|" * len(users),
        ]
        keyed = {(r["scene"], r["variant"], r["k"], r["user"]): r for r in rows}
        for scene, variant, k in sorted(
            {(r["scene"], r["variant"], r["k"]) for r in rows if r["user"] != "largest"}
        ):
            cells = []
            for u in users:
                r = keyed.get((scene, variant, k, u))
                cells.append("–" if r is None else f"{r['after']:.1f} ({_gain(r):+.1f})")
            lines.append(f"| {scene} | {variant} | {k} | " + " | ".join(cells) + " |")
    lines += ["", "## Against the targets (largest-errors user)", ""]
    for variant in sorted({r["variant"] for r in rows}):
        rs = [r for r in rows if r["variant"] == variant and r["user"] == "largest"]
        worse = [r for r in rs if _gain(r) < -0.05]
        k4 = [r for r in rs if r["k"] == 4]
        k16 = [r for r in rs if r["k"] == 16]
        worse_text = ", ".join(f"{r['scene']} K={r['k']} {_gain(r):+.1f}" for r in worse)
        lines.append(
            f"- **{variant}**: worse than the starting map in {len(worse)} of {len(rs)} "
            f"runs ({worse_text or 'none'}); "
            f"+5 at K=4 reached on {sum(_gain(r) >= 5 for r in k4)} of {len(k4)} scenes, "
            f"+15 at K=16 on {sum(_gain(r) >= 15 for r in k16)} of {len(k16)}; "
            f"honoured {min((r['honoured'] for r in rs), default=0):.1f}-"
            f"{max((r['honoured'] for r in rs), default=0):.1f} %."
        )
    others = [r for r in rows if r["user"] != "largest"]
    if others:
        lines.append("")
        lines.append("Every user (largest errors, the uncertainty list, random):")
        lines.append("")
        for variant in sorted({r["variant"] for r in rows}):
            rs = [r for r in rows if r["variant"] == variant]
            worse = [r for r in rs if _gain(r) < -0.05]
            text = ", ".join(f"{r['scene']} {r['user']} K={r['k']} {_gain(r):+.1f}" for r in worse)
            lines.append(
                f"- **{variant}**: worse than the starting map in {len(worse)} of {len(rs)} "
                f"runs ({text or 'none'}); better by 5 points or more in "
                f"{sum(_gain(r) >= 5 for r in rs)}."
            )
    # (a round with nothing held out was judged by the partner, not by these checks)
    checked = [r for r in rows if r.get("passed_held_out") and r.get("held_out")]
    if checked:
        dropped = [r for r in checked if not r["adopted"]]
        lost = [r for r in dropped if r["after_fit"] < r["before"] - 0.05]
        gained = [r for r in dropped if r["after_fit"] > r["before"] + 0.05]
        kept_losses = [r for r in checked if r["adopted"] and _gain(r) < -0.05]
        kept_gains = [r for r in checked if r["adopted"] and _gain(r) > 0.05]
        lines += [
            "",
            "## The flip check: fits that passed the held-out check, seen away from the polygons",
            "",
            f"Of {len(checked)} fits that passed the held-out check, the flip check dropped "
            f"{len(dropped)}: {len(lost)} of them would have made the undrawn half worse "
            f"({_cases(lost, fit=True)}), {len(gained)} better ({_cases(gained, fit=True)}). "
            f"Adopted fits that made it worse: {len(kept_losses)} ({_cases(kept_losses)}); "
            f"better: {len(kept_gains)} ({_cases(kept_gains)}).",
        ]
    lines += [
        "",
        "## Reading the table",
        "",
        "- *accuracy* is the share of the undrawn half's pixels called right (building or "
        "not): where the reference holds almost no building there (loveda_0), building IoU "
        "swings between 0 and 100 on a few pixels and accuracy is the figure to read.",
        f"- On a CPU a fit runs {CPU_STEPS} steps of {FitParams.patch_size} px patches "
        "before the held-out check and half as many as its best step afterwards "
        f"(training/corrections/fit.py CPU_STEPS); a GPU runs {GPU_STEPS}, so "
        "these rows are the CPU product's, not the method's limit. The study applies the "
        "flip check to the ratio each fit records (a dropped fit leaves the base networks, "
        "whose undrawn half is the starting map), so that it can show what a dropped fit "
        "would have done.",
        "- *fine-tune s* is the study's wall-clock time, which other jobs on the machine "
        "lengthen (the outcome no longer depends on them); the one-round time of a quiet "
        "machine is `make bench`'s row in docs/benchmarks.md.",
        "- A row with *adopted* no has the starting map on the undrawn half by design (only "
        "the drawn polygons change): the safeguard at work, not a failed run.",
        "- loveda is scored here as building against everything else: the bundled model has "
        "two classes (background, building), so the three-class LoveDA protocol needs a "
        "three-class model, which this study does not train.",
    ]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, default=ROOT / "out" / "corrections" / "rows.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results_corrections.md")
    ap.add_argument("--title", default=TITLE)
    ap.add_argument("--about", default=None, help="a paragraph on the starting model")
    a = ap.parse_args(argv)
    rows = load(a.rows)
    name = "corrections_curves" if a.out.stem == "results_corrections" else a.out.stem
    fig = curve_figure(rows, a.out.parent / "figures" / f"{name}.png")
    write(rows, a.out, fig, a.title, a.about)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
