"""Short proxy runs of the knowledge recipe, scored on a validation split, never on dev.

400 of the 2,000 training questions (a fixed shuffle, ``random.Random(1234)``) are held
out as the validation people: their questions are neither mixed into pretraining nor
finetuned on, exactly as the dev people's are not. Each run pretrains on the bios plus
the other 1,600 questions (the stream of :mod:`kgpt.data.knowledge`, the optimiser of the
``knowledge`` recipe), optionally finetunes on those 1,600, and prints at ``--evals``
points: validation accuracy, accuracy on 400 of the mixed-in people (memorised
answers), and how many validation people's birthplaces the model recites from their
bio (storage).

    python benchmarks/knowledge_proxy.py --shape 4x4x128 --epochs 20 --qa 4 --lr 4e-3

Each flag is one lever of docs/RESULTS.md's ablation table. Runs on the CPU.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from kgpt.data.corpus import read_questions
from kgpt.data.knowledge import KnowledgeBatcher, QuestionMix
from kgpt.data.questions import QuestionBatcher, encode_questions
from kgpt.evaluate import predict_places, score
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import Corpus
from kgpt.probe import cued_completions
from kgpt.training import Trainer, TrainerConfig
from kgpt.training.recipe import KNOWLEDGE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "birthplaces"
VALIDATION_PEOPLE = 400


def split(questions, people: int = VALIDATION_PEOPLE):
    """(validation, fit): a fixed ``people`` of the training questions (400), and the rest,
    each in file order."""
    order = list(range(len(questions)))
    random.Random(1234).shuffle(order)
    held = set(order[:people])
    return [q for i, q in enumerate(questions) if i in held], [q for i, q in enumerate(questions) if i not in held]


def trainer(model, batcher, corpus, epochs, lr, batch, seed):
    warmup, final = KNOWLEDGE.schedule_tokens(epochs, len(batcher), batcher.width, len(corpus.documents),
                                              model.config.block_size)
    cfg = TrainerConfig(max_epochs=epochs, batch_size=batch, learning_rate=lr, final_tokens=final, warmup_tokens=warmup,
                        recipe=KNOWLEDGE, progress=False, seed=seed, log_every=50)
    return Trainer(model, batcher, cfg, corpus.vocab, torch.device("cpu"))


def report(label, model, corpus, val, fit, t0):
    model.eval()
    _, right = score(val, predict_places(model, corpus.vocab, val))
    _, memorised = score(fit[:400], predict_places(model, corpus.vocab, fit[:400]))
    stored = cued_completions(model, corpus.vocab, corpus.documents, val).tally()
    model.train()
    print(f"{label} val {int(right)}/{len(val)} fit {int(memorised)}/{len(fit[:400])} stored {stored.stored}/{stored.probed} "
          f"(expected by chance {stored.chance:.1f}) {time.perf_counter() - t0:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", type=Path, default=DATA)
    ap.add_argument("--shape", default="4x4x128", help="LAYERSxHEADSxWIDTH")
    ap.add_argument("--variant", default="rope")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--qa", type=int, default=4, help="each mixed-in question this many times per epoch (0: none)")
    ap.add_argument("--nw", type=int, default=0, help="name windows per bio and epoch")
    ap.add_argument("--nwc", type=int, default=40, help="characters per name window")
    ap.add_argument("--no_windows", action="store_true", help="long bios only from their start")
    ap.add_argument("--bio_chars", type=int, default=None, help="cut bio examples to this many characters")
    ap.add_argument("--no_name_loss", action="store_true", help="no loss on the name's own characters")
    ap.add_argument("--bio_prompt", default=None, help='open each bio with this instead of "NAME. ", e.g. "Where was {name} born? "')
    ap.add_argument("--objective", choices=("lm", "span"), default="lm")
    ap.add_argument("--ft", type=int, default=0, help="then finetune this many epochs on the 1,600 questions")
    ap.add_argument("--ftlr", type=float, default=1e-3)
    ap.add_argument("--evals", type=int, default=4, help="evaluate this many times during pretraining")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(vars(a), flush=True)

    corpus = Corpus.load(a.data_dir / "wiki.txt")
    val, fit = split(read_questions(a.data_dir / "birth_places_train.tsv", require_answers=True))
    mix = QuestionMix(a.qa, not a.no_windows, a.objective, a.nw, a.nwc, a.bio_chars, not a.no_name_loss, a.bio_prompt)
    batcher = KnowledgeBatcher(corpus.documents, fit, corpus.vocab, 128, mix)
    torch.manual_seed(a.seed)
    layers, heads, width = map(int, a.shape.split("x"))
    model = GPT(GPTConfig(len(corpus.vocab), 128, variant=a.variant, n_layer=layers, n_head=heads, n_embd=width,
                          embd_pdrop=a.dropout, attn_pdrop=a.dropout, resid_pdrop=a.dropout))
    t = trainer(model, batcher, corpus, a.epochs, a.lr, a.batch, a.seed)
    t0 = time.perf_counter()
    total = a.epochs * t.steps_per_epoch
    for k in range(1, a.evals + 1):
        t.run(total * k // a.evals - t.progress.step)
        report(f"epoch {t.progress.epoch} step {t.progress.step} loss {t.progress.history[-1]['loss']:.3f}",
               model, corpus, val, fit, t0)
    if a.ft:
        qx, qy = encode_questions(fit, corpus.vocab, 128)
        t2 = trainer(model, QuestionBatcher(qx, qy), corpus, a.ft, a.ftlr, a.batch, a.seed)
        t2.run()
        report(f"finetuned {a.ft} epochs", model, corpus, val, fit, t0)


if __name__ == "__main__":
    main()
