"""The Trainer: the assignment's optimiser and schedule, fast and interruptible.

Schedule (minGPT's): the learning rate rises linearly over ``warmup_tokens``, then
follows a cosine down to 10% of its peak, reached at ``final_tokens`` and held there.
Tokens are counted as batch × (block_size − 1), as the original counted its labels.
AdamW with betas (0.9, 0.95), weight decay on matmul weights only, gradients clipped
to norm 1.0.

Speed: batches are built on the training device by a batcher (span corruption or
pre-encoded questions); the loop never waits for the GPU except every ``log_every``
steps, where it reads the loss, checks it is finite and updates the progress bar. CUDA
runs in bf16 autocast with fused AdamW; ``compile`` wraps the model in torch.compile.
Where shapes may vary (no CUDA graph, no compile: the CPU), each batch is run in length
buckets with its trailing PAD cut off (:func:`length_buckets`), the same gradient for
about half the arithmetic.

Safety: a resumable checkpoint (model, optimiser, RNG states, the epoch's shuffle and
position) is written every ``checkpoint_every`` seconds and when Ctrl-C is pressed;
``resume`` continues from it exactly, and refuses a state saved with another
vocabulary, batch size or number of examples. A non-finite loss stops training before
anything is saved over the last good checkpoint.
"""

from __future__ import annotations

import math
import signal
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from kgpt.checkpoint import Checkpoint, load_state, read_checkpoint, save_checkpoint
from kgpt.errors import KgptError
from kgpt.model import GPT
from kgpt.vocab import PAD_ID, CharVocab

WARMUP_TOKENS = 512 * 20
# Rows per length bucket: fewer make matrix products too thin to be efficient. On the
# 2-core CPU, vanilla 4×256 at batch 128: 1 bucket 4.7 s/step, 4: 2.5, 8: 2.4, 16: 2.4,
# 32: 2.6; the demo's 2×128 model at batch 32/64/128 runs 2.1 ms/row from 16 rows a bucket.
BUCKET_ROWS = 16
MAX_BUCKETS = 8
GRAPH_WARMUP_STEPS = 3  # eager steps before capture: optimiser state and kernels get set up


