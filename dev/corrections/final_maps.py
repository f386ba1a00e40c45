"""The maps users end with under two settings, round by round (session 35).

``sum_rows`` sums each round's change against its own start; when a setting changes the
start itself (the bundled model's detail temperature), the users draw other polygons on
another map, and what matters is the map they end with. Rounds of the two settings are
paired by scene group (own / never seen, from the file name), scene, K, drawing, user
and fine-tune seed; printed per group: the starts and the final maps summed, the rounds
below their own start, and the worst final map against the first setting's start.
``--as T``: the second setting's adopted fits taken at detail temperature T from their
``after_by_temperature`` (study --temperatures) instead of the matched one.

    python -m map_refiner.dev.corrections.final_maps \\
        "out/corrections/rows_s35_h[sg]_[tr]*" "out/corrections/rows_s35_[bn]2_[tr]*"
"""

from __future__ import annotations

import argparse
import glob
import json

Key = tuple[str, str, int, str, str, int]


def paired_rows(pattern: str) -> dict[Key, dict]:
    out: dict[Key, dict] = {}
    for path in sorted(glob.glob(pattern)):
        group = "never" if "_never_" in path else "own"
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                seed = int(r["overrides"].get("seed", 0))
                out[(group, r["scene"], r["k"], r["drawing"], r["user"], seed)] = r
    return out


def final(row: dict, at: str | None) -> float:
    """The round's final map, or its fit's at detail temperature ``at``."""
    swept = row.get("after_by_temperature")
    return swept[at] if at and row["adopted"] and swept else row["after"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", help="rows files (glob) of the first setting")
    ap.add_argument("second", help="rows files (glob) of the second setting")
    ap.add_argument("--as", dest="at", default=None, help="the second setting's fits at T")
    a = ap.parse_args(argv)
    one, two = paired_rows(a.first), paired_rows(a.second)
    both = sorted(set(one) & set(two))
    for group in ("own", "never"):
        keys = [k for k in both if k[0] == group]
        if not keys:
            continue
        starts = [sum(s[k]["before"] for k in keys) for s in (one, two)]
        ends = [sum(final(one[k], None) for k in keys), sum(final(two[k], a.at) for k in keys)]
        below = [
            sum(final(s[k], at) < s[k]["before"] - 1e-9 for k in keys)
            for s, at in ((one, None), (two, a.at))
        ]
        worst = min(final(two[k], a.at) - one[k]["before"] for k in keys)
        print(
            f"{group}: {len(keys)} rounds; starts {starts[0]:.1f} -> {starts[1]:.1f}; final maps "
            f"{ends[0]:.1f} -> {ends[1]:.1f} ({ends[1] - ends[0]:+.1f}); below their own start "
            f"{below[0]} -> {below[1]}; worst final map against the first start {worst:+.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
