"""A training run's resumable state: where it is, and everything needed to go on exactly.

Saved beside the model in one kgpt checkpoint: the optimiser's moments, the random
generators (data corruption, dropout), this epoch's order of examples and the position
in it. Resuming refuses a state saved with another vocabulary, batch size or number of
examples, since the saved order would index other batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from kgpt.checkpoint import Checkpoint, load_state, read_checkpoint, save_checkpoint
from kgpt.errors import KgptError
from kgpt.model import GPT
from kgpt.vocab import CharVocab


@dataclass
class Progress:
    """Where training is; ``history`` holds the mean loss and the LR every ``log_every`` steps."""

    stage: str
    recipe: str
    max_epochs: int
    batch_size: int
    examples: int
    optimizer: str = "adamw"
    peak_lr: float | None = None  # the schedule's peak (None in checkpoints written before it was kept)
    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    tokens: int = 0
    history: list[dict] = field(default_factory=list)
    finished: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def save_resumable(
    path: Path, model: GPT, vocab: CharVocab, progress: Progress, optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator, order: torch.Tensor | None,
) -> None:
    extra = {f"optim.{k}": v for k, v in _flatten_optimizer(optimizer).items()}
    extra["rng.torch"] = torch.get_rng_state()
    extra["rng.data"] = data_generator.get_state()
    device = next(model.parameters()).device
    if device.type == "cuda":
        extra["rng.cuda"] = torch.cuda.get_rng_state(device)
    if order is not None:
        extra["rng.order"] = order
    save_checkpoint(path, model, vocab, progress.to_dict(), extra)


def restore_resumable(
    path: Path, ckpt: Checkpoint | None, model: GPT, vocab: CharVocab, progress: Progress,
    optimizer: torch.optim.Optimizer, data_generator: torch.Generator,
) -> torch.Tensor | None:
    """Load what :func:`save_resumable` wrote into model, optimiser, generators and ``progress``.

    Returns the saved order of this epoch's examples (None: the epoch had not started).
    """
    ckpt = ckpt if ckpt is not None else read_checkpoint(path)
    p = ckpt.progress
    if p.get("stage") != progress.stage or "optim" not in {k.split(".")[0] for k in ckpt.tensors}:
        raise KgptError(f"{path} is not a resumable {progress.stage} checkpoint; delete it or start without --resume")
    if ckpt.vocab != vocab:
        raise KgptError(f"{path} was trained with another corpus vocabulary; resume with the corpus it was started with")
    if p.get("recipe", progress.recipe) != progress.recipe:
        # The optimiser's state is saved by position in its parameter groups, which the recipe decides.
        raise KgptError(f"{path} was started with recipe {p['recipe']}, not {progress.recipe}; resume with --recipe {p['recipe']}")
    if p.get("optimizer", "adamw") != progress.optimizer:
        raise KgptError(f"{path} was started with optimizer {p['optimizer']}, not {progress.optimizer}; "
                        f"resume with --optimizer {p['optimizer']}")
    saved_batch, saved_examples = p.get("batch_size"), p.get("examples")
    if saved_batch is not None and saved_batch != progress.batch_size:
        raise KgptError(
            f"{path} was started with batch size {saved_batch}, not {progress.batch_size}; "
            f"resume with --batch_size {saved_batch}"
        )
    if saved_examples is not None and saved_examples != progress.examples:
        raise KgptError(
            f"{path} was started on {saved_examples} training examples, not {progress.examples}; "
            "resume with the files it was started with"
        )
    load_state(model, ckpt.model_state(), path)
    rng = ckpt.group("rng")
    device = next(model.parameters()).device
    try:
        _restore_optimizer(optimizer, ckpt.group("optim"))
        torch.set_rng_state(rng["torch"])
        data_generator.set_state(rng["data"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)
        order = rng["order"].to(device) if "order" in rng else None
        position = {k: int(p[k]) for k in ("epoch", "batch_in_epoch", "step", "tokens")}
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise KgptError(f"{path} is a damaged resumable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                        "delete it and start without --resume") from None
    if order is not None and order.numel() != progress.examples:
        raise KgptError(f"{path} holds an order of {order.numel()} examples, not {progress.examples}; resume with the same files")
    for k, v in position.items():
        setattr(progress, k, v)
    progress.history = list(p.get("history", []))
    return order


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
