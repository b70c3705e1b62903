"""How often a recall loses the place, by how far into the bio the place stands.

Greedy decoding feeds each recalled character back in, so one wrong character can send
the rest of a recall astray: the further the place stands from the cue ``NAME.``, the
more characters must come out right before it. For every training person whose true bio
names the place within what the reader reads (:meth:`kgpt.data.reader.ReaderSettings.text`),
this recalls the bio with a pretrained recall-recipe model exactly as answering does
(:func:`kgpt.recaller.recall`, the recipe's length) and counts, by where the place ends
in the true bio, how often the recalled text still holds it as whole words.

The recaller never saw a label (recall pretraining reads wiki.txt alone), so the training
people measure it as the dev people would, without touching dev; labels only score.

    python benchmarks/recall_depth.py runs/val/e40.params [--data_dir DIR] [--limit N]

One JSON line: per 25-character band of the place's end, people and recalls that keep it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from knowledge_proxy import DATA
from recall_proxy import cpu_name

from kgpt.recaller import recall
from kgpt.checkpoint import load_model
from kgpt.confidence import answer_at
from kgpt.data.corpus import bios_by_name, person_bio, read_questions
from kgpt.data.words import contains_place
from kgpt.pipeline import Corpus
from kgpt.training.recipe import RECALL

BAND = 25


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pretrained", type=Path, help="a model pretrained with --recipe recall")
    ap.add_argument("--data_dir", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, default=None, help="only the first N training questions")
    a = ap.parse_args()
    corpus = Corpus.load(a.data_dir / "wiki.txt")
    model, _ = load_model(a.pretrained, corpus.vocab)
    model.eval()
    settings = RECALL.reader_settings
    chars = settings.source_chars(model.max_length)
    bios = bios_by_name(corpus.documents)
    people = []  # (name, place, where the place ends in the bio)
    for q in read_questions(a.data_dir / "birth_places_train.tsv", require_answers=True)[: a.limit]:
        bio = person_bio(bios, q.name, q.answer)
        if bio is not None and contains_place(settings.text(bio, q.name, model.max_length), q.answer):
            people.append((q.name, q.answer, answer_at(bio, 0, q.answer)[1]))  # its first whole-word end
    t0 = time.perf_counter()
    names = sorted({name for name, _, _ in people})
    recalled = dict(zip(names, recall(model, corpus.vocab, names, chars)))
    seconds = time.perf_counter() - t0
    bands: dict[str, list[int]] = {}
    for name, place, end in people:
        lo = (end - 1) // BAND * BAND
        counts = bands.setdefault(f"{lo + 1}-{lo + BAND}", [0, 0])
        counts[0] += 1
        counts[1] += contains_place(settings.text(recalled[name], name, model.max_length), place)
    order = sorted(bands, key=lambda k: int(k.split("-")[0]))
    print(json.dumps({
        "pretrained": a.pretrained.name, "recall_chars": chars, "people": len(people),
        "kept": sum(v[1] for v in bands.values()),
        "by_place_end": {k: {"in_bio": bands[k][0], "in_recall": bands[k][1]} for k in order},
        "recall_s": round(seconds, 1), "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"),
    }), flush=True)


if __name__ == "__main__":
    main()
