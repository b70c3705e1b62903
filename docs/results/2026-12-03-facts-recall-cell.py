"""The facts demo's recall cell alone (seed 0's data), with the recall recipe at 60 passes (the cell before b7b77c3)."""
import sys, time, json
from dataclasses import replace
from pathlib import Path
from kgpt.data.synthetic_facts import FactsConfig, generate_facts
from kgpt.data.task import read_tasks
from kgpt.presets import DEMO_PRESETS, RECALL_SETTING, for_facts
from kgpt.study import Cell, Study

recipe, passes = sys.argv[1], int(sys.argv[2])
out = Path(f"runs/e5/facts-{recipe}-{passes}")
p = for_facts(DEMO_PRESETS["cpu"])
(s,) = [x for x in p.settings if x.name == RECALL_SETTING]
p = replace(p, settings=(replace(s, recipe=recipe, pretrain_epochs=passes),))
generate_facts(FactsConfig(**{**p.data.sizes(), "seed": 0})).write(out / "data")
tasks = read_tasks(out / "data")
for name in tasks:
    study = Study(out / "data", out / name, p, "cpu", progress=False, task=tasks[name], shared_pretraining=out / "pretrained")
    row = study.run_cell(Cell(RECALL_SETTING, "rope", 0))
    print(json.dumps({"recipe": recipe, "passes": passes, "task": name, "correct": row["correct"], "total": row["total"],
                      "free_recall": row.get("free_recall_stored"), "seconds": row["seconds"]}), flush=True)
