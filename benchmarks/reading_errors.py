"""Where recall-then-read answers go wrong, and whether the reader misreads the places it
was never told: per analysis (``kgpt evaluate --analysis_dir``), the wrong answers by
kind (each record's ``error``, :func:`kgpt.analysis.recall_error`), and the answers whose place the text read
holds split by whether that place is among the training answers.

    python benchmarks/reading_errors.py runs/conf/lap-s0.val.analysis runs/conf/lap-s1.val.analysis [--wiki wiki.txt]

Prints one JSON object, keyed by the folders given. Reads only the analyses' own records
(the "in_training_answers" field is the analysis's, from the reader's finetuning file).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from kgpt.data.corpus import bios_by_name, person_bio
from kgpt.data.words import contains_place
from kgpt.pipeline import Corpus


def summary(records: list[dict], bios: dict[str, list[str]] | None = None) -> dict:
    """Counts of one analysis's records: right, and wrong by kind; and, of the answers whose
    gold place is in the text read (right, or a reading error), how many the reader got
    right among places it was told in training and among places it was not. With the
    corpus's ``bios``, also the reading errors whose answer is no word of the person's
    true bio: words the recall wrote that the bio does not hold (most, past its end)."""
    kinds = Counter(r["error"] or "right" for r in records)
    readable = [r for r in records if r["error"] in (None, "reading") and r["in_bio"]]
    told = [r for r in readable if r["in_training_answers"]]
    new = [r for r in readable if not r["in_training_answers"]]
    out = {
        "questions": len(records), **{k: kinds[k] for k in ("right", "reading", "recall", "not in bio")},
        "read_right_told": f"{sum(r['correct'] for r in told)}/{len(told)}",
        "read_right_new": f"{sum(r['correct'] for r in new)}/{len(new)}",
    }
    if bios is not None:
        misread = [r for r in records if r["error"] == "reading"]
        out["reading_not_in_true_bio"] = sum(
            not r["prediction"] or not contains_place(person_bio(bios, r["name"], r["gold"]) or "", r["prediction"])
            for r in misread)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("analyses", nargs="+", type=Path, help="folders written by kgpt evaluate --analysis_dir")
    ap.add_argument("--wiki", type=Path, help="the corpus (wiki.txt): also count misreadings of words the bio lacks")
    a = ap.parse_args()
    bios = bios_by_name(Corpus.load(a.wiki).documents) if a.wiki else None
    out = {str(d): summary(json.loads((d / "analysis.json").read_text())["questions"], bios) for d in a.analyses}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
