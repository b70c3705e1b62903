"""Span corruption, the pretraining objective, in two equivalent forms.

Per document (the assignment's spec, followed literally):

1. truncate to a random length L: the cut is uniform on 4 .. int(block_size * 7/8), so
   every length in that range is reachable; shorter documents keep their full length;
2. choose a masked span of length m, uniform on 1 .. 2k-1 with k = round(L/4): its mean
   is about L/4 and it spreads on both sides; the span starts uniformly where it fits;
3. masked_string = prefix ⁇ suffix ⁇ masked, padded with □ to exactly block_size;
4. x = masked_string[:-1], y = masked_string[1:].

:class:`CharCorruptionDataset` draws with Python's ``random`` one document at a time, as
the assignment's autograder expects. :class:`CorruptionBatcher` draws the same
distribution for a whole batch at once with tensor operations on the training device,
which is what training uses (tests check that the two agree statistically).
"""

from __future__ import annotations

import random

import torch

from kgpt.data.corpus import corpus_documents, lf_endings
from kgpt.errors import KgptError
from kgpt.vocab import MASK_CHAR, MASK_ID, PAD_CHAR, PAD_ID, CharVocab

MIN_TRUNCATION = 4
MIN_BLOCK_SIZE = 9  # the longest kept prefix plus two ⁇ must fit: int(b*7/8) + 2 <= b


def check_block_size(block_size: int) -> None:
    if block_size < MIN_BLOCK_SIZE:
        raise KgptError(f"block size {block_size} is too small for span corruption; use at least {MIN_BLOCK_SIZE}")


def max_truncation(block_size: int) -> int:
    """Longest kept prefix of a document: leaves room for the two ⁇ and a pad."""
    return int(block_size * 7 / 8)


def masked_length_center(length: int) -> int:
    """k = round(L/4), at least 1; the masked length is uniform on 1 .. 2k-1 (mean k)."""
    return max(1, (length + 2) // 4)


def corrupt(document: str, block_size: int, rng: random.Random | None = None) -> str:
    """One span-corrupted training string of exactly ``block_size`` characters."""
    rng = rng or random._inst  # the module-level generator, so random.seed() governs it
    cut = rng.randint(MIN_TRUNCATION, max_truncation(block_size))
    doc = document[:cut]
    length = len(doc)
    k = masked_length_center(length)
    masked_len = rng.randint(1, 2 * k - 1)
    start = rng.randint(0, length - masked_len)
    prefix, masked, suffix = doc[:start], doc[start : start + masked_len], doc[start + masked_len :]
    masked_string = prefix + MASK_CHAR + suffix + MASK_CHAR + masked
    return masked_string + PAD_CHAR * (block_size - len(masked_string))


class CharCorruptionDataset(torch.utils.data.Dataset):
    """The assignment's pretraining dataset: ``ds[i]`` is a fresh corruption of line i.

    Attributes follow the original (``stoi``, ``itos``, ``vocab_size``, ``block_size``,
    ``PAD_CHAR``, ``MASK_CHAR``); ``itos`` is a list, which indexes like the original dict.
    """

    PAD_CHAR = PAD_CHAR
    MASK_CHAR = MASK_CHAR

    def __init__(self, data: str, block_size: int):
        check_block_size(block_size)
        data = lf_endings(data)
        self.vocab = CharVocab.from_text(data)
        self.stoi = self.vocab.stoi
        self.itos = self.vocab.itos
        self.vocab_size = len(self.vocab)
        self.block_size = block_size
        self.data = corpus_documents(data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.vocab.encode_tensor(corrupt(self.data[idx], self.block_size))
        return ids[:-1], ids[1:]


class CorruptionBatcher:
    """Span corruption for a whole batch at once, on the device that trains.

    The corpus is encoded once into a (documents × max_truncation) tensor; each call
    draws the three random numbers per row with the same formulas as :func:`corrupt`
    and assembles the rows with one gather, so no Python runs per sample.
    """

    def __init__(self, documents: list[str], vocab: CharVocab, block_size: int, device: torch.device | str = "cpu"):
        check_block_size(block_size)
        self.block_size = block_size
        self.width = block_size - 1  # columns of x and y
        cap = max_truncation(block_size)
        rows = torch.full((len(documents), cap + 1), PAD_ID, dtype=torch.long)
        lengths = torch.empty(len(documents), dtype=torch.long)
        for i, doc in enumerate(documents):
            ids = vocab.encode(doc[:cap], where=f"pretraining document {i + 1}")
            rows[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            lengths[i] = len(ids)
        # Column `cap` is always PAD; the gather below points every padding slot there.
        self.rows = rows.to(device)
        self.lengths = lengths.to(device)
        self.positions = torch.arange(block_size, device=device)

    def __len__(self) -> int:
        return self.rows.shape[0]

    def sample(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt documents ``index`` (1-D, on the batcher's device) → (x, y)."""
        dev = self.rows.device
        n = self.lengths[index]
        b = n.shape[0]
        cap = self.rows.shape[1] - 1

        def uniform_int(low: torch.Tensor | int, high: torch.Tensor | int) -> torch.Tensor:
            """Uniform on low..high inclusive, elementwise."""
            u = torch.rand(b, device=dev, generator=generator)
            return low + (u * (high - low + 1)).long().clamp_max(high - low)

        length = torch.minimum(n, uniform_int(MIN_TRUNCATION, cap))
        k = ((length + 2) // 4).clamp_min(1)
        m = uniform_int(1, 2 * k - 1)
        s = uniform_int(0, length - m)

        j = self.positions.unsqueeze(0)  # (1, T)
        s, m, length = s.unsqueeze(1), m.unsqueeze(1), length.unsqueeze(1)
        suffix_end = length - m + 1  # output index of the second ⁇
        # Where each output position reads from in the document; `cap` reads PAD.
        src = torch.where(j < s, j, cap)
        src = torch.where((j > s) & (j < suffix_end), j - 1 + m, src)
        src = torch.where((j > suffix_end) & (j < length + 2), s + j - suffix_end - 1, src)
        out = self.rows[index].gather(1, src)
        out = torch.where((j == s) | (j == suffix_end), MASK_ID, out)
        return out[:, :-1], out[:, 1:]
