"""The GPT: one model for every variant, each variant a choice of parts.

Layout and parameter names follow the assignment's minGPT-derived model (``tok_emb``,
``pos_emb``, ``blocks.N.attn.key`` …), so its saved state dicts import directly.

* vanilla / synthesizer: token + learned position embeddings → n_layer blocks → head.
* rope: no position table; the attention rotates queries and keys instead.
* perceiver (the 2023 course layout): a learned basis ``down_block.C`` of ``bottleneck_dim``
  rows cross-attends to the input (down-projection), n_layer − 2 blocks run on that
  bottleneck, then the input positions cross-attend back to it (up-projection). Attention
  cost drops from O(T²) to O(T·m).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kgpt.model.attention import DotProductAttention, KVCache, make_attention
from kgpt.model.config import GPTConfig, dropout_rates
from kgpt.vocab import PAD_ID


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, config: GPTConfig, attn: nn.Module):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = attn
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.resid_pdrop),
        )

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        return self.feed_forward(x + self.attn(self.ln1(x), cache=cache))

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.ln2(x))


# The perceiver's two cross-attention blocks, in the course's layout and names. The
# course's skeleton is silent on residuals; both keep one on the query side (C in the down
# block, the input in the up block), like every other block: without it the up block's
# output at position t would be only a mix of bottleneck rows, and the token at t would
# reach the head through the m-row bottleneck alone.


class DownProjectBlock(Block):
    """The learned basis ``C`` (1, m, n_embd) cross-attends to the input: T rows in, m out.

    ``C`` lives here and is xavier-uniform initialised, as in the course; ln1 normalises
    C (the query side), the input is attended as it is.
    """

    def __init__(self, config: GPTConfig):
        super().__init__(config, DotProductAttention(config))
        # GPT._init_weights only touches Linear, Embedding and LayerNorm: this init stays.
        self.C = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, config.bottleneck_dim, config.n_embd)))

    def forward(self, x_input: torch.Tensor) -> torch.Tensor:
        q = self.ln1(self.C).expand(x_input.shape[0], -1, -1)
        return self.feed_forward(self.C + self.attn(q, context=x_input))


class UpProjectBlock(Block):
    """The input positions cross-attend to the bottleneck ``y``: m rows in, T out.

    As in the course, ln1 normalises y (the key/value side); the queries are the input.
    """

    def __init__(self, config: GPTConfig):
        super().__init__(config, DotProductAttention(config))

    def forward(self, y: torch.Tensor, x_input: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(x_input + self.attn(x_input, context=self.ln1(y)))


class GPT(nn.Module):
    """A character-level GPT; ``model(idx, targets)`` → ``(logits, loss)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = None if config.variant == "rope" else nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.embd_pdrop)
        if config.variant == "perceiver":
            self.down_block = DownProjectBlock(config)
            n_inner = config.n_layer - 2
        else:
            n_inner = config.n_layer
        self.blocks = nn.ModuleList(Block(config, make_attention(config)) for _ in range(n_inner))
        if config.variant == "perceiver":
            self.up_block = UpProjectBlock(config)
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def max_length(self) -> int:
        """Longest input: the synthesizer's score table has block_size − 1 columns."""
        c = self.config
        return c.block_size - 1 if c.variant == "synthesizer" else c.block_size

    @property
    def supports_kv_cache(self) -> bool:
        """The perceiver's bottleneck rows change as the input grows, so it recomputes."""
        return self.config.variant != "perceiver"

    def with_dropout(self, rate: float) -> GPT:
        """A copy of this model, its weights the same, with every dropout rate ``rate``."""
        copy = GPT(GPTConfig.from_dict({**self.config.to_dict(), **dropout_rates(rate)}))
        copy.load_state_dict(self.state_dict())
        return copy.to(next(self.parameters()).device)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, positions: int | None = None) -> list[KVCache]:
        """An empty KV cache per block, with room for ``positions`` (default: the model's longest input)."""
        return [KVCache(capacity=positions or self.max_length) for _ in self.blocks]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: list[KVCache] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        T = idx.shape[1]
        start = cache[0].length if cache else 0
        if start + T > self.max_length:
            raise ValueError(f"sequence of {start + T} positions is longer than the model's {self.max_length}")
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb[:, start : start + T]
        x = self.drop(x)
        if self.config.variant == "perceiver":
            assert cache is None, "the perceiver decodes by recomputation"
            h = self.down_block(x)
            for block in self.blocks:
                h = block(h)
            x = self.up_block(h, x)
        else:
            for i, block in enumerate(self.blocks):
                x = block(x, cache=cache[i] if cache else None)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=PAD_ID)
        return logits, loss
