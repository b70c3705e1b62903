"""The recall recipe on a validation split, never on dev: the reader's settings and the
pretrained model's, each scored on training people held out of the reader's finetuning.

Pretraining in the recall recipe reads wiki.txt alone (no question, no label), so a
pretrained model can be scored on held-out training people exactly as on dev, and one
pretrained model serves every reading setting. The 400 validation people of
knowledge_proxy.py (a fixed shuffle of the training questions) are held out of the
reader's finetuning, exactly as the dev people are; the reader learns from the other
1,600 and answers the 400 through the same code as ``kgpt evaluate``, once by extracting
(the recipe's default) and once by writing, from the same recalls.

    python benchmarks/recall_proxy.py --pretrained runs/r4x128-s0.pretrain.params \\
        --learn_from bios recalls both --out runs/recall-proxy >> docs/results/recall-validation.jsonl

Each ``--learn_from`` (with ``--drop_absent``, ``--swap_places`` and ``--continue_bios``) is one reader finetuned with ``kgpt finetune
--recipe recall`` with the recipe's reader settings varied by value; prints one JSON line per
reader and ``--recall_beams`` width. Runs on the CPU unless ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from knowledge_proxy import DATA, split

from kgpt import pipeline
from kgpt.answering import load_answerer
from kgpt.data.corpus import bios_by_name, person_bio, read_questions
from kgpt.data.words import contains_place
from kgpt.training.recipe import OPTIMIZERS, RECALL


def write_tsv(path: Path, questions) -> Path:
    path.write_text("".join(f"{q.text}\t{q.answer}\n" for q in questions), encoding="utf-8")
    return path


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else cpu_name()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", type=Path, default=DATA)
    ap.add_argument("--pretrained", type=Path, required=True, help="a model pretrained with --recipe recall")
    ap.add_argument("--learn_from", nargs="+", default=[RECALL.reader_settings.learn_from], choices=("bios", "recalls", "both"))
    ap.add_argument("--drop_absent", action="store_true", help="leave out examples whose place is not in the text")
    ap.add_argument("--swap_places", type=int, default=RECALL.reader_settings.swap_places,
                    help="copies of each example with its place swapped for another name")
    ap.add_argument("--swap_words", action=argparse.BooleanOptionalAction, default=RECALL.reader_settings.swap_words,
                    help="swap places for capitalised words of the texts too, else for training answers alone")
    ap.add_argument("--continue_bios", action=argparse.BooleanOptionalAction, default=RECALL.reader_settings.continue_bios,
                    help="true bios shorter than the cut go on with another's words")
    ap.add_argument("--epochs", type=int, default=RECALL.finetune.epochs)
    ap.add_argument("--lr", type=float, default=RECALL.finetune.lr)
    ap.add_argument("--dropout", type=float, default=RECALL.finetune.dropout,
                    help="every dropout rate of the reader while it is finetuned (default: the recipe's)")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default=RECALL.finetune.optimizer,
                    help="the reader's finetuning optimiser (kgpt.training.muon for muon)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recall_beams", type=int, nargs="+", default=None, metavar="N",
                    help="recall each validation bio with a beam this wide (several: one line each, the same reader); "
                         "default: as the reader's checkpoint says")
    ap.add_argument("--out", type=Path, default=None, help="keep the readers here")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                    help="the reader's training arithmetic on a GPU (auto: the recipe's)")
    a = ap.parse_args()

    val, fit = split(read_questions(a.data_dir / "birth_places_train.tsv", require_answers=True))
    wiki = a.data_dir / "wiki.txt"
    corpus = pipeline.Corpus.load(wiki)
    bios = bios_by_name(corpus.documents)
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        fit_tsv = write_tsv(Path(tmp) / "fit.tsv", fit)
        for source in a.learn_from:
            settings = replace(RECALL.reader_settings, learn_from=source, drop_absent=a.drop_absent,
                               swap_places=a.swap_places, swap_words=a.swap_words, continue_bios=a.continue_bios)
            recipe = replace(RECALL, reader_settings=settings, finetune=replace(RECALL.finetune, epochs=a.epochs, lr=a.lr,
                                                                            dropout=a.dropout, optimizer=a.optimizer))
            dropout = "" if a.dropout is None else f"-dropout{a.dropout:g}"
            path = out / (f"reader-{a.pretrained.stem}-{source}-drop{int(a.drop_absent)}-swap{a.swap_places}"
                          f"{'' if a.swap_words else '-answers'}{'-cont' if a.continue_bios else ''}{dropout}"
                          f"{'' if a.optimizer == 'adamw' else '-' + a.optimizer}-e{a.epochs}-s{a.seed}.params")
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            opts = pipeline.RunOptions(seed=a.seed, device=a.device, precision=a.precision, recipe=recipe, progress=False)
            trained = pipeline.finetune("rope", wiki, path, fit_tsv, reading_params_path=a.pretrained, opts=opts)
            train_s = round(time.perf_counter() - t0, 1)
            for beams in a.recall_beams or [None]:
                asker = load_answerer(path, corpus.vocab, recall_beams=beams).to(torch.device(a.device))
                t1 = time.perf_counter()
                contexts = asker.contexts(corpus.vocab, val)
                t2 = time.perf_counter()
                extracted = asker.answers(corpus.vocab, contexts)
                t3 = time.perf_counter()
                asker.policy = replace(asker.policy, answer_by="write")
                written = asker.answers(corpus.vocab, contexts)
                in_text = [contains_place(c.text, q.answer) for q, c in zip(val, contexts)]
                true_text = [person_bio(bios, q.name, q.answer) is not None
                             and contains_place(asker.seen(person_bio(bios, q.name, q.answer), q.name), q.answer) for q in val]
                print(json.dumps({
                    "pretrained": a.pretrained.name, "learn_from": source, "drop_absent": a.drop_absent,
                    "swap_places": a.swap_places, "swap_words": a.swap_words, "continue_bios": a.continue_bios,
                    "epochs": a.epochs, "lr": a.lr, "dropout": a.dropout, "optimizer": a.optimizer, "seed": a.seed, "fit": len(fit), "validation": len(val),
                    "recall_beams": asker.policy.recall_beams, "steps": trained.steps, "final_loss": trained.final_loss,
                    "extract_correct": sum(p == q.answer for p, q in zip(extracted, val)),
                    "write_correct": sum(p == q.answer for p, q in zip(written, val)),
                    "place_in_text_read": sum(in_text), "place_in_true_bio_text": sum(true_text),
                    "recall_lost_the_place": sum(t and not i for t, i in zip(true_text, in_text)),
                    "extract_correct_where_in_text": sum(p == q.answer for p, q, t in zip(extracted, val, in_text) if t),
                    "train_s": train_s, "recall_s": round(t2 - t1, 1), "extract_s": round(t3 - t2, 1),
                    "cpu": cpu_name(), "device": device_name(a.device), "date": time.strftime("%Y-%m-%d"),
                }), flush=True)


if __name__ == "__main__":
    main()
