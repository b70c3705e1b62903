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

    plain, plain_history = train(0)  # the whole batch, uncut
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
    assert buckets(8) == 1  # one bucket: the batch with its trailing PAD cut
    assert buckets(cuda_graphs=True) == 0  # static shapes: the batch as it came
    assert buckets(compile=True) == 0
    assert buckets(length_buckets=3) == 3


def test_grouped_by_length_is_a_shuffle_of_batches_of_one_length():
    """Within one window, every full batch is a run of neighbours in length order, each
    example comes once, and the short last batch stays last (the trainer cuts batches by
    position)."""
    from kgpt.training.trainer import GROUP_BATCHES, grouped_by_length

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 200, (4 * 10 + 3,), generator=g)
    order = torch.randperm(len(lengths), generator=g)
    grouped = grouped_by_length(order, lengths, 4, torch.Generator().manual_seed(1))
    assert sorted(grouped.tolist()) == list(range(len(lengths)))
    assert 4 * 11 < 4 * GROUP_BATCHES  # one window: all of it is sorted together
    ranked = sorted(lengths.tolist())
    batches = [lengths[grouped[i : i + 4]].tolist() for i in range(0, 40, 4)]
    starts = sorted(ranked.index(min(b)) for b in batches)
    assert starts == list(range(0, 40, 4)) and all(sorted(b) == ranked[s : s + 4] for b, s in zip(sorted(batches), starts))
    assert sorted(lengths[grouped[40:]].tolist()) == ranked[40:]  # the longest three: the short batch, last
    assert batches != sorted(batches)  # the batches themselves come shuffled


def test_recall_recipe_batches_bios_of_one_length(tiny_data_shared):
    """The recall recipe's pretraining stream knows its examples' lengths and, asked to,
    groups them; a stream with questions in it does not claim to."""
    from dataclasses import replace

    from kgpt.data.knowledge import KnowledgeBatcher, QuestionMix
    from kgpt.data.corpus import parse_questions
    from kgpt.training.recipe import RECALL

    docs = [d[: 30 + 7 * (i * 7 % 20)] for i, d in enumerate(tiny_data_shared.wiki_text.splitlines())]  # varied lengths
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    batcher = KnowledgeBatcher(docs, [], vocab, 64, replace(RECALL.mix, bio_chars=60))
    assert batcher.lengths.tolist() == [min(len(d), 60) for d in docs] and len(set(batcher.lengths.tolist())) > 3
    questions = parse_questions("".join(f"{q}\t{a}\n" for q, a in tiny_data_shared.train_pairs))
    assert KnowledgeBatcher(docs, questions, vocab, 64, QuestionMix(qa_repeats=1)).lengths is None
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))
    cfg = TrainerConfig(max_epochs=1, batch_size=4, learning_rate=1e-3, final_tokens=1,
                        recipe=replace(RECALL, group_lengths=True), progress=False)
    order = Trainer(model, batcher, cfg, vocab, torch.device("cpu"))._epoch_order()
    spans = [batcher.lengths[order[i : i + 4]] for i in range(0, 16, 4)]
    assert sum(int(s.max() - s.min()) for s in spans) < sum(int(batcher.lengths.max() - batcher.lengths.min()) for _ in spans)
