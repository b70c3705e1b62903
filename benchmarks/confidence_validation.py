"""Choosing the recall recipe's confidence on the validation split, never on dev (issue 33).

The 400 validation people of knowledge_proxy.py are held out of the reader's finetuning
(the reader learns from the other 1,600), and 200 made-up names are generated from their
names with seed 1 (the analysis's own unseen names use seed 0 and the dev names). Every
candidate recall signal (:data:`kgpt.confidence.SIGNALS`) is combined with the reading
part by the same 2-feature logistic map and scored by 2-fold cross-validation inside the
validation split: fit on one half, answer the other half at the threshold that keeps 90%
of the fitting half's real people, count the made-up names still answered and the right
answers among the real people answered. The rule (docs/confidence.md, declared before
any run): fewest made-up names answered; within 2 of the fewest, most right answers; a
tie after that goes to answer-min. Baselines (the reader alone, the recall part alone,
the uncalibrated product) are scored the same way, for comparison only.

    python benchmarks/confidence_validation.py split --out runs/conf
    kgpt finetune rope DATA/wiki.txt --recipe recall --reading_params_path PRETRAINED \\
        --finetune_corpus_path runs/conf/fit.tsv --writing_params_path runs/conf/reader.params
    python benchmarks/confidence_validation.py signals --params runs/conf/reader.params \\
        --val runs/conf/val.tsv > docs/results/confidence-validation.json
    python benchmarks/confidence_validation.py summary --analysis DIR/analysis.json  # dev figures, counts only

Prints counts only: nothing per person.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

from knowledge_proxy import DATA, split

from kgpt.analysis import calibration_error, equal_mass_bins
from kgpt.answering import load_answerer
from kgpt.confidence import (MADE_UP_SEED, N_MADE_UP, SIGNALS, examples, fit, held_out_scores, keep_threshold,
                             operating_point)
from kgpt.data.corpus import read_questions
from kgpt.pipeline import Corpus

FOLDS = 2
SLACK = 2  # made-up names answered within which two candidates count as tied
SHARES = (0.1, 1.0)  # the made-up names' weight in the fit (kgpt.confidence.MADE_UP_SHARE first)
# A candidate whose ECE (10 equal-mass bins, real people of the held-out half: ~20 a bin)
# is above this is not calibrated enough to choose; the margin over dev's 0.05 target is
# for the sampling noise of bins half as full as dev's.
MAX_ECE = 0.08


def write_split(data_dir: Path, out: Path) -> None:
    val, fit_people = split(read_questions(data_dir / "birth_places_train.tsv"))
    out.mkdir(parents=True, exist_ok=True)
    for name, qs in (("fit.tsv", fit_people), ("val.tsv", val)):
        (out / name).write_text("".join(f"{q.text}\t{q.answer}\n" for q in qs), encoding="utf-8")
    print(json.dumps({"fit": len(fit_people), "val": len(val), "out": str(out)}))


def folds(items: list, seed: int = 0) -> list[list]:
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [[items[i] for i in order[k::FOLDS]] for k in range(FOLDS)]


def cross_validate(real: list, made_up: list, confidence_of) -> dict:
    """``confidence_of(fit_examples)`` -> (function of an example, threshold). Summed over
    folds: the operating point on the held-out fold; ECE (10 equal-mass bins) averaged."""
    total = {"answered": 0, "people": 0, "correct": 0, "made_up_answered": 0, "made_up": 0}
    eces = []
    real_folds, made_folds = folds(real), folds(made_up)
    for k in range(FOLDS):
        train = [e for j in range(FOLDS) if j != k for e in real_folds[j] + made_folds[j]]
        test = real_folds[k] + made_folds[k]
        conf, threshold = confidence_of(train)
        point = operating_point(test, conf, threshold)
        for key in total:
            total[key] += point[key]
        records = [{"confidence": conf(e), "correct": e.correct} for e in real_folds[k]]
        eces.append(calibration_error(equal_mass_bins(records, 10)))
    total["accuracy_answered"] = total["correct"] / total["answered"] if total["answered"] else None
    total["ece_equal_mass"] = sum(eces) / len(eces)
    return total


def choose(candidates: dict[str, dict]) -> str:
    """The declared rule over candidates named SIGNAL or SIGNAL@SHARE (in order of
    preference on ties): only those with ECE at most MAX_ECE (all, if none is); fewest
    made-up names answered; within SLACK of that, most right answers; a tie after that
    goes to the first in order (answer-min, the measured lead, and the smaller share)."""
    names = list(candidates)
    calibrated_enough = [n for n in names if candidates[n].get("ece_equal_mass", 0.0) <= MAX_ECE] or names
    fewest = min(candidates[n]["made_up_answered"] for n in calibrated_enough)
    tied = [n for n in calibrated_enough if candidates[n]["made_up_answered"] <= fewest + SLACK]
    best = max(candidates[n]["correct"] for n in tied)
    return next(n for n in tied if candidates[n]["correct"] == best)


def calibrated(signal, share=None):
    def confidence_of(train):
        cal = fit(train, signal) if share is None else fit(train, signal, made_up_share=share)
        return (lambda e: cal.combine(e.recall_log_p, e.reading_log_p)), cal.threshold
    return confidence_of


def ranked_by(score):
    """A baseline: an uncalibrated score, thresholded to keep 90% of the fitting half's real people."""
    def confidence_of(train):
        return score, keep_threshold([score(e) for e in train if not e.made_up])
    return confidence_of


