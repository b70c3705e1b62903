"""Validation accuracy against pretraining time for the recall recipe's trainings (issue 32).

Each point is one pretrained recaller: its validation figure is the number of the 400
held-out training people that a reader finetuned on the other 1,600 answers right
(``right_without_abstaining`` of ``confidence_validation.py signals``, or
``extract_correct`` of a ``recall_proxy.py`` line), and its time is the pretraining's
wall clock as recorded by the run itself: the last ``elapsed_s`` of a proxy's loss curve,
the final count of a ``kgpt`` progress bar in a log, the ``pretrained N steps in Ss``
line of ``kgpt pretrain``, or, where the run shared its CPU, seconds a pass measured
alone (``recall_step.py``) times its passes, marked as an estimate. Each ``--figure`` is
one machine's trainings (times from different CPUs do not share an axis). Writes the
table as CSV and the plot as PNG.

    python benchmarks/recall_tradeoff.py --csv docs/results/2026-12-02-recall-tradeoff.csv \\
        --png docs/recall-tradeoff.png
    python benchmarks/recall_tradeoff.py --figure zen1-2026-12-04 \\
        --csv docs/results/2026-12-04-passes-tradeoff.csv --png docs/recall-tradeoff-zen1.png

Where a source file is missing the point is left out, and the script says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"

# label, passes, batch, lr, weight decay, validation (kind, file[, the proxy line's keys]),
# how the pretraining was timed (kind, file, which, how)
FIGURES = {
    "avx512-2026-12-02": ("a 2-core AMD EPYC with AVX-512, 2026-12-02", [
        ("b64 lr 6e-3, 25 passes", 25, 64, 6e-3, 0.1, ("confidence", "2026-12-02-confidence-validation-e25.json"),
         ("curve", "2026-12-02-recall-proxy-curves.csv", "b64 lr6e-3 25 epochs", "one core, shared")),
        ("b64 lr 6e-3, 40 passes", 40, 64, 6e-3, 0.1, ("confidence", "2026-12-02-confidence-validation-e40.json"),
         ("curve", "2026-12-02-recall-proxy-curves.csv", "b64 lr6e-3 40 epochs", "one core, shared")),
        ("b16 lr 4e-3, 50 passes", 50, 16, 4e-3, 0.1, ("confidence", "2026-12-02-confidence-validation-laptop-b16e50-s0.json"),
         ("curve", "2026-12-02-recall-proxy-curves.csv", "b16 lr4e-3 50 epochs (laptop preset s0)", "two cores, alone")),
        ("b64 lr 4e-3, 120 passes", 120, 64, 4e-3, 0.1, ("confidence", "2026-12-02-confidence-validation-laptop-e120-s0.json"),
         ("estimate", "2026-12-02-recall-step-timing.jsonl", {"threads": 2, "chars": 174, "batch": 64, "buckets": 4},
          "estimate: s/pass alone x passes")),
        ("b32 grouped lr 4e-3, no decay, 60 passes (seed 0)", 60, 32, 4e-3, 0.0,
         ("confidence", "2026-12-02-confidence-validation-l60-s0.json"), ("log", "2026-12-02-laptop-l60.log", 0, "two cores, alone")),
        ("b32 grouped lr 4e-3, no decay, 60 passes (seed 1)", 60, 32, 4e-3, 0.0,
         ("confidence", "2026-12-02-confidence-validation-l60-s1.json"), ("log", "2026-12-02-laptop-l60.log", 1, "two cores, alone")),
    ]),
    "zen1-2026-12-04": ("a 2-core AMD EPYC Zen 1 (AVX2 only), 2026-12-04/05; lr 3e-3, batch 32 grouped, no decay, seed 1", [
        ("AdamW, 60 passes (the laptop preset until 2026-12-05)", 60, 32, 3e-3, 0.0, ("proxy", "2026-12-04-lr3-validation.jsonl", {"seed": 0}),
         ("log", "2026-12-04-halfhour-lr3-s0-bars.log", 0, "two cores, alone (seed 0's preset)")),
        ("AdamW, 40 passes", 40, 32, 3e-3, 0.0, ("proxy", "2026-12-04-p40.jsonl", {"epochs": 6}),
         ("line", "2026-12-04-p40.log", 0, "two cores, alone")),
        # The Muon run shared a quarter of its hour with other work, so its time is the step
        # benchmark's (alone, 2026-12-05; AdamW's 60 passes there: 64.7 min, not 57.1).
        ("Muon, 40 passes (the laptop preset)", 40, 32, 3e-3, 0.0, ("proxy", "2026-12-05-muon40.jsonl", {"epochs": 6}),
         ("estimate", "2026-12-05-muon-step-timing.jsonl", {"optimizer": "muon", "processes": 2},
          "estimate: s/pass alone x passes (2026-12-05)")),
        ("Muon, 20 passes", 20, 32, 3e-3, 0.0, ("proxy", "2026-12-05-muon20.jsonl", {"epochs": 6}),
         ("line", "2026-12-05-muon20.log", 0, "two cores, alone")),
    ]),
}
_BAR = re.compile(r"pretrain: 100%\|[^|]*\| (\d+)/\1 \[(?:(\d+):)?(\d+):(\d+)<")
_PRETRAINED = re.compile(r"pretrained \d+ steps in ([\d.]+)s")


def validation_right(source: tuple) -> tuple[int, int]:
    """(right, people) of a validation source."""
    kind, name, *key = source
    path = RESULTS / name
    if kind == "confidence":
        right = json.loads(path.read_text(encoding="utf-8"))
        return right["right_without_abstaining"], right["people"]
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "extract_correct" in row and all(row.get(k) == v for k, v in key[0].items()):
            return row["extract_correct"], row["validation"]
    raise ValueError(f"no matching reader in {path}")


def pretrain_seconds(source: tuple, passes: int) -> float:
    kind, name, key, _ = source
    path = RESULTS / name
    if kind == "curve":
        rows = [r for r in csv.DictReader(path.open(encoding="utf-8")) if r["run"] == key]
        return float(rows[-1]["elapsed_s"])
    if kind == "log":
        bars = _BAR.findall(path.read_text(encoding="utf-8", errors="replace"))
        _, h, m, s = bars[key]
        return 3600 * int(h or 0) + 60 * int(m) + int(s)
    if kind == "line":
        return float(_PRETRAINED.findall(path.read_text(encoding="utf-8"))[key])
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        # (files with no "conditions" hold only runs made with the machine to itself)
        if all(row.get(k) == v for k, v in key.items()) and row.get("conditions", "machine to itself") == "machine to itself":
            return row["s_per_pass"] * passes
    raise ValueError(f"no matching timing in {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figure", choices=tuple(FIGURES), default="avx512-2026-12-02", help="whose trainings")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--png", required=True)
    a = ap.parse_args()
    machine, points = FIGURES[a.figure]
    rows = []
    for label, passes, batch, lr, wd, validation, timing in points:
        try:
            right, people = validation_right(validation)
            seconds = pretrain_seconds(timing, passes)
        except (OSError, ValueError, IndexError, KeyError) as e:
            print(f"left out {label}: {e}", file=sys.stderr)
            continue
        rows.append({"training": label, "passes": passes, "batch": batch, "lr": lr, "weight_decay": wd,
                     "validation_right": right, "people": people,
                     "pretrain_min": round(seconds / 60, 1), "timed": timing[3]})
    with open(a.csv, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, r in enumerate(sorted(rows, key=lambda r: r["pretrain_min"])):
        marker = "o" if r["timed"].startswith("two cores, alone") else ("^" if r["timed"].startswith("estimate") else "s")
        ax.scatter(r["pretrain_min"], 100 * r["validation_right"] / r["people"], marker=marker,
                   color="C1" if r["weight_decay"] == 0 else "C0")
        ax.annotate(r["training"], (r["pretrain_min"], 100 * r["validation_right"] / r["people"]),
                    fontsize=7, xytext=(4, -10 if i % 2 == 0 else 6), textcoords="offset points")  # neighbours' labels apart
    ax.axvline(30, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"pretraining, minutes of {machine.split(';')[0]}\n(o: alone, s: one core shared, ^: estimated)", fontsize=8)
    ax.set_ylabel("validation: held-out people answered right, %")
    ax.set_title(f"The recall recipe: what the pretraining stores, against its time\n{machine}", fontsize=9)
    ax.set_ylim(0, 100)
    ax.set_xlim(20, max(80, 10 + max(r["pretrain_min"] for r in rows)))
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)
    print(json.dumps({"points": len(rows), "csv": a.csv, "png": a.png}))


if __name__ == "__main__":
    main()
