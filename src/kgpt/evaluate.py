"""Predicting birthplaces and scoring them against a question file."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kgpt.data.corpus import Question, read_questions
from kgpt.errors import KgptError
from kgpt.inference import greedy_decode
from kgpt.io import atomic_write_bytes
from kgpt.model import GPT
from kgpt.vocab import MASK_CHAR, CharVocab

MAX_ANSWER_CHARS = 32


def evaluate_places(filepath: str | Path, predicted_places: list[str]) -> tuple[float, float]:
    """``(total, correct)`` as floats, exact string match; ``(0, 0)`` without gold places."""
    return score(read_questions(filepath), predicted_places, where=str(filepath))


def score(questions: list[Question], predicted_places: list[str], where: str = "questions") -> tuple[float, float]:
    """:func:`evaluate_places` for questions already read."""
    gold = [q.answer for q in questions]
    if not gold or gold[0] is None:
        return (0.0, 0.0)
    if len(predicted_places) != len(gold):
        raise KgptError(f"{len(predicted_places)} predictions for {len(gold)} questions in {where}")
    correct = sum(p == g for p, g in zip(predicted_places, gold))
    return (float(len(gold)), float(correct))


def predict_places(model: GPT, vocab: CharVocab, questions: list[Question], where: str = "questions") -> list[str]:
    """Greedy answers: the characters after ``question⁇`` up to the closing ⁇."""
    prompts = [question_prompt(model, vocab, q, where=f"{where}, line {q.line}") for q in questions]
    # An answer is one line of a file: a predicted newline ends it, like the closing ⁇.
    return [vocab.decode(ids).split("\n")[0] for ids in greedy_decode(model, prompts, MAX_ANSWER_CHARS)]


def question_prompt(model: GPT, vocab: CharVocab, q: Question, where: str) -> list[int]:
    """The ids of ``question⁇``, or a user error when it cannot be asked of this model."""
    prompt = q.text + MASK_CHAR
    if len(prompt) >= model.max_length:
        raise KgptError(
            f"{where}: the question is {len(q.text)} characters, too long for the "
            f"model's block of {model.config.block_size}; shorten it"
        )
    return vocab.encode(prompt, where=where)


def most_frequent_place(questions: list[Question]) -> str:
    """The majority-class answer of a training file (the real data's is London)."""
    counts = Counter(q.answer for q in questions if q.answer is not None)
    if not counts:
        raise KgptError("no answers to count for a most-frequent-place baseline")
    return counts.most_common(1)[0][0]


def write_predictions(path: str | Path, predictions: list[str]) -> None:
    atomic_write_bytes(path, "".join(p + "\n" for p in predictions).encode("utf-8"))


def score_line(correct: float, total: float) -> str:
    """The assignment's result line."""
    return f"Correct: {int(correct)} out of {int(total)}: {100.0 * correct / total:.1f}%"


_QUESTION = re.compile(r"^Where was (.+) born\?$")


@dataclass(frozen=True)
class Recall:
    """How many people's birthplaces a pretrained model recites when it reads their bio."""

    recalled: int  # bio prefix → the right place, greedily
    probed: int  # people with a bio that names their birthplace within the model's block
    total: int  # people asked about


def bios_by_name(documents: list[str]) -> dict[str, list[str]]:
    """The documents under the name they open with: wiki.txt starts a bio "NAME. …" or "NAME (…"."""
    bios: dict[str, list[str]] = {}
    for doc in documents:
        bios.setdefault(doc.split(".")[0].split(" (")[0], []).append(doc)
    return bios


def asked_name(question: str) -> str | None:
    """NAME in "Where was NAME born?"; None for a question of another form."""
    match = _QUESTION.match(question)
    return match.group(1) if match else None


def person_bio(bios: dict[str, list[str]], q: Question) -> str | None:
    """The first bio of the person ``q`` asks about that mentions ``q.answer``, if any."""
    name = asked_name(q.text)
    if q.answer is None or name is None:
        return None
    return next((d for d in bios.get(name, []) if q.answer in d), None)


def recite_birthplaces(model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question]) -> list[bool | None]:
    """Per question, whether the model continues the person's bio with the place (see
    :func:`recall_birthplaces`); None where no bio names the place within the model's block."""
    bios = bios_by_name(documents)
    probes: dict[int, tuple[list[int], str]] = {}
    for i, q in enumerate(questions):
        bio = person_bio(bios, q)
        if bio is None:
            continue
        prefix = bio[: bio.index(q.answer)]
        if not prefix or len(prefix) + len(q.answer) > model.max_length:
            continue
        probes[i] = (vocab.encode(prefix, where="corpus"), q.answer)
    if not probes:
        return [None] * len(questions)
    places = [place for _, place in probes.values()]
    outputs = greedy_decode(model, [ids for ids, _ in probes.values()], max(map(len, places)), stop_id=-1)
    recited = {i: vocab.decode(ids).startswith(place) for i, ids, place in zip(probes, outputs, places)}
    return [recited.get(i) for i in range(len(questions))]


def recall_birthplaces(model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question]) -> Recall:
    """Storage without access: does the model continue "NAME. … born in " with the place?

    For each person asked about, the first document that starts with their name and
    mentions their birthplace is cut just before the place; the model, straight from
    pretraining, decodes greedily from there. A person counts as recalled when the
    continuation starts with the place. Finetuning can only get out what is stored, so
    this bounds what ``pretrain+finetune`` can reach and tells a storage failure apart
    from an access failure.
    """
    recited = recite_birthplaces(model, vocab, documents, questions)
    return Recall(sum(r is True for r in recited), sum(r is not None for r in recited), len(questions))
