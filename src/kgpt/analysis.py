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
import statistics
from collections import Counter
from pathlib import Path

from kgpt.answering import Answerer, Context, answerer
from kgpt.data.corpus import Question, bios_by_name, person_bio, unseen_names
from kgpt.data.words import contains_place
from kgpt.display import probability as _p
from kgpt.display import show as _show
from kgpt.errors import KgptError
from kgpt.io import atomic_write_bytes
from kgpt.model import GPT
from kgpt.probe import cued_completions
from kgpt.vocab import CharVocab

FORMAT = "kgpt-analysis/2"  # 2: "reader_text" and the error kind "recall" (were "read" and "memory")
N_BINS = 10
COVERAGES = (1.0, 0.9, 0.75, 0.5, 0.25, 0.1)
N_UNSEEN = 50
FIGURES = ("reliability.png", "coverage.png", "confidence.png")
ANALYSIS_FILES = ("analysis.json", "analysis.md", *FIGURES)  # what write_analysis puts in its folder


# --- the analysis of an evaluation -----------------------------------------------------


def analyze(
    model: GPT | Answerer,
    vocab: CharVocab,
    documents: list[str],
    questions: list[Question],
    predictions: list[str],
    contexts: list[Context] | None = None,
    training_answers: set[str] | None = None,
    pretrained: GPT | None = None,
    seed: int = 0,
    n_unseen: int = N_UNSEEN,
) -> dict:
    """Per-question records for ``analysis.json``: everything the report is computed from.

    ``contexts``: what was read to answer each question, as the answers were made (None:
    made again here; for recall-then-read that is every recall again).
    ``training_answers``: the places of the finetuning file (None: not given, so whether
    a gold place was among them is unknown). ``pretrained``: the model before
    finetuning, to probe which birthplaces it completes the bios with (cued completion).
    """
    if any(q.answer is None for q in questions):
        raise KgptError("the analysis compares answers with places; give a question file of QUESTION<TAB>PLACE lines")
    asker = answerer(model)
    if contexts is None:
        contexts = asker.contexts(vocab, questions)
    parts = asker.confidence_parts(vocab, contexts, predictions)
    bios = bios_by_name(documents)
    probe = cued_completions(pretrained, vocab, documents, questions) if pretrained is not None else None
    recited = probe.found if probe is not None else None
    records = []
    for i, (q, context, prediction, part) in enumerate(zip(questions, contexts, predictions, parts)):
        bio = person_bio(bios, q.name, q.answer) or person_bio(bios, q.name)
        record = {
            "line": q.line, "question": q.text, "name": q.name, "prediction": prediction, "gold": q.answer,
            "correct": prediction == q.answer, "confidence": part.combined,
            "recall_confidence": part.recall, "reading_confidence": part.reading,
            # whether the gold place is in what the model could have learnt of the person's
            # bio; None: nobody of that name opens a bio, so the bio cannot be checked
            "in_bio": None if bio is None else contains_place(asker.seen(bio, q.name), q.answer),
            "in_training_answers": None if training_answers is None else q.answer in training_answers,
            "cued_completion": None if recited is None else recited[i],
        }
        if context.recall is not None:
            record["recall"] = context.recall
            record["reader_text"] = context.text
            record["error"] = recall_error(record)
        records.append(record)
    names = [r["name"] for r in records if r["name"]]
    unseen = unseen_names(names, "\n".join(documents), n_unseen, seed)
    task = questions[0].task if questions else asker.task
    unseen_questions = [Question(task.question(name), None, i, task) for i, name in enumerate(unseen, start=1)]
    unseen_contexts = asker.contexts(vocab, unseen_questions, where="generated question")
    unseen_predictions = asker.answers(vocab, unseen_contexts)
    unseen_parts = asker.confidence_parts(vocab, unseen_contexts, unseen_predictions)
    return {
        "format": FORMAT,
        "answering": asker.method,
        "confidence_kind": asker.confidence_kind,
        # the --min_confidence chosen on held-out people with the checkpoint's calibration (None: none)
        "recommended_threshold": asker.recommended_threshold,
        "n_bins": N_BINS,
        "coverages": list(COVERAGES),
        "training_answers_known": training_answers is not None,
        "pretrained_probe": pretrained is not None,
        # cued completions expected to give the place of a random other person: luck (kgpt.probe.chance_shares)
        "cued_chance": probe.tally().chance if probe is not None else None,
        "questions": records,
        "unseen": {
            "seed": seed,
            "people": [
                {"name": n, "question": q.text, "prediction": p, "confidence": c.combined,
                 "recall_confidence": c.recall, "reading_confidence": c.reading}
                for n, q, p, c in zip(unseen, unseen_questions, unseen_predictions, unseen_parts)
            ],
        },
    }


