"""The Trainer's length buckets: cutting trailing PAD must not change the gradient."""

from __future__ import annotations

import pytest
import torch

from kgpt.data import CorruptionBatcher
from kgpt.model import GPT, VARIANTS, GPTConfig
from kgpt.training import Trainer, TrainerConfig, length_buckets
from kgpt.vocab import PAD_ID, CharVocab


def corrupted_batch(text: str, vocab: CharVocab, block: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    batcher = CorruptionBatcher(text.splitlines(), vocab, block)
    g = torch.Generator().manual_seed(seed)
    return batcher.sample(torch.arange(len(batcher)), g)


def gradients(model: GPT) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_buckets_cover_every_target_once_and_drop_only_pad(tiny_data_shared):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    x, y = corrupted_batch(tiny_data_shared.wiki_text, vocab, 64)
    y[0] = PAD_ID  # a row with no target at all
    parts = list(length_buckets(x, y, 4))
    assert sum(w.item() for _, _, w in parts) == pytest.approx(1.0)
    assert sum((ys != PAD_ID).sum().item() for _, ys, _ in parts) == (y != PAD_ID).sum().item()
    assert sum(xs.shape[0] for xs, _, _ in parts) <= x.shape[0]
    assert sum(xs.numel() for xs, _, _ in parts) < 0.8 * x.numel()  # trailing PAD was cut
    for xs, ys, _ in parts:
        assert (ys[:, -1] != PAD_ID).any()  # no bucket keeps a column of pure PAD at its end
        assert xs.shape == ys.shape


@pytest.mark.parametrize("variant", VARIANTS)
def test_bucketed_gradient_equals_whole_batch_gradient(variant, tiny_data_shared):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    x, y = corrupted_batch(tiny_data_shared.wiki_text, vocab, 64)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=2, n_head=2, n_embd=32, variant=variant,
                       bottleneck_dim=16, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    model = GPT(config).double()
    _, whole = model(x, y)
    whole.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    total = 0.0
    for xs, ys, weight in length_buckets(x, y, 5):
        _, part = model(xs, ys)
        (part * weight).backward()
        total += (part * weight).item()
    assert total == pytest.approx(whole.item(), rel=1e-6)
    got = gradients(model)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-7, msg=name)


def test_trainer_with_and_without_buckets_takes_the_same_steps(tiny_data_shared):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    batcher = CorruptionBatcher(tiny_data_shared.wiki_text.splitlines(), vocab, 64)

    def train(buckets: int) -> tuple[GPT, list[dict]]:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=2, n_head=2, n_embd=32,
                              embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)).double()
        cfg = TrainerConfig(max_epochs=3, batch_size=8, learning_rate=3e-3, final_tokens=10**6, warmup_tokens=1,
                            log_every=1, progress=False, length_buckets=buckets)
        trainer = Trainer(model, batcher, cfg, vocab, torch.device("cpu"))
        assert trainer.runner.buckets == buckets
        return model, trainer.train().history

    plain, plain_history = train(1)
    bucketed, bucketed_history = train(3)
    assert [h["loss"] for h in bucketed_history] == pytest.approx([h["loss"] for h in plain_history], rel=1e-6)  # logged in float32
    # Adam divides by sqrt(v): where a gradient is nearly zero, a summation-order rounding
    # difference (the buckets' kernels see other shapes) moves a weight by up to ~1e-5 (seen: 6e-6 on a rare character's embedding).
    for (name, p), q in zip(plain.named_parameters(), bucketed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=2e-5, msg=name)


def test_buckets_default_on_cpu_and_off_for_static_shapes():
    model = GPT(GPTConfig(vocab_size=10, block_size=16, n_layer=1, n_head=1, n_embd=8))
    vocab = CharVocab.from_text("abcdefgh")

    def buckets(batch_size: int = 128, **kw) -> int:
        cfg = TrainerConfig(max_epochs=1, batch_size=batch_size, learning_rate=1e-3, final_tokens=1, progress=False, **kw)
        return Trainer(model, [], cfg, vocab, torch.device("cpu")).runner.buckets

    assert buckets() == 8
    assert buckets(512) == 8
    assert buckets(32) == 2
    assert buckets(8) == 1
    assert buckets(cuda_graphs=True) == 1
    assert buckets(length_buckets=3) == 3
