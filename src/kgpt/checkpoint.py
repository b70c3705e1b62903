"""Checkpoints: safetensors weights with kgpt's JSON metadata in the same file.

One file holds everything, so a model can never be separated from its description:
tensors ``model.*`` (and, in resumable training checkpoints, ``optim.*`` and ``rng.*``),
and a JSON header entry ``kgpt`` with the variant, model config, vocabulary, kgpt
version, training progress and a SHA-256 of all of it (so a damaged file is refused
rather than loaded as wrong weights). Reading never unpickles. Writes go to a temporary
file in the same directory, are fsynced and renamed into place, so a crash or a kill
mid-write leaves the previous file intact.

State dicts saved by the assignment's code (``torch.save(model.state_dict())``) are
imported through ``torch.load(weights_only=True)`` (which refuses any pickle that is not
plain tensors and containers, without running it), and their layout is checked against
the model the command line describes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import kgpt
from kgpt.errors import KgptError
from kgpt.io import atomic_write_bytes, read_input_bytes
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import CharVocab

FORMAT_NAME, FORMAT_VERSION = "kgpt-checkpoint", 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
_META_FIELDS = {"format", "kgpt_version", "variant", "config", "vocab", "progress", "answering", "sha256"}
RECALLER = "recaller"  # tensor prefix of a recall-then-read checkpoint's second model
# Buffers the assignment's models saved in their state dicts (every attention's causal
# ``mask``, the 2024 edition's ``rope_cache``); kgpt recomputes them.
_LEGACY_BUFFERS = ("attn.mask", "rope_cache", "rope_cos", "rope_sin")
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header


@dataclass
class Checkpoint:
    """What a checkpoint file holds; ``tensors`` beyond ``model.*`` only when resumable."""

    config: GPTConfig
    vocab: CharVocab | None
    progress: dict = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    imported: bool = False
    # How the model answers, where it is not asked the question itself: recall-then-read
    # keeps its settings here and the recalling model's weights under ``recaller.*``.
    answering: dict | None = None

    def model_state(self) -> dict[str, torch.Tensor]:
        return {k[len("model.") :]: v for k, v in self.tensors.items() if k.startswith("model.")}

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1 :]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


def checkpoint_digest(meta: dict, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the metadata (less this digest) and the names, dtypes, shapes and bytes
    of ``tensors`` (CPU, contiguous): any damaged byte of a checkpoint changes it."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    vocab: CharVocab,
    progress: dict | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    answering: dict | None = None,
) -> None:
    """Save model weights (plus ``extra`` tensors such as optimiser state, and how the
    model answers when it is not asked directly) atomically."""
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
    if answering is not None:
        meta["answering"] = answering
    meta["sha256"] = checkpoint_digest(meta, tensors)
    atomic_write_bytes(path, st_save(tensors, metadata={"kgpt": json.dumps(meta, ensure_ascii=False)}))


def save_answering(path: str | Path, source: str | Path, answering: dict) -> None:
    """Write the checkpoint ``source`` to ``path`` (atomically; it may be the same file)
    with ``answering`` as how it answers: the same weights, settings added after training
    (a recall-then-read checkpoint's confidence calibration, :mod:`kgpt.confidence`)."""
    p = Path(source)
    raw = read_input_bytes(p, "checkpoint", "check --reading_params_path")
    if not _is_safetensors(raw):
        raise KgptError(f"checkpoint {p} was imported from the assignment's code; it has no recall to calibrate")
    ckpt = _read_kgpt(p, raw)  # checks the file before anything is written
    meta = json.loads(json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]["kgpt"])
    meta.pop("sha256", None)
    meta["answering"] = answering
    meta["sha256"] = checkpoint_digest(meta, ckpt.tensors)
    atomic_write_bytes(path, st_save(ckpt.tensors, metadata={"kgpt": json.dumps(meta, ensure_ascii=False)}))


