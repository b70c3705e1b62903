"""Throughput benchmarks of kgpt's fast path: ``kgpt bench train`` and ``kgpt bench eval``.

Both run on the embedded synthetic data (:func:`kgpt.data.synthetic.generate`), so they
need no files, and build a default-size model (the assignment's 4 layers × 256 wide,
block 128, about 3.2M parameters).

* ``bench_train`` times the real training loop (:meth:`kgpt.training.Trainer.run`): batch
  construction (span corruption on the device), forward, backward, gradient clipping,
  the optimiser step and the loop's own bookkeeping. Warm-up steps run first and are
  not timed (``torch.compile`` compiles there, and on CUDA the step's CUDA graph is
  captured there); the timed steps end with a device synchronisation.
* ``bench_eval`` times :func:`kgpt.inference.greedy_decode` on dev-style questions
  ``Where was NAME born?`` after one untimed warm-up decode of the same questions.
  The model is freshly initialised: such a model seldom emits the closing ⁇, so nearly
  every question decodes all 32 characters (``mean_answer_chars`` says how many): close
  to the slowest case, not a flattering one.

``benchmarks/compare.py`` runs the same measurements next to a reference-style
implementation (``benchmarks/reference.py``) and reports the ratios.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from kgpt import pipeline
from kgpt.data.corpus import Question, corpus_documents, parse_questions
from kgpt.data.corruption import CorruptionBatcher
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.answering import MAX_ANSWER_CHARS
from kgpt.inference import DECODE_BATCH, DECODE_BATCH_ELSEWHERE, greedy_decode
from kgpt.model import GPT, GPTConfig
from kgpt.training import ASSIGNMENT, GRAPH_WARMUP_STEPS, Trainer, TrainerConfig, final_tokens_for, resolve_device
from kgpt.vocab import MASK_CHAR, CharVocab

# The pipeline's own settings, so the benchmark measures what `kgpt pretrain` runs.
BLOCK_SIZE = pipeline.BLOCK_SIZE
LEARNING_RATE = ASSIGNMENT.pretrain.lr

PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    # Dense (no sparsity) bf16 tensor-core peaks from the vendor's data sheets; the first
    # substring found in torch.cuda.get_device_name() wins, so the PCIe H100 comes first.
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
)


@dataclass
class BenchData:
    """A pretraining corpus, its vocabulary and questions to decode."""

    documents: list[str]
    vocab: CharVocab
    questions: list[Question]


def synthetic_data(seed: int = 0) -> BenchData:
    """The embedded synthetic corpus, its vocabulary (as the pipeline builds it) and dev questions."""
    data = generate(SyntheticConfig(seed=seed))
    questions = parse_questions(data.dev, where="synthetic dev questions")
    return BenchData(corpus_documents(data.wiki), CharVocab.from_text(data.wiki), questions)


def build_model(variant: str, vocab_size: int, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=BLOCK_SIZE, variant=variant, **overrides))


def prompts_for(questions: list[Question], vocab: CharVocab, n: int) -> list[list[int]]:
    """``n`` encoded prompts ``question⁇``, cycling through ``questions`` if there are fewer."""
    return [vocab.encode(questions[i % len(questions)].text + MASK_CHAR) for i in range(n)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(model: GPT, data: BenchData, device: torch.device, batch_size: int, compile: bool = False) -> Trainer:
    """A Trainer with the assignment's pretraining settings and no files or progress bar."""
    batcher = CorruptionBatcher(data.documents, data.vocab, model.config.block_size, device)
    config = TrainerConfig(
        max_epochs=10**6,  # never the limit: runs are counted in steps
        batch_size=batch_size,
        learning_rate=LEARNING_RATE,
        final_tokens=final_tokens_for(len(data.documents), model.config.block_size),
        compile=compile,
        progress=False,
        checkpoint_path=None,
        stage="bench",
    )
    return Trainer(model, batcher, config, data.vocab, device)


