"""One optimiser step, run the fastest way the device allows; every way takes the same step.

* eager, whole batch: the plain PyTorch step (forward, backward, clip to norm 1.0, AdamW);
* length buckets (CPU): the batch sorted by length and cut into groups whose trailing
  PAD is dropped, their losses weighted so the gradient is the whole batch's;
* a CUDA graph (GPU): the whole step captured once and replayed;
* torch.compile (opt-in): the forward compiled, falling back to eager if it fails;
* shared by processes (CPU): each computes its rows of the batch, the gradients summed
  (:mod:`kgpt.training.parallel`).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from kgpt.model import GPT
from kgpt.vocab import PAD_ID

# Rows per length bucket: fewer make matrix products too thin to be efficient. On the
# 2-core CPU, vanilla 4×256 at batch 128: 1 bucket 4.7 s/step, 4: 2.5, 8: 2.4, 16: 2.4,
# 32: 2.6; the demo's 2×128 model at batch 32/64/128 runs 2.1 ms/row from 16 rows a bucket.
BUCKET_ROWS = 16
MAX_BUCKETS = 8
GRAPH_WARMUP_STEPS = 3  # eager steps before capture: optimiser state and kernels get set up


def length_buckets(x: torch.Tensor, y: torch.Tensor, n_buckets: int, count: torch.Tensor | None = None):
    """Split a batch into ``n_buckets`` groups of similar length, trailing PAD cut off.

    Yields ``(x_part, y_part, weight)``: the mean loss of the whole batch is the sum of
    each part's mean loss times its weight (its share of the non-PAD targets, of ``count``
    where the batch is one process's part of a larger one), so the gradient is the whole
    batch's. Exact because every variant is causal: positions
    after a row's last target cannot change the outputs before it. In pretraining
    about 56% of the positions are such trailing PAD (the truncation length is uniform
    up to 7/8 of the block); on a CPU, buckets halve the step time (docs/RESULTS.md).
    """
    targets = y != PAD_ID
    count = targets.sum() if count is None else count
    # A row's length: one past its last target, 0 for a row with none.
    lengths = torch.where(targets.any(1), y.shape[1] - targets.flip(1).int().argmax(1), 0)
    for rows in lengths.argsort().chunk(n_buckets):
        T = int(lengths[rows].max())
        if T == 0:
            continue
        ys = y[rows, :T]
        yield x[rows, :T], ys, (ys != PAD_ID).sum() / count


def default_buckets(batch_size: int, static_shapes: bool) -> int:
    """Buckets where shapes may vary (eager; a batch too small to split is still one bucket,
    its trailing PAD cut); 0, the whole batch as it came, for CUDA graphs and compile."""
    return 0 if static_shapes else max(1, min(MAX_BUCKETS, batch_size // BUCKET_ROWS))


class _GraphedStep:
    """A whole training step (forward, backward, clip, AdamW) captured as one CUDA graph.

    A step of this 3.3M-parameter model is a few hundred small kernels; launched one by
    one from Python they take about twice as long as the GPU needs to run them (measured
    on an H100: 11 ms/step wall, 5 ms/step of kernels). Replaying the captured graph
    launches them all at once. Batches are copied into static input buffers; the
    learning rate is a device tensor the captured optimiser reads.
    """

    def __init__(self, runner: StepRunner, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x.clone(), y.clone()
        runner.optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(x.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss, self.norm = runner.eager(self.x, self.y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss, self.norm


@dataclass(frozen=True)
class Shard:
    """One process's part of every step, where processes share them (:mod:`kgpt.training.parallel`):
    its rank among ``world`` processes."""

    rank: int
    world: int

    def rows(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of a batch (every ``world``-th, from its rank): a batch grouped
        by length stays so in every part."""
        return x[self.rank :: self.world], y[self.rank :: self.world]

    def sum_gradients(self, params: list[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """Sum every process's gradients (and weighted losses) into each, in one all-reduce;
        returns the whole batch's loss. A process whose part had no rows adds zeros."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        *summed, total = self.sum([*grads, loss.reshape(1).to(grads[0].dtype)])
        for p, g in zip(params, summed):
            p.grad = g
        return total[0]

    def sum(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each tensor summed over the processes, in one all-reduce (new tensors)."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        return [part.view_as(t).clone() for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]

    def mine(self, i: int) -> bool:
        """Whether the ``i``-th of a list of tasks that the processes split is this one's."""
        return i % self.world == self.rank

    def agree(self, signum: int) -> int:
        """The stop signal any process has received since the last step (0: none), the same in
        every process, so that all stop after the same step: a process that stopped alone
        would leave the others waiting for it at the next (a scheduler signals them all, not
        at the same instant)."""
        flag = torch.tensor([signum], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag)


class StepRunner:
    """``runner(x, y, lr)`` takes one optimiser step and returns (loss, gradient norm) on device.

    Nothing is read back to the host here, so a GPU never waits on Python.
    """

    def __init__(
        self,
        model: GPT,
        optimizer: torch.optim.Optimizer,
        grad_norm_clip: float,
        batch_size: int,
        amp: bool,
        compile: bool,
        cuda_graphs: bool,
        buckets: int,
    ):
        self.model = model
        self.optimizer = optimizer
        self.grad_norm_clip = grad_norm_clip
        self.batch_size = batch_size
        self.use_graphs = cuda_graphs
        self.buckets = buckets
        device_type = next(model.parameters()).device.type
        # No autocast weight cache: it cannot live across CUDA graph replays.
        self.autocast = torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=False) if amp else nullcontext()
        self.forward = _compiled(model) if compile else model
        self.compile_checked = self.forward is model  # the first compiled call may still fail
        self.graphed: _GraphedStep | None = None
        self.shard: Shard | None = None  # this process's part of every step, where processes share them
        self.warm_steps = 0  # eager steps run before capture
        # Work done, for FLOP counts (kgpt.benchmark): positions computed (rows x columns,
        # after length buckets cut their PAD) and rows x columns² (attention's share).
        self.positions = 0
        self.positions_squared = 0

    @property
    def compiled(self) -> bool:
        return self.forward is not self.model

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # a CUDA graph reads it from device memory
            else:
                group["lr"] = lr

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        self.set_lr(lr)
        if self.compile_checked:
            return self._run(x, y)
        self.compile_checked = True  # the first compiled call compiles; if that fails, eager for good
        try:
            return self._run(x, y)
        except Exception as e:
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); training eagerly")
            self.optimizer.zero_grad(set_to_none=True)
            self.forward = self.model
            return self._run(x, y)

    def _run(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graphed is not None and x.shape == self.graphed.x.shape:
            self._count(x)  # (the capture's own step was counted as it was recorded)
            return self.graphed(x, y)
        if self.use_graphs:
            return self._toward_graph(x, y)
        return self.eager(x, y)

    def _count(self, x: torch.Tensor) -> None:
        rows, columns = x.shape
        self.positions += rows * columns
        self.positions_squared += rows * columns * columns

    def eager(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shard is not None:
            return self._shared(x, y)
        if self.buckets:
            loss = 0.0
            for xs, ys, weight in length_buckets(x, y, self.buckets):
                self._count(xs)
                with self.autocast:
                    _, part = self.forward(xs, ys)
                (part * weight).backward()  # frees this bucket's activations before the next
                loss = loss + part.detach() * weight
        else:
            self._count(x)
            with self.autocast:
                _, loss = self.forward(x, y)
            loss.backward()
        return self._apply(loss.detach())

    def _shared(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of the batch, weighted by their share of the whole batch's
        targets, the gradients then summed over the processes: the whole batch's step."""
        count = (y != PAD_ID).sum()
        xs, ys = self.shard.rows(x, y)
        loss = torch.zeros(())
        parts = length_buckets(xs, ys, default_buckets(len(xs), static_shapes=False), count) if len(xs) else ()
        for xb, yb, weight in parts:
            self._count(xb)
            with self.autocast:
                _, part = self.forward(xb, yb)
            (part * weight).backward()
            loss = loss + part.detach() * weight
        return self._apply(self.shard.sum_gradients(list(self.model.parameters()), loss))

    def _apply(self, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_norm_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, norm

    def _toward_graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eager warm-up steps on a side stream (as capture requires), then capture full batches."""
        if x.shape[0] == self.batch_size and self.warm_steps >= GRAPH_WARMUP_STEPS:
            try:
                self.graphed = _GraphedStep(self, x, y)
                return self.graphed(x, y)
            except Exception as e:  # an op that cannot be captured: eager is always correct
                warnings.warn(f"CUDA graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); training eagerly")
                self.use_graphs = False
                self.optimizer.zero_grad(set_to_none=True)
                return self.eager(x, y)
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            out = self.eager(x, y)
        self.warm_steps += 1
        torch.cuda.current_stream(x.device).wait_stream(side)
        return out


def _compiled(model: GPT):
    try:
        # Static shapes: a run has one batch shape and a last, smaller one; two static
        # graphs beat the dynamic-shape graph a second shape would otherwise trigger.
        return torch.compile(model, dynamic=False)
    except Exception as e:  # e.g. no compiler toolchain; eager is always correct
        warnings.warn(f"torch.compile unavailable ({e}); training eagerly")
        return model
