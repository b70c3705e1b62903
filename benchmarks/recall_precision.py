"""bf16 autocast and torch.compile on the CPU for the recall recipe's laptop model.

Two measurements, both on the real wiki.txt stream of the recall recipe (every bio as
next-character prediction, cut to 100 characters), RoPE 4x4x128, batch 64, lr 4e-3,
float32 master weights, one core pair:

* ``--timing``: milliseconds per optimiser step (StepRunner, random ids of the stream's
  shape) for float32 / bf16 autocast, eager / compiled;
* default: a 10-epoch proxy of pretraining, compiled, float32 against bf16 autocast,
  with the same seed, reporting seconds and the loss history. The recipe adopts bf16 on
  the CPU only if its mean loss over the last four logs is within 0.02 of float32's.

    python benchmarks/recall_precision.py --timing
    python benchmarks/recall_precision.py --epochs 10 > docs/results/2026-11-29-recall-bf16-ab.jsonl

``--shape`` and ``--no-compile`` shrink either measurement to seconds (the tests run it so).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import Corpus
from kgpt.training import Trainer, TrainerConfig
from kgpt.training.recipe import RECALL
from kgpt.training.steps import StepRunner

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "birthplaces"
SHAPE = "4x4x128"  # LAYERSxHEADSxWIDTH
TOLERANCE = 0.02


def model(vocab_size: int, seed: int, shape: str) -> GPT:
    torch.manual_seed(seed)
    layers, heads, width = map(int, shape.split("x"))
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=128, variant="rope", n_layer=layers, n_head=heads,
                         n_embd=width, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0))


def timing(shape: str, compiled: bool, steps: int = 15) -> None:
    x, y = torch.randint(2, 120, (64, 99)), torch.randint(2, 120, (64, 99))
    for compile in (False, True) if compiled else (False,):
        for amp in (False, True):
            m = model(120, 0, shape)
            runner = StepRunner(m, torch.optim.AdamW(m.parameters(), lr=1e-3), 1.0, 64, amp=amp, compile=compile,
                                cuda_graphs=False, buckets=0)
            for _ in range(3):
                runner(x, y, 1e-3)
            t = time.perf_counter()
            for _ in range(steps):
                loss, _ = runner(x, y, 1e-3)
            float(loss)
            print(json.dumps({"amp": amp, "compile": compile, "shape": shape,
                              "ms_per_step": round((time.perf_counter() - t) / steps * 1000, 1),
                              "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)


def proxy(data_dir: Path, epochs: int, seed: int, shape: str, compiled: bool) -> None:
    corpus = Corpus.load(data_dir / "wiki.txt")
    final = {}
    for amp in (False, True):
        m = model(len(corpus.vocab), seed, shape)
        batcher = KnowledgeBatcher(corpus.documents, [], corpus.vocab, 128, RECALL.mix)
        warmup, end = RECALL.schedule_tokens(epochs, len(batcher), batcher.width, batcher.n_bios, 128)
        cfg = TrainerConfig(max_epochs=epochs, batch_size=64, learning_rate=4e-3, final_tokens=end, warmup_tokens=warmup,
                            recipe=RECALL, progress=False, seed=seed, compile=compiled, amp=amp, log_every=23)
        t = time.perf_counter()
        result = Trainer(m, batcher, cfg, corpus.vocab, torch.device("cpu")).train()
        tail = [h["loss"] for h in result.history[-4:]]
        final[amp] = sum(tail) / len(tail)
        print(json.dumps({"amp": amp, "compile": compiled, "shape": shape, "epochs": epochs,
                          "seconds": round(time.perf_counter() - t, 1), "last_losses": tail, "history": result.history}),
              flush=True)
    print(json.dumps({"bf16_within_tolerance": final[True] <= final[False] + TOLERANCE, "tolerance": TOLERANCE}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", type=Path, default=DATA)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", default=SHAPE, help="LAYERSxHEADSxWIDTH of the RoPE model")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="--no-compile: eager only (timing then leaves out the compiled rows)")
    a = ap.parse_args()
    timing(a.shape, a.compile) if a.timing else proxy(a.data_dir, a.epochs, a.seed, a.shape, a.compile)


if __name__ == "__main__":
    main()
