"""What a trained model knows, and how sure it is.

The assignment ends with two cautions about knowledge in a pretrained model: from an
answer alone one cannot tell a retrieved birthplace from an invented one, and a model
asked about a person it never read about still names a place. This module gives every
answer a confidence, the model's own probability of writing exactly that answer
(:func:`kgpt.inference.answer_log_probs`), and measures how far it can be trusted:

* calibration: are answers given with confidence p right about p of the time
  (reliability diagram, expected calibration error)?
* abstention: if the model answers only above a confidence threshold, how accurate is
  it, and on how many questions does it still answer (coverage)?
* errors: the most frequent wrong answers; accuracy split by whether the gold place is
  in the person's bio (could pretraining have stored it?) and among the finetuning
  answers (could finetuning have taught the string itself?); per person, storage (cued
  completion: the pretrained model completes the bio with the place) against access (the
  finetuned model answers the question);
* unseen people: the same question about generated names that occur nowhere in the
  corpus, whose every answer is made up: with what confidence does the model give them?

:func:`analyze` runs the models and returns raw per-question records as a JSON-ready
dict. :func:`render_markdown` and :func:`plot_figures` compute every number and figure
from that dict alone, so ``analysis.md`` can be regenerated from ``analysis.json`` and
never disagrees with it.
"""

from __future__ import annotations

import io
import json
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kgpt.answering import Answerer
from kgpt.data.corpus import Question, asked_name, bios_by_name, person_bio
from kgpt.errors import KgptError
from kgpt.evaluate import MAX_ANSWER_CHARS, answer_prompts, answerer, predict_places
from kgpt.inference import answer_log_probs, top_answers
from kgpt.io import atomic_write_bytes
from kgpt.model import GPT
from kgpt.probe import cued_completions
from kgpt.vocab import CharVocab

FORMAT = "kgpt-analysis/1"
N_BINS = 10
COVERAGES = (1.0, 0.9, 0.75, 0.5, 0.25, 0.1)
N_UNSEEN = 50
FIGURES = ("reliability.png", "coverage.png", "confidence.png")


def answer_confidences(model: GPT | Answerer, vocab: CharVocab, questions: list[Question], answers: list[str]) -> list[float]:
    """p(answer ⁇ | what the answering model read ⁇) for each question's answer (see
    :func:`answer_log_probs`); for a bare model, what it read is the question."""
    prompts = answer_prompts(model, vocab, questions)
    log_probs = answer_log_probs(answerer(model).model, prompts, [vocab.encode(a, where="answer") for a in answers])
    return [math.exp(lp) for lp in log_probs]


# --- kgpt ask ------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The greedy answer to one question, its confidence and the most probable answers."""

    question: str
    answer: str
    confidence: float
    alternatives: list[tuple[str, float]]  # (answer, probability), most probable first
    name_in_corpus: bool | None  # None: not a "Where was NAME born?" question
    recall: str | None = None  # the text recalled and read to answer (recall-then-read)


def answer_questions(
    model: GPT | Answerer, vocab: CharVocab, documents: list[str], texts: list[str], top_k: int = 3, first: int = 1
) -> list[Answer | KgptError]:
    """Answer each question (numbered from ``first`` in errors); a question the model
    cannot be asked is its own error.

    One bad question (a character outside the vocabulary, too long for the block) must
    not cost the answers to the others, so errors are returned in its place, not raised.
    """
    asker = answerer(model)
    results: list[Answer | KgptError | None] = [None] * len(texts)
    valid: list[tuple[Question, list[int]]] = []
    asked = [Question(text, None, i) for i, text in enumerate(texts, start=first)]
    asker.prepare(vocab, asked)  # one batch of recalls, not one per question
    for q in asked:
        try:
            if not q.text.strip():
                raise KgptError(f"question {q.line} is empty; ask \"Where was NAME born?\"")
            valid.append((q, answer_prompts(asker, vocab, [q], where=None)[0]))
        except KgptError as e:
            results[q.line - first] = e
    questions = [q for q, _ in valid]
    predictions = predict_places(asker, vocab, questions)
    confidences = answer_confidences(asker, vocab, questions, predictions)
    corpus_text = "\n".join(documents)
    for (q, prompt), prediction, confidence in zip(valid, predictions, confidences):
        found = top_answers(asker.model, prompt, top_k, MAX_ANSWER_CHARS) if top_k else []
        name = asked_name(q.text)
        results[q.line - first] = Answer(
            q.text, prediction, confidence, [(vocab.decode(ids), math.exp(lp)) for ids, lp in found],
            None if name is None else name in corpus_text, asker.recall(q),
        )
    return results  # type: ignore[return-value]  # every slot is filled above


