"""How the energy test's verdicts on a finished rotation experiment depend on its exchangeable unit: whole chains, or
chains cut into consecutive blocks. Recomputes the comparison of `landscape rotation` (default settings) on its
output folder for each unit size and prints the p-values, then one JSON line.

    python bench/comparison_units.py runs/rotation --blocks 1,4,16,64 --subset good
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the project, not bench/ (bench/analysis.py would shadow it)
from analysis import experiment as ex  # noqa: E402
from analysis.rotation import RotationSettings, experiment_settings  # noqa: E402
from mcmc_landscape.models.nets import MLPSpec  # noqa: E402


def p_values(out: Path, blocks: int, subset: str) -> dict[str, float | None]:
    """The comparison's p-values with each chain cut into ``blocks`` units."""
    s, names = experiment_settings(RotationSettings())
    plans = ex.plan_runs(s, names)
    spec = MLPSpec(tuple(int(w) for w in s.arch.split(",")), 2, 2, s.activation)
    c = ex.compare(s, out, plans, spec, units_per_chain=blocks, embedding=False)  # the embedding: not needed here
    row = {}
    for name, entry in c["tests"].items():
        for kind, tests in entry.items():
            if kind != "box_cut_share":
                t = tests.get(subset)
                row[f"{name}:{kind}"] = None if t is None else round(t["p_value"], 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a finished `landscape rotation` folder (default settings)")
    ap.add_argument("--blocks", default="1,4,16,64", help="units per chain, comma-separated")
    ap.add_argument("--subset", choices=["good", "all"], default="good")
    args = ap.parse_args()
    table = {}
    for b in (int(x) for x in args.blocks.split(",")):
        table[b] = p_values(args.out, b, args.subset)
        print(b, table[b], flush=True)
    print(json.dumps({"subset": args.subset, "p_values": table}))


if __name__ == "__main__":
    main()
