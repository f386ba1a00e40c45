"""Sum study rows by setting (the sums in docs/results_corrections.md since session 32).

Each argument is ``NAME=GLOB``: the rows files of one setting (several seeds or scene
groups). Printed per setting: rounds, the summed change of the undrawn half's building
IoU (after - before), rounds worse and the worst, rounds reaching the issue's +5 at K=4 /
+15 at K=16, adopted rounds, and the sum per scene. ``--agreement``: also each adopted
round's FinetuneResult.fit_agreement (the share of its changes the partner agreed with,
session 34) against its change, lowest first. ``--temperatures``: rows made with
``study --temperatures`` summed again as if each adopted fit's detail pass had taken
another temperature: ``T=t`` every fit at t (0: no detail pass), ``cap=c`` the matched
temperature but at most c, ``held-out`` the temperature whose map scored best on the
held-out polygons (FinetuneResult.detail_held_out; ties to the lowest or to the matched
one) (session 35).

    python -m map_refiner.dev.corrections.sum_rows \\
        "snap=out/corrections/rows_s34_fsnap_traced_own_*" \\
        "drawn=out/corrections/rows_s32_oe4_traced_own_*" [--agreement]
"""

from __future__ import annotations

import argparse
import glob
import json


def rows_of(pattern: str) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(glob.glob(pattern))
        for line in open(path)
        if line.strip()
    ]


def summary(name: str, rows: list[dict]) -> str:
    d = [r["after"] - r["before"] for r in rows]
    reach = sum(1 for r, x in zip(rows, d) if x >= (5 if r["k"] == 4 else 15))
    by: dict[str, float] = {}
    for r, x in zip(rows, d):
        by[r["scene"]] = by.get(r["scene"], 0.0) + x
    per = " ".join(f"{s[:7]}:{v:+.1f}" for s, v in by.items())
    worse = sum(1 for x in d if x < 0)
    return (
        f"{name:22s} rounds {len(rows):3d} sum {sum(d):+8.1f} worse {worse:2d} "
        f"(worst {min(d) if d else 0:+.1f}) reach {reach:2d} "
        f"adopted {sum(bool(r['adopted']) for r in rows):2d} | {per}"
    )


def policies(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows as each temperature policy would have made them (``after`` replaced)."""
    swept = [set(r["after_by_temperature"]) for r in rows if r.get("after_by_temperature")]
    keys = sorted(set.intersection(*swept) if swept else set(), key=float)  # in every row
    out = {"matched": rows}
    for k in keys:
        out[f"T={k}"] = [_after(r, k) for r in rows]
    for k in keys:
        if float(k) > 1:
            out[f"cap={k}"] = [
                r if r["detail_temperature"] <= float(k) else _after(r, k) for r in rows
            ]
    if any(r.get("detail_held_out") for r in rows):
        for name, prefer in (("held-out, low T", None), ("held-out, matched", "matched")):
            out[name] = [_chosen(r, prefer) for r in rows]
    return out


def _chosen(row: dict, prefer: str | None) -> dict:
    """The row as if its fit's detail temperature had been the one whose map scored best
    on the held-out polygons (FinetuneResult.detail_held_out): ties go to ``prefer``,
    then to the lowest temperature."""
    held, by = row.get("detail_held_out"), row.get("after_by_temperature")
    if not held or not by:
        return row
    temps = {
        k: (row["detail_temperature"] if k == "matched" else float(k)) for k in held if k != "start"
    }
    best = max(held[k] for k in temps)
    tied = sorted((k for k in temps if held[k] == best), key=lambda k: (k != prefer, temps[k]))
    return row if tied[0] == "matched" else {**row, "after": by[tied[0]]}


def _after(row: dict, key: str) -> dict:
    by = row.get("after_by_temperature")
    return row if not by else {**row, "after": by[key]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="+", help="NAME=GLOB")
    ap.add_argument("--agreement", action="store_true")
    ap.add_argument("--temperatures", action="store_true")
    a = ap.parse_args(argv)
    for arg in a.settings:
        name, _, pattern = arg.partition("=")
        rows = rows_of(pattern)
        print(summary(name, rows))
        if a.temperatures:
            for policy, made in list(policies(rows).items())[1:]:
                print(summary(f"  {policy}", made))
        if a.agreement:
            fits = [r for r in rows if r["adopted"] and r.get("fit_agreement") is not None]
            for r in sorted(fits, key=lambda r: r["fit_agreement"]):
                print(
                    f"  {r['fit_agreement']:.3f} {r['after'] - r['before']:+6.1f} "
                    f"K={r['k']:2d} {r['scene']}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
