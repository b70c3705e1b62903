"""A straightforward reference-style implementation of kgpt's vanilla model and recipe.

This is the yardstick ``compare.py`` measures kgpt's fast path against. It is written
the way the original course code (minGPT-derived) works, on purpose:

* data: a per-sample ``Dataset`` that span-corrupts one document per ``__getitem__``
  with Python's ``random`` (:func:`kgpt.data.corruption.corrupt`, the same spec),
  encodes it character by character, and a ``DataLoader(num_workers=0)`` without
  shuffling, as the course's trainer builds it, that collates the samples into a batch
  on the CPU, copied to the device every step;
* model: minGPT's layout with hand-written masked attention (``q @ kᵀ / √d``,
  ``masked_fill`` with a registered lower-triangular buffer, softmax, dropout, ``@ v``),
  the same sizes and the same parameter names as kgpt's vanilla GPT, so a state dict
  copies across in either direction;
* trainer: written from the course's ``src/trainer.py`` (CS224N, e.g. the public copy
  in ZubinGou/CS224n-Assignment, a5/src/trainer.py): ``torch.optim.AdamW`` (not fused)
  with two groups split by parameter *name* (no decay where the name contains "bias" or
  "LayerNorm.weight"), ``model.zero_grad()``, backward, clipping to 1.0, a step, then
  ``tokens += (y >= 0).sum()`` and the next step's learning rate from an unclamped
  cosine; the loss read on the host every step (``loss.item()``), as the original's
  progress bar does; float32;
* sampling: one question at a time, 32 greedy characters, every character recomputing
  the whole prefix (no cache), the prediction being the text between the first and the
  second ⁇.

Run from the repository root; it needs only torch and the installed ``kgpt`` package.
"""

from __future__ import annotations

import math
import random
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kgpt.data.corruption import corrupt
from kgpt.vocab import MASK_CHAR, PAD_ID, CharVocab

# ----------------------------------------------------------------------------- data


class CorruptionDataset(Dataset):
    """``ds[i]`` is a fresh span corruption of document i, drawn with Python's random."""

    def __init__(self, documents: list[str], vocab: CharVocab, block_size: int, rng: random.Random | None = None):
        self.documents = documents
        self.stoi = vocab.stoi
        self.block_size = block_size
        self.rng = rng or random.Random(0)

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        text = corrupt(self.documents[idx], self.block_size, self.rng)
        ids = torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        return ids[:-1], ids[1:]


# ----------------------------------------------------------------------------- model


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, attn_pdrop: float, resid_pdrop: float):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head = n_head
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.resid_drop = nn.Dropout(resid_pdrop)
        self.proj = nn.Linear(n_embd, n_embd)
        # Not persistent, so the state dict has exactly kgpt's keys (the original saved it).
        tril = torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)
        self.register_buffer("mask", tril, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        hs = C // self.n_head
        k = self.key(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        q = self.query(x).view(B, T, self.n_head, hs).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        att = self.attn_drop(att)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, pdrop: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, pdrop, pdrop)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(pdrop),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class ReferenceGPT(nn.Module):
    """minGPT: token + position embeddings, n_layer blocks, final LayerNorm, head."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 8, n_embd: int = 256, pdrop: float = 0.1):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.drop = nn.Dropout(pdrop)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head, block_size, pdrop) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)

    @classmethod
    def like(cls, kgpt_model: nn.Module) -> "ReferenceGPT":
        """A reference model of the same shape as a kgpt vanilla GPT, holding its weights."""
        c = kgpt_model.config
        if c.variant != "vanilla":
            raise ValueError(f"the reference implements the vanilla model only, not {c.variant}")
        if not (c.embd_pdrop == c.attn_pdrop == c.resid_pdrop):
            raise ValueError("the reference uses one dropout rate everywhere")
        model = cls(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, c.attn_pdrop)
        model.load_state_dict(kgpt_model.state_dict())  # strict: the keys must match exactly
        return model.to(next(kgpt_model.parameters()).device)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        b, t = idx.size()
        assert t <= self.block_size, "cannot forward, model block size is exhausted"
        x = self.drop(self.tok_emb(idx) + self.pos_emb[:, :t, :])
        x = self.blocks(x)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=PAD_ID)
        return logits, loss


# ----------------------------------------------------------------------------- training


class ReferenceTrainer:
    """The course's training loop, step for step (see the module docstring)."""

    def __init__(
        self, model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int,
        learning_rate: float = 6e-3, final_tokens: int = 10**12, warmup_tokens: int = 512 * 20,
        grad_norm_clip: float = 1.0, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95),
    ):
        self.model = model.to(device)
        self.device = device
        no_decay = ["bias", "LayerNorm.weight"]
        named = list(model.named_parameters())
        groups = [
            {"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=betas)
        self.learning_rate = learning_rate
        self.final_tokens = final_tokens
        self.warmup_tokens = warmup_tokens
        self.grad_norm_clip = grad_norm_clip
        self.tokens = 0
        self.loader = DataLoader(dataset, batch_size=batch_size, num_workers=0, pin_memory=device.type == "cuda")
        self._batches = iter(self.loader)
        self.losses: list[float] = []

    def _next_batch(self):
        try:
            return next(self._batches)
        except StopIteration:  # a new epoch, in the same order
            self._batches = iter(self.loader)
            return next(self._batches)

    def run_steps(self, steps: int) -> float:
        """Train ``steps`` batches; returns the seconds they took (synchronised)."""
        model = self.model
        model.train()
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = self._next_batch()
            x, y = x.to(self.device), y.to(self.device)
            with torch.set_grad_enabled(True):
                _, loss = model(x, y)
                loss = loss.mean()
                self.losses.append(loss.item())
            model.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_norm_clip)
            self.optimizer.step()
            self.tokens += (y >= 0).sum()  # every label position: PAD is 0, never negative
            if self.tokens < self.warmup_tokens:
                mult = float(self.tokens) / float(max(1, self.warmup_tokens))
            else:
                progress = float(self.tokens - self.warmup_tokens) / float(max(1, self.final_tokens - self.warmup_tokens))
                mult = max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate * mult
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0


# ----------------------------------------------------------------------------- sampling


@torch.no_grad()
def sample(model: ReferenceGPT, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy continuation of ``x`` (1, T) by ``steps`` tokens, recomputing every prefix."""
    model.eval()
    for _ in range(steps):
        x_cond = x if x.size(1) <= model.block_size else x[:, -model.block_size :]
        logits, _ = model(x_cond)
        probs = F.softmax(logits[:, -1, :], dim=-1)
        _, ix = torch.topk(probs, k=1, dim=-1)
        x = torch.cat((x, ix), dim=1)
    return x


def predict(model: ReferenceGPT, vocab: CharVocab, questions: list[str], device: torch.device, steps: int = 32) -> list[str]:
    """One question at a time: ``question⁇`` → 32 greedy characters → the text after ⁇."""
    predictions = []
    for question in questions:
        prompt = question + MASK_CHAR
        x = torch.tensor([vocab.stoi[c] for c in prompt], dtype=torch.long)[None, ...].to(device)
        completion = "".join(vocab.itos[int(i)] for i in sample(model, x, steps)[0])
        predictions.append(completion.split(MASK_CHAR)[1])
    return predictions
