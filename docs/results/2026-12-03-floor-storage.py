"""Label-free storage of a recaller: of all the bios of wiki.txt, how many a greedy recall gives back whole
(the first 150 characters exact, all of a shorter bio), as benchmarks/recall_passes.py counts them."""
import json, sys, time
import torch
from kgpt.checkpoint import load_model
from kgpt.data.corpus import bio_name
from kgpt.pipeline import Corpus
from kgpt.recaller import recall

corpus = Corpus.load("../shared/data/birthplaces/wiki.txt")
bios = [d for d in corpus.documents if bio_name(d) is not None]
for path in sys.argv[1:]:
    model, _ = load_model(path, corpus.vocab)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        texts = recall(model, corpus.vocab, [bio_name(b) for b in bios], 150)
    whole = sum(r[: len(b[:150])] == b[:150] for r, b in zip(texts, bios))
    print(json.dumps({"recaller": path, "bios": len(bios), "recalled_whole": whole, "recall_s": round(time.perf_counter() - t0, 1)}), flush=True)
