"""Where a training step's time goes: torch.profiler over a few steps of pretraining.

usage: python benchmarks/profile_train.py DATA_DIR [--steps N] [--precision auto|fp32|bf16] [--batch B] [--shape LxHxW]
(--batch and --shape default to the assignment's pretraining; smaller ones make it a seconds-long check.)
Prints wall ms/step, GPU busy ms/step and the top operators by device and host time.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from kgpt.data.corruption import CorruptionBatcher
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import BLOCK_SIZE, Corpus
from kgpt.training.recipe import ASSIGNMENT
from kgpt.training import Trainer, TrainerConfig, final_tokens_for, resolve_device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--variant", default="vanilla")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch", type=int, default=ASSIGNMENT.pretrain.batch)
    ap.add_argument("--shape", default=None, help="LAYERSxHEADSxWIDTH (default: the assignment's model)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    corpus = Corpus.load(f"{args.data_dir}/wiki.txt")
    shape = {} if args.shape is None else dict(zip(("n_layer", "n_head", "n_embd"), map(int, args.shape.split("x"))))
    model = GPT(GPTConfig(len(corpus.vocab), BLOCK_SIZE, variant=args.variant, **shape))
    batcher = CorruptionBatcher(corpus.documents, corpus.vocab, BLOCK_SIZE, device)
    amp = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    cfg = TrainerConfig(max_epochs=1, batch_size=args.batch, learning_rate=ASSIGNMENT.pretrain.lr,
                        final_tokens=final_tokens_for(len(corpus.documents), BLOCK_SIZE), amp=amp, progress=False)
    trainer = Trainer(model, batcher, cfg, corpus.vocab, device)
    gen = trainer.generator

    def steps(n: int) -> None:
        for _ in range(n):
            idx = torch.randint(0, len(batcher), (args.batch,), device=device, generator=gen)
            x, y = batcher.sample(idx, gen)
            trainer.runner(x, y, ASSIGNMENT.pretrain.lr)

    steps(5)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    steps(args.steps)
    sync()
    wall = (time.perf_counter() - t0) / args.steps * 1e3
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        steps(args.steps)
        sync()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25))
    if device.type == "cuda":
        busy = sum(e.self_device_time_total for e in prof.key_averages()) / args.steps / 1e3
        print(f"GPU busy {busy:.2f} ms/step")
    print(f"wall {wall:.2f} ms/step, {args.batch * (BLOCK_SIZE - 1) / wall * 1e3:,.0f} tokens/s")


if __name__ == "__main__":
    main()
