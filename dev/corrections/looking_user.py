"""What *Use dropped fit* is worth to a user who looks, from the study's rows.

The flip check drops a fit that changes much more of the starting model's sure map than
was drawn; the round then saves the fit beside it (finetune.dropped_fit_path) and the
dialog offers it. Whether a user gains by taking it depends on how they judge it. The
simulated user here judges where they have looked: the half of the image they drew on,
as they see it (the study's ``left_before`` / ``left_fit``: building IoU of the left half
of the starting map with their polygons shown, and of the fitted map, which shows them
too; the undrawn pixels alone are no measure where the polygons cover most of the half's
buildings, as on Potsdam). They take a dropped fit when it
is better there by more than ``--margin`` points, and undo an adopted round (*Undo
round*: back to the starting map) when its fit is worse there by more than that; the
score stays the undrawn right half. The user judges on pixels the study never scores, so
nothing of the scored half leaks into the decision.

    python -m map_refiner.dev.corrections.looking_user out/corrections/rows_A.jsonl ...
        [--margin 0]

Columns per rows file (one seed each): the default round, the looking user; the last
line sums the gains (loveda_0 left out, as compare_rows does) and counts the rounds worse
than their start.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .compare_rows import NOT_SUMMED
from .report import load


def dropped(r: dict) -> bool:
    """A fit that passed the held-out check and that the flip check dropped."""
    return bool(r.get("passed_held_out")) and not r["adopted"]


def looking_gain(r: dict, margin: float) -> tuple[float, str]:
    """The round's gain for the looking user, and what they did: "" (nothing to judge),
    "took" or "left" (a dropped fit, taken or not), "kept" or "undid" (an adopted fit,
    kept or undone with *Undo round*, which brings back the starting map)."""
    if "left_fit" not in r or not r.get("passed_held_out"):
        return r["after"] - r["before"], ""
    better = r["left_fit"] - r["left_before"]
    if r["adopted"]:
        if better < -margin:
            return 0.0, "undid"
        return r["after"] - r["before"], "kept"
    if better > margin:
        return r["after_fit"] - r["before"], "took"
    return r["after"] - r["before"], "left"


def table(paths: list[Path], margin: float) -> str:
    sets = [{(r["scene"], r["k"]): r for r in load(p)} for p in paths]
    keys = sorted({k for rows in sets for k in rows})
    head = "| scene | K | " + " | ".join(f"{p.stem}: default / looking" for p in paths) + " |"
    lines = [head, "|" + "---|" * (2 + len(paths))]
    sums = [[0.0, 0.0, 0, 0] for _ in paths]
    for scene, k in keys:
        cells = []
        for i, rows in enumerate(sets):
            r = rows.get((scene, k))
            if r is None:
                cells.append("–")
                continue
            base = r["after"] - r["before"]
            look, did = looking_gain(r, margin)
            mark = {
                "took": " (took it)",
                "left": f" (left it: {r['after_fit'] - r['before']:+.1f})",
                "undid": " (undid it)",
            }.get(did, "")
            cells.append(f"{base:+.1f} / {look:+.1f}{mark}")
            if scene not in NOT_SUMMED:
                s = sums[i]
                s[0], s[1] = s[0] + base, s[1] + look
                s[2], s[3] = s[2] + (base < -0.05), s[3] + (look < -0.05)
        lines.append(f"| {scene} | {k} | " + " | ".join(cells) + " |")
    lines.append(
        "| *sum; rounds worse* | | "
        + " | ".join(f"{a:+.1f} / {b:+.1f}; {c} / {d}" for a, b, c, d in sums)
        + " |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", type=Path, help="study rows files (one seed each)")
    ap.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="points of left-half IoU the dropped fit must gain to be taken (default 0)",
    )
    a = ap.parse_args(argv)
    missing = [str(p) for p in a.rows if not p.is_file()]
    if missing:
        raise SystemExit(f"no such rows file: {', '.join(missing)}")
    print(table(a.rows, a.margin), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
