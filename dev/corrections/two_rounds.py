"""Two rounds of the correction loop, with and without the change gate (session 38).

``prep``: the round-1 fits session 36 kept (largest errors, traced, K=4; ungated files in
out/s36/models/{own,never}_traced) and a gated copy of each (its parent inside at 0.7,
finetune.with_gate), listed in out/s38/chain2/jobs.json. ``dev/corrections/two_rounds.sh
gated|plain`` then runs the same user's second round from each (the study with ``--model``
the round-1 file, K=4). ``summary``: start -> round 1 -> round 2 per chain, right halves.

    python -m map_refiner.dev.corrections.two_rounds prep
    bash dev/corrections/two_rounds.sh gated & bash dev/corrections/two_rounds.sh plain
    python -m map_refiner.dev.corrections.two_rounds summary
    bash dev/corrections/turned_rounds.sh 0 2 & bash dev/corrections/turned_rounds.sh 1 2
    python -m map_refiner.dev.corrections.two_rounds turned   # session 40

Measured in docs/results_corrections.md ("Session 38", "Two rounds").
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

WORK = Path("out/s38/chain2")
PROBE = Path("out/s38/changes_rounds.json")  # changes_probe's rows of the round-1 fits
GATE = 0.7


def prep() -> list[dict[str, str]]:
    from ...engine.modelfile.io import load_model, save_model
    from ...training.corrections.finetune import with_gate
    from .changes_probe import parent_of

    jobs = []
    for folder in ("own_traced", "never_traced"):
        for name in sorted(
            glob.glob(f"out/s36/models/{folder}/*_largest_4_head+rnn_seed*.safetensors")
        ):
            f = Path(name)
            parent = parent_of(f)
            gated = WORK / "gated" / folder / f.name
            gated.parent.mkdir(parents=True, exist_ok=True)
            if not gated.exists():
                save_model(*with_gate(*load_model(f), load_model(parent), GATE), gated)
            jobs.append(
                {
                    "folder": folder,
                    "plain": str(f),
                    "gated": str(gated),
                    "parent": str(parent or ""),
                }
            )
    (WORK / "jobs.json").write_text(json.dumps(jobs, indent=1))
    return jobs


def summary() -> str:
    probe = json.loads(PROBE.read_text())
    jobs = json.loads((WORK / "jobs.json").read_text())
    totals = {"plain": [0.0, 0.0, 0, 0], "gated": [0.0, 0.0, 0, 0]}
    lines = [
        "| round 1 model | start | plain: round 1 -> round 2 | gated: round 1 -> round 2 |",
        "|---|---|---|---|",
    ]
    for job in jobs:
        name = Path(job["plain"]).stem
        key = f"{job['folder']}/{name}"
        p = probe[key]
        cells = []
        for which, first in (("plain", p["after"]), ("gated", p[f"gate{GATE}"])):
            found = glob.glob(f"out/corrections/rows_s38_r2_{which}_{job['folder']}_{name}.jsonl")
            rows = [json.loads(line) for line in open(found[0])] if found else []
            if not rows:
                cells.append("-")
                continue
            second, adopted = rows[-1]["after"], rows[-1]["adopted"]
            cells.append(f"{first:.1f} -> {second:.1f}" + ("" if adopted else " (not adopted)"))
            t = totals[which]
            t[0] += first - p["before"]
            t[1] += second - p["before"]
            t[2] += second < p["before"] - 0.05
            t[3] += second < first - 0.05
        lines.append(f"| {key} | {p['before']:.1f} | {cells[0]} | {cells[1]} |")
    for which, t in totals.items():
        lines.append(
            f"{which}: round 1 {t[0]:+.1f}, after round 2 {t[1]:+.1f} over the start; below "
            f"the start after round 2: {t[2]}; round 2 below round 1: {t[3]}"
        )
    return "\n".join(lines)


def turned() -> str:
    """Session 40: the second round from each gated round-1 model by the largest-errors
    user and by the user who turns back round 1's wrong changes
    (dev/corrections/turned_rounds.sh; rows out/corrections/rows_s40_r2_*.jsonl); session
    41: and by the users who drag a rectangle over each, or only where most of what it
    covers is wrong (USERS=swept,swept_wrong TAG=s41, rows rows_s41_r2_*.jsonl); session
    42: and by the user who goes down the dock's review list of round 1's largest changes
    and clicks the mostly wrong ones (USERS=reviewed: TAG=s42 with a 10-row list, s42c
    with the 25 rows shipped), and by one who looks at every change (USERS=clicked
    TAG=s42b), where those rows exist."""
    probe = json.loads(PROBE.read_text())
    jobs = json.loads((WORK / "jobs.json").read_text())
    users = {  # a column: the rows' tag and user, the table's heading
        "largest": ("s40", "largest", "largest errors"),
        "turned": ("s40", "turned", "wrong changes turned back"),
        "swept": ("s41", "swept", "a rectangle over each"),
        "swept_wrong": ("s41", "swept_wrong", "a rectangle where most is wrong"),
        "reviewed10": ("s42", "reviewed", "a 10-row review list's wrong changes clicked"),
        "clicked": ("s42b", "clicked", "every change's largest wrong ones clicked"),
        "reviewed": ("s42c", "reviewed", "the 25-row review list's wrong changes clicked"),
        "clicked_whole": ("s42d", "clicked_whole", "... an erased roof back whole"),
        "clicked_trimmed": ("s42e", "clicked_trimmed", "... each trimmed to its wrong part"),
        "clicked_outlined": ("s42f", "clicked_outlined", "... the wrong part outlined, 1 m"),
        "clicked_outlined05": ("s42g", "clicked_outlined05", "... outlined, 0.5 m"),
        "largest_s100": ("s42s", "largest", "largest errors, seeds + 100"),
        "reviewed_s100": ("s42s", "reviewed", "the 25-row list's wrong changes, seeds + 100"),
        "largest_s200": ("s42t", "largest", "largest errors, seeds + 200"),
        "reviewed_s200": ("s42t", "reviewed", "the 25-row list's wrong changes, seeds + 200"),
    }
    totals = {u: [0.0, 0, 0] for u in users}  # gain over round 1, below it, not adopted
    first_gain = 0.0
    lines = [
        "| round 1 model | start | round 1 (gated) | "
        + " | ".join(f"round 2, {heading}" for *_, heading in users.values())
        + " |",
        "|---|---|---|" + "---|" * len(users),
    ]
    for job in jobs:
        name = Path(job["gated"]).stem
        key = f"{job['folder']}/{name}"
        rows = {}
        for column, (tag, user, _) in users.items():
            path = Path(f"out/corrections/rows_{tag}_r2_{job['folder']}_{name}.jsonl")
            if path.exists():
                for r in map(json.loads, path.read_text().splitlines()):
                    if r["user"] == user:
                        rows[column] = r
        if not rows:
            lines.append(f"| {key} | - | - |" + " - |" * len(users))
            continue
        first = next(iter(rows.values()))["before"]
        first_gain += first - probe[key]["before"]
        cells = []
        for user in users:
            row = rows.get(user)
            if row is None:
                cells.append("nothing to draw")
                continue
            t = totals[user]
            t[0] += row["after"] - first
            t[1] += row["after"] < first - 0.05
            t[2] += not row["adopted"]
            note = "" if row["adopted"] else ", not adopted"
            cells.append(f"{row['after']:.1f} ({row['drawn']} drawn{note})")
        lines.append(
            f"| {key} | {probe[key]['before']:.1f} | {first:.1f} | " + " | ".join(cells) + " |"
        )
    lines.append(f"\nround 1 over the start, summed: {first_gain:+.1f}")
    for user, t in totals.items():
        lines.append(
            f"{user}: round 2 over round 1 {t[0]:+.1f}; below round 1: {t[1]}; not adopted: {t[2]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("prep", "summary", "turned"))
    a = ap.parse_args(argv)
    if a.step == "prep":
        print(f"{len(prep())} round-1 models in {WORK / 'jobs.json'}")
    elif a.step == "turned":
        print(turned())
    else:
        print(summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
