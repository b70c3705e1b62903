"""Reading examples: a text about a person, then ``⁇PLACE⁇``, the loss on the place only.

Recall-then-read answers a question in two steps (:mod:`kgpt.answering`): a model that
was pretrained on the bios recalls the person's bio from its opening, and a reader takes
the place out of that text. The reader learns to read from the training people's own
bios, each followed by the place of the question about them: the same layout as a
finetuning pair (:func:`kgpt.data.questions.encode_questions`), with the bio where the
question was. The dev people appear nowhere here.
"""

from __future__ import annotations

from dataclasses import dataclass

from kgpt.data.corpus import Question, asked_name, bios_by_name, person_bio


@dataclass(frozen=True)
class Reading:
    """How a text about a person becomes what the reader reads."""

    chars: int = 100  # characters of the text (its opening name included), as recalled
    mask_name: bool = True  # drop the opening "NAME." so the reader sees what is said, not whom

    def text(self, text: str, name: str, room: int | None = None) -> str:
        """``text`` cut to :attr:`chars` (and to ``room``, the characters that fit), its
        opening name dropped when :attr:`mask_name`. The name may still occur later on."""
        text = text[: self.chars]
        if self.mask_name and text.startswith(f"{name}."):
            text = text[len(name) + 1 :].lstrip(" ")
        return text if room is None else text[:room]


def reading_examples(documents: list[str], questions: list[Question], reading: Reading, block_size: int) -> list[Question]:
    """One reading example per question whose person has a bio: the bio as :meth:`Reading.text`
    gives it (the one that mentions the place, where the person has several), the place as
    answer. Questions about people without a bio are left out: there is nothing to read."""
    bios = bios_by_name(documents)
    examples = []
    for q in questions:
        name = asked_name(q.text)
        bio = person_bio(bios, name, q.answer) or person_bio(bios, name)
        if bio is None or q.answer is None:
            continue
        room = block_size - len(q.answer) - 2  # the two ⁇ and the place must fit the block
        examples.append(Question(reading.text(bio, name, room), q.answer, q.line))
    return examples
