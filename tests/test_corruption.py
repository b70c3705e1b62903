"""Span corruption: the per-sample dataset follows the spec literally, the vectorised
batcher draws the same distribution.

Every check decodes a training string back into (prefix, masked, suffix) and asserts the
spec's properties on those parts: layout, reassembly, reachable truncation lengths, the
masked length's mean and spread, and reproducibility. Then the two implementations are
compared statistically (chi-square on the exact joint distribution for a small block,
KS statistics and means on a mixed corpus for the assignment's block).
"""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgpt.data import CharCorruptionDataset, CorruptionBatcher
from kgpt.data.corruption import corrupt
from kgpt.errors import KgptError
from kgpt.vocab import CharVocab

PAD = "\u25a1"
MASK = "\u2047"
LONG_DOC = (
    "Émile Zola. Émile Zola was a French novelist, journalist and playwright born in Paris, "
    "the best-known practitioner of the literary school of naturalism and an important "
    "contributor to the development of theatrical naturalism ."
)
assert len(LONG_DOC) > 200


def parse(s: str, block_size: int) -> tuple[str, str, str]:
    """(prefix, masked, suffix) of ``prefix ⁇ suffix ⁇ masked □…□``, checking the layout."""
    assert len(s) == block_size, f"training string has {len(s)} chars, not block_size {block_size}"
    assert s.count(MASK) == 2, f"expected exactly two ⁇ in {s!r}"
    first = s.index(MASK)
    second = s.index(MASK, first + 1)
    prefix, suffix, rest = s[:first], s[first + 1 : second], s[second + 1 :]
    masked = rest.split(PAD, 1)[0]
    assert set(rest[len(masked) :]) <= {PAD}, f"non-pad characters after the masked span in {s!r}"
    assert PAD not in prefix + suffix, f"pad inside the text part of {s!r}"
    assert masked, f"empty masked span in {s!r}"
    return prefix, masked, suffix


def describe(s: str, block_size: int) -> tuple[int, int, int]:
    """(truncation length L, masked length m, masked start) of one training string."""
    prefix, masked, suffix = parse(s, block_size)
    return len(prefix) + len(masked) + len(suffix), len(masked), len(prefix)


def full_string(x: torch.Tensor, y: torch.Tensor, vocab_itos) -> str:
    """The block_size-long masked string that (x, y) were cut from."""
    assert torch.equal(x[1:], y[:-1]), "y is not x shifted by one"
    return vocab_itos[int(x[0])] + "".join(vocab_itos[int(i)] for i in y)


# -- the per-sample dataset ------------------------------------------------------------


def test_dataset_attributes(tiny_data_shared):
    text = tiny_data_shared.wiki_text
    ds = CharCorruptionDataset(text, 128)
    assert ds.PAD_CHAR == PAD and ds.MASK_CHAR == MASK
    assert ds.block_size == 128
    assert len(ds) == len(text.splitlines()) == 20
    chars = sorted(set(text))
    assert ds.vocab_size == len(chars) + 2
    assert ds.itos[0] == PAD and ds.itos[1] == MASK
    assert list(ds.itos[2:]) == chars
    assert ds.stoi[PAD] == 0 and ds.stoi[MASK] == 1
    assert all(ds.itos[ds.stoi[c]] == c for c in chars)
    assert "é" in ds.stoi


def test_dataset_item_shapes_and_shift(tiny_data_shared):
    ds = CharCorruptionDataset(tiny_data_shared.wiki_text, 128)
    random.seed(0)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.long and y.dtype == torch.long
        assert x.shape == (127,) and y.shape == (127,)
        assert torch.equal(x[1:], y[:-1])


@pytest.mark.parametrize("block_size", [16, 32, 128])
def test_dataset_layout_and_reassembly(tiny_data_shared, block_size):
    ds = CharCorruptionDataset(tiny_data_shared.wiki_text, block_size)
    docs = tiny_data_shared.wiki_text.splitlines()
    random.seed(1)
    for _ in range(10):
        for i, doc in enumerate(docs):
            s = full_string(*ds[i], ds.itos)
            prefix, masked, suffix = parse(s, block_size)
            kept = prefix + masked + suffix
            assert doc.startswith(kept), f"{kept!r} is not a truncation of document {i}"
            assert 4 <= len(kept) <= int(block_size * 7 / 8)


def test_every_truncation_length_reached():
    block_size = 128
    ds = CharCorruptionDataset(LONG_DOC + "\n", block_size)
    random.seed(2)
    lengths = Counter(describe(full_string(*ds[0], ds.itos), block_size)[0] for _ in range(3000))
    assert set(lengths) == set(range(4, int(block_size * 7 / 8) + 1))