def recall_error(record: dict) -> str | None:
    """Where a recall-then-read answer went wrong (None: it is right): ``not in bio`` (the
    part of the person's bio the reader would read names no gold place, so no recall
    could), ``recall`` (the text the reader got from the recall lacks the place, as whole
    words: storage or recall failed), ``reading`` (the place was in that text and the
    reader answered something else)."""
    if record["correct"]:
        return None
    if not record["in_bio"]:
        return "not in bio"
    return "reading" if contains_place(record["reader_text"], record["gold"]) else "recall"


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


def threshold_row(analysis: dict, threshold: float) -> dict:
    """:func:`abstention_rows`' numbers for one given threshold (the recommended one, or
    the one evaluate was run with): what answering only at or above it does."""
    records, unseen = analysis["questions"], analysis["unseen"]["people"]
    answered = [r for r in records if r["confidence"] >= threshold]
    return {"threshold": threshold, "answered": len(answered), "total": len(records),
            "correct": sum(r["correct"] for r in answered), "abstained": len(records) - len(answered),
            "unseen_answered": sum(u["confidence"] >= threshold for u in unseen), "unseen_total": len(unseen)}


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

# What analysis.json files written before the confidence said what it is meant.
CONFIDENCE_BEFORE = ("Confidence is the model's probability of its own answer: the product of "
                     "p(character | everything before it) over the answer and the closing ⁇.")


def _threshold_lines(analysis: dict) -> list[str]:
    """The report's lines on the thresholds that were chosen rather than read off dev: the
    checkpoint's recommended one (chosen on held-out people) and the one evaluate used."""
    out = []
    for key, what in (("recommended_threshold", "The checkpoint's recommended threshold (chosen on held-out "
                                                 "training people and made-up names, not on this file)"),
                      ("min_confidence", "The threshold this evaluation ran with (--min_confidence)")):
        t = analysis.get(key)
        if t is None:
            continue
        row = threshold_row(analysis, t)
        accuracy = f"{100.0 * row['correct'] / row['answered']:.1f}%" if row["answered"] else "n/a"
        out += ["", f"{what}, confidence ≥ {_p(t)}: answers {_share(row['answered'], row['total'])} "
                    f"({row['correct']} right, {row['answered'] - row['correct']} wrong, accuracy {accuracy}), "
                    f"abstains on {row['abstained']}, and still answers "
                    f"{_share(row['unseen_answered'], row['unseen_total'])} of the unseen people."]
    if analysis.get("answering") == "recall-read" and analysis.get("recommended_threshold") is None:
        out += ["", "This checkpoint has no calibration, so no threshold was chosen on held-out people "
                    "(`kgpt calibrate` fits one)."]
    return out


