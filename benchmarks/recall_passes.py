"""How fast a recall pretraining stores its bios: a proxy on a share of the corpus.

Trains the recall recipe's recaller on every ``--every``-th bio of wiki.txt for a whole
run (its own warmup and cosine) with the batch, learning rate, weight decay and model
size given, then recalls each of those bios from its cue ``NAME.`` exactly as answering
does (:func:`kgpt.recaller.recall`, greedily) and counts the recalls that reproduce the
bio's first ``--chars`` characters (all of a shorter bio) exactly. No label is read: the recaller's whole task is the
bios, so the share it gives back whole measures what it stored. One JSON line.

    python benchmarks/recall_passes.py --every 5 --epochs 40 --batch 32 --lr 4e-3 --weight_decay 0 --group

Run it with the machine to itself: its seconds are part of what it measures.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch
from knowledge_proxy import DATA
from recall_proxy import cpu_name
from recall_step import fresh_recaller

from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.data.corpus import bio_name
from kgpt.pipeline import Corpus
from kgpt.recaller import recall
from kgpt.training import Trainer, TrainerConfig
from kgpt.training.recipe import OPTIMIZERS, RECALL, WEIGHT_DECAY, run_schedule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", default=str(DATA))
    ap.add_argument("--every", type=int, default=5, help="train on every N-th bio of the corpus")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=RECALL.pretrain.batch)
    ap.add_argument("--lr", type=float, default=RECALL.pretrain.lr)
    ap.add_argument("--weight_decay", type=float, default=WEIGHT_DECAY)
    ap.add_argument("--lr_floor", type=float, default=RECALL.pretrain.lr_floor, help="the cosine's floor, a share of the peak")
    ap.add_argument("--n_layer", type=int, default=4)
    ap.add_argument("--n_embd", type=int, default=128)
    ap.add_argument("--chars", type=int, default=RECALL.reader_settings.chars, help="characters a recall must give back")
    ap.add_argument("--group", action=argparse.BooleanOptionalAction, default=RECALL.group_lengths,
                    help="batches of bios of about one length")
    ap.add_argument("--end_mark", action="store_true", help="bios that fit end with an end mark (QuestionMix.end_mark)")
    ap.add_argument("--input_noise", type=float, default=RECALL.mix.input_noise,
                    help="share of a bio's input characters after its name replaced (QuestionMix.input_noise)")
    ap.add_argument("--input_noise_chars", default=RECALL.mix.input_noise_chars,
                    help="noise only these characters, each into one of them (QuestionMix.input_noise_chars)")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                    help="muon: Muon for the blocks' matrices, AdamW for the rest (kgpt.training.muon)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    corpus = Corpus.load(f"{a.data_dir}/wiki.txt")
    bios = [d for d in corpus.documents[::a.every] if bio_name(d) is not None]
    block = RECALL.block_size
    batcher = KnowledgeBatcher(bios, [], corpus.vocab, block, replace(RECALL.mix, end_mark=a.end_mark,
                                                                          input_noise=a.input_noise,
                                                                          input_noise_chars=a.input_noise_chars))
    torch.manual_seed(a.seed)
    model = fresh_recaller(len(corpus.vocab), block, a.n_layer, a.n_embd)
    warmup, final = run_schedule(a.epochs * len(batcher) * batcher.width)
    cfg = TrainerConfig(max_epochs=a.epochs, batch_size=a.batch, learning_rate=a.lr, warmup_tokens=warmup,
                        final_tokens=final, weight_decay=a.weight_decay,
                        lr_floor=a.lr_floor,
                        recipe=replace(RECALL, group_lengths=a.group), seed=a.seed,
                        progress=False, stage="proxy", optimizer=a.optimizer)
    trainer = Trainer(model, batcher, cfg, corpus.vocab, torch.device("cpu"))
    t0 = time.perf_counter()
    result = trainer.run()
    train_s = time.perf_counter() - t0
    last = [h["loss"] for h in result.history if h.get("epoch") == a.epochs] or [result.final_loss]
    model.eval()
    t0 = time.perf_counter()
    recalled = recall(model, corpus.vocab, [bio_name(b) for b in bios], a.chars)
    # A bio shorter than --chars is recalled whole when all of it comes back (what follows
    # is past its end); runs before this rule (short_bios_count absent) counted none of them.
    whole = sum(r[: len(b[: a.chars])] == b[: a.chars] for r, b in zip(recalled, bios))
    print(json.dumps({
        "bios": len(bios), "every": a.every, "epochs": a.epochs, "batch": a.batch, "lr": a.lr,
        "weight_decay": a.weight_decay, "lr_floor": a.lr_floor, "group": a.group, "n_layer": a.n_layer, "n_embd": a.n_embd, "seed": a.seed,
        "steps": result.steps, "last_pass_loss": round(sum(last) / len(last), 4),
        "recalled_whole": whole, "recalled_share": round(whole / len(bios), 4), "chars": a.chars,
        "short_bios_count": True, "end_mark": a.end_mark, "input_noise": a.input_noise,
        "input_noise_chars": a.input_noise_chars, "optimizer": a.optimizer,
        "train_s": round(train_s, 1), "s_per_full_pass": round(train_s / a.epochs * a.every, 1),
        "recall_s": round(time.perf_counter() - t0, 1),
        "cpu": cpu_name(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }), flush=True)


if __name__ == "__main__":
    main()