def default_warmup(device: torch.device) -> int:
    """Untimed steps before timing: on CUDA the Trainer runs GRAPH_WARMUP_STEPS eager steps,
    then captures its CUDA graph; two more make sure capture and first replay are untimed."""
    return GRAPH_WARMUP_STEPS + 2 if device.type == "cuda" else 2


def run_steps(trainer: Trainer, steps: int) -> float:
    """Seconds for ``steps`` more steps of the real training loop, synchronised at both ends."""
    synchronize(trainer.device)
    t0 = time.perf_counter()
    trainer.run(steps)  # ends by reading the loss on the host, and synchronises on CUDA
    synchronize(trainer.device)
    return time.perf_counter() - t0


def time_training(
    model: GPT, data: BenchData, device: torch.device, batch_size: int, steps: int,
    warmup: int | None = None, compile: bool = False,
) -> tuple[float, Trainer]:
    """Warm up (untimed; ``None``: :func:`default_warmup`), then time ``steps`` training
    steps; returns (seconds, trainer)."""
    trainer = make_trainer(model, data, device, batch_size, compile)
    warmup = default_warmup(device) if warmup is None else warmup
    if warmup:
        run_steps(trainer, warmup)
    trainer.runner.positions = trainer.runner.positions_squared = 0  # count the timed steps' work only
    return run_steps(trainer, steps), trainer


def matmul_parameters(model: GPT) -> int:
    """N of the FLOPs estimate: every parameter but the embedding tables (lookups, no matmul).

    Biases and LayerNorm weights are included, as in the usual non-embedding count; they
    are under 1% of N at the default size.
    """
    skip = {id(model.tok_emb.weight)} | ({id(model.pos_emb)} if model.pos_emb is not None else set())
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def training_flops(model: GPT, positions: int, positions_squared: int) -> float:
    """FLOPs of training on rows totalling ``positions`` positions (and Σ rows·columns²
    ``positions_squared``): :func:`training_flops_per_token` summed over rows of their
    own length, so that length buckets, which cut PAD off, are not credited for it."""
    c = model.config
    return 6.0 * matmul_parameters(model) * positions + 12.0 * c.n_layer * c.n_embd * positions_squared


def training_flops_per_token(model: GPT, seq_len: int) -> float:
    """FLOPs of one training token (forward + backward), the PaLM-paper estimate.

    ``6·N + 12·n_layer·T·n_embd`` where N is the non-embedding parameter count (every
    parameter but ``tok_emb`` and ``pos_emb``, which are lookups, not matmuls), T is the
    sequence length (block_size − 1) and the second term is attention's QKᵀ and AV
    products (2 matmuls × 2 FLOPs × 3 for forward + backward, counted without halving
    for causality, as is customary). An estimate for the vanilla/rope shape; the other
    variants attend differently, so their MFU is approximate.
    """
    return training_flops(model, 1, seq_len)  # one position of a row seq_len long


MATMUL_SIDE = 2048  # large enough that a float32 product runs at the cores' full speed


