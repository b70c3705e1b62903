"""kgpt's fast path next to the reference-style implementation, in one process.

Same device, same model size (the vanilla GPT, 4 × 256, block 128), same batch size,
same data. Measures:

* training throughput in tokens/s (batch × 127 labels per step): ``--warmup`` untimed
  steps, then ``--steps`` timed steps each, batch construction included. kgpt runs its
  real training loop (the assignment recipe: float32; on CUDA fused AdamW and a
  CUDA-graph step, on CPU length buckets); the reference runs the course's loop;
* evaluation in questions/s: kgpt's batched, KV-cached ``greedy_decode`` of all
  questions against the reference's one-question-at-a-time sampling of 32 characters
  with full recomputation. The reference decodes with kgpt's weights, copied after
  kgpt's training steps, and the script checks the predictions are identical.

Usage (from the repository root)::

    python benchmarks/compare.py --device cpu --steps 5
    python benchmarks/compare.py --device cpu --steps 5 --repeats 3   # best of 3 on a shared machine
    python benchmarks/compare.py --device cuda --steps 20 --json

``--data-dir`` points at a folder with the real ``wiki.txt`` and ``birth_dev.tsv``;
without it the embedded synthetic data is used. Exit status 1 if predictions differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import CorruptionDataset, ReferenceGPT, ReferenceTrainer, predict  # noqa: E402

from kgpt import benchmark  # noqa: E402
from kgpt.data.corpus import corpus_documents, read_corpus, read_questions  # noqa: E402
from kgpt.training import final_tokens_for, resolve_device  # noqa: E402
from kgpt.vocab import CharVocab  # noqa: E402


def load_data(data_dir: str | None) -> benchmark.BenchData:
    if data_dir is None:
        return benchmark.synthetic_data()
    root = Path(data_dir)
    text = read_corpus(root / "wiki.txt")
    return benchmark.BenchData(corpus_documents(text), CharVocab.from_text(text), read_questions(root / "birth_dev.tsv"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per implementation")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed training steps before them (default 2 on CPU; on CUDA 5, so kgpt's CUDA graph is captured)")
    p.add_argument("--batch_size", "--batch-size", dest="batch_size", type=int, default=128)
    p.add_argument("--questions", type=int, default=None, help="questions to decode (default 100 on CPU, 500 on GPU)")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None, help="folder with wiki.txt and birth_dev.tsv")
    p.add_argument("--repeats", type=int, default=1,
                   help="time each measurement this many times, alternating the two, and keep each one's best")
    p.add_argument("--compile", action="store_true", help="torch.compile kgpt's model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print one JSON line")
    args = p.parse_args(argv)
    if min(args.steps, args.batch_size, args.repeats, args.questions or 1) < 1 or (args.warmup or 0) < 0:
        p.error("--steps, --batch_size, --questions and --repeats must be at least 1, --warmup at least 0")
    return args


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def compare(args: argparse.Namespace) -> dict:
    load_before = _load_average()
    device = resolve_device(args.device)
    n_questions = args.questions or (500 if device.type == "cuda" else 100)
    data = load_data(args.data_dir)
    seq_len = benchmark.BLOCK_SIZE - 1
    tokens = args.steps * args.batch_size * seq_len

    # Both start from the same weights.
    model = benchmark.build_model("vanilla", len(data.vocab), seed=args.seed)
    ref_model = ReferenceGPT.like(model).to(device)

    # -- training: warm-up, then rounds alternating the two; each keeps its best ----
    kgpt_times, ref_times = [], []
    trainer = benchmark.make_trainer(model, data, device, args.batch_size, args.compile)
    ref_trainer = ReferenceTrainer(
        ref_model, CorruptionDataset(data.documents, data.vocab, benchmark.BLOCK_SIZE), device, args.batch_size,
        learning_rate=benchmark.LEARNING_RATE, final_tokens=final_tokens_for(len(data.documents), benchmark.BLOCK_SIZE),
    )
    warmup = benchmark.default_warmup(device) if args.warmup is None else args.warmup
    if warmup:
        benchmark.run_steps(trainer, warmup)
        ref_trainer.run_steps(warmup)
    for _ in range(args.repeats):
        kgpt_times.append(benchmark.run_steps(trainer, args.steps))
        ref_times.append(ref_trainer.run_steps(args.steps))
    kgpt_s, ref_s = min(kgpt_times), min(ref_times)

    # -- evaluation (the reference decodes with kgpt's trained weights) ----------
    model = trainer.model.eval()
    ref_eval = ReferenceGPT.like(model).eval()
    questions = [data.questions[i % len(data.questions)].text for i in range(n_questions)]
    prompts = benchmark.prompts_for(data.questions, data.vocab, n_questions)
    kgpt_eval_times, ref_eval_times = [], []
    predict(ref_eval, data.vocab, questions[:1], device)  # warm-up (kgpt's is in time_decoding)
    for r in range(args.repeats):
        seconds, ids = benchmark.time_decoding(model, prompts, warmup=r == 0)
        kgpt_eval_times.append(seconds)
        benchmark.synchronize(device)
        t0 = time.perf_counter()
        ref_pred = predict(ref_eval, data.vocab, questions, device)
        benchmark.synchronize(device)
        ref_eval_times.append(time.perf_counter() - t0)
    kgpt_eval_s, ref_eval_s = min(kgpt_eval_times), min(ref_eval_times)
    kgpt_pred = [data.vocab.decode(p) for p in ids]
    same = sum(a == b for a, b in zip(kgpt_pred, ref_pred))
    with torch.no_grad():  # the two forwards agree on whole training rows too, not just the answers
        x, _ = trainer.batcher.sample(torch.arange(min(16, len(data.documents)), device=device), trainer.generator)
        logit_diff = (model(x)[0] - ref_eval(x.contiguous())[0]).abs().max().item()

    result = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "data": args.data_dir or "synthetic",
        "params": model.num_parameters(),
        "batch_size": args.batch_size,
        "warmup_steps": warmup,
        "steps": args.steps,
        "repeats": args.repeats,
        "kgpt_amp": "bf16" if isinstance(trainer.runner.autocast, torch.autocast) else "float32",
        "kgpt_compile": trainer.runner.compiled,
        "kgpt_cuda_graph": getattr(trainer, "graphed", None) is not None,
        "kgpt_tokens_per_s": tokens / kgpt_s,
        "ref_tokens_per_s": tokens / ref_s,
        "train_speedup": ref_s / kgpt_s,
        "questions": n_questions,
        "kgpt_questions_per_s": n_questions / kgpt_eval_s,
        "ref_questions_per_s": n_questions / ref_eval_s,
        "eval_speedup": ref_eval_s / kgpt_eval_s,
        "seconds": {"kgpt_train": kgpt_times, "ref_train": ref_times, "kgpt_eval": kgpt_eval_times, "ref_eval": ref_eval_times},
        "predictions_identical": same,
        "max_logit_diff": logit_diff,
        "mean_answer_chars": sum(map(len, kgpt_pred)) / n_questions,
        "distinct_predictions": len(set(kgpt_pred)),
        "load_average": [load_before, _load_average()],  # 1-minute, at start and end
    }
    if device.type == "cuda":
        name, peak = benchmark.peak_flops(device)
        flops = benchmark.training_flops_per_token(model, seq_len) * tokens
        result["kgpt_mfu"] = flops / kgpt_s / peak if peak else None
        result["ref_mfu"] = flops / ref_s / peak if peak else None
    return result


def table(r: dict) -> str:
    where = r["device_name"] or f"{r['device']} ({r['threads']} threads)"
    rows = [
        ("", "kgpt", "reference", "kgpt/ref"),
        ("train tokens/s", f"{r['kgpt_tokens_per_s']:,.0f}", f"{r['ref_tokens_per_s']:,.0f}", f"{r['train_speedup']:.2f}x"),
        ("train ms/step",
         f"{1000 * r['batch_size'] * 127 / r['kgpt_tokens_per_s']:,.1f}",
         f"{1000 * r['batch_size'] * 127 / r['ref_tokens_per_s']:,.1f}", ""),
        ("eval questions/s", f"{r['kgpt_questions_per_s']:,.1f}", f"{r['ref_questions_per_s']:,.2f}", f"{r['eval_speedup']:.1f}x"),
    ]
    if r.get("kgpt_mfu") is not None:
        rows.append(("train MFU", f"{100 * r['kgpt_mfu']:.1f}%", f"{100 * r['ref_mfu']:.1f}%", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    best = f" (best of {r['repeats']} rounds)" if r["repeats"] > 1 else ""
    lines = [
        f"vanilla GPT, {r['params'] / 1e6:.2f}M params, {where}, torch {r['torch']}, data: {r['data']}",
        f"training: batch {r['batch_size']}, {r['warmup_steps']} warm-up + {r['steps']} timed steps each{best}; "
        f"kgpt {r['kgpt_amp']}{' compiled' if r['kgpt_compile'] else ''}{' CUDA graph' if r['kgpt_cuda_graph'] else ''}, "
        "reference float32",
        f"evaluation: {r['questions']} questions, 32 characters max{best}",
        "",
    ]
    for row in rows:
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    lines.append("")
    busy = [x for x in r["load_average"] if x is not None and x > r["threads"] + 0.5]
    if r["device"] == "cpu" and busy:
        lines.append(
            f"warning: load average {max(busy):.1f} on a {r['threads']}-thread run: other processes shared the "
            "CPU, so these timings are unreliable; rerun on a quiet machine or with --repeats"
        )
    lines.append(
        f"predictions identical: {r['predictions_identical']}/{r['questions']} "
        f"({r['distinct_predictions']} distinct, {r['mean_answer_chars']:.1f} chars on average); "
        f"largest logit difference on 16 training rows {r['max_logit_diff']:.1e}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = compare(args)
    print(table(result))
    if args.json:
        print(json.dumps(result))
    return 0 if result["predictions_identical"] == result["questions"] else 1


if __name__ == "__main__":
    sys.exit(main())
