"""kgpt.training.muon against PyTorch's own optimisers, written from the papers by others.

* The parameters Muon leaves to AdamW step exactly as ``torch.optim.AdamW`` steps them.
* The blocks' matrices step as ``torch.optim.Muon`` (``adjust_lr_fn="match_rms_adamw"``)
  steps them, up to its bf16 iterations (kgpt's run in float32).
* The orthogonalised update keeps the gradient's singular vectors and brings its singular
  values near 1.
"""

from __future__ import annotations

import pytest
import torch
from conftest import one_line_error

from kgpt.model import GPT, GPTConfig
from kgpt.training import TrainerConfig
from kgpt.training.muon import Muon, muon_groups, orthogonalised

LR, BETAS, DECAY = 3e-3, (0.9, 0.95), 0.1


def small_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, block_size=16, variant="rope", n_layer=2, n_head=2, n_embd=32))


def steps(model: GPT, optimizers, n: int = 4) -> None:
    """``n`` steps on fixed random gradients (the same for every copy), the rate changing."""
    gen = torch.Generator().manual_seed(1)
    for i in range(n):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        for o in optimizers:
            for g in o.param_groups:
                g["lr"] = LR * (1 - i / (2 * n))
            o.step()


def test_the_other_parameters_step_as_torch_adamw_steps_them():
    ours, theirs = small_model(), small_model()
    optimizer = Muon(muon_groups(ours, DECAY, "all-but-bias"), LR, BETAS)
    matrices = {id(p) for g in optimizer.param_groups if g["orthogonal"] for p in g["params"]}
    names = {id(p): n for n, p in ours.named_parameters()}
    rest = [n for n, p in ours.named_parameters() if id(p) not in matrices]
    assert "tok_emb.weight" in rest and "head.weight" in rest and "blocks.0.ln1.weight" in rest
    assert {names[i] for i in matrices} >= {"blocks.0.attn.key.weight", "blocks.1.mlp.0.weight"}
    theirs_params = dict(theirs.named_parameters())
    decayed = {n for g in optimizer.param_groups if g["weight_decay"] for n in (names[id(p)] for p in g["params"])}
    reference = torch.optim.AdamW([{"params": [theirs_params[n] for n in rest if n in decayed], "weight_decay": DECAY},
                                   {"params": [theirs_params[n] for n in rest if n not in decayed], "weight_decay": 0.0}],
                                  lr=LR, betas=BETAS, foreach=False)
    steps(ours, [optimizer])
    steps(theirs, [reference])
    ours_params = dict(ours.named_parameters())
    for n in rest:
        torch.testing.assert_close(ours_params[n], theirs_params[n], rtol=1e-6, atol=1e-7, msg=n)


def test_the_blocks_matrices_step_as_torch_muon_steps_them():
    ours, theirs = small_model(), small_model()
    optimizer = Muon(muon_groups(ours, DECAY, "matmul"), LR, BETAS)
    names = {id(p): n for n, p in ours.named_parameters()}
    matrices = [names[id(p)] for g in optimizer.param_groups if g["orthogonal"] for p in g["params"]]
    theirs_params = dict(theirs.named_parameters())
    reference = torch.optim.Muon([theirs_params[n] for n in matrices], lr=LR, weight_decay=DECAY,
                                 adjust_lr_fn="match_rms_adamw")
    before = {n: p.detach().clone() for n, p in ours.named_parameters()}
    steps(ours, [optimizer])
    steps(theirs, [reference])
    ours_params = dict(ours.named_parameters())
    for n in matrices:
        moved, moved_ref = ours_params[n] - before[n], theirs_params[n].detach() - before[n]
        # bf16 keeps 8 bits of mantissa: their update is ours to within a few percent
        assert (moved - moved_ref).norm() < 0.03 * moved_ref.norm(), n


@pytest.mark.parametrize("shape", [(24, 24), (64, 16), (16, 64)])
def test_the_update_keeps_the_singular_vectors_and_evens_the_values(shape):
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape)))
    v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape)))
    values = torch.logspace(0, 1.5, min(shape))  # singular values 1 to about 32
    g = u @ torch.diag(values) @ v.T
    o = orthogonalised(g)
    inner = u.T @ o @ v  # diagonal if o has g's singular vectors
    off = inner - torch.diag(torch.diagonal(inner))
    assert off.abs().max() < 1e-4
    assert torch.diagonal(inner).min() > 0.6 and torch.diagonal(inner).max() < 1.25


def test_an_unknown_optimizer_is_one_line():
    assert "choose one of adamw, muon" in one_line_error(TrainerConfig, max_epochs=1, batch_size=1, learning_rate=1e-3,
                                                         final_tokens=1, optimizer="sgd")