def matmul_flops(device: torch.device, side: int = MATMUL_SIDE, repeats: int = 5) -> float:
    """The FLOP/s of one large square matrix product, measured here with the threads this
    process uses (float32 on a CPU, bf16 on a GPU, as training computes): the practical
    peak a training step can be held against where no data sheet says (a CPU)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(side, side, device=device, dtype=dtype)
    b = torch.randn(side, side, device=device, dtype=dtype)
    a @ b  # warm-up: thread pool, kernel choice
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * side**3 / best


def peak_flops(device: torch.device) -> tuple[str | None, float | None]:
    """(device name, dense bf16 peak FLOP/s) of a known GPU; (name, None) otherwise."""
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return name, flops
    return name, None


def bench_train(args) -> dict:
    """Training throughput of the fast path; one dict (the CLI prints it as JSON)."""
    device = resolve_device(args.device)
    data = synthetic_data()
    model = build_model(args.variant, len(data.vocab))
    seconds, trainer = time_training(model, data, device, args.batch_size, args.steps, compile=args.compile)
    seq_len = model.config.block_size - 1
    tokens = args.steps * args.batch_size * seq_len
    runner = trainer.runner
    flops = training_flops(model, runner.positions, runner.positions_squared)  # the timed steps' work
    matmul = matmul_flops(device)
    result = {
        "variant": args.variant,
        "device": device.type,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "tokens_per_s": tokens / seconds,
        "ms_per_step": 1000.0 * seconds / args.steps,
        "params": model.num_parameters(),
        "compile": trainer.runner.compiled,
        "amp": "bf16" if isinstance(trainer.runner.autocast, torch.autocast) else "float32",
        "length_buckets": runner.buckets,  # 0: whole batches, uncut (CUDA graphs, compile)
        "threads": torch.get_num_threads(),
        # The work the timed steps computed (PAD cut by length buckets not counted), per
        # second, against one large matrix product timed here with the same threads.
        "achieved_flops": flops / seconds,
        "matmul_flops": matmul,
        "of_matmul": flops / seconds / matmul,
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        result["cuda_graph"] = getattr(trainer, "graphed", None) is not None
        name, peak = peak_flops(device)
        result["device_name"] = name
        result["mfu"] = training_flops_per_token(model, seq_len) * tokens / seconds / peak if peak else None
    return result


def time_decoding(
    model: GPT, prompts: list[list[int]], warmup: bool = True, batch_size: int | None = None
) -> tuple[float, list[list[int]]]:
    """Seconds for one ``greedy_decode`` of ``prompts`` (after an untimed one) and its output."""
    device = next(model.parameters()).device
    if warmup:
        greedy_decode(model, prompts, MAX_ANSWER_CHARS, batch_size=batch_size)
    synchronize(device)
    t0 = time.perf_counter()
    out = greedy_decode(model, prompts, MAX_ANSWER_CHARS, batch_size=batch_size)  # returns lists, so it has synchronised
    seconds = time.perf_counter() - t0
    return seconds, out


def bench_eval(args) -> dict:
    """Greedy-decoding throughput of the fast path on ``args.questions`` questions."""
    device = resolve_device(args.device)
    data = synthetic_data()
    model = build_model(args.variant, len(data.vocab)).to(device).eval()
    prompts = prompts_for(data.questions, data.vocab, args.questions)
    seconds, out = time_decoding(model, prompts, batch_size=args.batch_size)
    result = {
        "variant": args.variant,
        "device": device.type,
        "questions": args.questions,
        "decode_batch": args.batch_size or DECODE_BATCH.get(device.type, DECODE_BATCH_ELSEWHERE),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "seconds": seconds,
        "questions_per_s": args.questions / seconds,
        "mean_answer_chars": sum(map(len, out)) / len(out),
        "weights": "random-init",
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    return result


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def describe(result: dict) -> str:
    """One human-readable line for a ``bench_train`` or ``bench_eval`` result."""
    where = result.get("device_name") or result["device"]
    if "tokens_per_s" in result:
        line = (
            f"train {result['variant']} on {where}: {result['tokens_per_s']:,.0f} tokens/s "
            f"({result['ms_per_step']:.1f} ms/step, batch {result['batch_size']}, {result['steps']} timed steps, "
            f"{result['params'] / 1e6:.2f}M params, {result['amp']}{', compiled' if result['compile'] else ''}, "
            f"torch {result['torch']}); {result['achieved_flops'] / 1e9:,.1f} GFLOP/s computed, "
            f"{100 * result['of_matmul']:.0f}% of a {result['matmul_flops'] / 1e9:,.1f} GFLOP/s matrix product "
            f"on {result['threads']} thread{'s' if result['threads'] != 1 else ''}"
        )
        if result.get("mfu") is not None:
            line += f", MFU {100 * result['mfu']:.1f}%"
        return line
    return (
        f"eval {result['variant']} on {where}: {result['questions']} questions in {result['seconds']:.2f}s = "
        f"{result['questions_per_s']:,.1f} questions/s (greedy, {result['decode_batch']} rows at a time, "
        f"{result['mean_answer_chars']:.1f} chars per answer, peak memory {result['peak_rss_mib']:,.0f} MiB, "
        f"{result['weights']} weights, torch {result['torch']})"
    )
