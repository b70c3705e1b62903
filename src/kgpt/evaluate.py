"""Predicting birthplaces and scoring them against a question file."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from kgpt.answering import Answerer, Context, answerer
from kgpt.data.corpus import Question, read_questions
from kgpt.errors import KgptError
from kgpt.io import atomic_write_bytes
from kgpt.model import GPT
from kgpt.vocab import CharVocab

EVAL_CHUNK = 1024  # questions answered together when streaming a file: enough to fill a batch, bounded memory


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


def predict_places(model: GPT | Answerer, vocab: CharVocab, questions: list[Question], where: str = "questions") -> list[str]:
    """The answer to each question (for a bare model, greedily written after ``question⁇``)."""
    asker = answerer(model)
    return asker.answers(vocab, asker.contexts(vocab, questions, where))


def predict_stream(
    model: GPT | Answerer, vocab: CharVocab, questions: Iterable[Question], where: str = "questions",
    chunk: int | None = None,
) -> Iterator[tuple[list[Question], list[Context], list[str]]]:
    """:func:`predict_places` over a stream of any length, ``chunk`` (default
    :data:`EVAL_CHUNK`) questions at a time: yields each chunk with what was read to
    answer it (recalls included) and its answers."""
    asker = answerer(model)
    for batch in chunks(questions, chunk or EVAL_CHUNK):
        contexts = asker.contexts(vocab, batch, where)
        yield batch, contexts, asker.answers(vocab, contexts)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter), taken as they come."""
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def count_askable(model: GPT | Answerer, vocab: CharVocab, questions: Iterable[Question], where: str = "questions") -> int:
    """The number of ``questions``, after checking, one at a time and without running a
    model, that each of them can be asked (else the first one's error)."""
    asker, n = answerer(model), 0
    for q in questions:
        asker.check(vocab, q, where)
        n += 1
    return n


def most_frequent_place(questions: list[Question]) -> str:
    """The majority-class answer of a training file (the real data's is London)."""
    counts = Counter(q.answer for q in questions if q.answer is not None)
    if not counts:
        raise KgptError("no answers to count for a most-frequent-place baseline")
    return counts.most_common(1)[0][0]


def write_predictions(path: str | Path, predictions: list[str]) -> None:
    atomic_write_bytes(path, "".join(p + "\n" for p in predictions).encode("utf-8"))


def score_line(correct: float, total: float, abstained: int | None = None, min_confidence: float | None = None) -> str:
    """The assignment's result line; with a confidence threshold, the questions left
    unanswered below it (``abstained``) are counted apart from the wrong answers."""
    line = f"Correct: {int(correct)} out of {int(total)}: {100.0 * correct / total:.1f}%"
    if abstained is None:
        return line
    answered = int(total) - abstained
    accuracy = f"{100.0 * correct / answered:.1f}%" if answered else "n/a"
    return (f"{line}; abstained on {abstained} (confidence below {min_confidence:.4g}), "
            f"wrong {answered - int(correct)}, accuracy on the {answered} answered {accuracy}")
