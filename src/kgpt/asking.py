"""``kgpt ask``: each question's answer, its confidence, the most probable answers, and
how it all reads on a terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kgpt.answering import Answerer
from kgpt.data.corpus import Question, asked_name
from kgpt.errors import KgptError
from kgpt.evaluate import answerer
from kgpt.model import GPT
from kgpt.vocab import CharVocab


@dataclass(frozen=True)
class Answer:
    """The answer to one question, its confidence and the most probable answers."""

    question: str
    answer: str
    confidence: float
    alternatives: list[tuple[str, float]]  # (answer, probability), most probable first
    name_in_corpus: bool | None  # None: not a "Where was NAME born?" question
    recall: str | None = None  # the text recalled and read to answer (recall-then-read)


def answer_questions(
    model: GPT | Answerer, vocab: CharVocab, documents: list[str], texts: list[str], top_k: int = 3, first: int = 1
) -> list[Answer | KgptError]:
    """Answer each question (numbered from ``first`` in errors) in one batch; a question
    that cannot be asked is its own error.

    One bad question (a character outside the vocabulary, too long for the block) must
    not cost the answers to the others, so errors are returned in its place, not raised.
    """
    asker = answerer(model)
    results: list[Answer | KgptError | None] = [None] * len(texts)
    valid: list[Question] = []
    for q in (Question(text, None, i) for i, text in enumerate(texts, start=first)):
        try:
            if not q.text.strip():
                raise KgptError(f"question {q.line} is empty; ask \"Where was NAME born?\"")
            asker.check(vocab, q, where=None)
            valid.append(q)
        except KgptError as e:
            results[q.line - first] = e
    contexts = asker.contexts(vocab, valid, where=None)
    answers = asker.answers(vocab, contexts)
    confidences = asker.confidences(vocab, contexts, answers)
    alternatives = asker.ranked(vocab, contexts, top_k) if top_k else [[] for _ in valid]
    corpus_text = "\n".join(documents)
    for q, context, answer, confidence, top in zip(valid, contexts, answers, confidences, alternatives):
        results[q.line - first] = Answer(q.text, answer, confidence, top,
                                         None if q.name is None else q.name in corpus_text, context.recall)
    return results  # type: ignore[return-value]  # every slot is filled above


def show(text: str) -> str:
    """Text as it reads, quoted where plain text would hide something (an empty text,
    edge spaces, a newline)."""
    plain = text and text == text.strip() and text.isprintable()
    return text if plain else quoted(text)


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def probability(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def format_answer(a: Answer) -> str:
    """What ``kgpt ask`` prints for one answer. The recall is always quoted: it is text
    cut mid-sentence, with spaces at its edges that matter."""
    lines = [a.question, f"  answer  {show(a.answer)}  (p = {probability(a.confidence)})"]
    if a.recall is not None:
        lines.append(f"  recall  {quoted(a.recall)}")
    if a.alternatives:
        lines.append(f"  top {len(a.alternatives)}   " + " | ".join(f"{probability(p)} {show(s)}" for s, p in a.alternatives))
        best = a.alternatives[0][0]
        if best != a.answer:  # only a writer decoding greedily can miss its most probable answer
            lines.append(f"  note    greedy decoding wrote {quoted(a.answer)}; {quoted(best)} is more probable")
    if a.name_in_corpus is False:
        lines.append(f"  note    \"{asked_name(a.question)}\" occurs nowhere in the corpus: the answer is made up")
    return "\n".join(lines)