def _cell(text: str) -> str:
    """Text for a markdown table cell."""
    return _show(text).replace("|", "\\|")


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
        analysis.get("confidence_kind", CONFIDENCE_BEFORE) + " Every number here is computed from analysis.json.",
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
    out += _threshold_lines(analysis)
    out += ["", "## Most frequent wrong answers", "", "| answer | times given wrongly | share of wrong answers |", "|---|---|---|"]
    wrong = n - correct
    out += [f"| {_cell(a)} | {k} | {100.0 * k / wrong:.1f}% |" for a, k in wrong_answers(records)]
    out += ["", "## Accuracy by where the gold place occurs", "", "| gold place | yes | no | unknown |", "|---|---|---|---|"]
    for key, label in (("in_bio", "occurs in what the model could learn of the person's bio"), ("in_training_answers", "is among the finetuning answers")):
        split = accuracy_by(records, key)
        cells = [_share(*split[v]) if v in split else "—" for v in (True, False, None)]
        out.append(f"| {label} | {' | '.join(cells)} |")
    if not analysis["training_answers_known"]:
        out += ["", "The finetuning file was not given, so whether a gold place is among its answers is unknown."]
    if analysis.get("answering") == "recall-read":
        errors = Counter(r["error"] for r in records)
        out += ["", "## Recall, then read: where the wrong answers went wrong", "",
                "Each answer was read off the text the pretrained model recalled from `NAME.` "
                "(the `recall` of each question in analysis.json; `reader_text` is the part the reader read). "
                "A place counts as present only as whole words.", "",
                "| error | questions | share of wrong answers |", "|---|---|---|"]
        out += [f"| {label} | {errors.get(key, 0)} | {_share(errors.get(key, 0), n - correct)} |" for key, label in (
            ("recall", "recall: the gold place is not in the text read off the recall"),
            ("reading", "reading: the place is in that text, another answer was read"),
            ("not in bio", "not in bio: the part of the bio the reader would read does not name the gold place"))]
        in_read = sum(contains_place(r["reader_text"], r["gold"]) for r in records)
        out += ["", f"The gold place is in the text read off the recall for {_share(in_read, n)} of the questions."]
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
        if analysis.get("cued_chance") is not None:
            probed = sum(r["cued_completion"] is not None for r in records)
            expected = analysis["cued_chance"]
            share = f"{100.0 * expected / probed:.1f}%" if probed else "n/a"
            out += ["", f"By chance: scored against the place of another probed person drawn at random, cued "
                        f"completion is expected to give it for {expected:.1f} of the {probed} probed people ({share}; "
                        "the exact mean over all pairings)."]
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
    ax_count.set(xlabel="confidence of the answer", ylabel="answers", xlim=(0, 1))
    mass = equal_mass_bins(records, n_bins)
    top = min(1.0, 1.1 * max(max(b["high"] for b in mass), max(b["accuracy"] for b in mass), 0.01))
    ax_mass.plot([0, top], [0, top], "k--", lw=1, label="perfect calibration")
    x = [b["confidence"] for b in mass]
    ax_mass.errorbar(x, [b["accuracy"] for b in mass], xerr=[[c - b["low"] for c, b in zip(x, mass)],
                     [b["high"] - c for c, b in zip(x, mass)]], fmt="o-", color="C1", capsize=3,
                     label="accuracy at mean confidence\n(bar: the bin's confidences)")
    ax_mass.set(xlabel="confidence of the answer", ylabel="accuracy", xlim=(0, top), ylim=(0, top),
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


def analysis_json(analysis: dict) -> bytes:
    """analysis.json's bytes (a Ray task rewrites its paths and writes them again)."""
    return json.dumps(analysis, indent=1, ensure_ascii=False).encode("utf-8")


def write_analysis(directory: str | Path, analysis: dict) -> Path:
    """analysis.json, its figures and analysis.md into ``directory``, each written atomically."""
    directory = Path(directory)
    atomic_write_bytes(directory / "analysis.json", analysis_json(analysis))
    for name, png in plot_figures(analysis).items():
        atomic_write_bytes(directory / name, png)
    md = directory / "analysis.md"
    atomic_write_bytes(md, render_markdown(analysis).encode("utf-8"))
    return md
