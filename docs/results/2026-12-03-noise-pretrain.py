"""Round NOISE: the half-hour recaller (seed 1) with 5% of each bio's input characters after the name replaced."""
import sys
from dataclasses import replace
from kgpt.pipeline import RunOptions, pretrain
from kgpt.training.recipe import RECALL_HALF_HOUR

recipe = replace(RECALL_HALF_HOUR, mix=replace(RECALL_HALF_HOUR.mix, input_noise=0.05))
opts = RunOptions(seed=1, device="cpu", processes=2, checkpoint_every=300, progress=False, recipe=recipe,
                  resume="--resume" in sys.argv, model={"n_layer": 4, "n_head": 4, "n_embd": 128})
r = pretrain("rope", "../shared/data/birthplaces/wiki.txt", "runs/nz/pretrain-s1.params", opts=opts)
print("final loss", r.final_loss, "steps", r.steps, flush=True)
