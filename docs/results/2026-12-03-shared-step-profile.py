"""Probe (2026-12-03, from the repository root): 100 shared steps of the half-hour step, timing rank 0 inside the all-reduce. Printed: step 0.312 s (worker start included), rank 0 in all-reduce (incl. waiting) 17.5 ms/step."""
import time, torch, sys
sys.path.insert(0, "benchmarks")
from dataclasses import replace
from kgpt.training import steps, parallel, Trainer, TrainerConfig
from kgpt.training.recipe import RECALL
from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.pipeline import Corpus
from recall_step import fresh_recaller
orig = steps.Shard.sum_gradients
acc = {"t": 0.0, "n": 0}
def timed(self, params, loss):
    t = time.perf_counter(); r = orig(self, params, loss); acc["t"] += time.perf_counter() - t; acc["n"] += 1; return r
steps.Shard.sum_gradients = timed
corpus = Corpus.load("../shared/data/birthplaces/wiki.txt")
b = KnowledgeBatcher(corpus.documents, [], corpus.vocab, 192, RECALL.mix)
torch.manual_seed(0)
m = fresh_recaller(len(corpus.vocab), 192, 4, 128)
cfg = TrainerConfig(max_epochs=10**6, batch_size=32, learning_rate=4e-3, final_tokens=10**9, recipe=replace(RECALL, group_lengths=True), progress=False)
tr = Trainer(m, b, cfg, corpus.vocab, torch.device("cpu"))
parallel.train(tr, 2, 3)
acc.update(t=0.0, n=0)
t = time.perf_counter(); parallel.train(tr, 2, 100); tot = time.perf_counter() - t
print(f"step {tot/100:.3f} s, rank 0 in all-reduce (incl. waiting) {acc['t']/acc['n']*1000:.1f} ms/step")
