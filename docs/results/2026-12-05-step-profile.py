# Where a laptop recaller step goes on this CPU: one process of the two (16 rows x 128 columns), one thread,
# forward, forward+backward and the Muon step timed, then the forward+backward profiled by operator.
import time, torch, sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
from recall_step import fresh_recaller
from kgpt.training.muon import Muon, muon_groups, orthogonalised
torch.set_num_threads(1)
torch.manual_seed(0)
m = fresh_recaller(100, 192, 4, 128)
B, T = 16, 128
x = torch.randint(0, 100, (B, T)); y = torch.randint(0, 100, (B, T))
opt = Muon(muon_groups(m, 0.0, "matmul"), lr=3e-3)
def tm(f, n=10):
    f(); t = time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter() - t) / n
def fwd():
    with torch.no_grad(): m(x, y)
def fb():
    m.zero_grad(); out = m(x, y); loss = out[1] if isinstance(out, tuple) else out; loss.backward()
fb()
print("fwd", tm(fwd)); print("fwd+bwd", tm(fb)); print("opt step (all 24 matrices)", tm(opt.step))
mats = [p for n, p in m.named_parameters() if n.startswith("blocks.") and p.ndim == 2]
print("ns only", tm(lambda: [orthogonalised(p.grad) for p in mats]))
print([tuple(p.shape) for p in mats[:6]])
from torch.profiler import profile
with profile() as prof:
    for _ in range(3): fb()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
