"""The demo's recall cell alone (its data, seed 0), with the recall recipe varied by one field.

    python benchmarks/demo_recall_cell.py --group_lengths      # batches of one length
    python benchmarks/demo_recall_cell.py --no-group_lengths   # shuffled batches

Prints one JSON line: dev right of 50, free recall, seconds. Writes under runs/.
``--preset tiny`` runs the tiny demo's cell instead, in seconds (the tests run it so).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from kgpt.data.synthetic import generate
from kgpt.presets import DEMO_PRESETS, RECALL_SETTING
from kgpt.study import Cell, Study
from kgpt.training import recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group_lengths", action=argparse.BooleanOptionalAction, default=recipe.RECALL.group_lengths)
    ap.add_argument("--out", type=Path, default=Path("runs/demo-recall-cell"))
    ap.add_argument("--preset", choices=tuple(DEMO_PRESETS), default="cpu")
    a = ap.parse_args()
    recipe.RECIPES["recall"] = replace(recipe.RECALL, group_lengths=a.group_lengths)  # the cell names its recipe
    demo = DEMO_PRESETS[a.preset]
    only = replace(demo, settings=tuple(s for s in demo.settings if s.name == RECALL_SETTING))
    out = a.out / f"group{int(a.group_lengths)}"
    generate(replace(demo.data, seed=0)).write(out / "data")
    study = Study(out / "data", out, only, "cpu", progress=False)
    t0 = time.time()
    row = study.run_cell(Cell(RECALL_SETTING, "rope", 0))
    print(json.dumps({"preset": a.preset, "group_lengths": a.group_lengths, "correct": row["correct"], "total": row["total"],
                      "free_recall": row.get("free_recall_stored"), "seconds": round(time.time() - t0, 1),
                      "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