def _show(answer: str) -> str:
    """An answer as it reads, quoted where plain text would hide something (an empty
    answer, edge spaces, a newline)."""
    plain = answer and answer == answer.strip() and answer.isprintable()
    return answer if plain else json.dumps(answer, ensure_ascii=False)


def _cell(text: str) -> str:
    """Text for a markdown table cell."""
    return _show(text).replace("|", "\\|")


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def format_answer(a: Answer) -> str:
    """What ``kgpt ask`` prints for one answer."""
    lines = [a.question, f"  answer  {_show(a.answer)}  (p = {_p(a.confidence)})"]
    if a.recall is not None:
        lines.append(f"  recall  {_show(a.recall)}")
    if a.alternatives:
        lines.append(f"  top {len(a.alternatives)}   " + " | ".join(f"{_p(p)} {_show(s)}" for s, p in a.alternatives))
    if a.name_in_corpus is False:
        lines.append(f"  note    \"{asked_name(a.question)}\" occurs nowhere in the corpus: the answer is made up")
    return "\n".join(lines)


# --- the analysis of an evaluation -----------------------------------------------------


def unseen_names(names: list[str], corpus_text: str, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` names that occur nowhere in the corpus, built from the names asked about.

    A given name of one person with the family name of another ("Bryan" + "Wadephul"):
    they look like the names the model was asked about and use only characters it
    knows, but the model cannot have read anything about such a person. Deterministic
    for a given seed.
    """
    split = [name.rsplit(" ", 1) for name in names if " " in name]
    firsts, lasts = sorted({s[0] for s in split}), sorted({s[1] for s in split})
    rng = random.Random(seed)
    chosen: list[str] = []
    for _ in range(50 * n if firsts and lasts else 0):
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        if name not in corpus_text and name not in chosen:
            chosen.append(name)
            if len(chosen) == n:
                break
    return chosen


def analyze(
    model: GPT | Answerer,
    vocab: CharVocab,
    documents: list[str],
    questions: list[Question],
    predictions: list[str],
    training_answers: set[str] | None = None,
    pretrained: GPT | None = None,
    seed: int = 0,
    n_unseen: int = N_UNSEEN,
) -> dict:
    """Per-question records for ``analysis.json``: everything the report is computed from.

    ``training_answers``: the places of the finetuning file (None: not given, so whether
    a gold place was among them is unknown). ``pretrained``: the model before
    finetuning, to probe which birthplaces it completes the bios with (cued completion).
    """
    if any(q.answer is None for q in questions):
        raise KgptError("the analysis compares answers with places; give a question file of QUESTION<TAB>PLACE lines")
    asker = answerer(model)
    confidences = answer_confidences(asker, vocab, questions, predictions)
    bios = bios_by_name(documents)
    recited = cued_completions(pretrained, vocab, documents, questions) if pretrained is not None else None
    records = []
    for i, (q, prediction, confidence) in enumerate(zip(questions, predictions, confidences)):
        name = asked_name(q.text)
        record = {
            "line": q.line, "question": q.text, "name": name, "prediction": prediction, "gold": q.answer,
            "correct": prediction == q.answer, "confidence": confidence,
            # None: nobody of that name opens a bio, so the bio cannot be checked
            "in_bio": None if name not in bios else person_bio(bios, name, q.answer) is not None,
            "in_training_answers": None if training_answers is None else q.answer in training_answers,
            "cued_completion": None if recited is None else recited[i],
        }
        recall = asker.recall(q)
        if recall is not None:
            record["recall"] = recall
            record["error"] = recall_error(record, recall)
        records.append(record)
    names = [r["name"] for r in records if r["name"]]
    unseen = unseen_names(names, "\n".join(documents), n_unseen, seed)
    unseen_questions = [Question(f"Where was {name} born?", None, i) for i, name in enumerate(unseen, start=1)]
    unseen_predictions = predict_places(asker, vocab, unseen_questions, where="generated question")
    unseen_confidences = answer_confidences(asker, vocab, unseen_questions, unseen_predictions)
    return {
        "format": FORMAT,
        "answering": asker.method,
        "n_bins": N_BINS,
        "coverages": list(COVERAGES),
        "training_answers_known": training_answers is not None,
        "pretrained_probe": pretrained is not None,
        "questions": records,
        "unseen": {
            "seed": seed,
            "people": [
                {"name": n, "question": q.text, "prediction": p, "confidence": c}
                for n, q, p, c in zip(unseen, unseen_questions, unseen_predictions, unseen_confidences)
            ],
        },
    }


def recall_error(record: dict, recall: str) -> str | None:
    """Where a recall-then-read answer went wrong (None: it is right): ``not in bio`` (no
    bio of the person names the gold place, so nothing could be recalled), ``memory``
    (the recall lacks the place: storage or recall failed), ``reading`` (the place was in
    the recall and the reader took something else)."""
    if record["correct"]:
        return None
    if not record["in_bio"]:
        return "not in bio"
    return "reading" if record["gold"] in recall else "memory"


# --- figures' data: pure functions of the records -------------------------------------


def _bin(low: float, high: float, members: list[dict]) -> dict:
    """Count, mean confidence and accuracy of the answers in one bin (None where empty)."""
    return {
        "low": low, "high": high, "count": len(members),
        "confidence": statistics.fmean(r["confidence"] for r in members) if members else None,
        "accuracy": sum(r["correct"] for r in members) / len(members) if members else None,
    }


def reliability_bins(records: list[dict], n_bins: int) -> list[dict]:
    """Equal-width confidence bins over [0, 1], the last one closed: the standard
    reliability diagram, comparable between models."""
    bins = [[] for _ in range(n_bins)]
    for r in records:
        bins[min(int(r["confidence"] * n_bins), n_bins - 1)].append(r)
    return [_bin(i / n_bins, (i + 1) / n_bins, b) for i, b in enumerate(bins)]


def equal_mass_bins(records: list[dict], n_bins: int) -> list[dict]:
    """The answers by confidence in ``n_bins`` groups of (nearly) equal size; low and
    high are the least and most confident answer of each.

    A model whose answers all have confidence below 0.1 fills one equal-width bin and
    shows nothing; equal-mass bins still show whether more confident means more right.
    """
    ranked = sorted(records, key=lambda r: r["confidence"])
    k = min(n_bins, len(ranked))
    groups = [ranked[i * len(ranked) // k : (i + 1) * len(ranked) // k] for i in range(k)]
    return [_bin(g[0]["confidence"], g[-1]["confidence"], g) for g in groups]


def calibration_error(bins: list[dict]) -> float:
    """Σ over bins of (share of the answers in the bin) × |accuracy − mean confidence|:
    the expected calibration error for equal-width bins."""
    n = sum(b["count"] for b in bins)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])


def coverage_curve(records: list[dict]) -> list[dict]:
    """For each confidence value c that occurs: answering only where confidence ≥ c,
    the share of questions answered (coverage) and the accuracy on them, most confident first."""
    n = len(records)
    curve = []
    for c in sorted({r["confidence"] for r in records}, reverse=True):
        answered = [r for r in records if r["confidence"] >= c]
        curve.append({"threshold": c, "coverage": len(answered) / n,
                      "accuracy": sum(r["correct"] for r in answered) / len(answered)})
    return curve


def abstention_rows(analysis: dict) -> list[dict]:
    """For each target coverage c: the threshold that keeps the ⌈c·n⌉ most confident
    answers, how many it keeps (ties may add some), their accuracy, and how many unseen
    people it would still answer. Targets rather than fixed thresholds, because one
    model's answers may all sit below 0.1 and another's above 0.5."""
    records, unseen = analysis["questions"], analysis["unseen"]["people"]
    ranked = sorted((r["confidence"] for r in records), reverse=True)
    rows = []
    for c in analysis["coverages"]:
        t = ranked[max(1, math.ceil(round(c * len(ranked), 9))) - 1]
        answered = [r for r in records if r["confidence"] >= t]
        rows.append({
            "coverage": c, "threshold": t, "answered": len(answered), "total": len(records),
            "correct": sum(r["correct"] for r in answered),
            "unseen_answered": sum(u["confidence"] >= t for u in unseen), "unseen_total": len(unseen),
        })
    return rows


def wrong_answers(records: list[dict], n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` answers most often given wrongly, with how often (ties by answer)."""
    counts = Counter(r["prediction"] for r in records if not r["correct"])
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def accuracy_by(records: list[dict], key: str) -> dict[bool | None, tuple[int, int]]:
    """(correct, total) for each value of a yes/no/unknown field, in the order yes, no, unknown."""
    split = {}
    for value in (True, False, None):
        group = [r for r in records if r[key] is value]
        if group:
            split[value] = (sum(r["correct"] for r in group), len(group))
    return split


def storage_access(records: list[dict]) -> dict[tuple[bool | None, bool], int]:
    """People by (cued completion before finetuning, answered right after it)."""
    return Counter((r["cued_completion"], r["correct"]) for r in records)


# --- the report ----------------------------------------------------------------------


def _share(k: int, n: int) -> str:
    return f"{k}/{n} = {100.0 * k / n:.1f}%" if n else f"{k}/{n}"


def render_markdown(analysis: dict) -> str:
    """analysis.md, every number computed from ``analysis`` (the content of analysis.json)."""
    records, n_bins = analysis["questions"], analysis["n_bins"]
    unseen = analysis["unseen"]["people"]
    n = len(records)
    if not n:
        return "# Answers, confidence and errors\n\nNo questions.\n"
    correct = sum(r["correct"] for r in records)
    confidences = [r["confidence"] for r in records]
    width_bins, mass_bins = reliability_bins(records, n_bins), equal_mass_bins(records, n_bins)
    out = [
        "# Answers, confidence and errors",
        "",
        "Confidence is the model's probability of its own greedy answer: the product of "
        "p(character | everything before it) over the answer and the closing ⁇. Every "
        "number here is computed from analysis.json.",
        "",
        f"- questions: {n}; accuracy {_share(correct, n)}",
        f"- mean confidence {statistics.fmean(confidences):.3f} (median {statistics.median(confidences):.3f}); "
        f"expected calibration error {calibration_error(width_bins):.3f} ({n_bins} equal-width bins), "
        f"{calibration_error(mass_bins):.3f} over {len(mass_bins)} equal-mass bins",
        "",
        "## Calibration",
        "",
        f"![reliability diagram]({FIGURES[0]})",
        "",
    ]
    for title, bins, edge in (("Equal-width bins (left)", width_bins, lambda x: f"{x:.1f}"),
                              ("Equal-mass bins (right, zoomed to the confidences that occur)", mass_bins, _p)):
        out += [f"{title}:", "", "| confidence | answers | mean confidence | accuracy |", "|---|---|---|---|"]
        out += [f"| {edge(b['low'])}–{edge(b['high'])} | {b['count']} | {_p(b['confidence'])} | "
                f"{100 * b['accuracy']:.1f}% |" for b in bins if b["count"]]
        out.append("")
    out += [
        "## Abstaining below a confidence threshold",
        "",
        f"![accuracy against coverage]({FIGURES[1]})",
        "",
        "| answer the most confident | threshold (confidence ≥) | questions answered | accuracy on them | "
        "unseen people still answered |",
        "|---|---|---|---|---|",
    ]
    for row in abstention_rows(analysis):
        out.append(f"| {100 * row['coverage']:.0f}% | {_p(row['threshold'])} | {_share(row['answered'], row['total'])} | "
                   f"{100.0 * row['correct'] / row['answered']:.1f}% | {_share(row['unseen_answered'], row['unseen_total'])} |")
    out += ["", "## Most frequent wrong answers", "", "| answer | times given wrongly | share of wrong answers |", "|---|---|---|"]
    wrong = n - correct
    out += [f"| {_cell(a)} | {k} | {100.0 * k / wrong:.1f}% |" for a, k in wrong_answers(records)]
    out += ["", "## Accuracy by where the gold place occurs", "", "| gold place | yes | no | unknown |", "|---|---|---|---|"]
    for key, label in (("in_bio", "occurs in the person's bio"), ("in_training_answers", "is among the finetuning answers")):
        split = accuracy_by(records, key)
        cells = [_share(*split[v]) if v in split else "—" for v in (True, False, None)]
        out.append(f"| {label} | {' | '.join(cells)} |")
    if not analysis["training_answers_known"]:
        out += ["", "The finetuning file was not given, so whether a gold place is among its answers is unknown."]
    if analysis.get("answering") == "recall-read":
        errors = Counter(r["error"] for r in records)
        out += ["", "## Recall, then read: where the wrong answers went wrong", "",
                "Each answer was read off the text the pretrained model recalled from `NAME.` "
                "(the `recall` of each question in analysis.json).", "",
                "| error | questions | share of wrong answers |", "|---|---|---|"]
        out += [f"| {label} | {errors.get(key, 0)} | {_share(errors.get(key, 0), n - correct)} |" for key, label in (
            ("memory", "memory: the gold place is not in the recall"),
            ("reading", "reading: the place is in the recall, another answer was read"),
            ("not in bio", "not in bio: no bio of the person names the gold place"))]
        in_recall = sum(r["gold"] in r["recall"] for r in records)
        out += ["", f"The gold place is in the recall for {_share(in_recall, n)} of the questions."]
    out += ["", "## Storage against access, per person", ""]
    if analysis["pretrained_probe"]:
        sa = storage_access(records)
        out += [
            "Stored: the pretrained model, reading the person's bio up to the place, continues "
            "with the place. Accessed: the finetuned model answers the question right.",
            "",
            "| before finetuning | answered right | answered wrong |",
            "|---|---|---|",
        ]
        for value, label in ((True, "cued completion gives the place (stored)"), (False, "cued completion does not give it"),
                             (None, "not probed (no bio names the place within the block)")):
            out.append(f"| {label} | {sa.get((value, True), 0)} | {sa.get((value, False), 0)} |")
    else:
        out.append("No pretrained model was given (`--pretrained_params_path`), so storage was not probed.")
    out += ["", "## People the model never read about", ""]
    if unseen:
        u_conf = [u["confidence"] for u in unseen]
        answers = Counter(u["prediction"] for u in unseen).most_common(3)
        out += [
            f"{len(unseen)} generated names (seed {analysis['unseen']['seed']}) that occur nowhere in the corpus, "
            "asked the same question. Every answer is made up; the model has no way to say so but its confidence.",
            "",
            f"- mean confidence {statistics.fmean(u_conf):.3f} (median {statistics.median(u_conf):.3f}), against "
            f"{statistics.fmean(confidences):.3f} (median {statistics.median(confidences):.3f}) for the people in the question file",
            "- most frequent answers: " + ", ".join(f"{_show(a)} ({k})" for a, k in answers),
            "",
            f"![confidence of correct, wrong and unseen answers]({FIGURES[2]})",
            "",
            "| name | answer | confidence |",
            "|---|---|---|",
        ]
        out += [f"| {_cell(u['name'])} | {_cell(u['prediction'])} | {_p(u['confidence'])} |" for u in unseen[:10]]
    else:
        out.append("No names could be generated (the questions name no one with a given and a family name).")
    return "\n".join(out) + "\n"


def plot_figures(analysis: dict) -> dict[str, bytes]:
    """The report's PNG figures by file name, drawn from ``analysis`` alone."""
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no display needed

    records, n_bins = analysis["questions"], analysis["n_bins"]
    unseen = [u["confidence"] for u in analysis["unseen"]["people"]]
    pngs = {}

    fig = Figure(figsize=(10, 5.2), layout="constrained")
    axes = fig.subplot_mosaic([["width", "mass"], ["count", "mass"]], height_ratios=(3, 1))
    ax, ax_count, ax_mass = axes["width"], axes["count"], axes["mass"]
    bins = reliability_bins(records, n_bins)
    full = [b for b in bins if b["count"]]
    ax.bar([b["low"] for b in full], [b["accuracy"] for b in full], width=1 / n_bins, align="edge",
           edgecolor="k", color="C0", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot([b["confidence"] for b in full], [b["accuracy"] for b in full], "o", color="C1", label="mean confidence")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"{n_bins} equal-width bins: ECE = {calibration_error(bins):.3f} ({len(records)} answers)")
    ax.legend(fontsize=8, loc="upper left")
    ax_count.bar([b["low"] for b in bins], [b["count"] for b in bins], width=1 / n_bins, align="edge",
                 edgecolor="k", color="0.7")
    ax_count.set(xlabel="confidence of the greedy answer", ylabel="answers", xlim=(0, 1))
    mass = equal_mass_bins(records, n_bins)
    top = min(1.0, 1.1 * max(max(b["high"] for b in mass), max(b["accuracy"] for b in mass), 0.01))
    ax_mass.plot([0, top], [0, top], "k--", lw=1, label="perfect calibration")
    x = [b["confidence"] for b in mass]
    ax_mass.errorbar(x, [b["accuracy"] for b in mass], xerr=[[c - b["low"] for c, b in zip(x, mass)],
                     [b["high"] - c for c, b in zip(x, mass)]], fmt="o-", color="C1", capsize=3,
                     label="accuracy at mean confidence\n(bar: the bin's confidences)")
    ax_mass.set(xlabel="confidence of the greedy answer", ylabel="accuracy", xlim=(0, top), ylim=(0, top),
                title=f"zoomed: {len(mass)} equal-mass bins, ECE = {calibration_error(mass):.3f}")
    ax_mass.legend(fontsize=8, loc="upper left")
    pngs[FIGURES[0]] = _png(fig)

    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    curve = coverage_curve(records)
    ax.plot([p["coverage"] for p in curve], [p["accuracy"] for p in curve], marker=".", ms=3, color="C0")
    ax.set(xlabel="coverage (share of questions answered)", ylabel="accuracy on the answered questions",
           xlim=(0, 1), ylim=(0, 1), title="abstaining below a confidence threshold")
    pngs[FIGURES[1]] = _png(fig)

    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    edges = [i / 20 for i in range(21)]
    groups = [([r["confidence"] for r in records if r["correct"]], "right answers", "C2"),
              ([r["confidence"] for r in records if not r["correct"]], "wrong answers", "C3"),
              (unseen, "unseen people (made up)", "C1")]
    for values, label, color in groups:
        if values:
            ax.hist(values, bins=edges, histtype="step", lw=1.5, density=True, color=color, label=f"{label} ({len(values)})")
    ax.set(xlabel="confidence", ylabel="density", xlim=(0, 1), title="how sure: right, wrong and made-up answers")
    ax.legend(fontsize=8)
    pngs[FIGURES[2]] = _png(fig)
    return pngs


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_analysis(directory: str | Path, analysis: dict) -> Path:
    """analysis.json, its figures and analysis.md into ``directory``, each written atomically."""
    directory = Path(directory)
    atomic_write_bytes(directory / "analysis.json", json.dumps(analysis, indent=1, ensure_ascii=False).encode("utf-8"))
    for name, png in plot_figures(analysis).items():
        atomic_write_bytes(directory / name, png)
    md = directory / "analysis.md"
    atomic_write_bytes(md, render_markdown(analysis).encode("utf-8"))
    return md
