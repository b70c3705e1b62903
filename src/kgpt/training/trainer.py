"""The Trainer: a recipe's schedule and optimiser, a step runner, a resumable loop.

Batches are built on the training device by a batcher (span corruption or pre-encoded
questions). The loop never waits for the GPU except every ``log_every`` steps, where it
reads the mean loss, checks that loss and gradients are finite and moves the progress
bar, and before a save, where it checks them too. A resumable checkpoint is written every ``checkpoint_every`` seconds (at the end of
an epoch) and when Ctrl-C is pressed or SIGTERM arrives (how clusters preempt a job);
a non-finite loss stops training before anything is saved over the last good checkpoint.
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from kgpt.checkpoint import Checkpoint
from kgpt.errors import KgptError
from kgpt.model import GPT
from kgpt.training.muon import Muon, muon_groups
from kgpt.training.recipe import (ASSIGNMENT, COURSE_LR_FLOOR, OPTIMIZERS, WARMUP_TOKENS, WEIGHT_DECAY, Optimizer, Recipe,
                                  decay_groups, scheduled_lr)
from kgpt.training.state import Progress, restore_resumable, save_resumable
from kgpt.training.steps import StepRunner, default_buckets
from kgpt.vocab import CharVocab


class Batcher(Protocol):
    width: int  # columns of every x and y it samples

    def __len__(self) -> int: ...
    def sample(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


class Interrupted(KgptError):
    """Ctrl-C or SIGTERM during training: the state was saved; exit with the shell's code
    for the signal (128 + its number: 130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, what: str, signum: int = signal.SIGINT, hint: str = ""):
        super().__init__(f"{what}; {hint}" if hint else what)
        self.what = what  # what stopped, without how to go on (a cluster run goes on by itself)
        self.exit_code = 128 + signum


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise KgptError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


