"""A change gate that depends on how many polygons a round has (session 40; measured,
not kept: docs/results_corrections.md "Session 40").

Never-seen K=16 rounds ended at or below K=4 ones under the gate (session 39's lead): a
K=16 fit is less sure, so the gate at 0.7 keeps less of it. This reads the kept adopted
rounds' probe rows (``changes_probe`` with ``dgate{T}``: the gate at T and the direction
rule, the product's) and prints, for the three sets gate_rules.py reads, the gate at 0.7
for K=4 and a lower one for K=16; the K=16 against the K=4 round of each chain (same
scene, user, seed, folder); and per scene and folder what 0.6 instead of 0.7 does to the
K=16 rounds, with the fits' sure ratios (a label-free signal a rule could use).

    python -m map_refiner.dev.corrections.gate_by_k \
        --json out/s39/changes_dgate.json out/s39/changes_s39.json
"""

from __future__ import annotations

import argparse
import collections
import json
import re
from collections.abc import Callable
from pathlib import Path

from .gate_rules import Records, Rows, cell, kept_records


def polygons(key: str) -> int:
    """K, from a kept model's key (``folder/<scene>_<user>_<K>_<variant>_seed<S>``)."""
    found = re.search(r"_(\d+)_(head|rnn)", key)
    if found is None:
        raise ValueError(f"no K in {key!r}")
    return int(found.group(1))


def kept_sets(rows: Rows) -> dict[str, Records]:
    chosen = {
        k: r
        for k, r in kept_records("out/s36/models/*/*.safetensors").items()
        if k in rows and not k.startswith("gen_ad/")
    }
    later = {
        **kept_records("out/s38/models/*/*.safetensors"),
        **kept_records("out/s38/models2/*/*.safetensors"),
    }
    newest = {
        k: r
        for pattern in ("never_gen_*", "own_*")
        for k, r in kept_records(f"out/s39/models/{pattern}/*.safetensors").items()
    }
    sets = {
        "session 36": chosen,
        "session 38": {k: r for k, r in later.items() if k in rows},
        "session 39": {k: r for k, r in newest.items() if k in rows},
    }
    sets["all"] = {k: r for s in sets.values() for k, r in s.items()}
    return sets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, nargs="+", required=True, help="changes_probe rows")
    a = p.parse_args(argv)
    rows: Rows = {}
    for path in a.json:
        rows |= json.loads(path.read_text())
    sets = kept_sets(rows)

    def gate(at_16: float) -> Callable[[str, dict], float]:
        return lambda k, _r: rows[k]["dgate0.7" if polygons(k) <= 4 else f"dgate{at_16}"]

    print("| rule | " + " | ".join(f"{n} ({len(s)})" for n, s in sets.items()) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for name, rule in {
        "0.7 (the product)": gate(0.7),
        "0.7 for K=4, 0.6 for K=16": gate(0.6),
        "0.7 for K=4, 0.55 for K=16": gate(0.55),
    }.items():
        print(f"| {name} | " + " | ".join(cell(rows, s, rule) for s in sets.values()) + " |")

    every = sets["all"]
    print("\nThe K=16 round against the K=4 one of the same chain (right halves over the start):")
    for key in ("after", "dgate0.7", "dgate0.6"):
        chains: dict[str, dict[int, float]] = collections.defaultdict(dict)
        for k in every:
            chains[re.sub(r"_\d+_(head|rnn)", r"_K_\1", k)][polygons(k)] = (
                rows[k][key] - rows[k]["before"]
            )
        pairs = [(c[4], c[16]) for c in chains.values() if 4 in c and 16 in c]
        below = sum(b < a - 0.5 for a, b in pairs)
        above = sum(b > a + 0.5 for a, b in pairs)
        print(
            f"- {key}: {len(pairs)} chains, K=16 below K=4 by over 0.5 in {below}, above in "
            f"{above}; summed K=4 {sum(a for a, _ in pairs):+.1f}, K=16 "
            f"{sum(b for _, b in pairs):+.1f}"
        )

    print("\nK=16 rounds, gate 0.6 minus 0.7, by folder kind and scene (sure ratios):")
    groups: dict[tuple[str, str], list[tuple[float, float]]] = collections.defaultdict(list)
    for k, record in every.items():
        if polygons(k) == 16:
            kind = k.split("/")[0].split("_")[0]
            row = rows[k]
            groups[(kind, row["scene"])].append(
                (row["dgate0.6"] - row["dgate0.7"], float(record["sure_ratio"]))
            )
    for (kind, scene), found in sorted(groups.items()):
        ratios = [r for _, r in found]
        print(
            f"- {kind} {scene}: {len(found)} rounds, {sum(d for d, _ in found):+.1f} "
            f"({sum(d < -0.05 for d, _ in found)} lose), sure ratios "
            f"{min(ratios):.2f}-{max(ratios):.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
