"""The reader of recall-then-read: what it reads, what it learns from, how it answers.

Recall-then-read answers a question in two steps (:mod:`kgpt.answering`): the pretrained
model recalls the person's bio from its opening, and a reader, a copy of that model
finetuned here, takes the place out of the recalled text. :meth:`Reader.text` is the one
definition of the text the reader reads, for every block size: its training examples
(:func:`reader_examples`) and every answer go through it, so the reader is never trained
on a different text than it reads.

A reading example is that text, then ``⁇PLACE⁇``, the loss on the place only: the layout
of a finetuning pair (:func:`kgpt.data.questions.encode_questions`) with the text where
the question was. It is built from a training person's true bio, or from what the
pretrained model recalls of that person, noise included (:attr:`Reader.learn_from`).
The dev people appear nowhere here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Literal

from kgpt.data.corpus import Question, bios_by_name, person_bio

# The reader's block keeps this many characters free after its text: ⁇, a place of up to
# MAX_PLACE_CHARS characters and the closing ⁇. The longest place in the real files has 15.
ANSWER_ROOM = 28
MAX_PLACE_CHARS = ANSWER_ROOM - 2
# A text read up to the end of its word may run this far past Reader.chars: a place cut
# there ("was born in Frank") is read whole ("Frankfurt"), not lost or misspelt.
WORD_TAIL = 24

_WORD = re.compile(r"\w+")


def words(text: str) -> list[re.Match]:
    """The words of a text: maximal runs of letters and digits. "Saint-Étienne" is two
    words joined by a hyphen, "Frankfurt," one word and a comma."""
    return list(_WORD.finditer(text))


def word_count(place: str) -> int:
    return len(words(place))


def spans(text: str, max_words: int) -> list[str]:
    """Every answer the reader may extract from ``text``: a run of 1 to ``max_words``
    consecutive words, exactly as written between them ("New York", "Saint-Étienne"), of
    at most :data:`MAX_PLACE_CHARS` characters; each once, in order of first occurrence."""
    found = words(text)
    out: dict[str, None] = {}
    for i, first in enumerate(found):
        for last in found[i : i + max_words]:
            span = text[first.start() : last.end()]
            if len(span) > MAX_PLACE_CHARS:
                break
            out.setdefault(span)
    return list(out)


def contains_place(text: str, place: str, max_words: int | None = None) -> bool:
    """Whether ``place`` occurs in ``text`` as whole words (so "Paris" not in "Parish")."""
    return place in spans(text, max_words or word_count(place))


@dataclass(frozen=True)
class Reader:
    """How the reader reads, learns and answers (the recall recipe's; a checkpoint keeps it)."""

    chars: int = 100  # characters of the source text read (its opening name included), as recalled ...
    whole_words: bool = True  # ... then on to the end of the word the cut falls in
    mask_name: bool = True  # drop the opening "NAME." so the reader sees what is said, not whom
    learn_from: Literal["bios", "recalls", "both"] = "bios"  # the training people's true bios, or their recalls
    drop_absent: bool = False  # leave out examples whose place is not in the text (else learn to answer anyway)
    extract: bool = True  # answer with the span of the text the reader scores highest, else write freely
    max_words: int = 1  # longest extracted span, in words: set by finetuning to the longest training place's

    def source_chars(self, max_length: int) -> int:
        """How many characters of a source text (a bio, or a recall counted from its cue)
        :meth:`text` can use in a model of ``max_length`` positions: what to recall."""
        return min(self.chars + (WORD_TAIL if self.whole_words else 0), max_length)

    def text(self, source: str, name: str, max_length: int) -> str:
        """What the reader reads of ``source``, the bio or recall of ``name``, in a reader of
        ``max_length`` positions: the first :attr:`chars` characters (then to the end of
        that word), the opening ``NAME.`` dropped, cut to leave the answer its room (to
        the last whole word). The name may still occur later on."""
        text = source[: self.source_chars(max_length)]
        if self.whole_words:
            text = text[: _word_end_from(text, self.chars)]
        if self.mask_name and text.startswith(f"{name}."):
            text = text[len(name) + 1 :].lstrip(" ")
        room = max_length - ANSWER_ROOM
        if len(text) > room:
            text = _cut_whole(text, room) if self.whole_words else text[:room]
        return text

    def spec(self) -> dict:
        return asdict(self)

    @classmethod
    def from_spec(cls, spec: dict) -> Reader:
        """The reader a checkpoint describes. Checkpoints of kgpt before extraction hold only
        ``chars`` and ``mask_name``: their reader read a hard cut and wrote freely."""
        known = {f.name for f in fields(cls)}
        old = {"whole_words": False, "extract": False} if "whole_words" not in spec else {}
        return cls(**{**old, **{k: v for k, v in spec.items() if k in known}})


def splits_word(text: str, i: int) -> bool:
    """Whether a cut at position ``i`` would split a word."""
    return 0 < i < len(text) and bool(_WORD.match(text[i - 1])) and bool(_WORD.match(text[i]))


def _word_end_from(text: str, i: int) -> int:
    """Position ``i``, or the end of the word a cut there would split."""
    return _WORD.match(text, i).end() if splits_word(text, i) else min(i, len(text))


def _cut_whole(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters without splitting a word: a word the
    limit falls in is left out, with the space before it."""
    while splits_word(text, limit):
        limit -= 1
    return text[:limit].rstrip()


def reader_examples(
    documents: list[str], questions: list[Question], reader: Reader, max_length: int,
    recalls: dict[str, str] | None = None,
) -> list[Question]:
    """The reader's training examples: per question about a person with a bio, the text
    :meth:`Reader.text` makes of the true bio (the one that names the place, where the
    person has several) and/or of the person's recall (``recalls``, by name), with the
    place as answer. People without a bio are left out (there is nothing to read or
    recall), so are places too long to answer, and, with :attr:`Reader.drop_absent`,
    examples whose text does not contain the place."""
    bios = bios_by_name(documents)
    examples = []
    for q in questions:
        name = q.name
        bio = person_bio(bios, name, q.answer) or person_bio(bios, name)
        if bio is None or q.answer is None or len(q.answer) > MAX_PLACE_CHARS:
            continue
        sources = []
        if reader.learn_from in ("bios", "both"):
            sources.append(bio)
        if reader.learn_from in ("recalls", "both"):
            if recalls is None or name not in recalls:
                raise ValueError(f"no recall of {name!r} to learn from")
            sources.append(recalls[name])
        for source in sources:
            text = reader.text(source, name, max_length)
            if reader.drop_absent and not contains_place(text, q.answer):
                continue
            examples.append(Question(text, q.answer, q.line))
    return examples
