"""The demo's recall cell alone (its data, seed 0), with the recall recipe varied by one field.

    python benchmarks/demo_recall_cell.py --group_lengths      # batches of one length
    python benchmarks/demo_recall_cell.py --no-group_lengths   # shuffled batches
    python benchmarks/demo_recall_cell.py --validation --pretrain_epochs 40 60 --finetune_epochs 6 12 24

Prints one JSON line per recaller and reader: right of the people scored, free recall,
seconds. Writes under runs/; the readers of one recaller share it. ``--validation`` scores
a fixed fifth of the demo's training people, held out of the reader's finetuning, instead
of its dev people: the demo's settings are chosen there, never on its dev.
``--preset tiny`` runs the tiny demo's cell instead, in seconds (the tests run it so).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from knowledge_proxy import split

from kgpt.data.synthetic import FILE_NAMES, generate
from kgpt.presets import DEMO_PRESETS, RECALL_SETTING
from kgpt.study import Cell, Study
from kgpt.training import recipe

VALIDATION_SHARE = 5  # --validation holds out one training person in this many


def hold_out(data_dir: Path) -> None:
    """Make ``data_dir``'s dev file a fixed fifth of its training questions, and its
    training file the rest (wiki.txt, which names no answer, is unchanged)."""
    train = data_dir / FILE_NAMES["train"]
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    held, rest = split(lines, len(lines) // VALIDATION_SHARE)  # the real data's validation split, by share
    (data_dir / FILE_NAMES["dev"]).write_text("".join(held), encoding="utf-8")
    train.write_text("".join(rest), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group_lengths", action=argparse.BooleanOptionalAction, default=recipe.RECALL.group_lengths)
    ap.add_argument("--pretrain_epochs", type=int, nargs="+", default=[None],
                    help="the recaller's epochs, one recaller each (default: the demo's)")
    ap.add_argument("--finetune_epochs", type=int, nargs="+", default=[None],
                    help="the reader's epochs, one reader each (default: the demo's)")
    ap.add_argument("--validation", action="store_true", help="score held-out training people, not dev")
    ap.add_argument("--out", type=Path, default=Path("runs/demo-recall-cell"))
    ap.add_argument("--preset", choices=tuple(DEMO_PRESETS), default="cpu")
    a = ap.parse_args()
    recipe.RECIPES["recall"] = replace(recipe.RECALL, group_lengths=a.group_lengths)  # the cell names its recipe
    demo = DEMO_PRESETS[a.preset]
    (setting,) = (s for s in demo.settings if s.name == RECALL_SETTING)
    out = a.out / f"group{int(a.group_lengths)}{'-validation' if a.validation else ''}"
    generate(replace(demo.data, seed=0)).write(out / "data")
    if a.validation:
        hold_out(out / "data")
    for passes in a.pretrain_epochs:
        for epochs in a.finetune_epochs:
            varied = replace(setting, pretrain_epochs=passes or setting.pretrain_epochs,
                             finetune_epochs=epochs or setting.finetune_epochs)
            study = Study(out / "data", out / f"pretrain{passes or 'default'}-finetune{epochs or 'default'}",
                          replace(demo, settings=(varied,)), "cpu", progress=False,
                          shared_pretraining=out / f"pretrained{passes or 'default'}")
            t0 = time.time()
            row = study.run_cell(Cell(RECALL_SETTING, "rope", 0))
            print(json.dumps({
                "preset": a.preset, "group_lengths": a.group_lengths, "validation": a.validation,
                "pretrain_epochs": varied.pretrain_epochs or recipe.RECALL.pretrain.epochs,
                "finetune_epochs": varied.finetune_epochs or recipe.RECALL.finetune.epochs,
                "correct": row["correct"], "total": row["total"], "free_recall": row.get("free_recall_stored"),
                "seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