def _is_safetensors(raw: bytes) -> bool:
    """A safetensors file starts with its JSON header's length, then the header.

    A header longer than the file means a truncated safetensors file, which must be
    reported as such, not handed to the pickle loader.
    """
    if len(raw) < 10:
        return False
    (n,) = struct.unpack("<Q", raw[:8])
    return 2 <= n <= _MAX_HEADER_BYTES and raw[8:9] == b"{"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a kgpt checkpoint or an assignment state dict (marked ``imported``)."""
    p = Path(path)
    raw = read_input_bytes(p, "checkpoint", "check --reading_params_path")
    if _is_safetensors(raw):
        return _read_kgpt(p, raw)
    return _read_legacy(p, raw)


def _read_kgpt(p: Path, raw: bytes) -> Checkpoint:
    damaged = f"checkpoint {p} is truncated or corrupted"
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
        meta = json.loads(header.get("__metadata__", {}).get("kgpt", "null"))
        tensors = st_load(raw)
    except (SafetensorError, ValueError, TypeError, AttributeError) as e:
        raise KgptError(f"{damaged} ({str(e).splitlines()[0][:120]}); retrain or restore it") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith(f"{FORMAT_NAME}/"):
        raise KgptError(f"checkpoint {p} is a safetensors file without kgpt metadata; it was not written by kgpt")
    version = meta["format"].removeprefix(f"{FORMAT_NAME}/")
    if version.isascii() and version.isdecimal() and int(version) > FORMAT_VERSION:  # before anything else: a later format may say anything
        raise KgptError(
            f"checkpoint {p} is in format {meta['format']} (written by kgpt {str(meta.get('kgpt_version', '?'))[:40]}); "
            f"this kgpt {kgpt.__version__} reads {FORMAT}: upgrade kgpt to load it"
        )
    if meta["format"] != FORMAT:
        raise KgptError(f"{damaged} (format {meta['format'][:40]!r} is not one kgpt ever wrote); retrain or restore it")
    unknown = sorted(set(meta) - _META_FIELDS)
    if unknown:  # e.g. a damaged "sha256" key, which would otherwise skip the check below
        raise KgptError(f"{damaged} (unknown metadata fields {', '.join(unknown)}); retrain or restore it")
    # Checkpoints written before the digest existed have none; every later one does.
    if "sha256" in meta and meta["sha256"] != checkpoint_digest(meta, tensors):
        raise KgptError(f"{damaged} (its contents do not match the SHA-256 it was saved with); retrain or restore it")
    try:
        return Checkpoint(
            config=GPTConfig.from_dict(meta["config"]),
            vocab=CharVocab.from_itos(meta["vocab"]),
            progress=dict(meta.get("progress") or {}),
            tensors=tensors,
            answering=meta.get("answering"),
        )
    except (KeyError, TypeError, ValueError, KgptError) as e:
        raise KgptError(f"{damaged} (its kgpt metadata is incomplete or invalid: {e}); retrain or restore it") from None


def _read_legacy(p: Path, raw: bytes) -> Checkpoint:
    try:
        # weights_only: only tensors and plain containers are rebuilt; any other pickle
        # (code to run, arbitrary objects) is refused before anything in it executes.
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)  # bytes already read
    except Exception as e:  # torch raises many types for a bad pickle; all mean the same to a user
        unsafe = re.search(r"GLOBAL (\w+(?:\.\w+)+)", str(e))  # module.name; a damaged byte gives "GLOBAL ."
        if unsafe:
            raise KgptError(
                f"checkpoint {p} is a pickle of Python objects (it refers to {unsafe.group(1)}), not a state dict "
                "of tensors; refused without running it. Save the model's state_dict() instead"
            ) from None
        raise KgptError(
            f"checkpoint {p} is neither a kgpt checkpoint nor a loadable state dict "
            f"({type(e).__name__}); it may be truncated or corrupted"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise KgptError(f"checkpoint {p} does not hold a state dict (names to tensors); it is not a model checkpoint")
    state = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(_LEGACY_BUFFERS)}
    config = _legacy_config(p, state)
    return Checkpoint(config=config, vocab=None, tensors={f"model.{k}": v for k, v in state.items()}, imported=True)


def _legacy_variant(state: dict[str, torch.Tensor]) -> tuple[str, str]:
    """The variant an assignment state dict has the layout of, and the names that show it."""
    if any(k.startswith(("down_block.", "up_block.")) for k in state):
        return "perceiver", "down_block/up_block"
    if any(k.startswith("blocks.") and k.endswith(".attn.w2") for k in state):
        return "synthesizer", "attention w1/w2/b2"
    if "pos_emb" not in state:
        return "rope", "no pos_emb"
    return "vanilla", "pos_emb and query/key attention"


def _legacy_config(p: Path, state: dict[str, torch.Tensor]) -> GPTConfig:
    """The size and variant of an assignment model, read off its state dict's names and shapes.

    The course's editions: vanilla (2021-24), synthesizer (2021), perceiver (2023: the basis
    ``down_block.C`` gives bottleneck_dim) and rope (2024: no ``pos_emb``, so block_size is
    the command line's). Head counts are not in the shapes except the synthesizer's (w2 has
    n_embd / n_head rows); the others get the assignment's 8.
    """
    layout = f"checkpoint {p} does not have the layout of the assignment's GPT"
    emb = state.get("tok_emb.weight")
    if emb is None or emb.dim() != 2:
        raise KgptError(f"{layout} (no 2-D tok_emb.weight); give a state dict saved from the assignment's model")
    vocab_size, n_embd = emb.shape
    pos = state.get("pos_emb")
    if pos is not None and (pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != n_embd):
        raise KgptError(f"{layout} (pos_emb has shape {tuple(pos.shape)}, expected (1, block_size, {n_embd}))")
    blocks = {k.split(".")[1] for k in state if k.startswith("blocks.")}
    if not all(b.isdigit() for b in blocks):
        raise KgptError(f"{layout} (block names {sorted(blocks)[:3]} are not numbered)")
    variant, _ = _legacy_variant(state)
    sizes = {"n_layer": len(blocks)}
    if variant == "perceiver":
        basis = state.get("down_block.C")
        if basis is None or basis.dim() != 3 or basis.shape[0] != 1 or basis.shape[2] != n_embd:
            shape = "missing" if basis is None else f"of shape {tuple(basis.shape)}"
            raise KgptError(f"{layout} (down_block.C is {shape}, expected (1, bottleneck_dim, {n_embd}))")
        sizes = {"n_layer": len(blocks) + 2, "bottleneck_dim": basis.shape[1]}
    elif variant == "synthesizer":
        w2 = next(v for k, v in state.items() if k.startswith("blocks.") and k.endswith(".attn.w2"))
        if w2.dim() == 2 and 0 < w2.shape[0] and n_embd % w2.shape[0] == 0:
            sizes["n_head"] = n_embd // w2.shape[0]  # otherwise the shape check names w2
    try:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=pos.shape[1] if pos is not None else 128,
            n_embd=n_embd,
            variant=variant,
            **sizes,
        )
    except KgptError as e:
        raise KgptError(f"{layout} ({e})") from None


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
    if variant is not None and variant != config.variant:
        if ckpt.imported:
            held, kind = f"has the layout of the assignment's {config.variant} model ({_legacy_variant(ckpt.model_state())[1]})", "state dict"
        else:
            held, kind = f"holds a {config.variant} model", "checkpoint"
        raise KgptError(f"checkpoint {path} {held}, not {variant}; run with variant {config.variant} or give a {variant} {kind}")
    if config.variant == "perceiver" and bottleneck_dim is not None and bottleneck_dim != config.bottleneck_dim:
        raise KgptError(
            f"checkpoint {path} has bottleneck_dim {config.bottleneck_dim}, not {bottleneck_dim}; "
            f"pass --bottleneck_dim {config.bottleneck_dim} or leave it out"
        )
    if ckpt.imported:
        # An assignment state dict carries no description: its names and shapes gave the
        # variant and sizes; the block size comes from the command line (rope has no pos_emb).
        config = GPTConfig.from_dict({**config.to_dict(), "block_size": block_size or config.block_size})
    elif ckpt.vocab != vocab:
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
    load_state(model, ckpt.model_state(), path)
    ckpt.config = config
    return model, ckpt


def load_state(model: GPT, state: dict[str, torch.Tensor], path: str | Path) -> None:
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
