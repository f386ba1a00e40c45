"""What *Use dropped fit* and *Undo round* are worth to a user who looks, from the
study's rows.

The flip check drops a fit that changes much more of the starting model's sure map than
was drawn; the round then saves the fit beside it (finetune.dropped_fit_path) and the
dialog offers it, and any round can be undone. Whether a user gains by taking a dropped
fit, or by undoing an adopted one, depends on how they judge it. The simulated user here
looks at one part of the map they did not draw on and is scored on another: the undrawn
(right) half is split into its top and bottom quarters of the image (the study's
``top_*`` and ``bottom_*``: building IoU of the starting and fitted maps). They take a
dropped fit when it is better on the top quarter by more than ``--margin`` points, and
undo an adopted round when its fit is worse there by more than that; both this user and
the default round are scored on the bottom quarter, which no decision sees.

Why not the half they drew on: there, the largest errors are drawn, so what is left
undrawn is mostly where the starting map was already right, and a fit can only lose
there (Potsdam's four polygons cover every error of its left half: 100 -> 70.5 while the
scored half went 46.5 -> 77.3).

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


def looking_gain(r: dict, margin: float) -> tuple[float, float, str]:
    """The round's gain on the bottom quarter for the default round and for the looking
    user, and what the user did: "" (nothing to judge), "took" or "left" (a dropped fit,
    taken or not), "kept" or "undid" (an adopted fit, kept or undone with *Undo round*,
    which brings back the starting map)."""
    default = (r["bottom_fit"] if r["adopted"] else r["bottom_before"]) - r["bottom_before"]
    if not r.get("passed_held_out"):
        return default, default, ""
    better = r["top_fit"] - r["top_before"]
    fit = r["bottom_fit"] - r["bottom_before"]
    if r["adopted"]:
        return (default, 0.0, "undid") if better < -margin else (default, fit, "kept")
    return (default, fit, "took") if better > margin else (default, 0.0, "left")


def table(paths: list[Path], margin: float) -> str:
    sets = [{(r["scene"], r["k"]): r for r in load(p) if "top_fit" in r} for p in paths]
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
            base, look, did = looking_gain(r, margin)
            mark = {
                "took": " (took it)",
                "left": f" (left it: {r['bottom_fit'] - r['bottom_before']:+.1f})",
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
        help="points of the looked-at quarter's IoU a fit must win (to be taken) or lose "
        "(to be undone) (default 0)",
    )
    a = ap.parse_args(argv)
    missing = [str(p) for p in a.rows if not p.is_file()]
    if missing:
        raise SystemExit(f"no such rows file: {', '.join(missing)}")
    print(table(a.rows, a.margin), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
