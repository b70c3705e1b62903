"""Batched greedy decoding with a KV cache must give exactly what the naive loop gives.

The reference below is the assignment's way: one prompt at a time, 32 times take the
argmax of the last position of a full forward pass over everything so far, append it,
then cut at the first ⁇ after the prompt. The models are trained a few dozen steps on
the tiny question data so that they emit ⁇ (and stop early) on some prompts.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from kgpt.data.corpus import parse_questions
from kgpt.data.questions import encode_questions
from kgpt.inference import beam_decode, greedy_decode
from kgpt.model import GPT, VARIANTS, GPTConfig
from kgpt.training import decay_groups
from kgpt.vocab import MASK_CHAR, MASK_ID, CharVocab

BLOCK = 64
STEPS = 32


@pytest.fixture(scope="module")
def setup(tiny_data_shared):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    pairs = tiny_data_shared.train_pairs + tiny_data_shared.dev_pairs
    questions = parse_questions("".join(f"{q}\t{a}\n" for q, a in pairs))
    x, y = encode_questions(questions, vocab, BLOCK)
    prompts = [vocab.encode(q + MASK_CHAR) for q, _ in pairs]
    # prompts of other lengths in the same batch
    prompts += [vocab.encode("Where?" + MASK_CHAR), vocab.encode("Why Lyon? Amélie Durand" + MASK_CHAR),
                vocab.encode("a")]
    assert len({len(p) for p in prompts}) >= 6
    return vocab, x, y, prompts


@pytest.fixture(scope="module")
def trained(setup):
    """One tiny model per variant, trained 40 AdamW steps on question ⁇ place ⁇."""
    vocab, x, y, _ = setup
    models = {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        config = GPTConfig(vocab_size=len(vocab), block_size=BLOCK, n_layer=3, n_head=2, n_embd=32,
                           variant=variant, bottleneck_dim=16)
        model = GPT(config)
        opt = torch.optim.AdamW(decay_groups(model, 0.1, "matmul"), lr=1e-2, betas=(0.9, 0.95))
        model.train()
        for _ in range(40):
            loss = model(x, y)[1]
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        models[variant] = model
    return models


@torch.no_grad()
def naive_decode(model: GPT, prompt: list[int]) -> list[int]:
    x = torch.tensor([prompt], dtype=torch.long)
    for _ in range(STEPS):
        logits = model(x)[0][:, -1]
        x = torch.cat([x, logits.argmax(dim=-1, keepdim=True)], dim=1)
    gen = x[0, len(prompt) :].tolist()
    return gen[: gen.index(MASK_ID)] if MASK_ID in gen else gen


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_decode_matches_naive_loop(trained, setup, variant):
    vocab, _, _, prompts = setup
    model = trained[variant]
    assert all(len(p) + STEPS <= model.max_length for p in prompts)
    expected = [naive_decode(model, p) for p in prompts]
    model.train()  # greedy_decode must decode in eval mode and restore the mode after
    got = greedy_decode(model, prompts, max_new_tokens=STEPS)
    assert model.training
    model.eval()
    assert got == expected, "\n".join(
        f"{vocab.decode(p)!r}: {vocab.decode(g)!r} vs {vocab.decode(e)!r}"
        for p, g, e in zip(prompts, got, expected) if g != e
    )
    # the stop logic is exercised: some rows stop at ⁇ well before the 32-token budget
    assert any(len(g) < STEPS for g in got), f"{variant}: no row stopped early"
    assert all(MASK_ID not in g for g in got)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_size_does_not_change_predictions(trained, setup, variant):
    _, _, _, prompts = setup
    model = trained[variant]
    whole = greedy_decode(model, prompts, max_new_tokens=STEPS)
    assert greedy_decode(model, prompts, max_new_tokens=STEPS, batch_size=3) == whole
    assert greedy_decode(model, prompts, max_new_tokens=STEPS, batch_size=1) == whole


def test_budget_is_capped_by_model_length(setup):
    """A prompt close to the block is decoded only up to the model's longest input."""
    vocab, _, _, _ = setup
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()
    prompt = vocab.encode("Where was Léa")  # 13 chars: room for 3 more positions
    out = greedy_decode(model, [prompt], max_new_tokens=STEPS, stop_id=-1)[0]
    assert len(out) == 16 - len(prompt)
    with torch.no_grad():
        x = torch.tensor([prompt])
        for _ in range(len(out)):
            x = torch.cat([x, model(x)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out == x[0, len(prompt) :].tolist()


def _text_log_prob(model: GPT, prompt: list[int], continuation: tuple[int, ...]) -> float:
    """log p(continuation | prompt) by full forward passes, one character at a time."""
    total, x = 0.0, torch.tensor([prompt])
    with torch.no_grad():
        for c in continuation:
            total += torch.log_softmax(model(x)[0][0, -1].double(), dim=-1)[c].item()
            x = torch.cat([x, torch.tensor([[c]])], dim=1)
    return total


def test_a_beam_as_wide_as_the_vocabulary_finds_the_most_probable_two_characters():
    """With as many beams as characters, a two-step beam search keeps every first
    character and so finds the exact argmax over all pairs, checked here by enumeration."""
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=9, block_size=16, n_layer=2, n_head=2, n_embd=16, variant="rope")).eval()
    prompts = [[3, 4], [5], [2, 2, 6, 7]]  # of three lengths, in one batch
    got = beam_decode(model, prompts, max_new_tokens=2, beams=9, stop_id=-1)
    pairs = list(itertools.product(range(9), repeat=2))
    for prompt, out in zip(prompts, got):
        best = max(pairs, key=lambda c: _text_log_prob(model, prompt, c))
        assert tuple(out) == best
    # and the greedy pair is never more probable than what the beam found
    for prompt, out, greedy in zip(prompts, got, greedy_decode(model, prompts, 2, stop_id=-1)):
        assert _text_log_prob(model, prompt, tuple(out)) >= _text_log_prob(model, prompt, tuple(greedy)) - 1e-9


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "perceiver"])
def test_one_beam_is_greedy_and_batching_does_not_change_the_beam(trained, setup, variant):
    _, _, _, prompts = setup
    model = trained[variant]
    assert beam_decode(model, prompts, STEPS, beams=1) == greedy_decode(model, prompts, STEPS)  # both stop at ⁇
    whole = beam_decode(model, prompts, STEPS, beams=3)
    assert beam_decode(model, prompts, STEPS, beams=3, batch_size=3) == whole  # one prompt a batch
    model.train()
    assert beam_decode(model, prompts[:2], STEPS, beams=3) == whole[:2]
    assert model.training  # decoded in eval mode, the mode restored after
    model.eval()
    assert any(len(out) < STEPS for out in whole) and all(MASK_ID not in out for out in whole)


def test_the_perceiver_and_a_beam_of_none_are_refused(trained):
    with pytest.raises(ValueError, match="KV cache"):
        beam_decode(trained["perceiver"], [[1, 2]], 4, beams=2)
    with pytest.raises(ValueError, match="at least 1"):
        beam_decode(trained["vanilla"], [[1, 2]], 4, beams=0)
