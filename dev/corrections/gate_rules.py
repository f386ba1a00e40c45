"""Other rules for a round's change gate and adoption, judged on the kept fits' probe rows
(session 39; docs/results_corrections.md "Session 39").

Reads the rows ``changes_probe --models ... --json J`` wrote (each adopted round's right
half refined ungated, gated at its own detail temperature ``gate{T}``, and gated at its
parent's ``pgate{T}``) and the kept models' fine-tune records (sure ratio, held-out
scores), and prints, for the rounds session 38 chose the gate on (session 36's kept fits,
out/s36/models) and those it did not (out/s38/models, models2):

- ``temperature``: the gate judged at the round's own detail temperature (the product)
  against its parent's;
- ``sure-ratio``: one gate where the base model's sureness means something (the fit's
  sure ratio under FitParams.flip_sure_ratio) and another (or none) elsewhere;
- ``margin``: a fit adopted only when it raises the held-out score by at least a margin;
- ``direction``: a change kept only where it goes to a class the round's polygons carry
  (rows ``dgate{T}``: with the gate as well; ``direction``: alone).

    python -m map_refiner.dev.corrections.changes_probe \
        --models 'out/s3[68]/models*/*/*.safetensors' --json out/s39/changes_pgate.json
    python -m map_refiner.dev.corrections.changes_probe \
        --models 'out/s39/models/*_*/*.safetensors' --json out/s39/changes_s39.json
    python -m map_refiner.dev.corrections.gate_rules \
        --json out/s39/changes_pgate.json out/s39/changes_s39.json

Session 39's own kept rounds (out/s39/models: never-seen Kampala and Rio seeds 2-3, own
scenes seed 2), made after the direction rule was chosen, are a third set.
"""

from __future__ import annotations

import argparse
import glob
import json
from collections.abc import Callable
from pathlib import Path

from .changes_probe import GATES

Rows = dict[str, dict]
Records = dict[str, dict]


def kept_records(pattern: str) -> Records:
    """The fine-tune record of each kept model matching ``pattern``, by the probe's key
    (``folder/stem``)."""
    out = {}
    for f in map(Path, glob.glob(pattern)):
        config = json.loads(f.with_suffix(".json").read_text())
        out[f"{f.parent.name}/{f.stem}"] = config["training"]["finetune"][-1]
    return out


def cell(rows: Rows, records: Records, value: Callable[[str, dict], float]) -> str:
    """Summed change over the start, rounds below it (by more than 0.05), the worst."""
    d = [value(k, r) - rows[k]["before"] for k, r in records.items()]
    return f"{sum(d):+.1f} ({sum(x < -0.05 for x in d)}; {min(d):+.1f})"


def table(rows: Rows, sets: dict[str, Records], rules: dict[str, Callable]) -> str:
    lines = ["| rule | " + " | ".join(f"{n} ({len(s)})" for n, s in sets.items()) + " |"]
    lines.append("|---" * (len(sets) + 1) + "|")
    for name, rule in rules.items():
        lines.append(f"| {name} | " + " | ".join(cell(rows, s, rule) for s in sets.values()) + " |")
    return "\n".join(lines)


def held_out_gain(record: dict) -> float:
    """How much the fit raised the held-out score (a round with nothing held out: 1)."""
    if record.get("tuned_score") is None:
        return 1.0
    return float(record["tuned_score"]) - float(record["base_score"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--json", type=Path, nargs="+", required=True, help="changes_probe rows with pgate"
    )
    p.add_argument("--sure-ratio", type=float, default=0.85, help="FitParams.flip_sure_ratio")
    a = p.parse_args(argv)
    rows: Rows = {}
    for path in a.json:
        rows |= json.loads(path.read_text())
    chosen = {k: r for k, r in kept_records("out/s36/models/*/*.safetensors").items() if k in rows}
    chosen = {k: r for k, r in chosen.items() if not k.startswith("gen_ad/")}
    later = {
        **kept_records("out/s38/models/*/*.safetensors"),
        **kept_records("out/s38/models2/*/*.safetensors"),
    }
    later = {k: r for k, r in later.items() if k in rows}
    newest = {
        k: r
        for pattern in ("never_gen_*", "own_*")
        for k, r in kept_records(f"out/s39/models/{pattern}/*.safetensors").items()
        if k in rows
    }
    sets = {"session 36 (chosen on)": chosen, "session 38 (not)": later}
    if newest:
        sets["session 39 (not)"] = newest
    sets["all"] = chosen | later | newest

    def at(key: str) -> Callable[[str, dict], float]:
        return lambda k, r: rows[k][key]

    print("The gate judged at the round's own detail temperature (gate) or its parent's (pgate):")
    rules = {"no gate": at("after")}
    rules |= {f"gate {t}": at(f"gate{t}") for t in GATES}
    rules |= {f"pgate {t}": at(f"pgate{t}") for t in GATES}
    print(table(rows, sets, rules))

    def by_ratio(sure: float | None, unsure: float | None) -> Callable[[str, dict], float]:
        def value(k: str, r: dict) -> float:
            t = sure if r["sure_ratio"] < a.sure_ratio else unsure
            return rows[k]["after" if t is None else f"gate{t}"]

        return value

    print(f"\nOne gate where the sure ratio is under {a.sure_ratio}, another elsewhere:")
    pairs = [(0.7, 0.7), (0.7, None), (0.7, 0.6), (0.6, 0.6), (0.6, None), (0.8, 0.7)]
    print(table(rows, sets, {f"{s} / {u or 'none'}": by_ratio(s, u) for s, u in pairs}))

    def margin(m: float) -> Callable[[str, dict], float]:
        return lambda k, r: rows[k]["gate0.7"] if held_out_gain(r) >= m else rows[k]["before"]

    print("\nA change kept only to a class the polygons carry (all of one class: that one):")
    rules = {"no gate": at("after"), "direction alone": at("direction")}
    rules |= {f"gate {t}": at(f"gate{t}") for t in GATES}
    rules |= {f"gate {t} and direction": at(f"dgate{t}") for t in GATES}
    print(table(rows, sets, rules))

    print("\nGate 0.7, a fit adopted only when it raises the held-out score by at least:")
    print(table(rows, sets, {f"{m:g}": margin(m) for m in (0, 0.05, 0.1, 0.2, 0.3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
