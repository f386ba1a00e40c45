"""Compare fine-tune settings from several study rows files, scene by scene.

Each file is one setting of one starting model (the study's ``--set`` and ``--model``),
with the same scenes, user and K; the table shows the gain in building IoU of the
undrawn half per scene and K (the flip check applied as it is now, report.rederive),
then the sums and the losses, leaving out scenes whose undrawn half holds almost no
building (loveda_0: its IoU swings 0 <-> 100 on a few pixels).

    python -m map_refiner.dev.corrections.compare_rows \\
        "bundled, 0.9=out/corrections/rows_bundled_base.jsonl" \\
        "bundled, 0.7=out/corrections/rows_bundled_conf07.jsonl"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .report import load

#: Scenes left out of the sums (their undrawn half has almost no building).
NOT_SUMMED = ("loveda_0",)


def _cell(r: dict | None) -> str:
    if r is None:
        return "–"
    gain = r["after"] - r["before"]
    mark = "" if r["adopted"] else (" (dropped)" if r.get("passed_held_out") else " (kept base)")
    return f"{gain:+.1f}{mark}"


def table(
    named: list[tuple[str, Path, str | None]], variant: str = "head+rnn", user: str = "largest"
) -> str:
    """A markdown table: one row per scene and K, one column per rows file (the rows of
    one fine-tune ``variant``, or the file's own where given, and simulated ``user``)."""
    sets = [
        (
            name,
            {
                (r["scene"], r["k"]): r
                for r in load(path)
                if (r["variant"], r["user"]) == (own or variant, user)
            },
        )
        for name, path, own in named
    ]
    keys = sorted({k for _, rows in sets for k in rows}, key=lambda k: (k[0], k[1]))
    head = "| scene | K | start | " + " | ".join(n for n, _ in sets) + " |"
    lines = [head, "|" + "---|" * (3 + len(sets))]
    for scene, k in keys:
        first = next(rows[(scene, k)] for _, rows in sets if (scene, k) in rows)
        cells = [_cell(rows.get((scene, k))) for _, rows in sets]
        lines.append(f"| {scene} | {k} | {first['before']:.1f} | " + " | ".join(cells) + " |")
    for label, pick in (
        ("sum of gains", lambda g: g),
        ("sum of losses", lambda g: min(0.0, g)),
        ("runs worse", lambda g: float(g < -0.05)),
    ):
        sums = []
        for _, rows in sets:
            vals = [
                pick(r["after"] - r["before"])
                for (scene, _), r in rows.items()
                if scene not in NOT_SUMMED
            ]
            sums.append(f"{sum(vals):+.1f}" if label != "runs worse" else f"{int(sum(vals))}")
        lines.append(f"| *{label}* | | | " + " | ".join(sums) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "files", nargs="+", help="NAME=ROWS.jsonl[@VARIANT], one per column (VARIANT: its own)"
    )
    ap.add_argument("--variant", default="head+rnn", help="the fine-tune variant compared")
    ap.add_argument("--user", default="largest", help="the simulated user compared")
    a = ap.parse_args(argv)
    named = []
    for item in a.files:
        name, sep, path = item.rpartition("=")
        path, at, own = path.partition("@")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"{item!r}: give NAME=ROWS.jsonl with an existing rows file")
        named.append((name, Path(path), own if at else None))
    print(table(named, a.variant, a.user), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
