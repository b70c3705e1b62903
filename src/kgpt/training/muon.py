"""Muon for the weight matrices of the transformer blocks, AdamW for every other parameter.

Muon (Jordan et al., 2024) keeps a momentum of each matrix's gradient, as SGD does, and
steps along that momentum *orthogonalised*: the matrix with the same singular vectors and
its singular values pushed toward 1 (a few Newton-Schulz iterations), so that directions
the gradient barely touches move as far as the dominant ones. A recaller's job is to store
thousands of bios in a small model, each a weak direction of its own: on the real bios
it stored more in 40 passes (2,924 of 2,937 recalled whole) than AdamW in 60 (2,789;
docs/RESULTS.md, "Muon stores the bios in 40 passes"). Embeddings, the head, norms and biases are no matrices of a linear map between
hidden states, and take AdamW's steps (as Muon's authors do).

The step is ``torch.optim.Muon``'s with ``adjust_lr_fn="match_rms_adamw"`` (the update
scaled to the RMS of an AdamW step, so one learning rate serves both kinds of parameter),
except that the iterations run in float32: PyTorch's run in bf16, which a CPU without
bf16 instructions emulates, slower than the whole training step they follow (1.3 s an
optimiser step of the laptop recaller on one Zen 1 thread, against 0.09 s in float32).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.adamw import adamw

from kgpt.training.recipe import decay_groups

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # the quintic iteration of Muon's authors (and PyTorch's)
NS_STEPS = 5
MOMENTUM = 0.95


def orthogonalised(g: torch.Tensor, steps: int = NS_STEPS, eps: float = 1e-7) -> torch.Tensor:
    """``g`` with the same singular vectors and its singular values brought near 1 (those
    within a factor of 30 of the largest end between 0.6 and 1.25), by Newton-Schulz
    iterations on the float32 matrix."""
    a, b, c = NS_COEFFICIENTS
    x = g.float()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T  # iterate on the smaller Gram matrix
    x = x / x.norm().clamp(min=eps)  # every singular value at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(g.dtype)


def is_hidden_matrix(name: str, p: nn.Parameter) -> bool:
    """A matrix of a transformer block (attention and MLP weights): Muon's parameters."""
    return name.startswith("blocks.") and p.ndim == 2


class Muon(torch.optim.Optimizer):
    """Muon on the parameter groups marked ``orthogonal``, AdamW on the others.

    Every group has its own ``lr`` and ``weight_decay`` (decoupled, as AdamW's), so a
    schedule sets the learning rate of all of them as of one optimiser. Where processes
    share the steps (:mod:`kgpt.training.parallel` sets :attr:`shard`), each
    orthogonalises its share of the matrices and one all-reduce gives every process all
    of them: the same step, as the iterations are most of the optimiser's work.
    """

    shard = None  # a kgpt.training.steps.Shard where processes share the steps

    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95),
                 momentum: float = MOMENTUM, eps: float = 1e-8):
        super().__init__(groups, {"lr": lr, "betas": betas, "momentum": momentum, "eps": eps, "weight_decay": 0.0,
                                  "orthogonal": False})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        matrices = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["orthogonal"]:
                matrices += [(p, group) for p in params]
            elif params:
                self._adamw(params, group)
        self._muon(matrices)
        return loss

    def _muon(self, matrices: list[tuple[torch.Tensor, dict]]) -> None:
        updates = []
        for i, (p, group) in enumerate(matrices):
            state = self.state[p]
            if not state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf, mu = state["momentum_buffer"], group["momentum"]
            buf.lerp_(p.grad, 1 - mu)
            mine = self.shard is None or self.shard.mine(i)
            updates.append(orthogonalised(p.grad.lerp(buf, mu)) if mine else torch.zeros_like(p))  # Nesterov's look-ahead
        if self.shard is not None and updates:
            updates = self.shard.sum(updates)  # each update is one process's, the others' zeros: exact
        for (p, group), update in zip(matrices, updates):
            p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(update, alpha=-group["lr"] * 0.2 * math.sqrt(max(p.shape)))  # an AdamW step's RMS

    def _adamw(self, params: list[torch.Tensor], group: dict) -> None:
        """PyTorch's own AdamW step (its functional form), on this optimiser's state."""
        for p in params:
            if not self.state[p]:  # AdamW's state, by its names
                self.state[p].update(step=torch.zeros(()), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        states = [self.state[p] for p in params]
        beta1, beta2 = group["betas"]
        adamw(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
              [s["step"] for s in states], amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
              weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)


def muon_groups(model: nn.Module, weight_decay: float, rule) -> list[dict]:
    """The recipe's decay groups (:func:`kgpt.training.recipe.decay_groups`), each split into
    the blocks' matrices (orthogonalised) and the rest."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for group in decay_groups(model, weight_decay, rule):
        for orthogonal in (True, False):
            params = [p for p in group["params"] if is_hidden_matrix(names[id(p)], p) == orthogonal]
            if params:
                groups.append({**group, "params": params, "orthogonal": orthogonal})
    return groups
