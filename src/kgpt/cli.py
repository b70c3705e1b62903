"""Command line: argument parsing only; every command is a thin call into the package.

Spellings follow the assignment (``--writing_params_path``); the dash spellings
(``--writing-params-path``) are accepted too. Errors a user can cause print one line
and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import itertools
import math
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kgpt.answering import ANSWER_BY
from kgpt.confidence import SIGNALS
from kgpt.errors import KgptError
from kgpt.model.config import VARIANTS
from kgpt.presets import PRESETS
from kgpt.training.recipe import ASSIGNMENT, OPTIMIZERS, RECIPES

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
_probability = _number(float, 0.0, 1.0, "a confidence is from 0 to 1")


def _min_confidence(s: str):
    """--min_confidence: a confidence from 0 to 1, or "recommended" (the checkpoint's)."""
    return s if s == "recommended" else _probability(s)


def _min_confidence_flag(p: argparse.ArgumentParser, below: str) -> None:
    _opt(p, "min_confidence", type=_min_confidence, default=None, metavar="P",
         help=f"below this confidence (0 to 1, or 'recommended': the checkpoint's, chosen on held-out people) {below}")


def _training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("variant", metavar="VARIANT", choices=VARIANTS, help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("pretrain_corpus_path", metavar="CORPUS", help="the pretraining corpus (wiki.txt)")
    _opt(p, "bottleneck_dim", type=_positive_int, default=None, help="perceiver bottleneck size (default 32)")
    _opt(p, "max_epochs", type=_epochs, default=None, help="override the number of epochs")
    _opt(p, "seed", type=_seed, default=0)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(p, "tb_expt_name", default=None, help="write TensorBoard scalars under expt/COMMAND/NAME_VARIANT")
    _opt(p, "compile", action="store_true", help="torch.compile the model (falls back to eager)")
    _opt(p, "processes", type=_positive_int, default=1,
         help="on a CPU, processes that share every step, one per core at most (2 on a 2-core laptop)")
    _opt(p, "resume", action="store_true", help="continue from WRITING_PARAMS_PATH.resume")
    _opt(p, "checkpoint_every", type=_seconds, default=120.0,
         help="seconds between resumable checkpoints, written at epoch ends to WRITING_PARAMS_PATH.resume (0: every epoch)")
    _opt(p, "batch_size", type=_positive_int, default=None, help="override the assignment's batch size")
    _opt(p, "precision", choices=("auto", "fp32", "bf16"), default="auto",
         help="auto: the recipe's choice for the device (the assignment's: fp32 everywhere)")
    _opt(p, "recipe", choices=tuple(RECIPES), default="assignment",
         help="how to train: 'assignment' is the course's trainer exactly; others are named departures from it")
    _opt(p, "optimizer", choices=OPTIMIZERS, default=None,
         help="adamw, or muon (Muon for the blocks' matrices, AdamW for the rest); default: the recipe's for the stage")
    _opt(p, "no_progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kgpt", description="Knowledge access in a character-level GPT: pretrain, finetune, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("pretrain", help="pretraining on the corpus: span corruption, or the chosen recipe's stream")
    _training_flags(p)
    _opt(p, "writing_params_path", required=True, help="where the pretrained model goes")
    _opt(p, "pretrain_lr", type=_positive_float, default=None, help=f"default: the recipe's ({ASSIGNMENT.pretrain.lr} for the assignment)")
    _opt(p, "question_mix_path", default=None,
         help="--recipe knowledge only: the QUESTION<TAB>PLACE lines mixed into pretraining")
    _opt(p, "reading_params_path", help=argparse.SUPPRESS)  # accepted for the assignment's scripts; unused
    for name, default in (("n_layer", 4), ("n_head", 8), ("n_embd", 256)):
        _opt(p, name, type=_positive_int, default=None, help=f"model size (default {default}, the assignment's)")

    p = sub.add_parser("finetune", help="finetune on birthplace questions (--recipe recall: a reader of the training people's bios)")
    _training_flags(p)
    _opt(p, "reading_params_path", default=None, help="pretrained model (omit to finetune from scratch)")
    _opt(p, "writing_params_path", required=True, help="where the finetuned model goes")
    _opt(p, "finetune_corpus_path", required=True, help="QUESTION<TAB>PLACE lines")
    _opt(p, "finetune_lr", type=_positive_float, default=None, help=f"default: the recipe's ({ASSIGNMENT.finetune.lr} for the assignment)")

    p = sub.add_parser("evaluate", help="answer a question file greedily and score it")
    p.add_argument("variant", metavar="VARIANT", choices=VARIANTS, help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("pretrain_corpus_path", metavar="CORPUS", help="the pretraining corpus (for its vocabulary)")
    _opt(p, "reading_params_path", default=None, help="the finetuned model")
    _opt(p, "eval_corpus_path", required=True, help="question file, with or without places")
    _opt(p, "outputs_path", required=True, help="one prediction per line is written here")
    _opt(p, "bottleneck_dim", type=_positive_int, default=None)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(p, "analysis_dir", default=None,
         help="also write analysis.json, analysis.md and figures: confidence, calibration, abstention, errors")
    _opt(p, "finetune_corpus_path", default=None, help="with --analysis_dir: the finetuning file, to tell which gold places it taught")
    _opt(p, "pretrained_params_path", default=None,
         help="with --analysis_dir: the model before finetuning, to probe which birthplaces it stored")
    _opt(p, "no_progress", action="store_true", help="no progress bar")
    _answer_by_flag(p)
    _min_confidence_flag(p, "the prediction is an empty line, counted apart from wrong answers")

    p = sub.add_parser("ask", help="answer questions with confidence and the most probable answers")
    p.add_argument("variant", metavar="VARIANT", choices=VARIANTS, help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("pretrain_corpus_path", metavar="CORPUS", help="the pretraining corpus (for its vocabulary)")
    p.add_argument("questions", nargs="*", metavar="QUESTION", help='e.g. "Where was NAME born?" (default: one per line on stdin)')
    _opt(p, "reading_params_path", required=True, help="the finetuned model")
    _opt(p, "top_k", type=_number(int, 0, 20, "use 0 (none) to 20"), default=3, help="most probable answers to list (default 3)")
    _answer_by_flag(p)
    _min_confidence_flag(p, "the answer is \"I don't know\"")
    _opt(p, "no_progress", action="store_true", help="no count of answered questions on stderr when stdout is a file")
    _opt(p, "bottleneck_dim", type=_positive_int, default=None)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")

    p = sub.add_parser("calibrate", help="fit a recall-then-read checkpoint's confidence on people held out of its finetuning")
    p.add_argument("variant", metavar="VARIANT", choices=VARIANTS, help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("pretrain_corpus_path", metavar="CORPUS", help="the pretraining corpus (wiki.txt)")
    _opt(p, "reading_params_path", required=True, help="the finetuned recall-then-read checkpoint")
    _opt(p, "calibration_corpus_path", required=True,
         help="QUESTION<TAB>PLACE lines about training people left out of the reader's finetuning file (never dev)")
    _opt(p, "writing_params_path", required=True, help="where the calibrated checkpoint goes (may be the same file)")
    _opt(p, "made_up", type=_number(int, 1, 10_000, "use 1 to 10000"), default=None,
         help="generated names that occur nowhere in the corpus, fit as wrong answers (default 200)")
    _opt(p, "seed", type=_seed, default=None, help="seed of the generated names (default 1; the analysis uses 0)")
    _opt(p, "made_up_share", type=_number(float, 0.0, 10.0, "use 0 to 10"), default=None,
         help="the made-up names' weight in the fit, as a share of the held-out people's (default 0.1)")
    _opt(p, "signal", choices=SIGNALS, default=None,
         help="how the recall part reads the recaller's probabilities (default name-prefix; chosen on validation, docs/confidence.md)")
    _opt(p, "bottleneck_dim", type=_positive_int, default=None)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face transformers model and tokenizer")
    _opt(p, "reading_params_path", required=True, help="the kgpt checkpoint (vanilla or rope)")
    _opt(p, "hf_dir", required=True, help="a new directory for the model, tokenizer and model card")
    _opt(p, "eval_corpus_path", default=None, help="also measure accuracy on this question file for the model card")

    p = sub.add_parser("london-baseline", help='predict "London" for every question')
    _opt(p, "eval_corpus_path", required=True)
    _opt(p, "outputs_path", default=None)

    p = sub.add_parser("demo", help="the whole experiment on embedded synthetic data, CPU, minutes")
    _opt(p, "out", default="kgpt-demo", help="output directory (default kgpt-demo)")
    _opt(p, "seed", type=_seed, default=0)
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="cpu")
    _opt(p, "preset", default="cpu", help="demo size: cpu (default) or tiny (seconds, for tests)")
    _opt(p, "task", default=None, metavar="ATTRIBUTE",
         help="on embedded data of several attributes per person, ask this one (birthplace, birthyear, university) "
              "or all, with a table of them all; default: the birthplace data alone, as the assignment")

    p = sub.add_parser("reproduce", help="the full study matrix on the real files, resumable")
    _opt(p, "data_dir", required=True, help="folder with wiki.txt, birth_places_train.tsv, birth_dev.tsv")
    _opt(p, "out", default="runs/reproduce")
    _opt(p, "variants", nargs="+", choices=VARIANTS, default=["vanilla"])
    _opt(p, "seeds", nargs="+", type=_seed, default=[0])
    _opt(p, "preset", default="assignment", help=f"one of {', '.join(PRESETS)} (docs/commands.md says what each runs)")
    _opt(p, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(p, "compile", action="store_true")
    _opt(p, "ray", default=None, metavar="ADDRESS",
         help="run the cells as Ray tasks: auto (join the running cluster), local (start one here), ray://HOST:PORT")
    _opt(p, "cpus_per_cell", type=_positive_int, default=None,
         help="CPUs (torch threads) per cell: Ray's request per task (default 1), or the threads of an in-process run")
    _opt(p, "checkpoint_every", type=_seconds, default=60.0,
         help="seconds between a training's resumable checkpoints (0: every epoch); a killed cell resumes from the last")
    _opt(p, "task", default="birthplace", help="the question asked: a task of the folder's tasks.toml "
         "(default birthplace, the assignment's files)")

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
    _opt(q, "batch_size", type=_positive_int, default=None, help="rows decoded together (default: 1024 on a GPU, 128 elsewhere)")
    _opt(q, "device", choices=("auto", "cpu", "cuda"), default="auto")
    _opt(q, "json", action="store_true")
    return parser


def _run_options(args, command: str):
    from kgpt.pipeline import RunOptions

    tb = Path("expt") / command / f"{args.tb_expt_name}_{args.variant}" if args.tb_expt_name else None
    return RunOptions(
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        processes=args.processes,
        resume=args.resume,
        tb_logdir=tb,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        precision=args.precision,
        recipe=args.recipe,
        optimizer=args.optimizer,
        model={k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd") if getattr(args, k, None) is not None} or None,
    )


def _cmd_pretrain(args) -> None:
    from kgpt import pipeline

    r = pipeline.pretrain(
        args.variant, args.pretrain_corpus_path, args.writing_params_path, lr=args.pretrain_lr,
        max_epochs=args.max_epochs, bottleneck_dim=args.bottleneck_dim, opts=_run_options(args, "pretrain"),
        question_mix_path=args.question_mix_path,
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


def _answer_by_flag(p: argparse.ArgumentParser) -> None:
    _opt(p, "answer_by", choices=ANSWER_BY, default=None,
         help="how a recall-then-read reader answers: extract (a span of the recalled text, the recipe's default) "
              "or write (free writing, for comparison)")
    p.add_argument("--read", dest="answer_by", choices=ANSWER_BY, help=argparse.SUPPRESS)  # its earlier name
    _opt(p, "recall_beams", type=_positive_int, default=None, metavar="N",
         help="recall each bio by a beam search this wide instead of the checkpoint's way (1: greedy)")


def _cmd_evaluate(args) -> None:
    from kgpt import pipeline
    from kgpt.evaluate import score_line

    if args.reading_params_path is None:
        raise KgptError("evaluate needs --reading_params_path (the finetuned model to evaluate)")
    ev = pipeline.evaluate(
        args.variant, args.pretrain_corpus_path, args.reading_params_path, args.eval_corpus_path,
        args.outputs_path, args.bottleneck_dim, args.device, analysis_dir=args.analysis_dir,
        finetune_corpus_path=args.finetune_corpus_path, pretrained_params_path=args.pretrained_params_path,
        progress=not args.no_progress, answer_by=args.answer_by, min_confidence=args.min_confidence,
        recall_beams=args.recall_beams,
    )
    print(score_line(ev.correct, ev.total, ev.abstained, ev.min_confidence) if ev.total
          else f"Predictions written to {args.outputs_path}; no targets provided")
    if ev.analysis is not None:
        print(f"Analysis written to {ev.analysis}")


def _stdin_questions() -> Iterator[str]:
    """The non-blank lines of stdin, read as they come (a stream of any length)."""
    from kgpt.data.corpus import text_lines

    return (line for _, line in text_lines(sys.stdin.buffer, "stdin") if line.strip())


def _cmd_ask(args) -> None:
    from kgpt import pipeline
    from kgpt.asking import format_answer

    questions, chunk, show = args.questions, pipeline.ASK_CHUNK, False
    if not questions:
        stdin = _stdin_questions()
        first = next(stdin, None)
        if first is None:
            raise KgptError('no questions: give them as arguments ("Where was NAME born?") or one per line on stdin')
        questions = itertools.chain([first], stdin)
        chunk = 1 if sys.stdin.isatty() else chunk  # someone typing waits for each answer
        show = not args.no_progress and not sys.stdout.isatty()  # answers go to a file: count them on stderr
    answers = pipeline.ask(args.variant, args.pretrain_corpus_path, args.reading_params_path, questions,
                           top_k=args.top_k, bottleneck_dim=args.bottleneck_dim, device=args.device, chunk=chunk,
                           answer_by=args.answer_by, min_confidence=args.min_confidence,
                           recall_beams=args.recall_beams)
    failed = asked = 0
    with pipeline.progress_bar(None, "ask", show) as bar:
        for asked, a in enumerate(answers, start=1):
            if isinstance(a, KgptError):
                failed += 1
                bar.write(f"kgpt ask: error: {_one_line(a)}", file=sys.stderr)
            else:
                print(format_answer(a), flush=True)
            bar.update(1)
    if failed:
        raise KgptError(f"{failed} of {asked} questions could not be answered (see above)")


def _cmd_calibrate(args) -> None:
    from kgpt import pipeline

    kw = {k: v for k, v in (("made_up", args.made_up), ("seed", args.seed), ("signal", args.signal),
                                            ("made_up_share", args.made_up_share)) if v is not None}
    result = pipeline.calibrate(args.variant, args.pretrain_corpus_path, args.reading_params_path,
                                args.calibration_corpus_path, args.writing_params_path,
                                bottleneck_dim=args.bottleneck_dim, device=args.device, **kw)
    c, f = result.calibration, result.fitted
    print(f"calibrated on {f['people']} held-out people and {f['made_up']} made-up names: "
          f"recommended --min_confidence {c.threshold:.4f} answers {f['answered']}/{f['people']} of them "
          f"({f['correct']} right) and {f['made_up_answered']}/{f['made_up']} made-up names; "
          f"a recall part below {c.recall_threshold:.4f} is not trusted")
    print(f"wrote {args.writing_params_path}")


def _cmd_export(args) -> None:
    from kgpt.export import export

    out = export(args.reading_params_path, args.hf_dir, args.eval_corpus_path)
    print(f"wrote {out}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(out)!r})")


def _cmd_london(args) -> None:
    from kgpt import pipeline
    from kgpt.evaluate import score_line

    ev = pipeline.london_baseline(args.eval_corpus_path, args.outputs_path)
    print(score_line(ev.correct, ev.total))


def _out_dir(out: str) -> Path:
    """An output folder, new or existing; an existing file there is the user's mistake."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise KgptError(f"--out {out} is a file; give a folder (new or existing) for the outputs")
    return path


def _cmd_demo(args) -> None:
    from kgpt.experiments import run_demo

    run_demo(_out_dir(args.out), seed=args.seed, device=args.device, preset=args.preset, task=args.task)


def _cmd_reproduce(args) -> None:
    from kgpt.experiments import run_reproduce

    run_reproduce(Path(args.data_dir), _out_dir(args.out), variants=args.variants, seeds=args.seeds,
                  preset=args.preset, device=args.device, compile=args.compile, ray=args.ray,
                  cpus_per_cell=args.cpus_per_cell, checkpoint_every=args.checkpoint_every, task=args.task)


def _cmd_attention_lab(args) -> None:
    from kgpt import attention_lab

    report = attention_lab.write_report(_out_dir(args.out), seed=args.seed)
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
    "ask": _cmd_ask,
    "calibrate": _cmd_calibrate,
    "export": _cmd_export,
    "london-baseline": _cmd_london,
    "demo": _cmd_demo,
    "reproduce": _cmd_reproduce,
    "attention-lab": _cmd_attention_lab,
    "data": _cmd_data,
    "bench": _cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "ask":  # argparse gives questions after the options (as documented) back as extras
        args.questions += [a for a in extra if not a.startswith("-")]
        extra = [a for a in extra if a.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with _sigterm_raises():
            COMMANDS[args.command](args)
    except KgptError as e:
        code = getattr(e, "exit_code", 1)  # 128 + a signal: training stopped and saved a resumable state
        print(f"kgpt {args.command}: {'' if code >= 128 else 'error: '}{_one_line(e)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"kgpt {args.command}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"kgpt {args.command}: terminated by SIGTERM; outputs not yet complete were not written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except _oom_errors() as e:
        print(f"kgpt {args.command}: error: out of memory ({str(e).splitlines()[0][:120]}); lower --batch_size", file=sys.stderr)
        return 1
    return 0


class _Terminated(BaseException):
    """SIGTERM outside training (which saves and stops on its own): unwind like Ctrl-C,
    so an output being written is removed, not left half-written."""


@contextmanager
def _sigterm_raises():
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum, frame):
            raise _Terminated

        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _oom_errors() -> tuple[type[BaseException], ...]:
    import torch

    return (torch.OutOfMemoryError, MemoryError)


if __name__ == "__main__":
    sys.exit(main())
