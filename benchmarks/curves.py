"""Loss curves of training runs side by side, read from their checkpoints' histories.

Each history entry is the mean loss over the steps since the entry before it (every 20
steps, and in kgpt 0.1 also at each save). A window's figure is the mean over its steps,
every entry weighted by how many of its steps fall inside the window, so runs that
logged at different steps compare over the same steps.

    python benchmarks/curves.py NAME=RUN.params[.resume] NAME=... [--window 100] [--csv OUT]
"""

from __future__ import annotations

import argparse
import csv
import sys

from kgpt.checkpoint import read_checkpoint


def window_means(history: list[dict], window: int) -> dict[int, float]:
    """Mean loss over steps (end - window, end] for every complete window, by its end step."""
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    start = 0
    for h in history:
        for step in range(start + 1, h["step"] + 1):  # one weight per step the entry covers
            end = -(-step // window) * window
            sums[end] = sums.get(end, 0.0) + h["loss"]
            counts[end] = counts.get(end, 0) + 1
        start = h["step"]
    return {end: sums[end] / counts[end] for end in sorted(sums) if counts[end] == window}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="NAME=PATH")
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--csv", default=None, help="also write every history entry: run, step, epoch, loss, lr")
    args = p.parse_args(argv)
    histories = {}
    for spec in args.runs:
        name, _, path = spec.partition("=")
        histories[name] = read_checkpoint(path).progress["history"]
    means = {name: window_means(h, args.window) for name, h in histories.items()}
    ends = sorted(set().union(*means.values()))
    print(f"| steps | {' | '.join(means)} |")
    print(f"|---|{'---|' * len(means)}")
    for end in ends:
        cells = [f"{m[end]:.3f}" if end in m else "" for m in means.values()]
        print(f"| {end - args.window + 1}-{end} | {' | '.join(cells)} |")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["run", "step", "epoch", "loss", "lr"])
            for name, h in histories.items():
                for e in h:
                    w.writerow([name, e["step"], e["epoch"], f"{e['loss']:.4f}", f"{e['lr']:.4e}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
