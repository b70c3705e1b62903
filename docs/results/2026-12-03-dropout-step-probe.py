# Step time of the recall model (4x4x128, block 192, batch 64 ungrouped, two threads) with dropout on all, on none, and on
# all but attention. Run from benchmarks/: PYTHONPATH=. python ../docs/results/2026-12-03-dropout-step-probe.py
import json, time, torch
from dataclasses import replace
from knowledge_proxy import DATA
from recall_step import fresh_recaller
from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.pipeline import Corpus
from kgpt.training import Trainer, TrainerConfig
from kgpt.training.recipe import RECALL
torch.set_num_threads(2)
corpus = Corpus.load(f"{DATA}/wiki.txt")
batcher = KnowledgeBatcher(corpus.documents, [], corpus.vocab, 192, RECALL.mix)
for rep in range(2):
    for name, (e, a, r) in {"none": (0, 0, 0), "all 0.1": (0.1, 0.1, 0.1), "all but attention": (0.1, 0, 0.1)}.items():
        torch.manual_seed(0)
        m = fresh_recaller(len(corpus.vocab), 192, 4, 128).with_dropout(0.0)
        from kgpt.model import GPT, GPTConfig
        m = GPT(GPTConfig.from_dict({**m.config.to_dict(), "embd_pdrop": e, "attn_pdrop": a, "resid_pdrop": r}))
        cfg = TrainerConfig(max_epochs=10**6, batch_size=64, learning_rate=1e-3, final_tokens=10**9, recipe=RECALL,
                            progress=False, stage="bench")
        t = Trainer(m, batcher, cfg, corpus.vocab, torch.device("cpu"))
        from kgpt.training import parallel
        parallel.train(t, 1, 3)
        t0 = time.perf_counter(); parallel.train(t, 1, 15); s = (time.perf_counter() - t0) / 15
        print(json.dumps({"dropout": name, "s_per_step": round(s, 3)}), flush=True)
