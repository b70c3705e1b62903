"""Greedy decoding of many prompts at once, with a KV cache.

The reference code answers one question at a time and recomputes the whole prefix for
every new character. Here all prompts advance together, one position per step: a row
still inside its prompt is fed its next prompt character (teacher forcing), a row past
it is fed its own last prediction. Because the model is causal, every row sees exactly
what naive one-at-a-time decoding would show it, so the predictions are identical; with
the KV cache each step costs one position, not the whole prefix. Rows stop at their
``stop_id`` (the closing ⁇); decoding ends when every row has stopped.
"""

from __future__ import annotations

import torch

from kgpt.model import GPT
from kgpt.vocab import MASK_ID, PAD_ID


@torch.no_grad()
def greedy_decode(
    model: GPT,
    prompts: list[list[int]],
    max_new_tokens: int = 32,
    stop_id: int = MASK_ID,
    batch_size: int = 1024,
) -> list[list[int]]:
    """For each prompt, the greedily generated ids up to (not including) ``stop_id``."""
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch_size):
        out.extend(_decode_batch(model, prompts[i : i + batch_size], max_new_tokens, stop_id))
    return out


def _decode_batch(model: GPT, prompts: list[list[int]], max_new_tokens: int, stop_id: int) -> list[list[int]]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    B = len(prompts)
    plen = torch.tensor([len(p) for p in prompts], device=device)
    if plen.min().item() < 1:
        raise ValueError("every prompt needs at least one character")
    # Each row may generate until max_new_tokens or the model's longest input.
    budget = torch.clamp(model.max_length - plen, max=max_new_tokens)
    total = int((plen + budget).max().item())
    tokens = torch.full((B, total), PAD_ID, dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        tokens[r, : len(p)] = torch.tensor(p, dtype=torch.long)
    done = budget <= 0
    start = int(plen.min().item())
    cache = model.new_cache() if model.supports_kv_cache else None
    logits = model(tokens[:, :start], cache=cache)[0][:, -1] if cache is not None else None
    t = start
    while t < total and not bool(done.all()):
        if cache is None:  # recompute the prefix (the perceiver)
            logits = model(tokens[:, :t])[0][:, -1]
        generating = (t >= plen) & ~done
        guess = logits.argmax(dim=-1)
        tokens[:, t] = torch.where(generating, guess, tokens[:, t])
        done |= generating & ((guess == stop_id) | (t + 1 - plen >= budget))
        if cache is not None and t + 1 < total:
            logits = model(tokens[:, t : t + 1], cache=cache)[0][:, -1]
        t += 1
    model.train(was_training)
    result = []
    for r, p in enumerate(prompts):
        gen = tokens[r, len(p) : len(p) + int(budget[r])].tolist()
        result.append(gen[: gen.index(stop_id)] if stop_id in gen else gen)
    return result
