"""`kgpt evaluate` and `kgpt ask` over long question files: questions per second, peak memory.

For each N, writes a file of N questions (QUESTIONS' lines over and over, into a
temporary folder, never kept), then runs, each as its own process as a user would:

* ``kgpt evaluate VARIANT CORPUS --reading_params_path CHECKPOINT --eval_corpus_path FILE
  --outputs_path OUT --no_progress``
* ``kgpt ask VARIANT CORPUS --reading_params_path CHECKPOINT --top_k K < FILE > OUT``
  (the question column only, on stdin)

and records wall time, questions per second (start-up included), the process's peak
resident memory (``wait4``'s ``ru_maxrss``) and, sampled twice a second, its resident
memory in each tenth of the run (the largest sample of each): memory that does not grow
from the first tenth to the last, and from N = 1,000 to N = 100,000, is what streaming
buys. One JSON line per run, to stdout and ``--out``.

``--unique_names`` gives every line its own person, pairing the first and last names of
QUESTIONS' people anew (the place is then arbitrary, so accuracy means nothing): a
recall-then-read model recalls each name once and keeps the recall, so a file that
repeats people would time mostly reading.

    python benchmarks/load.py CORPUS CHECKPOINT QUESTIONS --variant vanilla --n 1000 100000 --out load.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kgpt.data.corpus import asked_name


def repeat_lines(source: Path, n: int, target: Path, question_only: bool = False, unique_names: bool = False) -> Path:
    lines = [line for line in source.read_text(encoding="utf-8").split("\n") if line.strip()]
    names = [asked_name(line.split("\t")[0]) for line in lines]
    firsts = sorted({n.split(" ")[0] for n in names if n and " " in n})
    lasts = sorted({n.rsplit(" ", 1)[1] for n in names if n and " " in n})
    if unique_names and n > len(firsts) * len(lasts):
        raise SystemExit(f"only {len(firsts) * len(lasts)} distinct names can be made from {source}")
    with target.open("w", encoding="utf-8") as f:
        for i in range(n):
            line = lines[i % len(lines)]
            if unique_names:
                name = f"{firsts[i % len(firsts)]} {lasts[(i // len(firsts)) % len(lasts)]}"
                line = f"Where was {name} born?\t{line.split(chr(9))[-1]}"
            f.write((line.split("\t")[0] if question_only else line) + "\n")
    return target


def resident_mib(pid: int) -> float:
    """A running process's resident memory now (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def measured(argv: list[str], stdin: Path | None = None, stdout: Path | None = None) -> dict:
    """Run ``argv``; its exit code, wall seconds and peak resident memory in MiB."""
    with open(stdin or os.devnull, "rb") as fin, open(stdout or os.devnull, "wb") as fout, tempfile.TemporaryFile() as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr)  # a file, so a chatty child never blocks
        samples = []  # (seconds, resident MiB)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            samples.append((time.perf_counter() - t0, resident_mib(proc.pid)))
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        ferr.seek(0)
        err = ferr.read().decode(errors="replace").strip()
    # ru_maxrss is in KiB on Linux, bytes on macOS
    peak = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    tenths = [max((m for t, m in samples if k * wall / 10 <= t < (k + 1) * wall / 10), default=0.0) for k in range(10)]
    return {"rc": os.waitstatus_to_exitcode(status), "seconds": round(wall, 2), "peak_rss_mib": round(peak, 1),
            "rss_mib_by_tenth": [round(m) for m in tenths], "stderr_tail": err[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("questions", type=Path, help="QUESTION<TAB>PLACE lines to repeat")
    ap.add_argument("--variant", default="vanilla")
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--commands", nargs="+", choices=("evaluate", "ask"), default=["evaluate", "ask"])
    ap.add_argument("--top_k", type=int, default=0, help="ask's --top_k (default 0: greedy answer and confidence)")
    ap.add_argument("--unique_names", action="store_true", help="a different person on every line (see above)")
    ap.add_argument("--out", type=Path, default=None, help="append the JSON lines here")
    a = ap.parse_args()
    kgpt = [sys.executable, "-m", "kgpt"]
    common = [a.variant, str(a.corpus), "--reading_params_path", str(a.checkpoint), "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in a.n:
            for command in a.commands:
                if command == "evaluate":
                    questions = repeat_lines(a.questions, n, tmp / "questions.tsv", unique_names=a.unique_names)
                    r = measured([*kgpt, "evaluate", *common, "--eval_corpus_path", str(questions),
                                  "--outputs_path", str(tmp / "predictions.txt"), "--no_progress"])
                else:
                    questions = repeat_lines(a.questions, n, tmp / "questions.txt", question_only=True, unique_names=a.unique_names)
                    r = measured([*kgpt, "ask", *common, "--top_k", str(a.top_k), "--no_progress"],
                                 stdin=questions, stdout=tmp / "answers.txt")
                    r["top_k"] = a.top_k
                row = {"command": command, "n": n, "variant": a.variant, "checkpoint": a.checkpoint.name,
                       "unique_names": a.unique_names,
                       "questions_per_s": round(n / r["seconds"], 1), **r, "threads": torch.get_num_threads(),
                       "cpu": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d")}
                line = json.dumps(row)
                print(line, flush=True)
                if a.out is not None:
                    with a.out.open("a", encoding="utf-8") as f:
                        f.write(line + "\n")


if __name__ == "__main__":
    main()
