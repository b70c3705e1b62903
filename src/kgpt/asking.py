"""``kgpt ask``: each question's answer, its confidence, the most probable answers, and
how they read on a terminal."""

from __future__ import annotations

from dataclasses import dataclass

from kgpt.answering import Answerer, RecallAnswerer, answerer
from kgpt.data.corpus import Question
from kgpt.display import probability, quoted, show
from kgpt.errors import KgptError
from kgpt.model import GPT
from kgpt.vocab import CharVocab


@dataclass(frozen=True)
class Answer:
    """The answer to one question, its confidence and the most probable answers."""

    question: str
    answer: str
    confidence: float
    alternatives: list[tuple[str, float]]  # (answer, probability), most probable first
    name_in_corpus: bool | None  # None: a question in none of the task's forms
    recall: str | None = None  # the text recalled and read to answer (recall-then-read)
    recall_confidence: float | None = None  # the recall part of the confidence (recall-then-read)
    reading_confidence: float | None = None  # the reading part: the reader's probability of the answer
    trusted_recall: bool | None = None  # whether the recall looks stored rather than made up (None: no recall)
    min_confidence: float | None = None  # the threshold asked for (None: always answer)
    calibrated: bool = True  # False: the confidence is an uncalibrated product of the parts
    name: str | None = None  # the person asked about (None: a question in none of the task's forms)

    @property
    def abstained(self) -> bool:
        """Whether the answer is "I don't know": its confidence is below the threshold."""
        return self.min_confidence is not None and self.confidence < self.min_confidence


def answer_questions(
    model: GPT | Answerer, vocab: CharVocab, documents: list[str], texts: list[str], top_k: int = 3, first: int = 1,
    min_confidence: float | None = None,
) -> list[Answer | KgptError]:
    """Answer each question (numbered from ``first`` in errors) in one batch; a question
    that cannot be asked is its own error. Below ``min_confidence`` an answer is abstained.

    One bad question (a character outside the vocabulary, too long for the block) must
    not cost the answers to the others, so errors are returned in its place, not raised.
    """
    asker = answerer(model)
    results: list[Answer | KgptError | None] = [None] * len(texts)
    valid: list[Question] = []
    for q in (Question(text, None, i, asker.task) for i, text in enumerate(texts, start=first)):
        try:
            if not q.text.strip():
                raise KgptError(f'question {q.line} is empty; ask "{asker.task.form}"')
            asker.check(vocab, q, where=None)
            valid.append(q)
        except KgptError as e:
            results[q.line - first] = e
    contexts = asker.contexts(vocab, valid, where=None)
    corpus_text = "\n".join(documents)
    recalls = isinstance(asker, RecallAnswerer)
    for q, context, reply in zip(valid, contexts, asker.replies(vocab, contexts, top_k)):
        part = reply.parts
        results[q.line - first] = Answer(
            q.text, reply.answer, part.combined, reply.top, None if q.name is None else q.name in corpus_text, context.recall,
            part.recall, part.reading, asker.trusts_recall(part) if recalls else None, min_confidence,
            calibrated=not recalls or asker.calibration is not None, name=q.name)
    return results  # type: ignore[return-value]  # every slot is filled above


def format_answer(a: Answer) -> str:
    """What ``kgpt ask`` prints for one answer. The recall is always quoted: it is text
    cut mid-sentence, with spaces at its edges that matter."""
    if a.recall_confidence is None:
        how = f"p = {probability(a.confidence)}"
    else:
        kind = "p" if a.calibrated else "uncalibrated: recall × reading"
        how = (f"{kind} = {probability(a.confidence)}; recall {probability(a.recall_confidence)}, "
               f"reading {probability(a.reading_confidence)}")
    if a.abstained:
        lines = [a.question, f"  answer  I don't know  ({how}, below {probability(a.min_confidence)}; "
                             f"best guess {show(a.answer)})"]
    else:
        lines = [a.question, f"  answer  {show(a.answer)}  ({how})"]
    if a.recall is not None:
        lines.append(f"  recall  {quoted(a.recall)}")
    if a.alternatives:
        lines.append(f"  top {len(a.alternatives)}   " + " | ".join(f"{probability(p)} {show(s)}" for s, p in a.alternatives)
                     + ("  (the reader's probabilities)" if a.recall_confidence is not None else ""))
        best = a.alternatives[0][0]
        if best != a.answer:  # only a writer decoding greedily can miss its most probable answer
            lines.append(f"  note    greedy decoding wrote {quoted(a.answer)}; {quoted(best)} is more probable")
    if a.trusted_recall is False:
        lines.append("  note    recall not trusted: the recaller was unsure of the answer where it recalled it "
                     "(recall part below what held-out people's recalls reach); the bio may be made up")
    if a.name_in_corpus is False:
        lines.append(f"  note    \"{a.name}\" occurs nowhere in the corpus: the answer is made up")
    return "\n".join(lines)
