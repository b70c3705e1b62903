"""The attention mechanisms the variants plug into one GPT.

All are multi-head and strictly causal. Query position i sees key positions 0..i,
aligned at the top-left, which is also what makes the perceiver's cross-attention
between sequences of different lengths causal. Dot-product attention goes through
``scaled_dot_product_attention`` (flash/memory-efficient kernels on GPU).

Incremental decoding passes a :class:`KVCache`; the new positions attend to everything
cached so far and causally among themselves (one new position needs no mask at all).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kgpt.model.config import GPTConfig


@dataclass
class KVCache:
    """Keys and values of one layer for the positions decoded so far.

    With a ``capacity`` (the positions the decode will need), the first call allocates
    buffers that long and later positions are written in place, so no step copies what
    came before: long decodes such as a 100-character recall run 14-23% faster than with
    a cache grown one tensor a step (docs/RESULTS.md). Past the capacity, or without
    one, it grows, copying.
    """

    capacity: int | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    length: int = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        if self.k is None or end > self.k.shape[2]:
            room = max(self.capacity or 0, end)
            grown_k = k.new_empty((*k.shape[:2], room, k.shape[3]))
            grown_v = grown_k if v is k else v.new_empty((*v.shape[:2], room, v.shape[3]))  # the synthesizer caches values only
            if self.k is not None:
                grown_k[:, :, : self.length], grown_v[:, :, : self.length] = self.k[:, :, : self.length], self.v[:, :, : self.length]
            self.k, self.v = grown_k, grown_v
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def take(self, rows: torch.Tensor) -> KVCache:
        """A cache holding row ``rows[i]`` of this one as its row i (copied, so each row can
        then be extended on its own): one read prompt continued several ways."""
        if self.k is None:
            return KVCache(self.capacity)
        k = self.k.index_select(0, rows)
        v = k if self.v is self.k else self.v.index_select(0, rows)
        return KVCache(self.capacity, k, v, self.length)


def rotary_tables(head_size: int, max_positions: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angle t·θ_i for position t and pair i, θ_i = theta^(-2i/d)."""
    inv_freq = theta ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)
    angles = torch.outer(torch.arange(max_positions, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each adjacent pair (x[2i], x[2i+1]) of the head dimension by its angle."""
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


class DotProductAttention(nn.Module):
    """Causal multi-head attention softmax(QKᵀ/√d)V, optionally with rotary positions.

    Self-attention when ``context`` is None; otherwise the queries come from ``x`` and
    keys/values from ``context`` (the perceiver's projections).
    """

    def __init__(self, config: GPTConfig, rotary: bool = False):
        super().__init__()
        self.n_head = config.n_head
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_pdrop = config.attn_pdrop
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        self.rotary = rotary
        if rotary:
            cos, sin = rotary_tables(config.n_embd // config.n_head, config.block_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → contiguous (B, nh, T, hs).

        Contiguous on purpose: fused attention kernels have mishandled strided inputs
        (pytorch/pytorch#112577), and in the H100 runs the two variants that gave SDPA
        strided head views (vanilla, perceiver) trained worst. A CPU rerun of vanilla with
        contiguous heads had the H100 strided run's loss to within 0.04 over its first 300
        steps (docs/RESULTS.md), so this is probably not the cause; the copy is cheap.
        """
        return t.unflatten(-1, (self.n_head, -1)).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        kv_in = x if context is None else context
        q, k, v = self.heads(self.query(x)), self.heads(self.key(kv_in)), self.heads(self.value(kv_in))
        start = cache.length if cache is not None else 0
        if self.rotary:
            q = apply_rotary(q, self.rope_cos[start : start + q.shape[2]], self.rope_sin[start : start + q.shape[2]])
            k = apply_rotary(k, self.rope_cos[start : start + k.shape[2]], self.rope_sin[start : start + k.shape[2]])
        if cache is not None:
            k, v = cache.extend(k, v)
        T = q.shape[2]
        mask = None  # one new position may see everything cached
        if start > 0 and T > 1:  # new positions see the cache and each other causally
            mask = torch.ones(T, start + T, dtype=torch.bool, device=q.device).tril(start)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=start == 0, dropout_p=self.attn_pdrop if self.training else 0.0
        )
        return self.resid_drop(self.proj(y.transpose(1, 2).flatten(2)))


class SynthesizerAttention(nn.Module):
    """Dense synthesizer (Tay et al., 2020): scores = ReLU(X A_i + b1) B_i + b2.

    Each position synthesizes its own row of attention scores over absolute key
    positions from its own features; no query·key product. B_i has ``block_size - 1``
    columns, the longest sequence the model is trained on.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        head_size = config.n_embd // config.n_head
        self.w1 = nn.Linear(config.n_embd, config.n_embd)
        self.w2 = nn.Parameter(torch.empty(head_size, config.block_size - 1))
        self.b2 = nn.Parameter(torch.zeros(config.block_size - 1))
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.attn_pdrop)
        self.resid_drop = nn.Dropout(config.resid_pdrop)
        nn.init.uniform_(self.w2, -0.001, 0.001)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        assert context is None, "the synthesizer is self-attention only"
        T = x.shape[1]
        a = F.relu(self.w1(x)).unflatten(-1, (self.n_head, -1)).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).unflatten(-1, (self.n_head, -1)).transpose(1, 2)
        start = cache.length if cache is not None else 0
        if cache is not None:
            _, v = cache.extend(v, v)  # only values depend on other positions' inputs
        S = start + T
        scores = a @ self.w2[:, :S] + self.b2[:S]  # (B, nh, T, S)
        rows = torch.arange(start, S, device=x.device).unsqueeze(1)
        scores = scores.masked_fill(torch.arange(S, device=x.device) > rows, float("-inf"))
        att = self.attn_drop(F.softmax(scores.float(), dim=-1).type_as(v))
        y = (att @ v).transpose(1, 2).flatten(2)
        return self.resid_drop(self.proj(y))


def make_attention(config: GPTConfig) -> nn.Module:
    """The self-attention a variant uses in its ordinary blocks."""
    if config.variant == "synthesizer":
        return SynthesizerAttention(config)
    return DotProductAttention(config, rotary=config.variant == "rope")
