"""The correction loop of one or more starting models over fine-tune seeds, from study rows.

Each argument is ``NAME=GLOB``: the rows files of one starting model, one per fine-tune
seed (the study's ``--set seed=S``). For every scene and K: the starting map's building
IoU of the undrawn half, each seed's change (the flip check as it is now,
report.rederive; ``n`` = the fit did not pass the held-out check, ``d`` = the flip check
dropped it) and the mean map after the round; then per model the summed change, the
rounds worse and the rounds adopted, with the flip check as it is now and with it judging
every fit (``flip_sure_ratio`` = inf, the rule before session 20), each seed's summed
change and the spread the seed gives a round (the standard deviation of a scene and K's
changes over the seeds, averaged over the rounds; session 43). Scenes whose undrawn
half holds almost no building are left out of the sums (compare_rows.NOT_SUMMED).

    python -m map_refiner.dev.corrections.seeds_table \\
        "bundled recipe=out/corrections/rows_s21_lo_hr_lo_seed*.jsonl" \\
        "half turns=out/corrections/rows_s21_lo_ht_lo_rnn_seed*.jsonl"
"""

from __future__ import annotations

import argparse
import glob
import math
from pathlib import Path

from .compare_rows import NOT_SUMMED
from .report import load, rederive


def _mark(r: dict) -> str:
    gain = r["after"] - r["before"]
    if r["adopted"]:
        return f"{gain:+.1f}"
    return "+0.0 d" if r.get("passed_held_out") else "+0.0 n"


def rows_of(pattern: str, variant: str, user: str) -> list[dict]:
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"{pattern!r}: no rows file matches")
    return [
        {**r, "rows_file": i}  # one file per seed: seed_sums sums each
        for i, f in enumerate(files)
        for r in load(Path(f))
        if (r["variant"], r["user"]) == (variant, user)
    ]


def _seed(r: dict) -> int:
    """The row's seed: its rows file's place among its setting's (rows_of; one file a
    seed)."""
    return int(r.get("rows_file", 0))


def spread(rs: list[dict]) -> float:
    """The standard deviation of the rounds' changes (one round per seed; 0 for one)."""
    d = [r["after"] - r["before"] for r in rs]
    if len(d) < 2:
        return 0.0
    mean = sum(d) / len(d)
    return math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))


def mean_spread(rows: list[dict]) -> float:
    """spread of each scene and K over the seeds, averaged over the scenes and Ks."""
    keys = sorted({(r["scene"], r["k"]) for r in rows})
    if not keys:
        return 0.0
    return sum(spread([r for r in rows if (r["scene"], r["k"]) == key]) for key in keys) / len(keys)


def seed_sums(rows: list[dict]) -> list[float]:
    """The summed change of each seed's rounds (each rows file's), in order."""
    return [
        sum(r["after"] - r["before"] for r in rows if _seed(r) == s)
        for s in sorted({_seed(r) for r in rows})
    ]


def table(named: list[tuple[str, list[dict]]]) -> str:
    lines = [
        "| model | scene | K | start | change per fine-tune seed | spread | mean after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in named:
        keys = sorted({(r["scene"], r["k"]) for r in rows})
        for scene, k in keys:
            rs = [r for r in rows if (r["scene"], r["k"]) == (scene, k)]
            after = sum(r["after"] for r in rs) / len(rs)
            lines.append(
                f"| {name} | {scene} | {k} | {rs[0]['before']:.1f} | "
                f"{' / '.join(_mark(r) for r in rs)} | {spread(rs):.1f} | {after:.1f} |"
            )
    lines += [
        "",
        "| model | rounds | summed change | worse | adopted | "
        "with the flip check on every fit: summed, worse, adopted | each seed's sum | "
        "mean spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in named:
        summed = [r for r in rows if r["scene"] not in NOT_SUMMED]
        checked = [rederive(r, math.inf) for r in summed]  # the check on every fit
        now = [r["after"] - r["before"] for r in summed]
        always = [r["after"] - r["before"] for r in checked]
        lines.append(
            f"| {name} | {len(summed)} | {sum(now):+.1f} | {sum(g < -0.05 for g in now)} | "
            f"{sum(r['adopted'] for r in summed)} | {sum(always):+.1f}, "
            f"{sum(g < -0.05 for g in always)}, {sum(r['adopted'] for r in checked)} | "
            f"{' / '.join(f'{v:+.1f}' for v in seed_sums(summed))} | {mean_spread(summed):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=GLOB of one model's rows files")
    ap.add_argument("--variant", default="head+rnn")
    ap.add_argument("--user", default="largest")
    a = ap.parse_args(argv)
    named = []
    for item in a.models:
        name, sep, pattern = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: give NAME=GLOB")
        named.append((name, rows_of(pattern, a.variant, a.user)))
    print(table(named), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
