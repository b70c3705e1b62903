"""Checkpoints: safetensors weights with kgpt's JSON metadata in the same file.

One file holds everything, so a model can never be separated from its description:
tensors ``model.*`` (and, in resumable training checkpoints, ``optim.*`` and ``rng.*``),
and a JSON header entry ``kgpt`` with the variant, model config, vocabulary, kgpt
version and training progress. Reading never unpickles. Writes go to a temporary file
in the same directory and are renamed into place, so a crash mid-write leaves the
previous file intact.

State dicts saved by the assignment's code (``torch.save(model.state_dict())``) are
imported through ``torch.load(weights_only=True)`` after their layout is checked
against the model the command line describes.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import kgpt
from kgpt.errors import KgptError
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import CharVocab

FORMAT = "kgpt-checkpoint/1"
# Buffers the assignment's models saved in their state dicts; kgpt recomputes them.
_LEGACY_BUFFERS = ("attn.mask", "rope_cache", "rope_cos", "rope_sin")


@dataclass
class Checkpoint:
    """What a checkpoint file holds; ``tensors`` beyond ``model.*`` only when resumable."""

    config: GPTConfig
    vocab: CharVocab | None
    progress: dict = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    imported: bool = False

    def model_state(self) -> dict[str, torch.Tensor]:
        return {k[len("model.") :]: v for k, v in self.tensors.items() if k.startswith("model.")}

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1 :]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file."""
    path = Path(path)
    if path.is_dir():
        raise KgptError(f"output path {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise KgptError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    vocab: CharVocab,
    progress: dict | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Save model weights (plus ``extra`` tensors such as optimiser state) atomically."""
    config: GPTConfig = model.config
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    meta = {
        "format": FORMAT,
        "kgpt_version": kgpt.__version__,
        "variant": config.variant,
        "config": config.to_dict(),
        "vocab": vocab.itos,
        "progress": progress or {},
    }
    atomic_write_bytes(path, st_save(tensors, metadata={"kgpt": json.dumps(meta, ensure_ascii=False)}))


def _is_safetensors(raw: bytes) -> bool:
    if len(raw) < 10:
        return False
    (n,) = struct.unpack("<Q", raw[:8])
    return 2 <= n <= len(raw) - 8 and raw[8:9] == b"{"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a kgpt checkpoint or an assignment state dict (marked ``imported``)."""
    p = Path(path)
    if not p.exists():
        raise KgptError(f"checkpoint {p} does not exist; check --reading_params_path")
    if p.is_dir():
        raise KgptError(f"checkpoint {p} is a directory, not a file")
    raw = p.read_bytes()
    if not raw:
        raise KgptError(f"checkpoint {p} is empty")
    if _is_safetensors(raw):
        return _read_kgpt(p, raw)
    return _read_legacy(p)


def _read_kgpt(p: Path, raw: bytes) -> Checkpoint:
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
        meta = json.loads(header.get("__metadata__", {}).get("kgpt", "null"))
        tensors = st_load(raw)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise KgptError(f"checkpoint {p} is truncated or corrupted ({str(e).splitlines()[0]}); retrain or restore it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise KgptError(f"checkpoint {p} is a safetensors file without kgpt metadata; it was not written by kgpt")
    return Checkpoint(
        config=GPTConfig.from_dict(meta["config"]),
        vocab=CharVocab.from_itos(meta["vocab"]),
        progress=meta.get("progress", {}),
        tensors=tensors,
    )


def _read_legacy(p: Path) -> Checkpoint:
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad pickle; all mean the same to a user
        raise KgptError(
            f"checkpoint {p} is neither a kgpt checkpoint nor a loadable state dict "
            f"({type(e).__name__}); it may be truncated or corrupted"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise KgptError(f"checkpoint {p} does not hold a state dict of tensors")
    state = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(_LEGACY_BUFFERS)}
    if "tok_emb.weight" not in state:
        raise KgptError(f"checkpoint {p} has no tok_emb.weight; it is not a GPT state dict from the assignment")
    vocab_size, n_embd = state["tok_emb.weight"].shape
    block_size = state["pos_emb"].shape[1] if "pos_emb" in state else 128
    n_layer = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_embd=n_embd, n_layer=n_layer)
    return Checkpoint(config=config, vocab=None, tensors={f"model.{k}": v for k, v in state.items()}, imported=True)


def load_model(
    path: str | Path,
    vocab: CharVocab,
    variant: str | None = None,
    bottleneck_dim: int | None = None,
    block_size: int | None = None,
) -> tuple[GPT, Checkpoint]:
    """A model from ``path``, checked against what the command line expects.

    ``vocab`` is the vocabulary of the corpus given on the command line; a checkpoint
    trained with a different one would silently map characters wrongly, so it is an
    error. ``variant`` and ``bottleneck_dim`` (None: take the checkpoint's) likewise.
    """
    ckpt = read_checkpoint(path)
    config = ckpt.config
    if ckpt.imported:
        # An assignment state dict carries no description: the command line supplies it.
        config = GPTConfig.from_dict(
            {
                **config.to_dict(),
                "variant": variant or "vanilla",
                "bottleneck_dim": bottleneck_dim or 32,
                "block_size": block_size or config.block_size,
                "n_layer": config.n_layer + (2 if variant == "perceiver" else 0),
            }
        )
    else:
        if variant is not None and variant != config.variant:
            raise KgptError(
                f"checkpoint {path} holds a {config.variant} model, not {variant}; "
                f"run with variant {config.variant} or give a {variant} checkpoint"
            )
        if config.variant == "perceiver" and bottleneck_dim is not None and bottleneck_dim != config.bottleneck_dim:
            raise KgptError(
                f"checkpoint {path} has bottleneck_dim {config.bottleneck_dim}, not {bottleneck_dim}; "
                f"pass --bottleneck_dim {config.bottleneck_dim}"
            )
        if ckpt.vocab != vocab:
            raise KgptError(
                f"checkpoint {path} was trained with a different vocabulary ({len(ckpt.vocab)} characters) "
                f"than the corpus given here ({len(vocab)}); pass the pretraining corpus it was trained on"
            )
    if config.vocab_size != len(vocab):
        raise KgptError(
            f"checkpoint {path} has a vocabulary of {config.vocab_size} characters, the corpus given here "
            f"{len(vocab)}; pass the pretraining corpus it was trained on"
        )
    model = GPT(config)
    _load_state(model, ckpt.model_state(), path)
    ckpt.config = config
    return model, ckpt


def _load_state(model: GPT, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load weights after checking names and shapes, so a mismatch reads as one line."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}")
        raise KgptError(
            f"checkpoint {path} does not fit a {model.config.variant} model ({'; '.join(parts)}); "
            "check the variant and --bottleneck_dim"
        )
    model.load_state_dict(state)
