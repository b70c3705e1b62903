"""Command line: argument parsing only; every command is a thin call into the package.

Spellings follow the assignment (``--writing_params_path``); the dash spellings
(``--writing-params-path``) are accepted too. Errors a user can cause print one line
and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from kgpt.errors import KgptError
from kgpt.model.config import VARIANTS
from kgpt.training.recipe import RECIPES

MAX_EPOCHS_LIMIT = 100_000
MAX_SEED = 2**63 - 1  # what every RNG kgpt seeds (torch, numpy) accepts


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other kgpt error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _opt(p: argparse.ArgumentParser, name: str, **kw) -> None:
    """Add --snake_case and --dash-case spellings of one option."""
    spellings = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    p.add_argument(*spellings, dest=name, **kw)


def _number(kind: type, low: float, high: float, what: str, low_open: bool = False, high_open: bool = False):
    """An argparse type: a ``kind`` number in [low, high] (open ends where asked)."""

    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not {'a whole number' if kind is int else 'a number'}") from None
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        if not (math.isfinite(v) and above and below):
            raise argparse.ArgumentTypeError(f"{s} is out of range; {what}")
        return v

    return parse


_positive_float = _number(float, 0.0, 1.0, "a learning rate must be in (0, 1)", low_open=True, high_open=True)
_epochs = _number(int, 0, MAX_EPOCHS_LIMIT, f"use 0 to {MAX_EPOCHS_LIMIT}")
_positive_int = _number(int, 1, math.inf, "must be at least 1")
_seed = _number(int, 0, MAX_SEED, "use 0 to 2**63-1")
_seconds = _number(float, 0.0, math.inf, "use 0 (every epoch) or more seconds")


def _training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("variant", metavar="VARIANT", choices=VARIANTS, help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("pretrain_corpus_path", metavar="CORPUS", help="the pretraining corpus (wiki.txt)")
    _opt(p, "bottleneck_dim", type=_positive_int, default=None, help="perceiver bottleneck size (default 32)")
    _opt(p, "max_epochs", type=_epochs, default=None, help="override the number of epochs")
    _opt(p, "seed", type=_seed, default=0)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(p, "tb_expt_name", default=None, help="write TensorBoard scalars under expt/COMMAND/NAME_VARIANT")
    _opt(p, "compile", action="store_true", help="torch.compile the model (falls back to eager)")
    _opt(p, "resume", action="store_true", help="continue from WRITING_PARAMS_PATH.resume")
    _opt(p, "checkpoint_every", type=_seconds, default=120.0,
         help="seconds between resumable checkpoints, written at epoch ends to WRITING_PARAMS_PATH.resume (0: every epoch)")
    _opt(p, "batch_size", type=_positive_int, default=None, help="override the assignment's batch size")
    _opt(p, "precision", choices=("auto", "fp32", "bf16"), default="auto",
         help="auto: the recipe's choice on CUDA (the assignment's: fp32), fp32 on CPU")
    _opt(p, "recipe", choices=tuple(RECIPES), default="assignment",
         help="how to train: 'assignment' is the course's trainer exactly; others are named departures from it")
    _opt(p, "no_progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kgpt", description="Knowledge access in a character-level GPT: pretrain, finetune, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("pretrain", help="span-corruption pretraining on the corpus")
    _training_flags(p)
    _opt(p, "writing_params_path", required=True, help="where the pretrained model goes")
    _opt(p, "pretrain_lr", type=_positive_float, default=6e-3)
    _opt(p, "reading_params_path", help=argparse.SUPPRESS)  # accepted for the assignment's scripts; unused

    p = sub.add_parser("finetune", help="finetune on birthplace questions")
    _training_flags(p)
    _opt(p, "reading_params_path", default=None, help="pretrained model (omit to finetune from scratch)")
    _opt(p, "writing_params_path", required=True, help="where the finetuned model goes")
    _opt(p, "finetune_corpus_path", required=True, help="QUESTION<TAB>PLACE lines")
    _opt(p, "finetune_lr", type=_positive_float, default=6e-4)

    p = sub.add_parser("evaluate", help="answer a question file greedily and score it")
    p.add_argument("variant", metavar="VARIANT", choices=VARIANTS, help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("pretrain_corpus_path", metavar="CORPUS", help="the pretraining corpus (for its vocabulary)")
    _opt(p, "reading_params_path", default=None, help="the finetuned model")
    _opt(p, "eval_corpus_path", required=True, help="question file, with or without places")
    _opt(p, "outputs_path", required=True, help="one prediction per line is written here")
    _opt(p, "bottleneck_dim", type=_positive_int, default=None)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")

    p = sub.add_parser("london-baseline", help='predict "London" for every question')
    _opt(p, "eval_corpus_path", required=True)
    _opt(p, "outputs_path", default=None)

    p = sub.add_parser("demo", help="the whole experiment on embedded synthetic data, CPU, minutes")
    _opt(p, "out", default="kgpt-demo", help="output directory (default kgpt-demo)")
    _opt(p, "seed", type=_seed, default=0)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="cpu")
    _opt(p, "preset", default="cpu", help="demo size: cpu (default) or tiny (seconds, for tests)")

    p = sub.add_parser("reproduce", help="the full study matrix on the real files, resumable")
    _opt(p, "data_dir", required=True, help="folder with wiki.txt, birth_places_train.tsv, birth_dev.tsv")
    _opt(p, "out", default="runs/reproduce")
    _opt(p, "variants", nargs="+", choices=VARIANTS, default=["vanilla"])
    _opt(p, "seeds", nargs="+", type=_seed, default=[0])
    _opt(p, "preset", default="assignment", help="assignment (full) or quick")
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(p, "compile", action="store_true")

    p = sub.add_parser("attention-lab", help="the self-attention questions as numerical experiments")
    _opt(p, "out", default="attention-lab")
    _opt(p, "seed", type=_seed, default=0)

    p = sub.add_parser("data", help="verify or fetch the real data files")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    q = dsub.add_parser("verify", help="check the four files against their known SHA-256")
    q.add_argument("directory")
    q = dsub.add_parser("fetch", help="download, verify and unpack the data")
    _opt(q, "url", required=True)
    _opt(q, "dest", required=True)

    p = sub.add_parser("bench", help="throughput benchmarks (one JSON line)")
    bsub = p.add_subparsers(dest="bench_command", required=True, parser_class=_Parser)
    q = bsub.add_parser("train", help="training steps per second on synthetic batches")
    _opt(q, "variant", choices=VARIANTS, default="vanilla")
    _opt(q, "batch_size", type=_positive_int, default=128)
    _opt(q, "steps", type=_positive_int, default=20)
    _opt(q, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(q, "compile", action="store_true")
    _opt(q, "json", action="store_true")
    q = bsub.add_parser("eval", help="greedy decoding of a question batch")
    _opt(q, "variant", choices=VARIANTS, default="vanilla")
    _opt(q, "questions", type=_positive_int, default=500)
    _opt(q, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(q, "json", action="store_true")
    return parser


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b) if Path(a).exists() and Path(b).exists() else Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return False


def _check_paths(args) -> None:
    """Refuse, before any work, outputs that cannot be written or would destroy inputs.

    Reading errors are the pipeline's (it reads every input before training); these are
    the ones it would only find when writing, after the work is done.
    """
    from kgpt.checkpoint import check_writable

    outputs = {"writing_params_path": getattr(args, "writing_params_path", None), "outputs_path": getattr(args, "outputs_path", None)}
    inputs = [getattr(args, name, None) for name in ("pretrain_corpus_path", "finetune_corpus_path", "eval_corpus_path")]
    if args.command == "evaluate":
        inputs.append(args.reading_params_path)
    for flag, out in outputs.items():
        if out is None:
            continue
        check_writable(out, f"--{flag}")
        clash = next((i for i in inputs if i is not None and _same_file(out, i)), None)
        if clash is not None:
            raise KgptError(f"--{flag} {out} is the input file {clash}; writing there would destroy it, choose another path")
    if args.command in ("pretrain", "finetune"):
        from kgpt.pipeline import resume_path

        resumable = resume_path(args.writing_params_path)
        check_writable(resumable, "resumable checkpoint")
        # A missing state under --resume is the pipeline's check (pipeline._read_resumable).
        if resumable.exists() and not args.resume:
            raise KgptError(
                f"{resumable} holds an interrupted run; continue it with --resume, or delete it to start over"
            )


def _run_options(args, command: str):
    from kgpt.pipeline import RunOptions

    tb = Path("expt") / command / f"{args.tb_expt_name}_{args.variant}" if args.tb_expt_name else None
    return RunOptions(
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        resume=args.resume,
        tb_logdir=tb,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        precision=args.precision,
        recipe=args.recipe,
    )


def _cmd_pretrain(args) -> None:
    from kgpt import pipeline

    r = pipeline.pretrain(
        args.variant, args.pretrain_corpus_path, args.writing_params_path, lr=args.pretrain_lr,
        max_epochs=args.max_epochs, bottleneck_dim=args.bottleneck_dim or 32, opts=_run_options(args, "pretrain"),
    )
    print(f"pretrained {r.steps} steps in {r.seconds:.1f}s, final loss {r.final_loss or float('nan'):.4f}; wrote {args.writing_params_path}")


def _cmd_finetune(args) -> None:
    from kgpt import pipeline

    r = pipeline.finetune(
        args.variant, args.pretrain_corpus_path, args.writing_params_path, args.finetune_corpus_path,
        reading_params_path=args.reading_params_path, lr=args.finetune_lr, max_epochs=args.max_epochs,
        bottleneck_dim=args.bottleneck_dim, opts=_run_options(args, "finetune"),
    )
    print(f"finetuned {r.steps} steps in {r.seconds:.1f}s, final loss {r.final_loss or float('nan'):.4f}; wrote {args.writing_params_path}")


def _cmd_evaluate(args) -> None:
    from kgpt import pipeline
    from kgpt.evaluate import score_line

    if args.reading_params_path is None:
        raise KgptError("evaluate needs --reading_params_path (the finetuned model to evaluate)")
    ev = pipeline.evaluate(
        args.variant, args.pretrain_corpus_path, args.reading_params_path, args.eval_corpus_path,
        args.outputs_path, args.bottleneck_dim, args.device,
    )
    print(score_line(ev.correct, ev.total) if ev.total else f"Predictions written to {args.outputs_path}; no targets provided")


def _cmd_london(args) -> None:
    from kgpt.data.corpus import read_questions
    from kgpt.evaluate import score, score_line, write_predictions

    questions = read_questions(args.eval_corpus_path)
    predictions = ["London"] * len(questions)
    total, correct = score(questions, predictions, where=args.eval_corpus_path)
    if not total:
        raise KgptError(f"{args.eval_corpus_path} has no places to score the baseline against")
    if args.outputs_path:
        write_predictions(args.outputs_path, predictions)
    print(score_line(correct, total))


def _cmd_demo(args) -> None:
    from kgpt.experiments import run_demo

    run_demo(Path(args.out), seed=args.seed, device=args.device, preset=args.preset)


def _cmd_reproduce(args) -> None:
    from kgpt.experiments import run_reproduce

    run_reproduce(Path(args.data_dir), Path(args.out), variants=args.variants, seeds=args.seeds,
                  preset=args.preset, device=args.device, compile=args.compile)


def _cmd_attention_lab(args) -> None:
    from kgpt import attention_lab

    report = attention_lab.write_report(Path(args.out), seed=args.seed)
    print(f"{attention_lab.summary(json.loads((report.parent / 'results.json').read_text()))}; report: {report}")


def _cmd_data(args) -> None:
    from kgpt.data import fetch

    if args.data_command == "verify":
        fetch.verify(args.directory)
        print(f"{args.directory}: all {len(fetch.KNOWN_SHA256)} files match their known SHA-256")
    else:
        paths = fetch.fetch(args.url, args.dest)
        print(f"fetched and verified {len(paths)} files into {args.dest}")


def _cmd_bench(args) -> None:
    from kgpt import benchmark

    result = benchmark.bench_train(args) if args.bench_command == "train" else benchmark.bench_eval(args)
    print(json.dumps(result) if args.json else benchmark.describe(result))


COMMANDS = {
    "pretrain": _cmd_pretrain,
    "finetune": _cmd_finetune,
    "evaluate": _cmd_evaluate,
    "london-baseline": _cmd_london,
    "demo": _cmd_demo,
    "reproduce": _cmd_reproduce,
    "attention-lab": _cmd_attention_lab,
    "data": _cmd_data,
    "bench": _cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("pretrain", "finetune", "evaluate", "london-baseline"):
            _check_paths(args)
        COMMANDS[args.command](args)
    except KgptError as e:
        code = getattr(e, "exit_code", 1)  # 130: Ctrl-C saved a resumable state, not an error
        print(f"kgpt {args.command}: {'' if code == 130 else 'error: '}{_one_line(e)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"kgpt {args.command}: interrupted", file=sys.stderr)
        return 130
    except _oom_errors() as e:
        print(f"kgpt {args.command}: error: out of memory ({str(e).splitlines()[0][:120]}); lower --batch_size", file=sys.stderr)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _oom_errors() -> tuple[type[BaseException], ...]:
    import torch

    return (torch.OutOfMemoryError, MemoryError)


if __name__ == "__main__":
    sys.exit(main())
