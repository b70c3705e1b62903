"""How a question reaches the model that answers it: asked, or recalled, then read.

* :class:`Answerer` (every recipe but the recall recipes): the model reads ``question⁇`` and
  writes the place, as in the assignment.
* :class:`RecallAnswerer` (the recall recipes): the question only says whose bio to
  recall. The recaller (the pretrained model) is cued with the bio's opening ``NAME.``,
  NAME parsed from "Where was NAME born?", and decodes the rest of the bio, by the beam
  search its answering policy names (greedily with one beam), to the bio's end mark
  (:func:`kgpt.recaller.recall`); the reader, a finetuned copy of it, reads that text
  (:mod:`kgpt.data.reader`) and answers as its :class:`AnswerPolicy` says: with the span
  of the text it is most likely to write (``extract``), or by writing the place freely
  (``write``). Each step is one the model was trained for, so facts stored in
  pretraining come out without a question ever having been asked about that person.

Both first turn each question into a :class:`Context`, the text the answering model
reads before its ⁇ (once per batch of questions: the recalls are the costly part), and
answer from contexts; everything that answers, scores or ranks (:mod:`kgpt.evaluate`,
:mod:`kgpt.asking`, :mod:`kgpt.analysis`) goes through these methods, so a recipe's way of
answering is defined once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal, get_args

import torch

from kgpt.checkpoint import RECALLER, load_model, load_state
from kgpt.confidence import SIGNAL, Calibration, Parts, combined, describe, recall_log_probs
from kgpt.data.corpus import Question
from kgpt.data.reader import ReaderSettings
from kgpt.data.task import BIRTHPLACE, NAME_FIELD, Task
from kgpt.data.words import spans
from kgpt.errors import KgptError
from kgpt.inference import answer_log_probs, continuation_log_probs, greedy_decode, token_log_probs, top_answers
from kgpt.model import GPT
from kgpt.recaller import recall, recall_cue
from kgpt.vocab import MASK_CHAR, CharVocab

# A recall part below this marks a recall as not trusted where the checkpoint has no
# calibration to say: the laptop recipe's calibrations (seeds 0 and 1) chose 0.52 and
# 0.55, the synthetic validation recaller's 0.47 (docs/confidence.md).
UNCALIBRATED_RECALL_TRUST = 0.5
MAX_ANSWER_CHARS = 32  # a written answer stops here if the model never closes it
AnswerBy = Literal["extract", "write"]  # the answering policies a reader may follow
ANSWER_BY = get_args(AnswerBy)


def question_at(where: str | None, q: Question) -> str:
    """Where a question is, for an error: "FILE, line N", or "question N" when typed in."""
    return f"{where}, line {q.line}" if where else f"question {q.line}"


@dataclass(frozen=True)
class Context:
    """What the answering model reads to answer one question, before its ⁇, and the
    recalled text it was made from (None when nothing was recalled)."""

    text: str
    recall: str | None = None
    cue_chars: int = 0  # how much of the recall is its cue, ``NAME.`` (given, not recalled)


@dataclass(frozen=True)
class AnswerPolicy:
    """How the reader answers from the text it read (the recall recipe's; a checkpoint keeps it).

    Extracting is the recipe's way: a character-level reader that writes freely misspells
    places it read right ("Porto" -> "Porton"); writing stays for comparison.
    """

    answer_by: AnswerBy = "extract"  # the span of the text the reader scores highest, or free writing
    max_words: int = 1  # longest extracted span, in words: set by finetuning to the longest training place's
    recall_beams: int = 1  # the recall's beam search width (1: greedy)

    def __post_init__(self):
        if self.answer_by not in ANSWER_BY:
            raise ValueError(f"answer_by {self.answer_by!r} is not one of {', '.join(ANSWER_BY)}")
        if not isinstance(self.recall_beams, int) or self.recall_beams < 1:
            raise ValueError(f"recall_beams must be a whole number of at least 1, got {self.recall_beams!r}")

    @property
    def extracts(self) -> bool:
        return self.answer_by == "extract"

    def spec(self) -> dict:
        return asdict(self)

    @classmethod
    def from_spec(cls, spec: dict) -> AnswerPolicy:
        """The policy a checkpoint describes (its other answering keys are ignored here).
        Checkpoints written before ``answer_by`` hold ``extract`` (true or false) instead;
        those from before extraction hold neither, nor ``whole_words``: their reader wrote."""
        if "answer_by" in spec:
            answer_by = spec["answer_by"]
        elif "extract" in spec:
            answer_by = "extract" if spec["extract"] else "write"
        else:
            answer_by = "extract" if "whole_words" in spec else "write"
        return cls(answer_by, spec.get("max_words", cls.max_words), spec.get("recall_beams", cls.recall_beams))


@dataclass(frozen=True)
class Reply:
    """One answer as ``kgpt ask`` shows it: the answer, its confidence and its parts, and
    the most probable answers with their probabilities, most probable first."""

    answer: str
    parts: Parts
    top: list[tuple[str, float]]


class Answerer:
    """Asks ``model`` the question itself; the answer is written greedily."""

    method = "question"
    task = BIRTHPLACE  # what questions typed in are parsed as (a model asked directly needs no name)

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

    def contexts(self, vocab: CharVocab, questions: list[Question], where: str | None = "questions") -> list[Context]:
        """What the answering model reads for each question, after checking each (``where``
        names them in errors: "FILE, line N", or "question N" for questions typed in)."""
        for q in questions:
            self.check(vocab, q, where)
        return [Context(q.text) for q in questions]

    def seen(self, bio: str, name: str) -> str:
        """The part of a person's bio this way of answering could have learnt the place
        from: what fits the model's block."""
        return bio[: self.model.max_length]

    def prompts(self, vocab: CharVocab, contexts: list[Context]) -> list[list[int]]:
        """The ids the answering model reads before its answer: the text, then ⁇."""
        return [vocab.encode(c.text + MASK_CHAR, where="answer prompt") for c in contexts]

    def answers(self, vocab: CharVocab, contexts: list[Context]) -> list[str]:
        """The answer to each context: written greedily up to the closing ⁇. An answer is
        one line of a file, so a written newline ends it too."""
        ids = greedy_decode(self.model, self.prompts(vocab, contexts), MAX_ANSWER_CHARS)
        return [vocab.decode(a).split("\n")[0] for a in ids]

    def log_probs(self, vocab: CharVocab, contexts: list[Context], answers: list[str],
                  known: list[float | None] | None = None) -> list[float]:
        """log p(answer, then ⁇ | context, ⁇): the answering model's log-probability of
        writing exactly that answer and closing it (:func:`kgpt.inference.answer_log_probs`).
        ``known``: those already scored (None where not), taken as they are, so an answer
        ranked once is not scored again."""
        out = list(known) if known is not None else [None] * len(answers)
        todo = [i for i, lp in enumerate(out) if lp is None]
        if todo:
            scored = answer_log_probs(self.model, self.prompts(vocab, [contexts[i] for i in todo]),
                                      [vocab.encode(answers[i], where="answer") for i in todo])
            for i, lp in zip(todo, scored):
                out[i] = lp
        return out  # type: ignore[return-value]  # every slot is filled above

    def confidences(self, vocab: CharVocab, contexts: list[Context], answers: list[str]) -> list[float]:
        """p(answer, then ⁇ | context, ⁇): the probability that the answering model writes
        exactly that answer and closes it."""
        return [math.exp(lp) for lp in self.log_probs(vocab, contexts, answers)]

    def confidence_parts(self, vocab: CharVocab, contexts: list[Context], answers: list[str],
                         known: list[float | None] | None = None) -> list[Parts]:
        """Each answer's confidence and its parts: asked directly, there is no recall, and
        the confidence is the reading part (:meth:`log_probs`, ``known`` as there)."""
        return [Parts(None, math.exp(lp), math.exp(lp)) for lp in self.log_probs(vocab, contexts, answers, known)]

    def replies(self, vocab: CharVocab, contexts: list[Context], top_k: int) -> list[Reply]:
        """Each context's answer, its confidence and its ``top_k`` most probable answers
        (``kgpt ask``). An answer found among those is not scored again: its reading part is
        the very probability the list shows."""
        ranked = self.ranked_log_probs(vocab, contexts, top_k) if top_k else [[] for _ in contexts]
        return self._replies(vocab, contexts, self.answers(vocab, contexts), ranked, top_k)

    def _replies(self, vocab: CharVocab, contexts: list[Context], answers: list[str],
                 ranked: list[list[tuple[str, float]]], top_k: int) -> list[Reply]:
        known = [dict(r).get(a) for r, a in zip(ranked, answers)]
        parts = self.confidence_parts(vocab, contexts, answers, known)
        return [Reply(a, p, [(s, math.exp(lp)) for s, lp in r[:top_k]]) for a, p, r in zip(answers, parts, ranked)]

    @property
    def confidence_kind(self) -> str:
        """What :meth:`confidences` means, in one sentence, for whoever shows it."""
        return describe(None, recalls=False)

    @property
    def recommended_threshold(self) -> float | None:
        """The --min_confidence chosen on held-out people (None: none was)."""
        return None

    def ranked(self, vocab: CharVocab, contexts: list[Context], k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable answers to each context with their probabilities, most
        probable first."""
        return [[(s, math.exp(lp)) for s, lp in r] for r in self.ranked_log_probs(vocab, contexts, k)]

    def ranked_log_probs(self, vocab: CharVocab, contexts: list[Context], k: int) -> list[list[tuple[str, float]]]:
        """:meth:`ranked` with log-probabilities (exact: :func:`kgpt.inference.top_answers`)."""
        return [[(vocab.decode(ids), lp) for ids, lp in top_answers(self.model, prompt, k, MAX_ANSWER_CHARS)]
                for prompt in self.prompts(vocab, contexts)]


class RecallAnswerer(Answerer):
    """Recalls the person's bio with ``recaller``, then ``reader`` answers from it."""

    method = "recall-read"

    def __init__(self, reader: GPT, recaller: GPT, settings: ReaderSettings, policy: AnswerPolicy = AnswerPolicy(),
                 calibration: Calibration | None = None, task: Task = BIRTHPLACE):
        super().__init__(reader)
        self.recaller = recaller
        self.settings = settings  # what the reader reads
        self.policy = policy  # how it answers
        self.calibration = calibration  # None: a checkpoint from before `kgpt calibrate`
        self.task = task  # the question forms the reader was finetuned on

    @property
    def reader(self) -> GPT:
        """The reader: the model that answers (:attr:`Answerer.model`)."""
        return self.model

    def to(self, device: torch.device) -> RecallAnswerer:
        self.recaller.to(device)
        return super().to(device)

    @property
    def recall_chars(self) -> int:
        """How much to recall, cue included: all that the reader's text can use."""
        return self.settings.source_chars(self.model.max_length)

    def spec(self) -> dict:
        """What a checkpoint records about this way of answering (beside the recaller's weights)."""
        spec = {"method": self.method, **self.settings.spec(), **self.policy.spec()}
        if self.calibration is not None:
            spec["calibration"] = self.calibration.spec()
        if not self.task.is_default:  # the assignment's checkpoints stay as they were
            spec["task"] = self.task.spec()
        return spec

    def check(self, vocab: CharVocab, question: Question, where: str | None = "questions") -> None:
        if question.name is None:
            forms = " or ".join(f'"{t.replace(NAME_FIELD, "NAME")}"' for t in question.task.questions)
            raise KgptError(f"{question_at(where, question)}: recall-then-read answers questions of the form "
                            f"{forms} (it recalls NAME's bio); got {question.text!r}")
        vocab.encode(question.name, where=question_at(where, question))  # an unknown character is the user's error
        cue = recall_cue(question.name)
        if len(cue) >= self.recaller.max_length:
            raise KgptError(f"{question_at(where, question)}: the name is {len(question.name)} characters; its recall cue "
                            f"{cue[:20]!r}… leaves nothing to recall in the model's block of "
                            f"{self.recaller.config.block_size}; shorten it")

    def contexts(self, vocab: CharVocab, questions: list[Question], where: str | None = "questions") -> list[Context]:
        for q in questions:
            self.check(vocab, q, where)
        names = sorted({q.name for q in questions})  # each person recalled once (recall is greedy: fixed)
        recalled = dict(zip(names, recall(self.recaller, vocab, names, self.recall_chars, self.policy.recall_beams)))
        return [Context(self.settings.text(recalled[q.name], q.name, self.model.max_length), recalled[q.name],
                        len(recall_cue(q.name))) for q in questions]

    def seen(self, bio: str, name: str) -> str:
        """What the reader would read, had the recall been the true bio."""
        return self.settings.text(bio, name, self.model.max_length)

    def answers(self, vocab: CharVocab, contexts: list[Context]) -> list[str]:
        if not self.policy.extracts:
            return super().answers(vocab, contexts)
        return [best[0][0] if best else "" for best in self.ranked_log_probs(vocab, contexts, 1)]

    def replies(self, vocab: CharVocab, contexts: list[Context], top_k: int) -> list[Reply]:
        """Extracting, the spans are scored once: the answer is the first of the ranking."""
        if not self.policy.extracts:
            return super().replies(vocab, contexts, top_k)
        ranked = self.ranked_log_probs(vocab, contexts, max(top_k, 1))
        return self._replies(vocab, contexts, [r[0][0] if r else "" for r in ranked], ranked, top_k)

    def confidences(self, vocab: CharVocab, contexts: list[Context], answers: list[str]) -> list[float]:
        """The confidence of each answer, covering the recall as well as the reading
        (:mod:`kgpt.confidence`): calibrated where the checkpoint has a calibration."""
        return [p.combined for p in self.confidence_parts(vocab, contexts, answers)]

    def confidence_parts(self, vocab: CharVocab, contexts: list[Context], answers: list[str],
                         known: list[float | None] | None = None) -> list[Parts]:
        signal = self.calibration.signal if self.calibration is not None else SIGNAL
        out = []
        for recall_lps, reading_lp in self.part_log_probs(vocab, contexts, answers, known):
            recall_lp = recall_lps[signal]
            out.append(Parts(math.exp(recall_lp), math.exp(reading_lp), combined(self.calibration, recall_lp, reading_lp)))
        return out

    def part_log_probs(self, vocab: CharVocab, contexts: list[Context], answers: list[str],
                       known: list[float | None] | None = None) -> list[tuple[dict[str, float], float]]:
        """For each answer, the recall part's log-probability by every signal of
        :data:`kgpt.confidence.SIGNALS` and the reading part's log-probability (``known``:
        as in :meth:`Answerer.log_probs`). Each distinct recall is read once by the
        recaller, teacher-forced."""
        reading = self.log_probs(vocab, contexts, answers, known)
        recalls = sorted({c.recall for c in contexts})
        by_recall = dict(zip(recalls, token_log_probs(self.recaller, [vocab.encode(r, where="recall") for r in recalls])))
        return [(recall_log_probs(by_recall[c.recall], c.recall, c.cue_chars, a), lp)
                for c, a, lp in zip(contexts, answers, reading)]

    @property
    def confidence_kind(self) -> str:
        return describe(self.calibration, recalls=True)

    @property
    def recommended_threshold(self) -> float | None:
        return None if self.calibration is None else self.calibration.threshold

    def trusts_recall(self, parts: Parts) -> bool:
        """Whether the recall an answer was read from looks stored rather than made up: its
        recall part at or above the calibration's recall threshold, chosen on held-out
        people (without one, :data:`UNCALIBRATED_RECALL_TRUST`)."""
        floor = UNCALIBRATED_RECALL_TRUST if self.calibration is None else self.calibration.recall_threshold
        return parts.recall is not None and parts.recall >= floor

    def ranked_log_probs(self, vocab: CharVocab, contexts: list[Context], k: int) -> list[list[tuple[str, float]]]:
        """Extracting: the ``k`` spans of the text (:func:`kgpt.data.words.spans`) the
        reader is most likely to write, each scored exactly, ties in the text's order; an
        empty list for a text with no word in it."""
        if not self.policy.extracts:
            return super().ranked_log_probs(vocab, contexts, k)
        candidates = [spans(c.text, self.policy.max_words, self.settings.answer_chars) for c in contexts]
        scores = continuation_log_probs(self.model, self.prompts(vocab, contexts),
                                        [[vocab.encode(s, where="answer") for s in cs] for cs in candidates])
        out = []
        for cs, ss in zip(candidates, scores):
            order = sorted(range(len(cs)), key=lambda i: (-ss[i], i))[:k]
            out.append([(cs[i], ss[i]) for i in order])
        return out


def answerer(model: GPT | Answerer) -> Answerer:
    """A bare model is asked the question itself."""
    return model if isinstance(model, Answerer) else Answerer(model)


def load_answerer(
    path: str | Path, vocab: CharVocab, variant: str | None = None, bottleneck_dim: int | None = None,
    block_size: int | None = None, answer_by: str | None = None, recall_beams: int | None = None,
) -> Answerer:
    """The way a saved model answers: asked directly, or, for a recall-then-read
    checkpoint, its reader and its recaller (one file holds both). ``answer_by`` (one of
    :data:`ANSWER_BY`) and ``recall_beams`` override the saved answering policy (None: as saved)."""
    model, ckpt = load_model(path, vocab, variant, bottleneck_dim, block_size)
    spec = ckpt.answering
    if spec is None:
        for flag, value in (("answer_by", answer_by), ("recall_beams", recall_beams)):
            if value is not None:
                raise KgptError(f"--{flag} chooses how a recall-then-read model answers; {path} answers the question itself")
        return Answerer(model)
    try:
        if spec["method"] != RecallAnswerer.method:
            raise ValueError(spec["method"])
        settings = ReaderSettings.from_spec(spec)
        policy = AnswerPolicy.from_spec(spec)
        calibration = Calibration.from_spec(spec["calibration"]) if "calibration" in spec else None
        task = Task.from_spec(spec["task"]) if "task" in spec else BIRTHPLACE
    except (KeyError, TypeError, ValueError, KgptError):
        raise KgptError(f"checkpoint {path} answers in a way this kgpt does not know ({spec!r}); "
                        "use the kgpt version that wrote it") from None
    if answer_by is not None:
        policy = replace(policy, answer_by=answer_by)
    if recall_beams is not None:
        policy = replace(policy, recall_beams=recall_beams)
    recaller = GPT(model.config)
    load_state(recaller, ckpt.group(RECALLER), path)
    return RecallAnswerer(model, recaller, settings, policy, calibration, task)