def test_short_documents_keep_full_length():
    docs = ["ab", "abc", "wxyz", "hello"]
    block_size = 32
    ds = CharCorruptionDataset("\n".join(docs) + "\n", block_size)
    random.seed(3)
    for i, doc in enumerate(docs):
        for _ in range(50):
            prefix, masked, suffix = parse(full_string(*ds[i], ds.itos), block_size)
            if len(doc) < 4:
                assert prefix + masked + suffix == doc
            else:
                assert doc.startswith(prefix + masked + suffix)
    # "hello" has 5 chars: truncations of length 4 and 5 both occur.
    lengths = {len("".join(parse(full_string(*ds[3], ds.itos), block_size))) for _ in range(100)}
    assert lengths == {4, 5}


BUCKETS = [(12, 31), (32, 63), (64, 112)]


def check_masked_length_statistics(samples: list[tuple[int, int, int]]) -> None:
    """Mean of m/L ≈ 1/4 per L bucket (±0.03), and m falls on both sides of L/4."""
    for low, high in BUCKETS:
        rows = [(length, m) for length, m, _ in samples if low <= length <= high]
        assert len(rows) > 300, f"too few samples in bucket {low}..{high}"
        ratios = np.array([m / length for length, m in rows])
        assert abs(ratios.mean() - 0.25) < 0.03, f"mean masked fraction {ratios.mean():.3f} in L {low}..{high}"
        masked = np.array([m for _, m in rows], dtype=float)
        assert masked.std() > 0.1 * masked.mean(), f"no real spread of masked length in L {low}..{high}"
        below = sum(m < length / 4 for length, m in rows) / len(rows)
        above = sum(m > length / 4 for length, m in rows) / len(rows)
        assert below > 0.2 and above > 0.2, (below, above)


def test_masked_length_mean_and_spread():
    block_size = 128
    ds = CharCorruptionDataset(LONG_DOC + "\n", block_size)
    random.seed(4)
    samples = [describe(full_string(*ds[0], ds.itos), block_size) for _ in range(4000)]
    check_masked_length_statistics(samples)
    # the span can sit anywhere: at the very start, and ending at the very end
    assert any(s == 0 for _, _, s in samples)
    assert any(s + m == length for length, m, s in samples)


def test_dataset_randomness_and_seed():
    ds = CharCorruptionDataset(LONG_DOC + "\n", 128)
    random.seed(5)
    draws = [ds[0][0] for _ in range(20)]
    distinct = {tuple(d.tolist()) for d in draws}
    assert len(distinct) >= 15, "repeated draws of one document should differ"
    random.seed(5)
    again = [ds[0][0] for _ in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(draws, again)), "random.seed must make draws reproducible"