class _GraphedStep:
    """A whole training step (forward, backward, clip, AdamW) captured as one CUDA graph.

    A step of this 3.3M-parameter model is a few hundred small kernels; launched one by
    one from Python they take about twice as long as the GPU needs to run them (measured
    on an H100: 11 ms/step wall, 5 ms/step of kernels). Replaying the captured graph
    launches them all at once. Batches are copied into static input buffers; the
    learning rate is a device tensor the captured optimiser reads.
    """

    def __init__(self, trainer: Trainer, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x.clone(), y.clone()
        trainer.optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(trainer.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss, self.norm = trainer._eager_step(self.x, self.y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss, self.norm


def length_buckets(x: torch.Tensor, y: torch.Tensor, n_buckets: int):
    """Split a batch into ``n_buckets`` groups of similar length, trailing PAD cut off.

    Yields ``(x_part, y_part, weight)``: the mean loss of the whole batch is the sum of
    each part's mean loss times its weight (its share of the non-PAD targets), so the
    gradient is the whole batch's. Exact because every variant is causal: positions
    after a row's last target cannot change the outputs before it. In pretraining
    about 56% of the positions are such trailing PAD (the truncation length is uniform
    up to 7/8 of the block); on a CPU, buckets halve the step time (docs/RESULTS.md).
    """
    targets = y != PAD_ID
    count = targets.sum()
    # A row's length: one past its last target, 0 for a row with none.
    lengths = torch.where(targets.any(1), y.shape[1] - targets.flip(1).int().argmax(1), 0)
    for rows in lengths.argsort().chunk(n_buckets):
        T = int(lengths[rows].max())
        if T == 0:
            continue
        ys = y[rows, :T]
        yield x[rows, :T], ys, (ys != PAD_ID).sum() / count


class Batcher(Protocol):
    def __len__(self) -> int: ...
    def sample(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...


class Interrupted(KgptError):
    """Ctrl-C during training: the state was saved; exit with the shell's SIGINT code."""

    exit_code = 130


def final_tokens_for(n_pretrain_documents: int, block_size: int) -> int:
    """The assignment's end of the cosine: 200 passes over the pretraining corpus."""
    return 200 * n_pretrain_documents * block_size


def lr_multiplier(tokens: int, warmup_tokens: int, final_tokens: int) -> float:
    """Linear warmup, then cosine decay to a 10% floor reached at ``final_tokens``, held after.

    The assignment's minGPT code does not clamp progress, so past ``final_tokens`` its
    cosine rises again (650 pretraining epochs are 3.2 periods of 200 epochs). kgpt
    follows DESIGN.md's reading, a floor that is reached and held: on an H100 the
    unclamped schedule gave vanilla a worse pretraining loss (2.27 against 1.60) and
    dev accuracy (0.6% against 1.0%); see docs/RESULTS.md.
    """
    if tokens < warmup_tokens:
        return tokens / max(1, warmup_tokens)
    progress = min(1.0, (tokens - warmup_tokens) / max(1, final_tokens - warmup_tokens))
    return max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))


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
    warmup_tokens: int = WARMUP_TOKENS
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_norm_clip: float = 1.0
    seed: int = 0
    compile: bool = False
    cuda_graphs: bool | None = None  # None: capture the step as a CUDA graph on CUDA unless compiling
    length_buckets: int | None = None  # None: batch/16 (at most 8) where shapes may vary (eager), else 1
    amp: bool | None = None  # None: bf16 autocast on CUDA, float32 on CPU (measured faster there)
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


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None


@contextmanager
def _deferred_sigint():
    """Turn the first Ctrl-C into a flag the loop checks between steps (a second one aborts)."""
    state = {"hit": False}
    if sys.platform == "win32" or signal.getsignal(signal.SIGINT) is None:
        yield state
        return
    try:
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            state["hit"] = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """Trains ``model`` on batches from ``batcher`` with the assignment's recipe."""

    def __init__(self, model: GPT, batcher: Batcher, config: TrainerConfig, vocab: CharVocab, device: torch.device):
        self.model = model.to(device)
        self.batcher = batcher
        self.config = config
        self.vocab = vocab
        self.device = device
        cuda = device.type == "cuda"
        if cuda:
            # cuDNN's attention backward has produced non-finite and wrong gradients on
            # Hopper in recent releases (bf16 pretraining here climbed back to unigram
            # loss); flash and memory-efficient attention are as fast at these shapes.
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.use_graphs = cuda and not config.compile if config.cuda_graphs is None else config.cuda_graphs
        self.optimizer = torch.optim.AdamW(
            model.optimizer_groups(config.weight_decay),
            # A CUDA graph reads the learning rate from device memory, so it is a tensor there.
            lr=torch.tensor(config.learning_rate, device=device) if self.use_graphs else config.learning_rate,
            betas=config.betas,
            fused=cuda,
            capturable=self.use_graphs,
        )
        self.graphed: _GraphedStep | None = None
        self.warm_steps = 0  # eager steps run in this process before capture
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.tokens = 0
        self.order: torch.Tensor | None = None  # this epoch's shuffle
        self.history: list[dict] = []  # mean loss and lr every log_every steps; saved with checkpoints
        use_amp = config.amp if config.amp is not None else device.type == "cuda"
        # No autocast weight cache: it cannot live across CUDA graph replays.
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False) if use_amp else nullcontext()
        self.forward = self._compiled() if config.compile else self.model
        # CUDA graphs and torch.compile want one static shape, so they get whole batches.
        static = self.use_graphs or config.compile
        auto = max(1, min(MAX_BUCKETS, config.batch_size // BUCKET_ROWS))
        self.length_buckets = config.length_buckets or (1 if static else auto)

    # -- state ---------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.batcher) / self.config.batch_size)

    def progress(self, finished: bool = False) -> dict:
        return {
            "history": self.history,
            "stage": self.config.stage,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "tokens": self.tokens,
            "max_epochs": self.config.max_epochs,
            "batch_size": self.config.batch_size,
            "examples": len(self.batcher),
            "finished": finished,
        }

    def save_resumable(self) -> None:
        if self.config.checkpoint_path is None:
            return
        extra = {f"optim.{k}": v for k, v in _flatten_optimizer(self.optimizer).items()}
        extra["rng.torch"] = torch.get_rng_state()
        extra["rng.data"] = self.generator.get_state()
        if self.device.type == "cuda":
            extra["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if self.order is not None:
            extra["rng.order"] = self.order
        save_checkpoint(self.config.checkpoint_path, self.model, self.vocab, self.progress(), extra)

    def resume(self, path: Path, ckpt: Checkpoint | None = None) -> None:
        """Restore everything :meth:`save_resumable` wrote; the model must already match.

        Continuing exactly needs the same data and batch size (the saved shuffle indexes
        this epoch's batches), the same vocabulary and the same model; anything else is
        refused with what differs rather than silently training something else.
        """
        ckpt = ckpt if ckpt is not None else read_checkpoint(path)
        p = ckpt.progress
        stage = self.config.stage
        if p.get("stage") != stage or "optim" not in {k.split(".")[0] for k in ckpt.tensors}:
            raise KgptError(f"{path} is not a resumable {stage} checkpoint; delete it or start without --resume")
        if ckpt.vocab != self.vocab:
            raise KgptError(f"{path} was trained with another corpus vocabulary; resume with the corpus it was started with")
        saved_batch, saved_examples = p.get("batch_size"), p.get("examples")
        if saved_batch is not None and saved_batch != self.config.batch_size:
            raise KgptError(
                f"{path} was started with batch size {saved_batch}, not {self.config.batch_size}; "
                f"resume with --batch_size {saved_batch}"
            )
        if saved_examples is not None and saved_examples != len(self.batcher):
            raise KgptError(
                f"{path} was started on {saved_examples} training examples, not {len(self.batcher)}; "
                "resume with the files it was started with"
            )
        load_state(self.model, ckpt.model_state(), path)
        rng = ckpt.group("rng")
        try:
            _restore_optimizer(self.optimizer, ckpt.group("optim"))
            torch.set_rng_state(rng["torch"])
            self.generator.set_state(rng["data"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
            order = rng["order"].to(self.device) if "order" in rng else None
            epoch, batch_in_epoch, step, tokens = p["epoch"], p["batch_in_epoch"], p["step"], p["tokens"]
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise KgptError(f"{path} is a damaged resumable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                            "delete it and start without --resume") from None
        if order is not None and order.numel() != len(self.batcher):
            raise KgptError(f"{path} holds a shuffle of {order.numel()} examples, not {len(self.batcher)}; resume with the same files")
        self.order = order
        self.epoch, self.batch_in_epoch, self.step, self.tokens = epoch, batch_in_epoch, step, tokens
        self.history = list(p.get("history", []))

    # -- training ----------------------------------------------------------------

    def _compiled(self):
        try:
            return torch.compile(self.model)
        except Exception as e:  # e.g. no compiler toolchain; eager is always correct
            warnings.warn(f"torch.compile unavailable ({e}); training eagerly")
            return self.model

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def _step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; full batches replay a captured CUDA graph where enabled."""
        self._set_lr(lr)
        if self.graphed is not None and x.shape == self.graphed.x.shape:
            return self.graphed(x, y)
        if self.use_graphs and self.graphed is None and x.shape[0] == self.config.batch_size and self.warm_steps >= GRAPH_WARMUP_STEPS:
            self._capture(x, y)
            if self.graphed is not None:
                return self.graphed(x, y)
        if self.use_graphs and self.graphed is None:
            # Eager warm-up steps run on a side stream, as graph capture requires.
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                out = self._eager_step(x, y)
            self.warm_steps += 1
            torch.cuda.current_stream(self.device).wait_stream(side)
            return out
        return self._eager_step(x, y)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        try:
            self.graphed = _GraphedStep(self, x, y)
        except Exception as e:  # an op that cannot be captured: eager is always correct
            warnings.warn(f"CUDA graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); training eagerly")
            self.use_graphs = False
            self.optimizer.zero_grad(set_to_none=True)

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.length_buckets > 1:
            loss = torch.zeros((), device=x.device)
            for xs, ys, weight in length_buckets(x, y, self.length_buckets):
                with self.autocast:
                    _, part = self.forward(xs, ys)
                (part * weight).backward()  # frees this bucket's activations before the next
                loss += part.detach() * weight
        else:
            with self.autocast:
                _, loss = self.forward(x, y)
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach(), norm

    def _first_step(self, x, y, lr):
        """The first compiled call compiles; if that fails, fall back to eager for good."""
        if self.forward is self.model:
            return self._step(x, y, lr)
        try:
            return self._step(x, y, lr)
        except Exception as e:
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); training eagerly")
            self.optimizer.zero_grad(set_to_none=True)
            self.forward = self.model
            return self._step(x, y, lr)

    def train(self) -> TrainResult:
        cfg = self.config
        self.model.train()
        n = len(self.batcher)
        block = self.model.config.block_size
        total_steps = cfg.max_epochs * self.steps_per_epoch
        writer = _tensorboard(cfg.tb_logdir)
        history = self.history
        t0 = time.perf_counter()
        last_save = t0
        loss_sum = torch.zeros((), device=self.device)
        bad = torch.zeros((), dtype=torch.bool, device=self.device)
        since_log = 0
        bar = _progress_bar(total_steps, self.step, cfg)
        step_fn = self._first_step
        with _deferred_sigint() as sigint:
            while self.epoch < cfg.max_epochs:
                if self.order is None:
                    self.order = torch.randperm(n, generator=self.generator, device=self.device)
                while self.batch_in_epoch < self.steps_per_epoch:
                    i = self.batch_in_epoch * cfg.batch_size
                    x, y = self.batcher.sample(self.order[i : i + cfg.batch_size], self.generator)
                    # minGPT counts the batch's tokens before choosing its learning rate.
                    lr = cfg.learning_rate * lr_multiplier(self.tokens + x.shape[0] * (block - 1), cfg.warmup_tokens, cfg.final_tokens)
                    loss, norm = step_fn(x, y, lr)
                    step_fn = self._step
                    loss_sum += loss
                    bad |= ~(torch.isfinite(loss) & torch.isfinite(norm))
                    since_log += 1
                    self.step += 1
                    self.batch_in_epoch += 1
                    self.tokens += x.shape[0] * (block - 1)
                    if bar is not None and self.device.type == "cpu":
                        bar.update(1)  # free on a CPU; on a GPU the bar moves at the log's sync
                    end_of_epoch = self.batch_in_epoch == self.steps_per_epoch
                    now = time.perf_counter()
                    due_save = cfg.checkpoint_path is not None and (
                        sigint["hit"] or (end_of_epoch and now - last_save >= cfg.checkpoint_every)
                    )
                    if since_log >= cfg.log_every or due_save or (end_of_epoch and self.epoch + 1 == cfg.max_epochs):
                        mean_loss = (loss_sum / since_log).item()  # the one host sync
                        if bad.item():
                            # Nothing is saved from here on: the last resumable checkpoint
                            # and any earlier output file stay as they were.
                            kept = cfg.checkpoint_path is not None and cfg.checkpoint_path.exists()
                            raise KgptError(
                                f"training diverged: non-finite loss or gradient by step {self.step} "
                                f"(epoch {self.epoch + 1}); "
                                + (f"the last good checkpoint {cfg.checkpoint_path} is kept" if kept else "nothing was saved")
                                + "; lower the learning rate"
                            )
                        history.append({"step": self.step, "epoch": self.epoch + 1, "tokens": self.tokens, "loss": mean_loss, "lr": lr})
                        if writer is not None:
                            writer.add_scalar("train/loss", mean_loss, self.step)
                            writer.add_scalar("train/lr", lr, self.step)
                        if bar is not None:
                            bar.update(self.step - bar.n)
                            bar.set_postfix(epoch=self.epoch + 1, loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
                        loss_sum.zero_()
                        since_log = 0
                    if end_of_epoch:
                        self.epoch += 1
                        self.batch_in_epoch = 0
                        self.order = None
                    if due_save:
                        self.save_resumable()
                        last_save = now
                    if sigint["hit"]:
                        if bar is not None:
                            bar.close()
                        where = f"; saved {cfg.checkpoint_path}: run the same command with --resume to continue" if cfg.checkpoint_path else ""
                        raise Interrupted(f"interrupted at step {self.step} (epoch {self.epoch + 1}){where}")
                    if end_of_epoch:
                        break
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return TrainResult(self.step, self.tokens, time.perf_counter() - t0, history)


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


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW state as flat named tensors (safetensors stores tensors, not pickles)."""
    flat = {}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            flat[f"{i}.{name}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return flat


def _restore_optimizer(optimizer: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    sd = optimizer.state_dict()
    state: dict[int, dict] = {}
    for key, value in flat.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    sd["state"] = state
    optimizer.load_state_dict(sd)


__all__ = [
    "Interrupted",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "final_tokens_for",
    "lr_multiplier",
    "resolve_device",
]
