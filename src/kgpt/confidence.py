"""How sure recall-then-read is of an answer: sure of the recall, sure of the reading, both.

The reader's probability of its answer (:meth:`kgpt.answering.Answerer.confidences`)
says how sure it is of reading the text, not whether the text is true: asked about a
person who does not exist, the recaller still recalls a fluent bio and the reader reads a
place off it with p ≈ 1. What tells a stored bio from an invented one is the recaller's
own probability of the answer's characters where they stand in its recall: a stored fact
is recalled with every character near-certain, an invented one has a character where the
recaller hesitated (docs/confidence.md). The two measure different failures (a made-up
recall; a misread text), so a confidence needs both:

* :class:`Parts`: the recall part (the recaller's probability of the answer's least
  probable character in its recall, :func:`recall_log_prob`), the reading part (the
  reader's probability of writing the answer and closing it) and the combined confidence;
* :class:`Calibration`: the map from the two parts to the probability that the answer is
  right, a logistic regression on their logits, fit after finetuning on training people
  held out of the reader's examples plus generated made-up names (:func:`fit`), never on
  dev; it also carries the recommended abstention threshold and the recall part below
  which a recall is not trusted, both chosen on those same held-out people;
* without a calibration (checkpoints written before it), the combined confidence is the
  product of the two parts: it still covers the recall, but it is not a calibrated
  probability, and everything that shows it says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from kgpt.data.corpus import Question, unseen_names
from kgpt.data.words import whole_word_pattern

# Logits are clipped here: a probability of 1.0 in float arithmetic would give +inf, and
# beyond ±20 (p within 2e-9 of 0 or 1) there is nothing left to tell apart.
LOGIT_CLIP = 20.0
# The share of held-out real people the recommended threshold keeps answered, and the
# share whose recall is trusted: the operating point (answer 90% of real people).
COVERAGE = 0.9
# How the recall part reads the recaller's per-character log-probabilities (the one used
# is chosen on validation; docs/confidence.md): the answer's least probable character,
# the mean over the answer's characters, the least probable character of the recall
# from the cue up to the answer's end, or that times the recaller's mean per-character
# probability of the cue itself (is the name one it read a bio open with? A made-up name
# joins a known given name to a family name it never followed).
SIGNALS = ("answer-min", "answer-mean", "prefix-min", "name-prefix")
SIGNAL = "answer-min"  # the recall part without a calibration, and of calibrations saved before signals
# `kgpt calibrate`'s default: chosen by validation on both half-hour recallers, where it
# left 0-7 of 200 made-up names answered against 88-126 for prefix-min (docs/confidence.md).
CALIBRATION_SIGNAL = "name-prefix"
RECALL_PARTS = {  # what each signal's recall part is, for the reports
    "answer-min": "the recaller's probability of the answer's least probable character where it stands in the recalled bio",
    "answer-mean": "the recaller's mean per-character probability of the answer where it stands in the recalled bio",
    "prefix-min": "the recaller's probability of the least probable character of its recall, up to the answer's end",
    "name-prefix": ("the recaller's probability of the least probable character of its recall up to the answer's end, "
                    "times its mean per-character probability of the name it was cued with"),
}
# The weight of all made-up names together in the fit, as a share of the real people's.
# Made-up names teach the map which recall parts mean an invented bio, but a question
# file of real people (dev) has none: at their full count (200 beside 400 people) they
# pull every confidence down wherever the recall part does not set them apart, and the
# map stops being calibrated for real people (measured on a synthetic recaller that
# stores little: dev ECE 0.22, docs/confidence.md). At a tenth, a recall part that does
# set them apart still gets its weight (separable data drives it up whatever the count),
# and where it does not, the real people's confidences move by a tenth at most.
MADE_UP_SHARE = 0.1


@dataclass(frozen=True)
class Parts:
    """One answer's confidence and what it is made of."""

    recall: float | None  # the recall part (None: nothing was recalled, the question was asked)
    reading: float  # the reader's probability of writing the answer and closing it
    combined: float  # the confidence: calibrated, or the product of the parts without a calibration


def logit(log_p: float) -> float:
    """log(p / (1 - p)) of a probability given as its log, clipped to ±:data:`LOGIT_CLIP`."""
    if log_p >= 0.0:
        return LOGIT_CLIP
    if log_p == -math.inf:
        return -LOGIT_CLIP
    value = log_p - math.log(-math.expm1(log_p))
    return max(-LOGIT_CLIP, min(LOGIT_CLIP, value))


def answer_at(recall: str, cue_chars: int, answer: str) -> tuple[int, int] | None:
    """Where ``answer`` stands in ``recall``: its first whole-word occurrence after the
    cue's ``cue_chars`` characters (the reader reads nothing of the cue), or None."""
    if not answer:
        return None
    found = whole_word_pattern(answer).search(recall, cue_chars)
    return None if found is None else found.span()


