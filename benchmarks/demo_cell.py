"""One of the demo's cells alone (its data, seed 0), with its sizes or recipe varied.

    python benchmarks/demo_cell.py --group_lengths      # the recall cell, batches of one length
    python benchmarks/demo_cell.py --validation --pretrain_epochs 40 60 --finetune_epochs 6 12 24
    python benchmarks/demo_cell.py --validation --end_mark --pretrain_epochs 40 60
    python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 80 120

Prints one JSON line per pretrained model and finetuning: right of the people scored,
free recall (a cell that pretrains), seconds. Writes under runs/; the finetunings of one
pretrained model share it. ``--validation`` scores a fixed fifth of the demo's training
people, held out of finetuning, instead of its dev people: the demo's settings are chosen
there, never on its dev. ``--preset tiny`` runs the tiny demo's cell instead, in seconds
(the tests run it so).
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
    ap.add_argument("--setting", default=RECALL_SETTING, help="the demo's cell to run (a setting of its preset)")
    ap.add_argument("--group_lengths", action=argparse.BooleanOptionalAction, default=recipe.RECALL.group_lengths,
                    help="the recall recipe's batches: of one length, or shuffled")
    ap.add_argument("--end_mark", action=argparse.BooleanOptionalAction, default=recipe.RECALL.mix.end_mark,
                    help="the recall recipe's bios end with a mark the recall stops at")
    ap.add_argument("--pretrain_epochs", type=int, nargs="+", default=[None],
                    help="pretraining epochs, one pretrained model each (default: the demo's)")
    ap.add_argument("--finetune_epochs", type=int, nargs="+", default=[None],
                    help="finetuning epochs, one finetuning each (default: the demo's)")
    ap.add_argument("--validation", action="store_true", help="score held-out training people, not dev")
    ap.add_argument("--out", type=Path, default=Path("runs/demo-cell"))
    ap.add_argument("--preset", choices=tuple(DEMO_PRESETS), default="cpu")
    a = ap.parse_args()
    demo = DEMO_PRESETS[a.preset]
    settings = {s.name: s for s in demo.settings}
    if a.setting not in settings:
        ap.error(f"--setting: one of {', '.join(settings)}")
    setting = settings[a.setting]
    # The cell names its recipe: the recall recipe is varied in the registry, by value.
    recipe.RECIPES["recall"] = replace(recipe.RECALL, group_lengths=a.group_lengths,
                                       mix=replace(recipe.RECALL.mix, end_mark=a.end_mark))
    tag = f"group{int(a.group_lengths)}{'-end' if a.end_mark else ''}" if a.setting == RECALL_SETTING else a.setting
    out = a.out / f"{tag}{'-validation' if a.validation else ''}"
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
            cell_recipe = recipe.get_recipe(varied.recipe)
            t0 = time.time()
            row = study.run_cell(Cell(a.setting, "rope", 0))
            print(json.dumps({
                "preset": a.preset, "setting": a.setting, "recipe": varied.recipe,
                "group_lengths": a.group_lengths if cell_recipe.mix else None,
                "end_mark": a.end_mark if cell_recipe.mix else None, "validation": a.validation,
                "pretrain_epochs": (varied.pretrain_epochs or cell_recipe.pretrain.epochs) if varied.pretrains else None,
                "finetune_epochs": varied.finetune_epochs or cell_recipe.finetune.epochs,
                "correct": row["correct"], "total": row["total"], "free_recall": row.get("free_recall_stored"),
                "seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
