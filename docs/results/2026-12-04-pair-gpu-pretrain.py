"""Round PAIR on a GPU: one half-hour recaller (the `recall-half-hour` recipe, 4x4x128 RoPE)
with its digit noise at the rate given (0: none), float32 arithmetic (TF32 matrix products).

    python 2026-12-04-pair-gpu-pretrain.py SEED NOISE DEVICE DATA_DIR OUT.params [EPOCHS]

One JSON line: seed, noise, steps, final loss, seconds."""
import json
import sys
import time
from dataclasses import replace

from kgpt.pipeline import RunOptions, pretrain
from kgpt.presets import LAPTOP_MODEL
from kgpt.training.recipe import RECALL_HALF_HOUR

seed, noise, device, data, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
epochs = int(sys.argv[6]) if len(sys.argv) > 6 else None
# The digits are named here: the recipe itself no longer noises them (reverted by this round).
recipe = replace(RECALL_HALF_HOUR, mix=replace(RECALL_HALF_HOUR.mix, input_noise=noise, input_noise_chars="0123456789"))
opts = RunOptions(seed=seed, device=device, precision="fp32", checkpoint_every=3600, progress=False, recipe=recipe,
                  model=LAPTOP_MODEL)
t0 = time.perf_counter()
r = pretrain("rope", f"{data}/wiki.txt", out, max_epochs=epochs, opts=opts)
print(json.dumps({"seed": seed, "input_noise": noise, "input_noise_chars": recipe.mix.input_noise_chars,
                  "steps": r.steps, "final_loss": r.final_loss, "pretrain_s": round(time.perf_counter() - t0, 1),
                  "device": device, "date": time.strftime("%Y-%m-%d")}), flush=True)
