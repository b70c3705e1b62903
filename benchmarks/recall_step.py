"""Seconds per step and per pass of the recall recipe's pretraining on the real bios.

The real training loop (:class:`kgpt.training.Trainer`) on the recipe's stream of bios,
eager, with the batch, threads, text length and length grouping given; prints one JSON
line: seconds per step and per pass over the 2,937 bios, and the columns a row computed
on average (length buckets and grouping cut PAD off).

    python benchmarks/recall_step.py --threads 2 --batch 16 --group
    python benchmarks/recall_step.py --threads 2 --batch 64 --chars 100 --block 128 --no-group
    python benchmarks/recall_step.py --threads 2 --processes 2 --batch 32 --group
    python benchmarks/recall_step.py --threads 2 --batch 64 --no-group --dropout 0.1
    python benchmarks/recall_step.py --threads 2 --processes 2 --batch 32 --group --optimizer muon

With ``--processes`` the threads are shared out among the processes (kgpt.training.parallel),
and the timed steps include starting the other processes once (fresh interpreters: about a second).

Run it with the machine to itself: two processes on two cores slow each other.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
from knowledge_proxy import DATA
from recall_proxy import cpu_name

from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.model import GPT, GPTConfig, dropout_rates
from kgpt.pipeline import Corpus
from kgpt.training import Trainer, TrainerConfig, parallel
from kgpt.training.recipe import OPTIMIZERS, RECALL


def fresh_recaller(vocab_size: int, block: int, n_layer: int, n_embd: int, dropout: float = 0.0) -> GPT:
    """The recall recipe's model (RoPE, 4 heads, no dropout unless given) at the given depth and width."""
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block, variant="rope", n_layer=n_layer, n_head=4,
                         n_embd=n_embd, **dropout_rates(dropout)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", default=str(DATA))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=RECALL.pretrain.batch)
    ap.add_argument("--chars", type=int, default=RECALL.mix.bio_chars, help="bio characters pretrained on")
    ap.add_argument("--block", type=int, default=RECALL.block_size)
    ap.add_argument("--group", action=argparse.BooleanOptionalAction, default=RECALL.group_lengths)
    ap.add_argument("--n_layer", type=int, default=4)
    ap.add_argument("--n_embd", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--processes", type=int, default=1, help="processes sharing each step")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="kgpt.training.muon for muon")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="every dropout rate (the recaller pretrains without; its reader finetunes with the recipe's)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    corpus = Corpus.load(f"{a.data_dir}/wiki.txt")
    batcher = KnowledgeBatcher(corpus.documents, [], corpus.vocab, a.block, replace(RECALL.mix, bio_chars=a.chars))
    torch.manual_seed(0)
    model = fresh_recaller(len(corpus.vocab), a.block, a.n_layer, a.n_embd, a.dropout)
    cfg = TrainerConfig(max_epochs=10**6, batch_size=a.batch, learning_rate=RECALL.pretrain.lr, final_tokens=10**9,
                        recipe=replace(RECALL, group_lengths=a.group), progress=False, stage="bench",
                        optimizer=a.optimizer)
    trainer = Trainer(model, batcher, cfg, corpus.vocab, torch.device("cpu"))
    parallel.train(trainer, a.processes, 3)  # warm-up, untimed
    positions = trainer.runner.positions
    t0 = time.perf_counter()
    parallel.train(trainer, a.processes, a.steps)
    step = (time.perf_counter() - t0) / a.steps
    print(json.dumps({
        "threads": a.threads, "processes": a.processes, "batch": a.batch, "chars": a.chars, "block": a.block, "group": a.group,
        "n_layer": a.n_layer, "n_embd": a.n_embd, "dropout": a.dropout, "optimizer": a.optimizer, "buckets": trainer.runner.buckets,
        "s_per_step": round(step, 4), "s_per_pass": round(step * trainer.steps_per_epoch, 1),
        # (the positions this process computed: its share of each batch's rows)
        "columns_per_row": round((trainer.runner.positions - positions) / a.steps / (a.batch / a.processes), 1),
        "cpu": cpu_name(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }), flush=True)


if __name__ == "__main__":
    main()
