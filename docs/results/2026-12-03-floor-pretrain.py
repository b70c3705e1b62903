"""Round FLOOR: the half-hour recaller (seed 1) with its cosine annealed to 0 instead of 10% of the peak."""
import sys
from dataclasses import replace
from kgpt.pipeline import RunOptions, pretrain
from kgpt.training.recipe import RECALL_HALF_HOUR

recipe = replace(RECALL_HALF_HOUR, pretrain=replace(RECALL_HALF_HOUR.pretrain, lr_floor=0.0))
opts = RunOptions(seed=1, device="cpu", processes=2, checkpoint_every=300, progress=False, recipe=recipe,
                  resume="--resume" in sys.argv, model={"n_layer": 4, "n_head": 4, "n_embd": 128})
r = pretrain("rope", "../shared/data/birthplaces/wiki.txt", "runs/fl/pretrain-s1.params", opts=opts)
print("final loss", r.final_loss, "steps", r.steps, flush=True)
