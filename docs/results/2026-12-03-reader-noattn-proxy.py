# Round NOATTN: recall_proxy.py with the reader's dropout on the embedding and residual only (attention keeps 0).
import sys
sys.path.insert(0, "/work/main/benchmarks")
from kgpt.model import GPT, GPTConfig
import recall_proxy

def with_dropout(self, rate):
    copy = GPT(GPTConfig.from_dict({**self.config.to_dict(), "embd_pdrop": rate, "resid_pdrop": rate, "attn_pdrop": 0.0}))
    copy.load_state_dict(self.state_dict())
    return copy

GPT.with_dropout = with_dropout
recall_proxy.main()
