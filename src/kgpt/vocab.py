"""The character vocabulary shared by pretraining, finetuning and evaluation.

Layout (the assignment's, so imported state dicts line up): id 0 is PAD (□, U+25A1),
id 1 is MASK (⁇, U+2047), then every distinct character of the pretraining corpus in
sorted order. The newline is part of the corpus text, so it is part of the vocabulary,
exactly as in the original code; that keeps ``vocab_size`` identical for old checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from kgpt.errors import KgptError

PAD_CHAR = "\u25a1"
MASK_CHAR = "\u2047"
PAD_ID = 0
MASK_ID = 1


class CharVocab:
    """A bijection between characters and ids with PAD and MASK first."""

    def __init__(self, chars: Iterable[str]):
        chars = sorted(set(chars))
        for special in (PAD_CHAR, MASK_CHAR):
            if special in chars:
                raise KgptError(
                    f"the corpus contains the reserved character {special!r} "
                    f"(U+{ord(special):04X}); remove it from the text"
                )
        self.itos: list[str] = [PAD_CHAR, MASK_CHAR, *chars]
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(set(text))

    @classmethod
    def from_itos(cls, itos: Sequence[str]) -> CharVocab:
        """Rebuild a vocabulary saved in a checkpoint, checking its layout."""
        if len(itos) < 2 or itos[0] != PAD_CHAR or itos[1] != MASK_CHAR:
            raise KgptError("saved vocabulary does not start with PAD and MASK; the checkpoint is not kgpt's")
        return cls(itos[2:])

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.itos == other.itos

    def encode(self, text: str, where: str = "input") -> list[int]:
        """Ids for ``text``; an unknown character is a user error that says where it is."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            bad = next(c for c in text if c not in self.stoi)
            raise KgptError(
                f"{where}: character {bad!r} (U+{ord(bad):04X}) is not in the vocabulary of the "
                "pretraining corpus; remove it or pretrain on a corpus that contains it"
            ) from None

    def encode_tensor(self, text: str, where: str = "input") -> torch.Tensor:
        return torch.tensor(self.encode(text, where), dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)