@settings(max_examples=200, deadline=None)
@given(
    doc=st.text(
        alphabet=st.characters(blacklist_characters="\n\u25a1\u2047", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=300,
    ),
    block_size=st.integers(min_value=9, max_value=200),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_corrupt_property(doc, block_size, seed):
    s = corrupt(doc, block_size, random.Random(seed))
    assert len(s) == block_size
    prefix, masked, suffix = parse(s, block_size)
    kept = prefix + masked + suffix
    assert doc.startswith(kept)
    if len(doc) < 4:
        assert kept == doc  # short documents keep their full length
    else:
        assert 4 <= len(kept) <= int(block_size * 7 / 8)


def test_tiny_block_size_is_rejected_or_respected():
    random.seed(0)
    try:
        ds = CharCorruptionDataset(LONG_DOC + "\n", 8)
        x, y = ds[0]
    except KgptError:
        return
    assert x.shape == (7,) and y.shape == (7,)


# -- the vectorised batcher --------------------------------------------------------------


def batcher_strings(batcher: CorruptionBatcher, vocab: CharVocab, index: torch.Tensor, generator) -> list[str]:
    x, y = batcher.sample(index, generator)
    T = batcher.block_size
    assert x.shape == (len(index), T - 1) and y.shape == (len(index), T - 1)
    assert x.dtype == torch.long and y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    full = torch.cat([x[:, :1], y], dim=1)
    return [vocab.decode(row) for row in full.tolist()]


@pytest.mark.parametrize("block_size", [16, 128])
def test_batcher_layout_and_reassembly(tiny_data_shared, block_size):
    docs = tiny_data_shared.wiki_text.splitlines() + ["ab", "abc"]
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    batcher = CorruptionBatcher(docs, vocab, block_size)
    assert len(batcher) == len(docs)
    g = torch.Generator().manual_seed(0)
    index = torch.arange(len(docs)).repeat(20)
    for i, s in zip(index.tolist(), batcher_strings(batcher, vocab, index, g)):
        prefix, masked, suffix = parse(s, block_size)
        kept = prefix + masked + suffix
        assert docs[i].startswith(kept)
        if len(docs[i]) < 4:
            assert kept == docs[i]
        else:
            assert 4 <= len(kept) <= int(block_size * 7 / 8)


def test_batcher_coverage_masked_statistics_and_seed():
    block_size = 128
    vocab = CharVocab.from_text(LONG_DOC)
    batcher = CorruptionBatcher([LONG_DOC], vocab, block_size)
    g = torch.Generator().manual_seed(6)
    index = torch.zeros(4000, dtype=torch.long)
    samples = [describe(s, block_size) for s in batcher_strings(batcher, vocab, index, g)]
    assert {length for length, _, _ in samples} == set(range(4, int(block_size * 7 / 8) + 1))
    check_masked_length_statistics(samples)
    assert any(s == 0 for _, _, s in samples)
    assert any(s + m == length for length, m, s in samples)

    a = batcher.sample(index[:50], torch.Generator().manual_seed(7))[0]
    b = batcher.sample(index[:50], torch.Generator().manual_seed(7))[0]
    c = batcher.sample(index[:50], torch.Generator().manual_seed(8))[0]
    assert torch.equal(a, b), "a seeded generator must make batches reproducible"
    assert not torch.equal(a, c)
    assert len({tuple(r) for r in a.tolist()}) >= 40, "rows of one batch should differ"


# -- agreement between the two -------------------------------------------------------------


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper quantile of chi-square (Wilson–Hilferty); z = 3.09 is the 0.999 quantile."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def test_joint_distribution_agrees_chi_square():
    """Exact joint law of (L, m, start) for a small block: a two-sample homogeneity test.

    Any off-by-one in either implementation (a length never reached, a span that can or
    cannot end at the document end) creates cells the other never fills, and fails.
    """
    block_size, n = 16, 30000
    doc = LONG_DOC[:40]
    random.seed(9)
    per_sample = Counter(describe(corrupt(doc, block_size), block_size) for _ in range(n))
    vocab = CharVocab.from_text(doc)
    batcher = CorruptionBatcher([doc], vocab, block_size)
    g = torch.Generator().manual_seed(9)
    vectorised = Counter(
        describe(s, block_size) for s in batcher_strings(batcher, vocab, torch.zeros(n, dtype=torch.long), g)
    )
    cells = sorted(set(per_sample) | set(vectorised))
    stat = 0.0
    for cell in cells:
        o1, o2 = per_sample[cell], vectorised[cell]
        expected = (o1 + o2) / 2  # equal sample sizes
        stat += (o1 - expected) ** 2 / expected + (o2 - expected) ** 2 / expected
    df = len(cells) - 1
    assert set(per_sample) == set(vectorised), sorted(set(per_sample) ^ set(vectorised))
    assert stat < chi2_critical(df), f"chi-square {stat:.1f} over {df} degrees of freedom"


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    values = np.union1d(a, b)
    fa = np.searchsorted(np.sort(a), values, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), values, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def test_marginals_agree_on_mixed_corpus(tiny_data_shared):
    """Truncation length, masked length and masked start over a corpus of mixed lengths."""
    block_size, n = 128, 4000
    docs = tiny_data_shared.wiki_text.splitlines() + [LONG_DOC, "abc", "short doc"]
    text = "\n".join(docs) + "\n"
    ds = CharCorruptionDataset(text, block_size)
    rng = np.random.default_rng(10)
    index = torch.from_numpy(rng.integers(0, len(docs), size=n))
    random.seed(10)
    a = np.array([describe(full_string(*ds[i], ds.itos), block_size) for i in index.tolist()], dtype=float)
    batcher = CorruptionBatcher(docs, ds.vocab, block_size)
    g = torch.Generator().manual_seed(10)
    b = np.array([describe(s, block_size) for s in batcher_strings(batcher, ds.vocab, index, g)], dtype=float)
    critical = 1.95 * math.sqrt(2.0 / n)  # two-sample KS at alpha = 0.001
    names = ("truncation length", "masked length", "masked start")
    for col, name in enumerate(names):
        d = ks_statistic(a[:, col], b[:, col])
        assert d < critical, f"{name}: KS statistic {d:.4f} >= {critical:.4f}"
        se = math.sqrt(a[:, col].var() / n + b[:, col].var() / n)
        assert abs(a[:, col].mean() - b[:, col].mean()) < 4 * se + 1e-9, name
        for q in (0.1, 0.5, 0.9):
            qa, qb = np.quantile(a[:, col], q), np.quantile(b[:, col], q)
            assert abs(qa - qb) <= max(2.0, 0.1 * qa), f"{name} quantile {q}: {qa} vs {qb}"
    # where the span starts, relative to the room it has
    ra = a[:, 2] / (a[:, 0] - a[:, 1] + 1)
    rb = b[:, 2] / (b[:, 0] - b[:, 1] + 1)
    assert ks_statistic(ra, rb) < critical