@dataclass
class TrainerConfig:
    max_epochs: int
    batch_size: int
    learning_rate: float
    final_tokens: int
    recipe: Recipe = ASSIGNMENT
    warmup_tokens: int = WARMUP_TOKENS
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = WEIGHT_DECAY
    lr_floor: float = COURSE_LR_FLOOR  # the cosine's lowest learning rate, a share of the peak
    optimizer: Optimizer = "adamw"  # or "muon" (kgpt.training.muon)
    grad_norm_clip: float = 1.0
    seed: int = 0  # seeds the data generator (corruption and the recipe's shuffle)
    compile: bool = False
    cuda_graphs: bool | None = None  # None: capture the step as a CUDA graph on CUDA unless compiling
    # Length buckets (kgpt.training.steps): None, batch/16 of them (at least 1, at most 8)
    # where shapes may vary (eager), else 0, the whole batch uncut.
    length_buckets: int | None = None
    amp: bool | None = None  # None: the recipe's choice for the device (bf16_on_cuda / bf16_on_cpu)
    log_every: int = 20
    checkpoint_path: Path | None = None  # where the resumable state goes
    checkpoint_every: float = 120.0  # seconds between periodic resumable checkpoints
    tb_logdir: Path | None = None
    progress: bool = True
    stage: str = "train"

    def __post_init__(self) -> None:
        if self.max_epochs < 0:
            raise KgptError(f"--max_epochs must be 0 or more, got {self.max_epochs}")
        if not (0.0 < self.learning_rate < 1.0):
            raise KgptError(f"learning rate must be in (0, 1), got {self.learning_rate}")
        if self.batch_size < 1:
            raise KgptError(f"batch size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise KgptError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None


GROUP_BATCHES = 16  # length grouping sorts windows of this many shuffled batches


def grouped_by_length(order: torch.Tensor, lengths: torch.Tensor, batch_size: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``order`` with each window of :data:`GROUP_BATCHES` batches sorted by example
    length, cut into batches, and the whole batches shuffled (a short last batch stays
    last): each batch holds examples of about one length, so cutting its trailing PAD
    (a length bucket) leaves little to compute, and batches still come in random order."""
    parts = [w[lengths[w].argsort(stable=True)] for w in order.split(batch_size * GROUP_BATCHES)]
    grouped = torch.cat(parts)
    full = len(grouped) // batch_size * batch_size
    batches = grouped[:full].view(-1, batch_size)
    shuffled = batches[torch.randperm(len(batches), generator=generator, device=generator.device if generator else None)]
    return torch.cat([shuffled.reshape(-1), grouped[full:]])


class Trainer:
    """Trains ``model`` on batches from ``batcher`` with ``config.recipe``."""

    def __init__(self, model: GPT, batcher: Batcher, config: TrainerConfig, vocab: CharVocab, device: torch.device):
        self.model = model.to(device)
        self.batcher = batcher
        self.config = config
        self.vocab = vocab
        self.device = device
        recipe = config.recipe
        cuda = device.type == "cuda"
        use_graphs = cuda and not config.compile if config.cuda_graphs is None else config.cuda_graphs
        if config.optimizer == "muon":
            use_graphs = False  # its learning rate is a number, which a captured graph could not update
            self.optimizer = Muon(muon_groups(model, config.weight_decay, recipe.decay), config.learning_rate,
                                  config.betas)
        else:
            self.optimizer = torch.optim.AdamW(
                decay_groups(model, config.weight_decay, recipe.decay),
                # A CUDA graph reads the learning rate from device memory, so it is a tensor there.
                lr=torch.tensor(config.learning_rate, device=device) if use_graphs else config.learning_rate,
                betas=config.betas,
                fused=cuda,
                capturable=use_graphs,
            )
        self.runner = StepRunner(
            self.model,
            self.optimizer,
            grad_norm_clip=config.grad_norm_clip,
            batch_size=config.batch_size,
            amp=config.amp if config.amp is not None else (recipe.bf16_on_cuda if cuda else recipe.bf16_on_cpu),
            compile=config.compile,
            cuda_graphs=use_graphs,
            buckets=default_buckets(config.batch_size, use_graphs or config.compile)
            if config.length_buckets is None else config.length_buckets,
        )
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        self.progress = Progress(config.stage, recipe.name, config.max_epochs, config.batch_size, len(batcher),
                                 optimizer=config.optimizer, peak_lr=config.learning_rate)
        self.order: torch.Tensor | None = None  # this epoch's order of examples

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.batcher) / self.config.batch_size)

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        c = self.config
        return scheduled_lr(c.learning_rate, self.progress.tokens, c.warmup_tokens, c.final_tokens, c.recipe.clamps,
                            c.lr_floor)

    def save_resumable(self) -> None:
        if self.config.checkpoint_path is not None:
            save_resumable(self.config.checkpoint_path, self.model, self.vocab, self.progress, self.optimizer,
                           self.generator, self.order)

    def resume(self, path: Path, ckpt: Checkpoint | None = None) -> None:
        """Continue exactly where :meth:`save_resumable` left off; the model must already match."""
        self.order = restore_resumable(path, ckpt, self.model, self.vocab, self.progress, self.optimizer, self.generator)

    def _epoch_order(self) -> torch.Tensor:
        n = len(self.batcher)
        if not self.config.recipe.shuffle:
            return torch.arange(n, device=self.device)
        order = torch.randperm(n, generator=self.generator, device=self.device)
        lengths = getattr(self.batcher, "lengths", None)
        if self.config.recipe.group_lengths and lengths is not None:
            order = grouped_by_length(order, lengths, self.config.batch_size, self.generator)
        return order

    def train(self) -> TrainResult:
        """Train to the end of ``max_epochs``."""
        return self.run()

    def run(self, max_steps: int | None = None) -> TrainResult:
        """Take up to ``max_steps`` more steps (None: all), stopping at the end of ``max_epochs``
        (this process's share of each, where :mod:`kgpt.training.parallel` shares them)."""
        cfg, p = self.config, self.progress
        self.model.train()
        total = cfg.max_epochs * self.steps_per_epoch
        stop_at = total if max_steps is None else min(total, p.step + max_steps)
        writer = _tensorboard(cfg.tb_logdir)
        bar = _progress_bar(stop_at, p.step, cfg)
        losses = _LossMeter(self.device)
        t0 = last_save = time.perf_counter()
        with deferred_signals() as stop, _cuda_kernels(self.device):
            while p.step < stop_at:
                if self.order is None:
                    self.order = self._epoch_order()
                i = p.batch_in_epoch * cfg.batch_size
                x, y = self.batcher.sample(self.order[i : i + cfg.batch_size], self.generator)
                lr = self.lr
                losses.add(*self.runner(x, y, lr))
                p.step += 1
                p.tokens += y.numel()  # the course counts every label position, PAD included
                p.batch_in_epoch += 1
                if p.batch_in_epoch == self.steps_per_epoch:
                    p.epoch, p.batch_in_epoch, self.order = p.epoch + 1, 0, None
                if bar is not None and self.device.type == "cpu":
                    bar.update(1)  # free on a CPU; on a GPU the bar moves at the log's sync
                now = time.perf_counter()
                stopping = stop["signal"]  # read once: a signal during the log below waits for the next step
                if self.runner.shard is not None:
                    stopping = self.runner.shard.agree(stopping)
                due_save = cfg.checkpoint_path is not None and (
                    stopping or (p.batch_in_epoch == 0 and now - last_save >= cfg.checkpoint_every)
                )
                if p.step % cfg.log_every == 0 or p.step == stop_at:  # aligned, also after a resume
                    self._log(losses.read(self._diverged), lr, writer, bar)
                if due_save:
                    losses.check(self._diverged)  # never save a diverged state over a good one
                    self._save_or_stop()
                    last_save = now
                if stopping:
                    if bar is not None:
                        bar.close()
                    hint = f"saved {cfg.checkpoint_path}: run the same command with --resume to continue" if cfg.checkpoint_path else ""
                    name = signal.Signals(stopping).name
                    raise Interrupted(f"interrupted by {name} at step {p.step} (epoch {p.epoch + 1})", stopping, hint)
        p.finished = p.step == total
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return TrainResult(p.step, p.tokens, time.perf_counter() - t0, p.history)

    def _save_or_stop(self) -> None:
        """Save the resumable state; if the write fails (a full disk), stop with one line
        saying what is left to resume from: the previous state, which the write kept whole."""
        try:
            self.save_resumable()
        except KgptError as e:
            path, p = self.config.checkpoint_path, self.progress
            kept = f"run the same command with --resume to continue from the last one, {path}" if path.exists() else "nothing was saved"
            raise KgptError(f"{e}; training stopped at step {p.step}: {kept}") from None

    def _diverged(self) -> KgptError:
        # Nothing is saved from here on: the last resumable checkpoint and any earlier
        # output file stay as they were.
        path, p = self.config.checkpoint_path, self.progress
        kept = path is not None and path.exists()
        return KgptError(
            f"training diverged: non-finite loss or gradient by step {p.step} (epoch {p.epoch + 1}); "
            + (f"the last good checkpoint {path} is kept" if kept else "nothing was saved")
            + "; lower the learning rate"
        )

    def _log(self, mean_loss: float, lr: float, writer, bar) -> None:
        p = self.progress
        epoch = math.ceil(p.step / self.steps_per_epoch)  # the epoch this step belongs to, from 1
        p.history.append({"step": p.step, "epoch": epoch, "tokens": p.tokens, "loss": mean_loss, "lr": lr})
        if writer is not None:
            writer.add_scalar("train/loss", mean_loss, p.step)
            writer.add_scalar("train/lr", lr, p.step)
        if bar is not None:
            bar.update(p.step - bar.n)
            bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")


class _LossMeter:
    """Sums losses on the device; :meth:`read` is the loop's one host sync."""

    def __init__(self, device: torch.device):
        self.sum = torch.zeros((), device=device)
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.count = 0

    def add(self, loss: torch.Tensor, norm: torch.Tensor) -> None:
        self.sum += loss
        self.bad |= ~(torch.isfinite(loss) & torch.isfinite(norm))
        self.count += 1

    def check(self, diverged) -> None:
        if self.bad.item():
            raise diverged()

    def read(self, diverged) -> float:
        mean = (self.sum / self.count).item()
        self.check(diverged)
        self.sum.zero_()
        self.count = 0
        return mean


@contextmanager
def _cuda_kernels(device: torch.device):
    """While training on a GPU: TF32 matmuls, and no cuDNN attention; restored afterwards.

    cuDNN's attention backward has produced non-finite and wrong gradients on Hopper in
    recent releases (bf16 pretraining here climbed back to unigram loss); flash and
    memory-efficient attention are as fast at these shapes.
    """
    if device.type != "cuda":
        yield
        return
    tf32, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cuda.enable_cudnn_sdp(cudnn)


STOP_SIGNALS = ("SIGINT", "SIGTERM")  # Ctrl-C, and the signal schedulers preempt a job with


@contextmanager
def deferred_signals():
    """Turn the first Ctrl-C or SIGTERM into a flag the loop checks between steps, so it
    can save a resumable state and stop; a second one gets the handler there was before
    (under the CLI: stop at once, abandoning the save), for a user who will not wait."""
    state = {"signal": 0}
    previous = {}

    def handler(signum, frame):
        state["signal"] = state["signal"] or signum
        signal.signal(signum, previous[signum])

    for name in STOP_SIGNALS:
        signum = getattr(signal, name)
        old = signal.getsignal(signum)
        if old is None:  # a handler not installed from Python: leave it
            continue
        previous[signum] = old  # recorded first: the handler may run the instant it is installed
        try:
            signal.signal(signum, handler)
        except ValueError:  # not the main thread: signals are not ours to take
            del previous[signum]
            break
    try:
        yield state
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _progress_bar(total: int, initial: int, cfg: TrainerConfig):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=cfg.stage, unit="step", dynamic_ncols=True, mininterval=0.5)


def _tensorboard(logdir: Path | None):
    if logdir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed (pip install tensorboard); not writing TensorBoard logs")
        return None
    return SummaryWriter(log_dir=str(logdir))