def recall_log_probs(char_log_probs: list[float], recall: str, cue_chars: int, answer: str) -> dict[str, float]:
    """The recall part's log-probability by each of :data:`SIGNALS`.

    ``char_log_probs[t - 1]`` is the recaller's log p(recall[t] | recall[:t]). An answer
    that does not stand in the recall (written freely, or empty) gets every signal from
    the whole recall after the cue: nothing in the recall vouches for it more than that.
    """
    after_cue = char_log_probs[max(cue_chars - 1, 0) :] or [0.0]
    cue = char_log_probs[: max(cue_chars - 1, 0)]  # the cue's characters after its first
    name = sum(cue) / len(cue) if cue else 0.0
    span = answer_at(recall, cue_chars, answer)
    if span is None:
        worst = min(after_cue)
        return {"answer-min": worst, "answer-mean": sum(after_cue) / len(after_cue), "prefix-min": worst,
                "name-prefix": name + worst}
    a, b = span
    chars = char_log_probs[a - 1 : b - 1]
    prefix = min(char_log_probs[max(cue_chars - 1, 0) : b - 1])
    return {"answer-min": min(chars), "answer-mean": sum(chars) / len(chars), "prefix-min": prefix,
            "name-prefix": name + prefix}


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class Calibration:
    """The map from a recall part and a reading part to the probability of being right,
    with the thresholds chosen with it; a checkpoint keeps it in its answering spec."""

    weights: tuple[float, float, float]  # bias, reading logit, recall logit
    threshold: float  # recommended --min_confidence: keeps COVERAGE of the held-out real people answered
    recall_threshold: float  # a recall part below this is not trusted (COVERAGE of the held-out recalls are)
    signal: str = SIGNAL
    fitted_on: dict = field(default_factory=dict)  # what it was fit on: counts and the made-up names' seed

    def combine(self, recall_log_p: float, reading_log_p: float) -> float:
        bias, w_reading, w_recall = self.weights
        return sigmoid(bias + w_reading * logit(reading_log_p) + w_recall * logit(recall_log_p))

    def spec(self) -> dict:
        return {**asdict(self), "weights": list(self.weights)}

    @classmethod
    def from_spec(cls, spec: dict) -> Calibration:
        """The calibration a checkpoint describes; ValueError where it is not one."""
        try:
            weights = tuple(float(w) for w in spec["weights"])
            made = cls(weights, float(spec["threshold"]), float(spec["recall_threshold"]),
                       str(spec.get("signal", SIGNAL)), dict(spec.get("fitted_on") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a calibration: {e}") from None
        if len(weights) != 3 or not all(map(math.isfinite, weights)) or made.signal not in SIGNALS:
            raise ValueError("not a calibration: three finite weights and a known signal")
        return made


def combined(calibration: Calibration | None, recall_log_p: float, reading_log_p: float) -> float:
    """The confidence of an answer from its two parts' log-probabilities."""
    if calibration is None:
        return math.exp(recall_log_p + reading_log_p)
    return calibration.combine(recall_log_p, reading_log_p)


def describe(calibration: Calibration | None, recalls: bool) -> str:
    """What the confidence is, in one sentence, for every report that shows it."""
    if not recalls:
        return ("Confidence is the model's probability of its own answer: the product of p(character | everything "
                "before it) over the answer and the closing ⁇.")
    signal = SIGNAL if calibration is None else calibration.signal
    parts = (f"the recall part ({RECALL_PARTS[signal]}: is the bio stored, or made up?) and the reading part "
             "(the reader's probability of writing the answer and closing it: did it read the text right?)")
    if calibration is None:
        return (f"Confidence is the product of two parts, {parts}. This checkpoint has no calibration "
                "(`kgpt calibrate` fits one on people held out of the reader's finetuning), so the product is "
                "not a calibrated probability.")
    fit = calibration.fitted_on
    return (f"Confidence is the probability that the answer is right, from two parts, {parts}, mapped by a "
            f"logistic regression fit on {fit.get('people', '?')} training people held out of the reader's "
            f"finetuning and {fit.get('made_up', '?')} generated made-up names (never on this file).")


def fit_logistic(features: list[tuple[float, float]], labels: list[bool], l2: float = 1e-3,
                 steps: int = 100, weights: list[float] | None = None) -> tuple[float, float, float]:
    """(bias, w1, w2) of a logistic regression by Newton's method, each example counted
    ``weights`` times (default once), a small L2 penalty on w1 and w2 (so separable data,
    such as every made-up name below every real person, still gives finite weights).
    Deterministic: no random start, no stochastic steps."""
    import torch  # here, not at the top: the command line imports SIGNALS without loading torch

    x = torch.tensor([[1.0, *f] for f in features], dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.float64)
    c = torch.tensor(weights if weights is not None else [1.0] * len(labels), dtype=torch.float64)
    w = torch.zeros(3, dtype=torch.float64)
    penalty = torch.diag(torch.tensor([0.0, l2, l2], dtype=torch.float64)) * float(c.sum())
    for _ in range(steps):
        p = torch.sigmoid(x @ w)
        grad = x.T @ (c * (p - y)) + penalty @ w
        hess = x.T @ (x * (c * p * (1 - p)).unsqueeze(1)) + penalty + 1e-9 * torch.eye(3, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        w = w - step
        if float(step.abs().max()) < 1e-10:
            break
    return tuple(float(v) for v in w)  # type: ignore[return-value]


def keep_threshold(values: list[float], coverage: float = COVERAGE) -> float:
    """The value that keeps the ⌈coverage·n⌉ highest of ``values`` at or above it (the
    analysis's own rule for its coverage rows, :func:`kgpt.analysis.abstention_rows`)."""
    if not values:
        raise ValueError("no values to choose a threshold from")
    ranked = sorted(values, reverse=True)
    return ranked[max(1, math.ceil(round(coverage * len(ranked), 9))) - 1]


@dataclass(frozen=True)
class Scored:
    """One calibration example: the two parts' log-probabilities, and whether it is right
    (a made-up name's answer never is)."""

    recall_log_p: float
    reading_log_p: float
    correct: bool
    made_up: bool = False


def fit(examples: list[Scored], signal: str = SIGNAL, coverage: float = COVERAGE, seed: int | None = None,
        made_up_share: float = MADE_UP_SHARE) -> Calibration:
    """A :class:`Calibration` fit on held-out real people and made-up names (together
    weighing ``made_up_share`` of the real people); the thresholds are chosen on the real
    people alone (they are what --min_confidence must keep)."""
    real = [e for e in examples if not e.made_up]
    if not real:
        raise ValueError("no held-out real people to calibrate on")
    n_made_up = len(examples) - len(real)
    each = made_up_share * len(real) / n_made_up if n_made_up else 0.0
    weights = fit_logistic([(logit(e.reading_log_p), logit(e.recall_log_p)) for e in examples],
                           [e.correct for e in examples], weights=[each if e.made_up else 1.0 for e in examples])
    draft = Calibration(weights, 0.0, 0.0, signal)
    return Calibration(
        weights,
        threshold=keep_threshold([draft.combine(e.recall_log_p, e.reading_log_p) for e in real], coverage),
        recall_threshold=math.exp(keep_threshold([e.recall_log_p for e in real], coverage)),
        signal=signal,
        fitted_on={"people": len(real), "made_up": n_made_up, "made_up_seed": seed, "coverage": coverage,
                   "made_up_share": made_up_share},
    )


def operating_point(examples: list[Scored], confidence, threshold: float) -> dict:
    """What answering at ``confidence(example) >= threshold`` does on ``examples``: real
    people answered and right among them, made-up names still answered."""
    real = [e for e in examples if not e.made_up]
    made_up = [e for e in examples if e.made_up]
    answered = [e for e in real if confidence(e) >= threshold]
    return {"threshold": threshold, "answered": len(answered), "people": len(real),
            "correct": sum(e.correct for e in answered),
            "made_up_answered": sum(confidence(e) >= threshold for e in made_up), "made_up": len(made_up)}


# Made-up names for calibration are drawn with this seed, never the analysis's (0), so the
# names a report counts as "unseen" are never ones the calibration was fit on.
MADE_UP_SEED = 1
N_MADE_UP = 200


def held_out_scores(asker, vocab, documents: list[str], questions: list, n_made_up: int = N_MADE_UP,
                    seed: int = MADE_UP_SEED, chunk: int = 512) -> list[tuple[dict[str, float], float, bool, bool]]:
    """For each held-out question (people the reader never learnt from) and for
    ``n_made_up`` generated names that occur nowhere in the corpus: the recall part's
    log-probability by every signal, the reading part's, whether the answer is right, and
    whether the name is made up. ``asker``: a :class:`kgpt.answering.RecallAnswerer`."""

    names = [q.name for q in questions if q.name]
    task = questions[0].task if questions else asker.task
    made_up = [Question(task.question(n), None, i, task)
               for i, n in enumerate(unseen_names(names, "\n".join(documents), n_made_up, seed), start=1)]
    out = []
    for group, is_made_up in ((questions, False), (made_up, True)):
        for i in range(0, len(group), chunk):
            batch = group[i : i + chunk]
            contexts = asker.contexts(vocab, batch, "generated question" if is_made_up else "calibration file")
            answers = asker.answers(vocab, contexts)
            for q, a, (recall, reading) in zip(batch, answers, asker.part_log_probs(vocab, contexts, answers)):
                out.append((recall, reading, (not is_made_up) and a == q.answer, is_made_up))
    return out


def examples(scores: list[tuple[dict[str, float], float, bool, bool]], signal: str = SIGNAL) -> list[Scored]:
    """:func:`held_out_scores` as :class:`Scored` examples for one signal."""
    return [Scored(recall[signal], reading, correct, made_up) for recall, reading, correct, made_up in scores]