def signals(data_dir: Path, params: Path, val_path: Path, n_made_up: int, seed: int) -> None:
    t0 = time.perf_counter()
    corpus = Corpus.load(data_dir / "wiki.txt")
    asker = load_answerer(params, corpus.vocab)
    scores = held_out_scores(asker, corpus.vocab, corpus.documents, read_questions(val_path), n_made_up, seed)
    result = {"params": str(params), "made_up_seed": seed, "folds": FOLDS, "candidates": {}, "baselines": {}}
    for signal in SIGNALS:
        held = examples(scores, signal)
        real, made_up = [e for e in held if not e.made_up], [e for e in held if e.made_up]
        for share in SHARES:
            result["candidates"][f"{signal}@{share}"] = cross_validate(real, made_up, calibrated(signal, share))
    held = examples(scores, "answer-min")
    real, made_up = [e for e in held if not e.made_up], [e for e in held if e.made_up]
    result["people"], result["made_up"] = len(real), len(made_up)
    result["right_without_abstaining"] = sum(e.correct for e in real)
    result["baselines"]["reading alone"] = cross_validate(real, made_up, ranked_by(lambda e: math.exp(e.reading_log_p)))
    result["baselines"]["recall alone (answer-min)"] = cross_validate(real, made_up,
                                                                      ranked_by(lambda e: math.exp(e.recall_log_p)))
    result["baselines"]["product (answer-min)"] = cross_validate(
        real, made_up, ranked_by(lambda e: math.exp(e.recall_log_p + e.reading_log_p)))
    result["chosen"] = choose(result["candidates"])
    result["chosen_signal"], result["chosen_made_up_share"] = result["chosen"].split("@")
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=1))


def summary(analysis_json: Path) -> None:
    """The issue's figures from an ``evaluate --analysis_dir`` analysis.json, as counts only:
    at each coverage, dev answered, right, and made-up names still answered; ECE over 10
    equal-width and 10 equal-mass bins; what the recommended threshold does."""
    from kgpt.analysis import abstention_rows, reliability_bins, threshold_row

    a = json.loads(analysis_json.read_text(encoding="utf-8"))
    records = a["questions"]
    out = {"analysis": str(analysis_json), "confidence": a.get("confidence_kind"), "questions": len(records),
           "correct": sum(r["correct"] for r in records),
           "ece_equal_width": calibration_error(reliability_bins(records, 10)),
           "ece_equal_mass": calibration_error(equal_mass_bins(records, 10)),
           "coverage": abstention_rows(a)}
    for key in ("recommended_threshold", "min_confidence"):
        if a.get(key) is not None:
            out[key] = threshold_row(a, a[key])
    print(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("split")
    p.add_argument("--data_dir", type=Path, default=DATA)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("signals")
    p.add_argument("--data_dir", type=Path, default=DATA)
    p.add_argument("--params", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--made_up", type=int, default=N_MADE_UP)
    p.add_argument("--seed", type=int, default=MADE_UP_SEED)
    p = sub.add_parser("summary")
    p.add_argument("--analysis", type=Path, required=True, help="analysis.json of kgpt evaluate --analysis_dir")
    args = parser.parse_args()
    if args.command == "split":
        write_split(args.data_dir, args.out)
    elif args.command == "summary":
        summary(args.analysis)
    else:
        signals(args.data_dir, args.params, args.val, args.made_up, args.seed)


if __name__ == "__main__":
    main()
