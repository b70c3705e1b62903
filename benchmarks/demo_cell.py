"""One of the demo's cells alone (its data, seed 0), with its sizes or recipe varied.

    python benchmarks/demo_cell.py --group_lengths      # the recall cell, batches of one length
    python benchmarks/demo_cell.py --validation --pretrain_epochs 40 60 --finetune_epochs 6 12 24
    python benchmarks/demo_cell.py --validation --end_mark --pretrain_epochs 40 60
    python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 80 120
    python benchmarks/demo_cell.py --setting pretrain+finetune --processes 2   # each step shared by two processes
    python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 90 --pretrain_lr 3e-3 5e-3
    python benchmarks/demo_cell.py --validation --setting pretrain+finetune --pretrain_epochs 80 --finetune_lr 6e-4 2e-3
    python benchmarks/demo_cell.py --validation --optimizer muon --pretrain_epochs 20 30   # the recall cell, Muon

Prints one JSON line per pretrained model and finetuning: right of the people scored,
free recall (a cell that pretrains), seconds. Writes under runs/; the finetunings of one
pretrained model share it. ``--validation`` scores a fixed fifth of the demo's training
people, held out of finetuning, instead of its dev people: the demo's settings are chosen
there, never on its dev. Each cell and variation writes under its own folder of ``--out``.
``--preset tiny`` runs the tiny demo's cell instead, in seconds (the tests run it so).
"""

from __future__ import annotations

import argparse
import itertools
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
    ap.add_argument("--group_lengths", action=argparse.BooleanOptionalAction, default=None,
                    help="a recall cell's batches: of one length, or shuffled (default: its recipe's)")
    ap.add_argument("--end_mark", action=argparse.BooleanOptionalAction, default=None,
                    help="a recall cell's bios end with a mark its recalls stop at (default: its recipe's)")
    ap.add_argument("--pretrain_epochs", type=int, nargs="+", default=[None],
                    help="pretraining epochs, one pretrained model each (default: the demo's)")
    ap.add_argument("--pretrain_lr", type=float, nargs="+", default=[None],
                    help="pretraining learning rates, one pretrained model each (default: the demo's)")
    ap.add_argument("--finetune_epochs", type=int, nargs="+", default=[None],
                    help="finetuning epochs, one finetuning each (default: the demo's)")
    ap.add_argument("--finetune_lr", type=float, nargs="+", default=[None],
                    help="finetuning learning rates, one finetuning each (default: the demo's)")
    ap.add_argument("--optimizer", choices=recipe.OPTIMIZERS, default=None,
                    help="the cell's pretraining optimiser (default: the demo's; kgpt.training.muon for muon)")
    ap.add_argument("--processes", type=int, default=None,
                    help="processes sharing each training step (default: the demo's, kgpt.training.parallel)")
    ap.add_argument("--validation", action="store_true", help="score held-out training people, not dev")
    ap.add_argument("--out", type=Path, default=Path("runs/demo-cell"))
    ap.add_argument("--preset", choices=tuple(DEMO_PRESETS), default="cpu")
    a = ap.parse_args()
    demo = DEMO_PRESETS[a.preset]
    settings = {s.name: s for s in demo.settings}
    if a.setting not in settings:
        ap.error(f"--setting: one of {', '.join(settings)}")
    setting = settings[a.setting]
    cell_recipe = recipe.get_recipe(setting.recipe)
    tag, group, end = a.setting, None, None  # group and end: None for a recipe without bios
    if cell_recipe.mix is not None:
        group = cell_recipe.group_lengths if a.group_lengths is None else a.group_lengths
        end = cell_recipe.mix.end_mark if a.end_mark is None else a.end_mark
        cell_recipe = replace(cell_recipe, group_lengths=group, mix=replace(cell_recipe.mix, end_mark=end))
        tag += f"-group{int(group)}{'-end' if end else ''}"
    elif a.group_lengths is not None or a.end_mark is not None:
        ap.error(f"--group_lengths and --end_mark vary a bios recipe; {a.setting} trains with {setting.recipe}")
    # The cell names its recipe: varied in the registry, by value (its checkpoints keep the
    # recipe's name, so a --no-end_mark run's are named end-marked all the same).
    recipe.RECIPES[setting.recipe] = cell_recipe
    if a.optimizer is not None:
        setting = replace(setting, pretrain_optimizer=a.optimizer)
        tag += f"-{a.optimizer}"
    if a.processes is not None:
        setting = replace(setting, processes=a.processes)
        tag += f"-p{a.processes}"
    out = a.out / f"{tag}{'-validation' if a.validation else ''}"
    generate(replace(demo.data, seed=0)).write(out / "data")
    if a.validation:
        hold_out(out / "data")
    for passes, lr in itertools.product(a.pretrain_epochs, a.pretrain_lr):
        pretrained = f"{passes or 'default'}{f'-lr{lr:g}' if lr else ''}"
        for epochs, finetune_lr in itertools.product(a.finetune_epochs, a.finetune_lr):
            varied = replace(setting, pretrain_epochs=passes or setting.pretrain_epochs,
                             pretrain_lr=lr or setting.pretrain_lr, finetune_epochs=epochs or setting.finetune_epochs,
                             finetune_lr=finetune_lr or setting.finetune_lr)
            finetuned = f"{epochs or 'default'}{f'-lr{finetune_lr:g}' if finetune_lr else ''}"
            study = Study(out / "data", out / f"pretrain{pretrained}-finetune{finetuned}",
                          replace(demo, settings=(varied,)), "cpu", progress=False,
                          shared_pretraining=out / f"pretrained{pretrained}")
            t0 = time.time()
            row = study.run_cell(Cell(a.setting, "rope", 0))
            print(json.dumps({
                "preset": a.preset, "setting": a.setting, "recipe": varied.recipe,
                "group_lengths": group, "end_mark": end, "validation": a.validation,
                "pretrain_epochs": (varied.pretrain_epochs or cell_recipe.pretrain.epochs) if varied.pretrains else None,
                "pretrain_lr": (varied.pretrain_lr or cell_recipe.pretrain.lr) if varied.pretrains else None,
                "finetune_epochs": varied.finetune_epochs or cell_recipe.finetune.epochs,
                "finetune_lr": varied.finetune_lr or cell_recipe.finetune.lr,
                "optimizer": row["pretrain_optimizer"], "processes": varied.processes, "correct": row["correct"], "total": row["total"], "free_recall": row.get("free_recall_stored"),
                "seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
