"""The gpu preset's recall-read cell alone, one seed: exactly the cell `kgpt reproduce
--preset gpu` runs, without the preset's knowledge cell (five minutes, 4.8% on seed 0).

    python 2026-12-04-gpu-recall-seeds.py SEED DATA_DIR OUT [EPOCHS]

Prints the cell's row as one JSON line (EPOCHS shortens its training, for a dry run)."""
import json
import sys
from dataclasses import replace
from pathlib import Path

from kgpt.presets import PRESETS, RECALL_SETTING
from kgpt.study import Cell, Study

seed, data, out = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
epochs = {"pretrain_epochs": int(sys.argv[4]), "finetune_epochs": int(sys.argv[4])} if len(sys.argv) > 4 else {}
gpu = PRESETS["gpu"]
preset = replace(gpu, settings=tuple(replace(s, **epochs) for s in gpu.settings if s.name == RECALL_SETTING))
device = "cuda" if not epochs else "cpu"
row = Study(data, out, preset, device, progress=False).run([Cell(RECALL_SETTING, "rope", seed)])[0]
print(json.dumps(row), flush=True)
