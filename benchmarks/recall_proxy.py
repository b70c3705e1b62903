"""The recall recipe's reading stage on a validation split, never on dev.

Pretraining in the recall recipe reads wiki.txt alone (no question, no label), so one
pretrained model serves every reading setting. The 400 validation people of
knowledge_proxy.py (a fixed shuffle of the training questions) are held out of the
reader's finetuning, exactly as the dev people are; the reader learns from the other
1,600 and is scored on the 400 through the same code as ``kgpt evaluate``, with the
analysis's split of the errors (memory, reading, not in bio). Each setting is one run of
``kgpt finetune --recipe recall`` with the recipe's reading varied by value.

    python benchmarks/recall_proxy.py --pretrained runs/laptop/checkpoints/pretrain-recall-rope-s0.params \\
        --epochs 12 --lr 1e-3 --out runs/recall-proxy

It also answers the validation questions with one model instead of two: the finetuned
reader recalling the bios itself (``one_model_correct``), which would halve the
checkpoint if the reading stage did not cost the model its recall.

Prints one JSON line per run; runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from knowledge_proxy import DATA, split

from kgpt import pipeline
from kgpt.answering import RecallReader, load_answerer
from kgpt.data.corpus import read_questions
from kgpt.data.reading import Reading
from kgpt.evaluate import predict_places, score
from kgpt.training.recipe import RECALL


def write_tsv(path: Path, questions) -> Path:
    path.write_text("".join(f"{q.text}\t{q.answer}\n" for q in questions), encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_dir", type=Path, default=DATA)
    ap.add_argument("--pretrained", type=Path, required=True, help="a model pretrained with --recipe recall")
    ap.add_argument("--epochs", type=int, default=RECALL.finetune.epochs)
    ap.add_argument("--lr", type=float, default=RECALL.finetune.lr)
    ap.add_argument("--batch", type=int, default=RECALL.finetune.batch)
    ap.add_argument("--chars", type=int, default=RECALL.reading.chars)
    ap.add_argument("--no_mask_name", action="store_true", help="the reader also sees the opening NAME.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="keep the reader and the analysis here")
    a = ap.parse_args()

    val, fit = split(read_questions(a.data_dir / "birth_places_train.tsv", require_answers=True))
    recipe = replace(RECALL, reading=Reading(chars=a.chars, mask_name=not a.no_mask_name),
                     finetune=replace(RECALL.finetune, epochs=a.epochs, lr=a.lr, batch=a.batch))
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        fit_tsv, val_tsv = write_tsv(Path(tmp) / "fit.tsv", fit), write_tsv(Path(tmp) / "val.tsv", val)
        reader = out / f"reader-e{a.epochs}-lr{a.lr}-c{a.chars}-m{int(not a.no_mask_name)}.params"
        reader.unlink(missing_ok=True)
        wiki = a.data_dir / "wiki.txt"
        t0 = time.perf_counter()
        opts = pipeline.RunOptions(seed=a.seed, device="cpu", recipe=recipe, progress=False, compile=a.compile)
        trained = pipeline.finetune("rope", wiki, reader, fit_tsv, reading_params_path=a.pretrained, opts=opts)
        t1 = time.perf_counter()
        analysis = out / reader.stem
        ev = pipeline.evaluate(None, wiki, reader, val_tsv, analysis / "predictions.txt", device="cpu", analysis_dir=analysis)
        records = json.loads((analysis / "analysis.json").read_text())["questions"]
        vocab = pipeline.Corpus.load(wiki).vocab
        two = load_answerer(reader, vocab)
        one = RecallReader(two.model, two.model, two.reading)  # the reader recalls too
        _, one_correct = score(val, predict_places(one, vocab, val))
    print(json.dumps({
        "pretrained": str(a.pretrained), "epochs": a.epochs, "lr": a.lr, "batch": a.batch, "chars": a.chars,
        "mask_name": not a.no_mask_name, "seed": a.seed, "fit": len(fit), "validation": len(val),
        "correct": ev.correct, "accuracy": round(ev.accuracy, 2),
        "place_in_recall": sum(r["gold"] in r["recall"] for r in records), "one_model_correct": int(one_correct),
        "errors": dict(Counter(r["error"] for r in records if r["error"])),
        "final_loss": trained.final_loss, "train_s": round(t1 - t0, 1), "eval_s": round(time.perf_counter() - t1, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
