"""Round LR3: the half-hour recaller (seed 1) on the whole corpus at learning rate 3e-3 instead of 4e-3."""
import sys
from dataclasses import replace
from kgpt.pipeline import RunOptions, pretrain
from kgpt.presets import LAPTOP_MODEL
from kgpt.training.recipe import RECALL_HALF_HOUR

recipe = replace(RECALL_HALF_HOUR, pretrain=replace(RECALL_HALF_HOUR.pretrain, lr=3e-3))
opts = RunOptions(seed=1, device="cpu", processes=2, checkpoint_every=300, progress=False, recipe=recipe,
                  resume="--resume" in sys.argv, model=LAPTOP_MODEL)
r = pretrain("rope", "../shared/data/birthplaces/wiki.txt", "runs/lr3/pretrain-s1.params", opts=opts)
print("final loss", r.final_loss, "steps", r.steps, flush=True)
