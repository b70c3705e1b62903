"""The GPT: one model for every variant, each variant a choice of parts.

Layout and parameter names follow the assignment's minGPT-derived model (``tok_emb``,
``pos_emb``, ``blocks.N.attn.key`` …), so its saved state dicts import directly.

* vanilla / synthesizer: token + learned position embeddings → n_layer blocks → head.
* rope: no position table; the attention rotates queries and keys instead.
* perceiver: a learned basis ``C`` of ``bottleneck_dim`` rows cross-attends to the input
  (down-projection), n_layer − 2 blocks run on that bottleneck, then the input positions
  cross-attend back to it (up-projection). Attention cost drops from O(T²) to O(T·m).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kgpt.model.attention import DotProductAttention, KVCache, SynthesizerAttention, make_attention
from kgpt.model.config import GPTConfig
from kgpt.vocab import PAD_ID


class Block(nn.Module):
    """Pre-LayerNorm transformer block; cross-attends when given a context."""

    def __init__(self, config: GPTConfig, attn: nn.Module, cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln_kv = nn.LayerNorm(config.n_embd) if cross else None
        self.attn = attn
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.resid_pdrop),
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, cache: KVCache | None = None) -> torch.Tensor:
        kv = None if context is None else self.ln_kv(context)
        x = x + self.attn(self.ln1(x), kv, cache)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A character-level GPT; ``model(idx, targets)`` → ``(logits, loss)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = None if config.variant == "rope" else nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.embd_pdrop)
        if config.variant == "perceiver":
            self.C = nn.Parameter(torch.empty(1, config.bottleneck_dim, config.n_embd))
            self.down_block = Block(config, DotProductAttention(config), cross=True)
            n_inner = config.n_layer - 2
        else:
            n_inner = config.n_layer
        self.blocks = nn.ModuleList(Block(config, make_attention(config)) for _ in range(n_inner))
        if config.variant == "perceiver":
            self.up_block = Block(config, DotProductAttention(config), cross=True)
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.variant == "perceiver":
            nn.init.normal_(self.C, mean=0.0, std=0.02)

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

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """Weight decay on matmul weights only; none on biases, norms, embeddings, C."""
        decay = {id(m.weight) for m in self.modules() if isinstance(m, nn.Linear)}
        decay |= {id(m.w2) for m in self.modules() if isinstance(m, SynthesizerAttention)}
        params = list(self.parameters())
        return [
            {"params": [p for p in params if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0},
        ]

    def new_cache(self) -> list[KVCache]:
        return [KVCache() for _ in self.blocks]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: list[KVCache] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        start = cache[0].length if cache else 0
        if start + T > self.max_length:
            raise ValueError(f"sequence of {start + T} positions is longer than the model's {self.max_length}")
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb[:, start : start + T]
        x = self.drop(x)
        if self.config.variant == "perceiver":
            assert cache is None, "the perceiver decodes by recomputation"
            h = self.down_block(self.C.expand(B, -1, -1), context=x)
            for block in self.blocks:
                h = block(h)
            x = self.up_block(x, context=h)
        else:
            for i, block in enumerate(self.blocks):
                x = block(x, cache=cache[i] if cache else None)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=PAD_ID)
        return logits, loss
