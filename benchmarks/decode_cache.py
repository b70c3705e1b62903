"""Decoding a trained model's answers: the KV cache grown step by step against written in
place, at several batch sizes. Questions per second and the process's peak memory.

For each (cache, batch) pair, a fresh process answers QUESTIONS' first N lines (with
``--unique_names``, every line a different person, as in ``load.py``) with
``kgpt.evaluate.predict_places`` after one untimed warm-up chunk. ``grown`` is the cache
kgpt had before (``KVCache`` without a capacity: every step allocates a longer tensor and
copies the cache into it); ``in-place`` is today's (buffers sized to the decode once).

    python benchmarks/decode_cache.py CORPUS CHECKPOINT QUESTIONS --n 2000 --batch 128 256 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from load import repeat_lines


def one(corpus: Path, checkpoint: Path, questions: Path, cache: str, batch: int) -> dict:
    """Runs in its own process (peak memory is per process)."""
    import resource

    from kgpt import pipeline
    from kgpt.data.corpus import read_questions
    from kgpt.evaluate import predict_places
    from kgpt.model.attention import KVCache

    _, asker = pipeline._trained_model(None, corpus, checkpoint, None, "cpu")
    models = [asker.model] + ([asker.recaller] if hasattr(asker, "recaller") else [])
    for m in models:
        if cache == "grown":
            m.new_cache = lambda positions=None, m=m: [KVCache() for _ in m.blocks]
    import kgpt.inference as inference

    inference.DECODE_BATCH_ELSEWHERE = batch
    asked = read_questions(questions)
    predict_places(asker, pipeline.Corpus.load(corpus).vocab, asked[:batch])  # warm-up
    if hasattr(asker, "_recalled"):
        asker._recalled.clear()
    t0 = time.perf_counter()
    predict_places(asker, pipeline.Corpus.load(corpus).vocab, asked)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    return {"cache": cache, "batch": batch, "n": len(asked), "seconds": round(seconds, 2),
            # three significant digits: a slow or shared CPU's rate never rounds to 0
            "questions_per_s": float(f"{len(asked) / seconds:.3g}"), "peak_rss_mib": round(peak)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("questions", type=Path)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 256, 1024])
    ap.add_argument("--unique_names", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--one", nargs=2, metavar=("CACHE", "BATCH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.corpus, a.checkpoint, a.questions, a.one[0], int(a.one[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        questions = repeat_lines(a.questions, a.n, Path(tmp) / "q.tsv", unique_names=a.unique_names)
        for batch in a.batch:
            for cache in ("grown", "in-place"):
                r = subprocess.run([sys.executable, __file__, str(a.corpus), str(a.checkpoint), str(questions),
                                    "--one", cache, str(batch)], capture_output=True, text=True, check=True)
                row = {**json.loads(r.stdout), "checkpoint": a.checkpoint.name, "unique_names": a.unique_names,
                       "date": time.strftime("%Y-%m-%d")}
                print(json.dumps(row), flush=True)
                if a.out is not None:
                    with a.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
