# Round DROP and NAME (docs/results/2026-12-03-rules.md): each reader (the same recaller) on the 400 validation people,
# from the recalls (beam 4, computed once) and from their true bios; the top 5 spans kept per person.
# python 2026-12-03-reader-validation-ranks.py OUT.json READER.params...
import json, sys, re, torch
from pathlib import Path
sys.path.insert(0, "/work/main/benchmarks")
from knowledge_proxy import DATA, split
from kgpt import pipeline
from kgpt.answering import load_answerer, Context
from kgpt.data.corpus import bios_by_name, person_bio, read_questions
from kgpt.data.words import contains_place
val, fit = split(read_questions(DATA / "birth_places_train.tsv", require_answers=True))
corpus = pipeline.Corpus.load(DATA / "wiki.txt")
bios = bios_by_name(corpus.documents)
out, ctx = {}, None
for path in sys.argv[2:]:
    asker = load_answerer(Path(path), corpus.vocab, recall_beams=4)
    if ctx is None:
        ctx = asker.contexts(corpus.vocab, val)
    true = [Context(asker.seen(person_bio(bios, q.name, q.answer) or person_bio(bios, q.name) or "", q.name)) for q in val]
    rows = []
    for kind, cs in (("recall", ctx), ("true", true)):
        for q, c, r in zip(val, cs, asker.ranked_log_probs(corpus.vocab, cs, 5)):
            rows.append({"kind": kind, "name": q.name, "gold": q.answer, "text": c.text,
                         "in_text": contains_place(c.text, q.answer), "top": r})
    out[Path(path).name] = rows
    print(Path(path).name, {k: sum(bool(o["top"]) and o["top"][0][0] == o["gold"] for o in rows if o["kind"] == k)
                            for k in ("recall", "true")}, flush=True)
json.dump(out, open(sys.argv[1], "w"))
