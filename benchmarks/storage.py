"""What a saved model stored about the people of a question file, both probes with their
chance figures (:func:`kgpt.pipeline.storage`), as one JSON line.

    python benchmarks/storage.py ../shared/data/birthplaces/wiki.txt rope.recall.params \\
        ../shared/data/birthplaces/birth_dev.tsv

A recall-then-read checkpoint is probed through its recaller (the pretrained model).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from kgpt import pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("params")
    ap.add_argument("questions")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    t0 = time.perf_counter()
    found = pipeline.storage(None, a.corpus, a.params, a.questions, device=a.device)
    print(json.dumps({"params": a.params, "questions": a.questions, **{k: asdict(v) for k, v in found.items()},
                      "seconds": round(time.perf_counter() - t0, 1), "date": time.strftime("%Y-%m-%d")}), flush=True)


if __name__ == "__main__":
    main()
