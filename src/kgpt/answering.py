"""How a question reaches the model that answers it: asked directly, or recalled, then read.

* :class:`Answerer` (every recipe but ``recall``): the model reads ``question⁇`` and
  writes the place, as in the assignment.
* :class:`RecallReader` (the ``recall`` recipe): the question only says whose bio to
  recall. The pretrained model (the recaller) is cued with the bio's opening ``NAME.``,
  NAME parsed from "Where was NAME born?", and decodes the rest of the bio greedily; a
  second model (the reader, finetuned on training people's bios, :mod:`kgpt.data.reading`)
  reads that recalled text and writes the place. Each step is one the model was trained
  for, so facts stored in pretraining come out without a question ever having been
  asked about that person.

Both give, per question, the text the answering model reads before its ⁇; everything
that decodes or scores answers (:mod:`kgpt.evaluate`, :mod:`kgpt.analysis`) goes
through :meth:`Answerer.readings`, so a recipe's way of answering is defined once.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from kgpt.checkpoint import RECALLER, load_model, load_state
from kgpt.data.corpus import Question, asked_name
from kgpt.data.reading import Reading
from kgpt.errors import KgptError
from kgpt.model import GPT
from kgpt.probe import free_recall
from kgpt.vocab import CharVocab

ANSWER_ROOM = 28  # characters kept free after a recall for ⁇, the place and its closing ⁇
RECALLS_KEPT = 4096  # recalled bios a RecallReader remembers (more than any batch it is given)


def question_at(where: str | None, q: Question) -> str:
    """Where a question is, for an error: "FILE, line N", or "question N" when typed in."""
    return f"{where}, line {q.line}" if where else f"question {q.line}"


class Answerer:
    """Asks ``model`` the question itself."""

    method = "question"

    def __init__(self, model: GPT):
        self.model = model  # the model that writes the answer

    def to(self, device: torch.device) -> Answerer:
        self.model.to(device)
        return self

    def check(self, vocab: CharVocab, question: Question, where: str | None = "questions") -> None:
        """Raise the user error that makes ``question`` impossible to answer this way, if any,
        without running a model (so a whole file can be checked before hours of decoding)."""
        at = question_at(where, question)
        if len(question.text) + 1 >= self.model.max_length:
            raise KgptError(f"{at}: the question is {len(question.text)} characters, too long for the "
                            f"model's block of {self.model.config.block_size}; shorten it")
        vocab.encode(question.text, where=at)

    def readings(self, vocab: CharVocab, questions: list[Question], where: str | None = "questions") -> list[str]:
        """What the answering model reads before its ⁇, per question (``where`` names them in errors)."""
        for q in questions:
            self.check(vocab, q, where)
        return [q.text for q in questions]

    def prepare(self, vocab: CharVocab, questions: list[Question]) -> None:
        """Do in one batch what :meth:`readings` will need for these questions, where they
        are then read one at a time (``kgpt ask`` checks each on its own); questions that
        cannot be asked are left for :meth:`readings` to report."""

    def recall(self, question: Question) -> str | None:
        """The text recalled to answer ``question`` (after :meth:`readings`); None when
        this way of answering recalls nothing."""
        return None


class RecallReader(Answerer):
    """Recalls the person's bio with ``recaller``, then ``reader`` reads the place off it."""

    method = "recall-read"

    def __init__(self, reader: GPT, recaller: GPT, reading: Reading):
        super().__init__(reader)
        self.recaller = recaller
        self.reading = reading
        self._recalled: dict[str, str] = {}  # name -> recalled text (greedy, so fixed)

    def to(self, device: torch.device) -> RecallReader:
        self.recaller.to(device)
        return super().to(device)

    @property
    def recall_chars(self) -> int:
        """How much to recall: the reading length, less where the reader's block could not
        hold that much text and an answer after it."""
        return min(self.reading.chars, self.model.max_length - ANSWER_ROOM)

    def spec(self) -> dict:
        """What a checkpoint records about this way of answering (beside the recaller's weights)."""
        return {"method": self.method, **asdict(self.reading)}

    def check(self, vocab: CharVocab, question: Question, where: str | None = "questions") -> None:
        name = asked_name(question.text)
        if name is None:
            raise KgptError(f'{question_at(where, question)}: recall-then-read answers questions of the form '
                            f'"Where was NAME born?" (it recalls NAME\'s bio); got {question.text!r}')
        vocab.encode(name, where=question_at(where, question))  # an unknown character is the user's error

    def readings(self, vocab: CharVocab, questions: list[Question], where: str | None = "questions") -> list[str]:
        for q in questions:
            self.check(vocab, q, where)
        names = [asked_name(q.text) for q in questions]
        self._recall(vocab, names)
        return [self.reading.text(self._recalled[n], n) for n in names]

    def prepare(self, vocab: CharVocab, questions: list[Question]) -> None:
        names = (asked_name(q.text) for q in questions)
        self._recall(vocab, [n for n in names if n is not None and all(c in vocab.stoi for c in n)])

    def _recall(self, vocab: CharVocab, names: list[str]) -> None:
        """Recall, in one batch, every name not recalled yet. Beyond :data:`RECALLS_KEPT`,
        the earliest recalled names not asked for in this call are forgotten, so answering
        a stream of any length keeps its memory bounded (one asked again is recalled again)."""
        todo = sorted({n for n in names if n not in self._recalled})
        if todo:
            self._recalled.update(zip(todo, free_recall(self.recaller, vocab, todo, self.recall_chars)))
        excess = len(self._recalled) - RECALLS_KEPT
        if excess > 0:  # only after a batch of new recalls, not on every question's lookup
            wanted = set(names)
            for n in [n for n in self._recalled if n not in wanted][:excess]:
                del self._recalled[n]

    def recall(self, question: Question) -> str | None:
        return self._recalled.get(asked_name(question.text) or "")


def load_answerer(
    path: str | Path, vocab: CharVocab, variant: str | None = None, bottleneck_dim: int | None = None,
    block_size: int | None = None,
) -> Answerer:
    """The way a saved model answers: asked directly, or, for a recall-then-read
    checkpoint, its reader and its recaller (one file holds both)."""
    model, ckpt = load_model(path, vocab, variant, bottleneck_dim, block_size)
    spec = ckpt.answering
    if spec is None:
        return Answerer(model)
    try:
        if spec["method"] != RecallReader.method:
            raise ValueError(spec["method"])
        reading = Reading(chars=int(spec["chars"]), mask_name=bool(spec["mask_name"]))
    except (KeyError, TypeError, ValueError):
        raise KgptError(f"checkpoint {path} answers in a way this kgpt does not know ({spec!r}); "
                        "use the kgpt version that wrote it") from None
    recaller = GPT(model.config)
    load_state(recaller, ckpt.group(RECALLER), path)
    return RecallReader(model, recaller, reading)
