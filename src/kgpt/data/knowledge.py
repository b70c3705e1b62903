"""The knowledge recipe's pretraining stream: every bio, plus questions with their answers.

Allen-Zhu & Li ("Physics of Language Models, Part 3.1", 2023) find that a model
pretrained on one bio per person stores the facts but can rarely be finetuned to get them
out, and that mixing question-answer pairs about some people into pretraining ("mixed
training") and varying how the bios are written both help. One epoch of this stream is:

* every bio once, as next-character prediction on ``NAME. `` and the text after it,
  optionally cut to ``bio_chars`` characters; a bio longer than that shows, with
  ``windows``, its start half the time and otherwise a random window of its rest, always
  after the full name;
* with ``name_windows``, that many short windows per bio, each ``NAME. `` followed by the
  bio from a random word on, so every part of a bio also comes right after the name;
* every question ``qa_repeats`` times, as a finetuning pair (``question ⁇ place ⁇``, loss
  on the answer only).

Nothing in it ever looks for the place in a bio: the augmentations are label-free.
``bio_objective="span"`` span-corrupts the bios as the assignment does instead. Which
options the recipe uses, and why, is in docs/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from kgpt.data.corpus import Question, name_prefix_length
from kgpt.data.corruption import CorruptionBatcher
from kgpt.data.questions import encode_questions
from kgpt.vocab import MASK_ID, PAD_ID, CharVocab

# Where a bio ends (QuestionMix.end_mark): ⁇, which no bio contains and a bios-only
# stream never otherwise shows.
END_OF_BIO = MASK_ID


@dataclass(frozen=True)
class QuestionMix:
    """What pretraining shows besides plain bios."""

    qa_repeats: int = 1  # each question this many times per epoch
    windows: bool = True  # long bios also as windows past the block, after the name
    bio_objective: Literal["lm", "span"] = "lm"  # next-character prediction, or span corruption
    name_windows: int = 0  # per bio and epoch: this many short windows, each right after the name
    name_window_chars: int = 40  # their length in characters, starting at a random word
    bio_chars: int | None = None  # a bio example's length (name included); None: the block
    name_loss: bool = True  # also learn to spell the name itself, else only what follows it
    # The bio's opening "NAME. " rewritten with the name, e.g. "Where was {name} born? ":
    # the model then reads each bio from the very position a question asks from.
    bio_prompt: str | None = None
    # A bio that fits in ``bio_chars`` is followed by END_OF_BIO, so the model learns where
    # each bio ends and a recall can stop there instead of writing on past the bio.
    end_mark: bool = False
    # The share of a bio's input characters after its name replaced, afresh each epoch, by
    # a character drawn from elsewhere in the same text; the targets stay the true text. A
    # recall that slips (a date it did not store) reads its own wrong characters next: this
    # trains the model to go on with the stored bio all the same. Off in every recipe: on
    # four recaller seeds, noise on the digits cost validation accuracy (docs/RESULTS.md).
    input_noise: float = 0.0
    # Noise only these characters, each replaced by one of them drawn uniformly ("0123456789":
    # the digits, where a date the model did not store slips); None: any character.
    input_noise_chars: str | None = None


def opening(document: str, prompt: str | None) -> tuple[str, int]:
    """The bio as trained on, and the length of its opening: ``NAME. `` as written, or
    replaced by ``prompt`` filled with the name."""
    p = name_prefix_length(document)
    if not p or prompt is None:
        return document, p
    head = prompt.format(name=document[: p - 2])
    return head + document[p:], len(head)


class KnowledgeBatcher:
    """Batches of the mixed stream; index < number of bios is a bio, the rest questions.

    Bios are encoded once into a padded tensor; a batch's windows are cut with one gather,
    their random offsets drawn from the training generator (so a resumed run continues the
    same stream).
    """

    def __init__(
        self,
        documents: list[str],
        questions: list[Question],
        vocab: CharVocab,
        block_size: int,
        mix: QuestionMix = QuestionMix(),
        device: torch.device | str = "cpu",
        where: str = "question mix",  # names the questions' file in an encoding error
    ):
        if mix.qa_repeats < 0:
            raise ValueError("qa_repeats must be 0 or more")
        if not 0.0 <= mix.input_noise < 1.0:
            raise ValueError(f"input_noise is a share of the characters, from 0 up to 1; got {mix.input_noise}")
        self.input_noise = mix.input_noise
        # Of input_noise_chars, those the corpus has (a corpus without digits has none to noise).
        self.noise_ids = (torch.tensor([vocab.stoi[c] for c in mix.input_noise_chars if c in vocab.stoi], device=device)
                          if mix.input_noise_chars is not None else None)
        self.block_size = block_size
        self.n_bios = len(documents)
        self.qa_repeats = mix.qa_repeats if questions else 0
        self.windows = mix.windows
        self.bio_chars = min(block_size, mix.bio_chars or block_size)
        self.name_loss = mix.name_loss
        documents, openings = zip(*(opening(d, mix.bio_prompt) for d in documents))
        longest = max(len(d) for d in documents)
        rows = torch.full((self.n_bios, longest + 2), PAD_ID, dtype=torch.long)  # room for an end mark, then PAD
        lengths = torch.empty(self.n_bios, dtype=torch.long)
        prefixes = torch.empty(self.n_bios, dtype=torch.long)
        for i, doc in enumerate(documents):
            ids = vocab.encode(doc, where=f"pretraining document {i + 1}")
            if mix.end_mark and len(ids) < self.bio_chars:
                ids.append(END_OF_BIO)
            rows[i, : len(ids)] = torch.tensor(ids)
            lengths[i] = len(ids)
            prefixes[i] = openings[i]
        self.rows, self.doc_lengths, self.prefixes = rows.to(device), lengths.to(device), prefixes.to(device)
        self.positions = torch.arange(block_size, device=device)
        self.span = CorruptionBatcher(documents, vocab, block_size, device) if mix.bio_objective == "span" else None
        if questions:
            qx, qy = encode_questions(questions, vocab, block_size, where=where)
            self.qx, self.qy = qx.to(device), qy.to(device)
        self.n_questions = len(questions)
        self.name_windows, self.name_window_chars = mix.name_windows, mix.name_window_chars
        # Where each word of a bio's text after the name starts (its offset into that text).
        starts = [[0] + [k + 1 for k in range(len(d) - p) if d[p + k] == " " and k + 1 < len(d) - p]
                  for d, p in zip(documents, prefixes.tolist())]
        self.word_starts = torch.zeros(self.n_bios, max(map(len, starts)), dtype=torch.long)
        for i, w in enumerate(starts):
            self.word_starts[i, : len(w)] = torch.tensor(w)
        self.word_starts = self.word_starts.to(device)
        self.n_words = torch.tensor([len(w) for w in starts], device=device)
        # Columns a batch needs: a stream of bios alone, cut to bio_chars, never fills the
        # block, and every step would otherwise compute on the same trailing PAD (a
        # compiled or graphed step cannot cut it per batch, as length buckets do).
        self.bios_only = not self.qa_repeats and not self.name_windows and self.span is None
        self.width = self.bio_chars - 1 if self.bios_only else block_size - 1

    def __len__(self) -> int:
        return self.n_bios * (1 + self.name_windows) + self.qa_repeats * self.n_questions

    @property
    def lengths(self) -> torch.Tensor | None:
        """Each example's length in characters, for a stream of bios alone (None otherwise:
        windows and questions have other lengths)."""
        if not self.bios_only:
            return None
        return self.doc_lengths.clamp_max(self.bio_chars)

    def sample(self, index: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n_windows = self.n_bios * (1 + self.name_windows)
        bio = index.clamp_max(n_windows - 1) % self.n_bios
        x, y = self._bios(bio, generator)
        if self.name_windows:
            short = ((index >= self.n_bios) & (index < n_windows)).unsqueeze(1)
            wx, wy = self._name_windows(bio, generator)
            x, y = torch.where(short, wx, x), torch.where(short, wy, y)
        if self.qa_repeats:
            q = (index - n_windows).clamp_min(0) % self.n_questions
            question = (index >= n_windows).unsqueeze(1)
            x, y = torch.where(question, self.qx[q], x), torch.where(question, self.qy[q], y)
        return x[:, : self.width], y[:, : self.width]

    def _name_windows(self, index: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``NAME. `` then ``name_window_chars`` of the bio from a random word on: every fact
        of the bio, in turn, right after the full name (the fact is never looked for)."""
        n, p = self.doc_lengths[index], self.prefixes[index]
        u = torch.rand(index.shape[0], device=index.device, generator=generator)
        words = self.n_words[index]
        pick = (u * words).long().clamp_max(words - 1)
        start = self.word_starts[index, pick]
        j = self.positions.unsqueeze(0)
        p1, s1 = p.unsqueeze(1), start.unsqueeze(1)
        src = torch.where(j < p1, j, j + s1)
        end = torch.minimum(n, p + start + self.name_window_chars).unsqueeze(1)
        src = torch.where(src < end, src, self.rows.shape[1] - 1)
        return self._split(self.rows[index].gather(1, src), p)

    def _bios(self, index: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.span is not None:
            return self.span.sample(index, generator)
        n, p = self.doc_lengths[index], self.prefixes[index]
        # Offset of the window into the text after the name: 0 (the bio's start) or, for
        # half the long bios, uniform over every window that still ends inside the bio.
        spare = (n - self.bio_chars).clamp_min(0)
        u = torch.rand(index.shape[0], 2, device=index.device, generator=generator)
        offset = torch.where(u[:, 0] < 0.5, 0, (u[:, 1] * (spare + 1)).long().clamp_max(spare))
        if not self.windows:
            offset = torch.zeros_like(offset)
        j = self.positions.unsqueeze(0)
        src = torch.where(j < p.unsqueeze(1), j, j + offset.unsqueeze(1))
        pad_column = self.rows.shape[1] - 1
        src = torch.where((src < n.unsqueeze(1)) & (j < self.bio_chars), src, pad_column)
        x, y = self._split(self.rows[index].gather(1, src), p)
        return self._noised(x, p, (n - offset).clamp_max(self.bio_chars), generator), y

    def _noised(self, x: torch.Tensor, prefix: torch.Tensor, length: torch.Tensor,
                generator: torch.Generator | None) -> torch.Tensor:
        """``x`` with :attr:`QuestionMix.input_noise` of each row's characters after the
        name (of the first ``length``) replaced: by a character of the same row's text, or,
        with :attr:`QuestionMix.input_noise_chars`, only those characters, by one of them."""
        if not self.input_noise:
            return x
        u = torch.rand(*x.shape, 2, device=x.device, generator=generator)
        j = self.positions[: x.shape[1]].unsqueeze(0)
        p, n = prefix.unsqueeze(1), length.unsqueeze(1).clamp_max(x.shape[1])
        noised = (u[..., 0] < self.input_noise) & (j >= p) & (j < n) & (x != END_OF_BIO)
        if self.noise_ids is not None:
            if not len(self.noise_ids):
                return x
            other = self.noise_ids[(u[..., 1] * len(self.noise_ids)).long().clamp_max(len(self.noise_ids) - 1)]
            return torch.where(noised & torch.isin(x, self.noise_ids), other, x)
        source = p + (u[..., 1] * (n - p)).long().clamp_max((n - p - 1).clamp_min(0))
        other = x.gather(1, source.clamp_max(x.shape[1] - 1))
        noised &= other != END_OF_BIO
        return torch.where(noised, other, x)

    def _split(self, text: torch.Tensor, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of whole rows of text; without ``name_loss`` the name's own characters
        are no targets (the first target is the character after ``NAME. ``)."""
        x, y = text[:, :-1], text[:, 1:]
        if not self.name_loss:
            y = torch.where(self.positions[1:].unsqueeze(0) < prefix.unsqueeze(1), PAD_ID, y)
        return x, y
