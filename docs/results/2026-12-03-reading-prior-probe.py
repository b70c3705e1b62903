"""Probe (2026-12-03, run as `python docs/results/2026-12-03-reading-prior-probe.py 1 READER ANALYSIS ...` from the repository root): extractive reading scored as log p(span | text) - alpha * log p(span | empty text), on validation analyses. Reported only; dropped."""
import json, sys
import torch
from kgpt.answering import load_answerer
from kgpt.data.words import spans
from kgpt.inference import continuation_log_probs
from kgpt.pipeline import Corpus
from kgpt.vocab import MASK_CHAR

torch.set_num_threads(int(sys.argv[1]))
vocab = Corpus.load("../shared/data/birthplaces/wiki.txt").vocab
ALPHAS = [0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
for params, analysis in zip(sys.argv[2::2], sys.argv[3::2]):
    a = load_answerer(params, vocab)
    recs = json.load(open(f"{analysis}/analysis.json"))["questions"]
    texts = [r["reader_text"] for r in recs]
    cands = [spans(t, a.policy.max_words, a.settings.answer_chars) for t in texts]
    enc = [[vocab.encode(s) for s in cs] for cs in cands]
    with torch.no_grad():
        cond = continuation_log_probs(a.model, [vocab.encode(t + MASK_CHAR) for t in texts], enc)
        null = continuation_log_probs(a.model, [vocab.encode(MASK_CHAR)] * len(texts), enc)
    row = {"params": params, "analysis": analysis, "recorded_right": sum(r["correct"] for r in recs)}
    for al in ALPHAS:
        right = 0
        for r, cs, c, n in zip(recs, cands, cond, null):
            if cs:
                best = max(range(len(cs)), key=lambda i: (c[i] - al * n[i], -i))
                right += cs[best] == r["gold"]
        row[f"alpha_{al}"] = right
    print(json.dumps(row), flush=True)
