"""The reader of recall-then-read: what it reads and what it learns from.

Recall-then-read answers a question in two steps (:mod:`kgpt.answering`): the recaller,
the pretrained model, recalls the person's bio from its opening, and the reader, a copy
of that model finetuned here, takes the place out of the recalled text.
:meth:`ReaderSettings.text` is the one definition of the text the reader reads, for
every block size: its training examples (:func:`reader_examples`) and every answer go
through it, so the reader is never trained on a different text than it reads. How the
reader answers from that text (extracting a span, or writing) is the answering policy,
:class:`kgpt.answering.AnswerPolicy`.

A reader's example is that text, then ``⁇PLACE⁇``, the loss on the place only: the layout
of a finetuning pair (:func:`kgpt.data.questions.encode_questions`) with the text where
the question was. It is built from a training person's true bio, or from what the
recaller recalls of that person, noise included (:attr:`ReaderSettings.learn_from`), and
may be repeated with its place swapped for another name (:attr:`ReaderSettings.swap_places`);
a true bio shorter than the text read may go on with another person's words, as a recall
does (:attr:`ReaderSettings.continue_bios`).
The dev people appear nowhere here.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Literal

from kgpt.data.corpus import Question, bios_by_name, person_bio
from kgpt.data.words import MAX_PLACE_CHARS, contains_place, cut_whole, whole_word_pattern, word_end_from, words

# The room the reader's block keeps free after its text by default: ⁇, a place of up to
# MAX_PLACE_CHARS characters and the closing ⁇ (ReaderSettings.answer_room).
ANSWER_ROOM = MAX_PLACE_CHARS + 2
# The fewest characters a reader's block must read besides its answer's room: a block too
# small for both cannot be finetuned as a reader.
MIN_READ_CHARS = 32
# A text read up to the end of its word may run this far past ReaderSettings.chars: a
# place cut there ("was born in Frank") is read whole ("Frankfurt"), not lost or misspelt.
WORD_TAIL = 24


@dataclass(frozen=True)
class ReaderSettings:
    """What the reader reads and learns from (the recall recipe's; a checkpoint keeps them)."""

    chars: int = 100  # characters of the source text read (its opening name included), as recalled ...
    whole_words: bool = True  # ... then on to the end of the word the cut falls in
    mask_name: bool = True  # drop the opening "NAME." so the reader sees what is said, not whom
    learn_from: Literal["bios", "recalls", "both"] = "bios"  # the training people's true bios, or their recalls
    drop_absent: bool = False  # leave out examples whose place is not in the text (else learn to answer anyway)
    # The longest answer: the reader's block keeps room after its text for ⁇, an answer this
    # long and the closing ⁇. Finetuning raises it to the longest training answer.
    answer_chars: int = MAX_PLACE_CHARS
    # Each example is also learnt this many times with its place swapped, in the text and
    # the answer, for another name (:func:`swapped`): the reader must copy what the text
    # says, where a reader of the true examples alone also learns which places it was told.
    swap_places: int = 0
    # Swapped names are drawn from the training answers and the capitalised words of the
    # texts (people, titles, months, pronouns that open a sentence), or the answers alone.
    swap_words: bool = True
    # A true bio shorter than the text read goes on with words of another training
    # person's bio (:func:`continued`): a recall writes on past the end of such a bio, since
    # nothing in pretraining marks where a bio ends, and a reader of whole bios alone took
    # places from what was written there.
    continue_bios: bool = False

    @property
    def answer_room(self) -> int:
        """Positions the reader's block keeps free after its text: ⁇, the answer, ⁇
        (:data:`ANSWER_ROOM` at the default)."""
        return self.answer_chars + 2

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
            text = text[: word_end_from(text, self.chars)]
        if self.mask_name and text.startswith(f"{name}."):
            text = text[len(name) + 1 :].lstrip(" ")
        room = max_length - self.answer_room
        if len(text) > room:
            text = cut_whole(text, room) if self.whole_words else text[:room]
        return text

    def spec(self) -> dict:
        spec = asdict(self)
        for name, old in (("answer_chars", MAX_PLACE_CHARS), ("swap_places", 0), ("continue_bios", False),
                          ("swap_words", True)):
            if spec[name] == old:  # as checkpoints from before the field wrote it
                del spec[name]
        return spec

    @classmethod
    def from_spec(cls, spec: dict) -> ReaderSettings:
        """The settings a checkpoint describes (its other answering keys are ignored here).
        Checkpoints of kgpt before extraction hold only ``chars`` and ``mask_name``: their
        reader read a hard cut."""
        known = {f.name for f in fields(cls)}
        old = {"whole_words": False} if "whole_words" not in spec else {}
        return cls(**{**old, **{k: v for k, v in spec.items() if k in known}})


def reader_examples(
    documents: list[str], questions: list[Question], settings: ReaderSettings, max_length: int,
    recalls: dict[str, str] | None = None, seed: int = 0,
) -> list[Question]:
    """The reader's training examples: per question about a person with a bio, the text
    :meth:`ReaderSettings.text` makes of the true bio (the one that names the place, where the
    person has several) and/or of the person's recall (``recalls``, by name), with the
    place as answer. People without a bio are left out (there is nothing to read or
    recall), so are answers longer than :attr:`ReaderSettings.answer_chars` and empty texts, and, with
    :attr:`ReaderSettings.drop_absent`, examples whose text does not contain the place."""
    bios = bios_by_name(documents)
    rng = random.Random(seed)
    others = [person_bio(bios, q.name) for q in questions if q.name in bios] if settings.continue_bios else []
    examples = []
    for q in questions:
        name = q.name
        bio = person_bio(bios, name, q.answer) or person_bio(bios, name)
        if bio is None or q.answer is None or len(q.answer) > settings.answer_chars:
            continue
        sources = []
        if settings.learn_from in ("bios", "both"):
            sources.append(continued(bio, others, settings.source_chars(max_length), rng))
        if settings.learn_from in ("recalls", "both"):
            if recalls is None or name not in recalls:
                raise ValueError(f"no recall of {name!r} to learn from")
            sources.append(recalls[name])
        for source in sources:
            text = settings.text(source, name, max_length)
            if not text or (settings.drop_absent and not contains_place(text, q.answer)):
                continue  # an empty text (a recall of nothing but the masked name) has nothing to read
            examples.append(Question(text, q.answer, q.line))
    if settings.swap_places:
        names = swap_names(examples, settings.answer_chars, settings.swap_words)
        examples = [s for e in examples for s in [e, *swapped(e, names, settings, max_length, rng)]]
    return examples


def continued(bio: str, others: list[str], chars: int, rng: random.Random) -> str:
    """``bio``, where shorter than ``chars``, going on with the words of a bio drawn from
    ``others`` (from a word drawn in its first half; never ``bio`` itself) until ``chars``
    are reached."""
    if len(bio) >= chars or not others:
        return bio
    i = rng.randrange(len(others))
    other = others[i] if others[i] != bio else others[(i + 1) % len(others)]
    if other == bio:
        return bio
    starts = [m.start() for m in words(other[: len(other) // 2 + 1])] or [0]
    return f"{bio} {other[rng.choice(starts):]}"[:chars]


def swap_names(examples: list[Question], max_chars: int, capitalised_words: bool = True) -> list[str]:
    """What a place may be swapped for: the examples' answers and, with ``capitalised_words``,
    every capitalised word of their texts (people and titles too), so the reader also copies
    names it was never told are places; sorted, so the draw depends on the seed alone."""
    names = {e.answer for e in examples}
    if capitalised_words:
        names |= {w for e in examples for w in (m.group() for m in words(e.text)) if w[0].isupper() and len(w) > 2}
    return sorted(n for n in names if len(n) <= max_chars)


def swapped(example: Question, names: list[str], settings: ReaderSettings, max_length: int,
            rng: random.Random) -> list[Question]:
    """Up to :attr:`ReaderSettings.swap_places` copies of ``example`` with every whole-word
    occurrence of its place, in its text, replaced by a name drawn from ``names`` that the
    text does not hold, that name the answer. None where the text does not name the place
    (there is nothing to copy), and none that would overflow the reader's room."""
    place = whole_word_pattern(example.answer)
    if not place.search(example.text):
        return []
    out = []
    for _ in range(settings.swap_places):
        name = rng.choice(names)
        if name == example.answer or contains_place(example.text, name):
            continue  # a draw the text already holds would be a second right answer
        text = place.sub(lambda _: name, example.text)
        if len(text) <= max_length - settings.answer_room:
            out.append(Question(text, name, example.line))
    return out
