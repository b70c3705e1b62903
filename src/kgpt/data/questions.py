"""Finetuning examples: ``question ⁇ place ⁇`` with the loss only on the answer part."""

from __future__ import annotations

import torch

from kgpt.data.corpus import Question, lf_endings, parse_questions
from kgpt.errors import KgptError
from kgpt.vocab import MASK_CHAR, PAD_CHAR, PAD_ID, CharVocab


def encode_questions(
    questions: list[Question], vocab: CharVocab, block_size: int, where: str = "questions"
) -> tuple[torch.Tensor, torch.Tensor]:
    """All finetuning pairs as two (N, block_size-1) tensors, encoded once.

    x = question ⁇ place ⁇ □…□ minus its last character; y = the same shifted by one,
    with every position before the first ⁇ set to PAD so only the answer is learned.
    """
    xs = torch.full((len(questions), block_size), PAD_ID, dtype=torch.long)
    ys = torch.full((len(questions), block_size - 1), PAD_ID, dtype=torch.long)
    for i, q in enumerate(questions):
        if q.answer is None:
            raise KgptError(f"{where}, line {q.line}: no tab and place; a finetuning line must be QUESTION<TAB>PLACE")
        text = q.text + MASK_CHAR + q.answer + MASK_CHAR
        if len(text) > block_size:
            raise KgptError(
                f"{where}, line {q.line}: question and place are {len(text)} characters with the two ⁇, "
                f"longer than the block size {block_size}; shorten the line"
            )
        ids = torch.tensor(vocab.encode(text, where=f"{where}, line {q.line}"), dtype=torch.long)
        xs[i, : len(ids)] = ids
        first_mask = len(q.text) - 1  # position whose target is the first ⁇
        ys[i, first_mask : len(ids) - 1] = ids[first_mask + 1 :]
    return xs[:, :-1].contiguous(), ys


class NameDataset(torch.utils.data.Dataset):
    """The assignment's finetuning dataset over ``QUESTION<TAB>PLACE`` lines.

    Shares the pretraining dataset's vocabulary. Unlike the original it keeps non-ASCII
    characters the vocabulary knows; an unknown character is an error naming its line.
    """

    PAD_CHAR = PAD_CHAR
    MASK_CHAR = MASK_CHAR

    def __init__(self, pretraining_dataset, data: str, where: str = "finetuning data"):
        self.vocab: CharVocab = pretraining_dataset.vocab
        self.stoi = self.vocab.stoi
        self.itos = self.vocab.itos
        self.vocab_size = len(self.vocab)
        self.block_size = pretraining_dataset.block_size
        self.questions = parse_questions(lf_endings(data), where=where)
        self.data = [f"{q.text}\t{q.answer}" for q in self.questions]
        self.x, self.y = encode_questions(self.questions, self.vocab, self.block_size, where)

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]


class QuestionBatcher:
    """Finetuning batches from pre-encoded pairs held on the training device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device | str = "cpu"):
        self.x, self.y = x.to(device), y.to(device)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def width(self) -> int:
        return self.x.shape[1]

    def sample(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]
