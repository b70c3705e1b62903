"""Several processes on one CPU share every training step (data parallel on one machine).

A step of the small models kgpt trains on a laptop is many thin matrix products, which
intra-op threads split poorly: on a 2-core CPU the recall recipe's step (batch 32 grouped
by length) takes 0.50 s on one thread and 0.32-0.36 s on two. Two processes, one a core,
each computing half the batch, take it in 0.33 s, about 6% faster than two threads
(docs/RESULTS.md, "Two processes a step": less than two unsynchronised processes
promised, since each step waits for the slower half). :func:`train` runs a trainer in
``processes`` processes: the trainer's own (rank 0) starts the others, each one
thread-share of the cores, and every step:

* every process draws the same whole batch (the same data generator, the same order) and
  computes its rows ``rank::processes``, each part's loss weighted by its share of the
  whole batch's targets (:class:`kgpt.training.steps.Shard`);
* one all-reduce sums the gradients and the loss, so each process holds the whole batch's
  gradient, up to the order of float sums;
* each clips and takes the same optimiser step on the same weights (Muon's iterations
  split between them, :class:`kgpt.training.muon.Muon`).

It is the same training as one process takes, step for step (checked in
tests/test_parallel.py), for a model without dropout; with dropout each process draws its
own masks. Only rank 0 shows progress, writes checkpoints and is stopped by Ctrl-C; the
others are killed when it returns or stops, as their weights are its weights.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from kgpt.errors import KgptError
from kgpt.training.muon import Muon
from kgpt.training.steps import Shard
from kgpt.training.trainer import Interrupted, Trainer, TrainResult

# How long a process waits for the others at a step before the run is given up: a step
# takes well under a second; a process that died (killed, out of memory) never arrives.
STEP_TIMEOUT = datetime.timedelta(minutes=5)


def usable_processes(asked: int) -> int:
    """The processes a run uses: as many as asked, at most one per thread this process may
    use (a Ray task given one CPU trains in one process) and one per core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(asked, torch.get_num_threads(), cores))


def train(trainer: Trainer, processes: int, max_steps: int | None = None) -> TrainResult:
    """``trainer.run(max_steps)``; on a CPU, each step shared by ``processes`` processes (as
    many as :func:`usable_processes` allows)."""
    world = usable_processes(processes) if trainer.device.type == "cpu" else 1
    if world == 1:
        return trainer.run(max_steps)
    threads = max(1, torch.get_num_threads() // world)
    previous_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="kgpt-processes-") as tmp:
        state, init = Path(tmp) / "state.pt", f"file://{tmp}/rendezvous"
        _save_state(trainer, max_steps, threads, state)
        # Fresh interpreters, not forks: OpenMP is not safe across fork, and a spawned
        # multiprocessing child would import the user's main module again. Their own
        # session: Ctrl-C at a terminal reaches rank 0 alone, which stops them.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        workers = [subprocess.Popen(_worker_command(state, init, rank, world), env=env, stdin=subprocess.DEVNULL,
                                    start_new_session=True) for rank in range(1, world)]
        try:
            torch.set_num_threads(threads)
            dist.init_process_group("gloo", init_method=init, rank=0, world_size=world, timeout=STEP_TIMEOUT)
            share(trainer, Shard(0, world))
            return trainer.run(max_steps)
        except RuntimeError as e:
            if any(w.poll() is not None for w in workers) or "gloo" in str(e).lower():
                raise KgptError(f"a training process stopped ({str(e).splitlines()[0][:160]}); "
                                "train again, or with --processes 1") from None
            raise
        finally:
            share(trainer, None)
            for w in workers:
                w.kill()
                w.wait()
            if dist.is_initialized():
                dist.destroy_process_group()
            torch.set_num_threads(previous_threads)


def share(trainer: Trainer, shard: Shard | None) -> None:
    """Make ``trainer``'s steps this process's share of every step (None: its own again)."""
    trainer.runner.shard = shard
    if isinstance(trainer.optimizer, Muon):
        trainer.optimizer.shard = shard  # each process orthogonalises its share of the matrices


def _worker_command(state: Path, init: str, rank: int, world: int) -> list[str]:
    return [sys.executable, "-m", "kgpt.training.parallel", str(state), init, str(rank), str(world)]


def _save_state(trainer: Trainer, max_steps: int | None, threads: int, path: Path) -> None:
    """What another process needs to start exactly where this trainer is."""
    torch.save({
        "model": trainer.model, "batcher": trainer.batcher, "vocab": trainer.vocab, "device": trainer.device,
        "config": replace(trainer.config, progress=False, checkpoint_path=None, tb_logdir=None),
        "optimizer": trainer.optimizer.state_dict(), "generator": trainer.generator.get_state(),
        "progress": trainer.progress, "order": trainer.order, "rng": torch.get_rng_state(),
        "max_steps": max_steps, "threads": threads,
    }, path)


def _worker(state_path: str, init: str, rank: int, world: int) -> None:
    """Rank ``rank``: load the state rank 0 saved, then take every step beside it."""
    state = torch.load(state_path, weights_only=False)
    torch.set_num_threads(state["threads"])
    rng = torch.Generator()
    rng.set_state(state["rng"])
    torch.manual_seed(int(torch.randint(2**62, (1,), generator=rng)) + rank)  # dropout masks of its own
    trainer = Trainer(state["model"], state["batcher"], state["config"], state["vocab"], state["device"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.generator.set_state(state["generator"])
    trainer.progress, trainer.order = state["progress"], state["order"]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=STEP_TIMEOUT)
    share(trainer, Shard(rank, world))
    try:
        trainer.run(state["max_steps"])
    except Interrupted as e:  # every process stops at this step; rank 0 saves and says so
        raise SystemExit(e.exit_code) from None


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
