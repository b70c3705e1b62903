"""The assignment's three stages as functions: pretrain, finetune, evaluate.

The CLI and the study runner both call these, so a command line and a ``reproduce``
cell run exactly the same code. Defaults are the assignment's hyperparameters.
"""

from __future__ import annotations

import contextlib
import math
import copy
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from kgpt.analysis import ANALYSIS_FILES, analyze, write_analysis
from kgpt.answering import Answerer, AnswerPolicy, RecallAnswerer, load_answerer
from kgpt.asking import Answer, answer_questions
from kgpt.checkpoint import RECALLER, Checkpoint, load_model, read_checkpoint, save_answering, save_checkpoint
from kgpt.confidence import MADE_UP_SEED, MADE_UP_SHARE, N_MADE_UP, CALIBRATION_SIGNAL, Calibration, examples, fit, held_out_scores, operating_point
from kgpt.data.corpus import bios_by_name, corpus_documents, iter_questions, read_corpus, read_questions
from kgpt.data.corruption import CorruptionBatcher
from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.data.questions import QuestionBatcher, encode_questions
from kgpt.data.reader import MIN_READ_CHARS, reader_examples
from kgpt.data.words import word_count
from kgpt.errors import KgptError
from kgpt.evaluate import chunks, count_askable, predict_stream, score, write_predictions
from kgpt.io import atomic_writer, check_output, check_writable, writer_lock
from kgpt.model import GPT, GPTConfig, dropout_rates
from kgpt.probe import Storage, cued_completions, free_recalls
from kgpt.recaller import recall
from kgpt.training import (
    Recipe,
    Trainer,
    TrainerConfig,
    TrainResult,
    get_recipe,
    parallel,
    resolve_device,
)
from kgpt.training.recipe import RECALL
from kgpt.vocab import CharVocab

BLOCK_SIZE = 128


@dataclass
class Corpus:
    """The pretraining corpus: its documents and the vocabulary everything shares."""

    path: Path
    documents: list[str]
    vocab: CharVocab

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        text = read_corpus(path)
        return cls(Path(path), corpus_documents(text), CharVocab.from_text(text))


@dataclass
class RunOptions:
    """Settings shared by the training stages (the CLI's common flags)."""

    seed: int = 0
    device: str = "auto"
    compile: bool = False
    processes: int = 1  # on a CPU, processes that share every training step (kgpt.training.parallel)
    resume: bool = False
    tb_logdir: Path | None = None
    checkpoint_every: float = 120.0
    progress: bool = True
    batch_size: int | None = None  # None: the assignment's batch for the stage
    precision: str = "auto"  # auto: the recipe's choice for the device (bf16 or float32)
    recipe: str | Recipe = "assignment"  # a name from kgpt.training.recipe (or a variant of one, in benchmarks)
    optimizer: str | None = None  # None: the recipe's for the stage
    model: dict | None = None  # GPTConfig overrides (layers, width) for smaller presets


def resume_path(writing_params_path: str | Path) -> Path:
    """Where a run's resumable state lives while it trains."""
    return Path(f"{writing_params_path}.resume")


def _train(stage, model, batcher, corpus, out, max_epochs, lr, batch, opts, device, saved: Checkpoint | None,
           answering: RecallAnswerer | None = None) -> TrainResult:
    """Train and save ``model``; with ``answering`` (recall-then-read, ``model`` its
    reader), the file also holds the recalling model and how to answer with both."""
    recipe = get_recipe(opts.recipe)
    defaults = recipe.pretrain if stage == "pretrain" else recipe.finetune
    block = model.config.block_size
    warmup, final = recipe.schedule_tokens(max_epochs, len(batcher), batcher.width, len(corpus.documents), block)
    cfg = TrainerConfig(
        max_epochs=max_epochs,
        batch_size=batch,
        learning_rate=lr,
        weight_decay=defaults.weight_decay,
        lr_floor=defaults.lr_floor,
        optimizer=opts.optimizer or defaults.optimizer,
        recipe=recipe,
        warmup_tokens=warmup,
        final_tokens=final,
        seed=opts.seed,
        compile=opts.compile,
        amp={"auto": None, "fp32": False, "bf16": True}[opts.precision],
        checkpoint_path=resume_path(out),
        checkpoint_every=opts.checkpoint_every,
        tb_logdir=opts.tb_logdir,
        progress=opts.progress,
        stage=stage,
    )
    torch.manual_seed(opts.seed)  # the global generator draws dropout (a resumed run restores its state)
    trainer = Trainer(model, batcher, cfg, corpus.vocab, device)
    if saved is not None:
        trainer.resume(cfg.checkpoint_path, saved)
    result = parallel.train(trainer, opts.processes)
    extra = None
    if answering is not None:
        extra = {f"{RECALLER}.{k}": v for k, v in answering.recaller.state_dict().items()}
    save_checkpoint(out, trainer.model, corpus.vocab, trainer.progress.to_dict(), extra,
                    answering.spec() if answering is not None else None)
    cfg.checkpoint_path.unlink(missing_ok=True)
    return result


def model_sizes(recipe: str | Recipe, model: dict | None = None) -> dict:
    """The GPTConfig fields a fresh model of ``recipe`` takes besides its vocabulary and
    variant: the recipe's block and dropout, then ``model``'s overrides (presets may shrink the block too)."""
    recipe = get_recipe(recipe)
    rates = {} if recipe.dropout is None else dropout_rates(recipe.dropout)
    return {"block_size": recipe.block_size or BLOCK_SIZE, **rates, **(model or {})}


def _fresh_model(variant: str, corpus: Corpus, bottleneck_dim: int | None, opts: RunOptions) -> GPT:
    torch.manual_seed(opts.seed)  # --seed decides the initial weights too
    sizes = model_sizes(opts.recipe, opts.model)
    if bottleneck_dim is not None:
        sizes["bottleneck_dim"] = bottleneck_dim
    return GPT(GPTConfig(vocab_size=len(corpus.vocab), variant=variant, **sizes))


def _epochs(default: int, max_epochs: int | None, saved: Checkpoint | None) -> int:
    """The epoch count: given, else the one a resumed run started with, else the default."""
    if max_epochs is not None:
        return max_epochs
    return saved.progress.get("max_epochs", default) if saved is not None else default


def _read_resumable(out: str | Path, model: GPT, opts: RunOptions) -> Checkpoint | None:
    """With --resume, the saved state (read once), checked to continue this same model.

    Without it, an interrupted run's state is never silently overwritten.
    """
    path = resume_path(out)
    check_writable(path, "resumable checkpoint")
    if not opts.resume:
        if path.exists():
            raise KgptError(f"{path} holds an interrupted run; continue it with --resume, or delete it to start over")
        return None
    if not path.exists():
        raise KgptError(f"--resume: no resumable checkpoint {path}; start without --resume")
    saved = read_checkpoint(path)
    if saved.config.to_dict() != model.config.to_dict():
        raise KgptError(
            f"--resume: {path} holds a {saved.config.variant} model with other settings; "
            "use the variant and options it was started with"
        )
    return saved


def pretrain(
    variant: str,
    corpus_path: str | Path,
    writing_params_path: str | Path,
    lr: float | None = None,
    max_epochs: int | None = None,
    bottleneck_dim: int | None = None,
    opts: RunOptions | None = None,
    question_mix_path: str | Path | None = None,
) -> TrainResult:
    """Pretraining on the corpus; writes the model to ``writing_params_path``.

    The assignment's recipe span-corrupts the bios. A recipe with a question mix (the
    knowledge recipe) also trains on ``question_mix_path``'s questions and answers.
    Unset hyperparameters are the recipe's.
    """
    opts = opts or RunOptions()
    recipe = get_recipe(opts.recipe)
    _check_question_mix(recipe, question_mix_path)
    check_output(writing_params_path, "--writing_params_path", [corpus_path, question_mix_path])  # before hours of training
    with writer_lock(writing_params_path, "--writing_params_path"):
        device = resolve_device(opts.device)
        corpus = Corpus.load(corpus_path)
        model = _fresh_model(variant, corpus, bottleneck_dim, opts)
        saved = _read_resumable(writing_params_path, model, opts)
        block = model.config.block_size
        if recipe.mix is None:
            batcher = CorruptionBatcher(corpus.documents, corpus.vocab, block, device)
        else:
            questions = read_questions(question_mix_path, require_answers=True) if question_mix_path else []
            batcher = KnowledgeBatcher(corpus.documents, questions, corpus.vocab, block, recipe.mix, device,
                                       where=f"question mix {question_mix_path}")
        epochs = _epochs(recipe.pretrain.epochs, max_epochs, saved)
        return _train("pretrain", model, batcher, corpus, writing_params_path, epochs, recipe.pretrain.lr if lr is None else lr,
                      opts.batch_size or recipe.pretrain.batch, opts, device, saved)


def _check_question_mix(recipe: Recipe, question_mix_path: str | Path | None) -> None:
    if recipe.mixes_questions and question_mix_path is None:
        raise KgptError(f"--recipe {recipe.name} pretrains on the training questions too; give --question_mix_path")
    if not recipe.mixes_questions and question_mix_path is not None:
        raise KgptError(f"--question_mix_path is the question mix of --recipe knowledge; "
                        f"recipe {recipe.name} pretrains on the corpus alone")


def finetune(
    variant: str,
    corpus_path: str | Path,
    writing_params_path: str | Path,
    finetune_corpus_path: str | Path,
    reading_params_path: str | Path | None = None,
    lr: float | None = None,
    max_epochs: int | None = None,
    bottleneck_dim: int | None = None,
    opts: RunOptions | None = None,
) -> TrainResult:
    """Finetune on ``QUESTION<TAB>PLACE`` lines, from a pretrained model or from scratch.

    Unset hyperparameters are the recipe's.
    """
    opts = opts or RunOptions()
    recipe = get_recipe(opts.recipe)
    check_output(writing_params_path, "--writing_params_path", [corpus_path, finetune_corpus_path, reading_params_path])
    with writer_lock(writing_params_path, "--writing_params_path"):
        device = resolve_device(opts.device)
        corpus = Corpus.load(corpus_path)
        answering = None  # recall-then-read: the pretrained model recalls, this model learns to read
        if reading_params_path is not None:
            model, ckpt = load_model(reading_params_path, corpus.vocab, variant, bottleneck_dim, BLOCK_SIZE)
            if recipe.finetune.dropout is not None:
                model = model.with_dropout(recipe.finetune.dropout)
            default_epochs = recipe.finetune.epochs
            if recipe.reader_settings is not None:
                if ckpt.answering is not None:
                    raise KgptError(f"--reading_params_path {reading_params_path} is already a finetuned recall-then-read "
                                    "model; give the model pretrained with --recipe recall")
                answering = RecallAnswerer(model, copy.deepcopy(model), recipe.reader_settings,
                                           AnswerPolicy(recall_beams=recipe.recall_beams))
        elif recipe.reader_settings is not None:
            raise KgptError(f"--recipe {recipe.name} finetunes a reader of what a pretrained model recalls; "
                            "give --reading_params_path (a model pretrained with --recipe recall)")
        else:
            model = _fresh_model(variant, corpus, bottleneck_dim, opts)
            default_epochs = recipe.finetune.epochs_from_scratch
            if default_epochs is None and max_epochs is None:
                raise KgptError(f"--recipe {recipe.name} does not finetune from scratch; give --reading_params_path "
                                "(a pretrained model) or --max_epochs")
        saved = _read_resumable(writing_params_path, model, opts)
        where = f"finetuning file {finetune_corpus_path}"
        questions = read_questions(finetune_corpus_path, require_answers=True)
        if answering is not None:
            answering.task = questions[0].task  # ask and the card then parse questions in its forms
            questions, answering.policy = _reader_examples(answering, corpus, questions, device, where, opts.seed)
            if not questions:
                raise KgptError(f"nobody asked about in {finetune_corpus_path} has a bio in {corpus_path}; "
                                "the reader learns from the training people's bios")
            where = f"reader examples from {corpus_path} and {finetune_corpus_path}"
        x, y = encode_questions(questions, corpus.vocab, model.config.block_size, where=where)
        batcher = QuestionBatcher(x, y, device)
        epochs = _epochs(default_epochs, max_epochs, saved)
        return _train("finetune", model, batcher, corpus, writing_params_path, epochs, recipe.finetune.lr if lr is None else lr,
                      opts.batch_size or recipe.finetune.batch, opts, device, saved, answering)


def _reader_examples(answering: RecallAnswerer, corpus: Corpus, questions: list, device, where: str,
                     seed: int) -> tuple[list, AnswerPolicy]:
    """The reader's training examples (:func:`kgpt.data.reader.reader_examples`), the
    training people recalled first by the recaller where the reader learns from recalls;
    and the answering policy, its longest span set to the longest training answer's words.
    The reader's block keeps room for the longest training answer (``answering.settings``
    updated): an answer it cannot hold is the user's error."""
    longest = max(questions, key=lambda q: len(q.answer))
    if len(longest.answer) > answering.settings.answer_chars:
        answering.settings = replace(answering.settings, answer_chars=len(longest.answer))
    if answering.settings.answer_room + MIN_READ_CHARS > answering.model.max_length:
        raise KgptError(f"{where}, line {longest.line}: the answer {longest.answer[:30]!r} is {len(longest.answer)} "
                        f"characters, too long for the reader's block of {answering.model.config.block_size} "
                        f"(it must hold the answer and at least {MIN_READ_CHARS} characters read); shorten the answer")
    settings, recalls = answering.settings, None
    if settings.learn_from != "bios":
        bios = bios_by_name(corpus.documents)
        names = sorted({q.name for q in questions if q.name in bios})
        recalls = dict(zip(names, recall(answering.recaller.to(device), corpus.vocab, names, answering.recall_chars,
                                         answering.policy.recall_beams)))  # recalled as answers recall
    examples = reader_examples(corpus.documents, questions, settings, answering.model.max_length, recalls, seed)
    if not examples:
        raise KgptError(f"the reader has nothing to learn from: no training person has a text to read"
                        f"{' that names the place' if settings.drop_absent else ''} (learning from {settings.learn_from}); "
                        "a recaller that recalls nothing needs more pretraining")
    return examples, replace(answering.policy, max_words=max(word_count(e.answer) for e in examples))


def _trained_model(
    variant: str | None, corpus_path: str | Path, params_path: str | Path, bottleneck_dim: int | None, device: str,
    answer_by: str | None = None, recall_beams: int | None = None,
) -> tuple[Corpus, Answerer]:
    """The corpus and a saved model checked against it, on ``device``, ready to answer
    (``answer_by``, ``recall_beams``: see :func:`kgpt.answering.load_answerer`)."""
    corpus = Corpus.load(corpus_path)
    asker = load_answerer(params_path, corpus.vocab, variant, bottleneck_dim, BLOCK_SIZE, answer_by, recall_beams)
    return corpus, asker.to(resolve_device(device))


@dataclass
class Evaluation:
    correct: int
    total: int
    analysis: Path | None = None  # analysis.md, when asked for
    abstained: int | None = None  # scored questions left unanswered below --min_confidence (None: no threshold)
    min_confidence: float | None = None

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total if self.total else 0.0


def evaluate(
    variant: str | None,
    corpus_path: str | Path,
    reading_params_path: str | Path,
    eval_corpus_path: str | Path,
    outputs_path: str | Path | None = None,
    bottleneck_dim: int | None = None,
    device: str = "auto",
    analysis_dir: str | Path | None = None,
    finetune_corpus_path: str | Path | None = None,
    pretrained_params_path: str | Path | None = None,
    progress: bool = False,
    answer_by: str | None = None,
    min_confidence: float | str | None = None,
    recall_beams: int | None = None,
) -> Evaluation:
    """The answer to every question (greedy, or as a recall-then-read reader's answering
    policy says; ``answer_by`` and ``recall_beams`` override it); scored when the file has places.

    The file is read twice, a line at a time (a pipe, or a file the analysis keeps: once,
    and held): once to check that every question can be asked (so a bad line at the end
    fails in seconds, not after the decoding), then to answer it
    :data:`~kgpt.evaluate.EVAL_CHUNK` questions at a time, each chunk's answers streamed to
    ``outputs_path`` (renamed into place at the end), so memory does not grow with the
    file. ``progress`` shows a bar on stderr.

    ``min_confidence`` (a number in [0, 1], or "recommended": the checkpoint's threshold,
    chosen on held-out people): an answer below it is an empty line, and the score counts
    it apart from the wrong answers. Without it the outputs are the answers, every one.

    With ``analysis_dir``, also the confidence and error analysis of these same answers
    (:mod:`kgpt.analysis`), which holds every answer; the finetuning file and the
    pretrained model, when given, let it say which gold places finetuning saw and which
    facts pretraining stored.
    """
    inputs = [corpus_path, reading_params_path, eval_corpus_path, finetune_corpus_path, pretrained_params_path]
    if outputs_path is not None:
        check_output(outputs_path, "--outputs_path", inputs)
    if analysis_dir is not None:
        for name in ANALYSIS_FILES:  # the analysis writes these names into its folder
            check_output(Path(analysis_dir) / name, "--analysis_dir", inputs)
    elif finetune_corpus_path is not None or pretrained_params_path is not None:
        raise KgptError("--finetune_corpus_path and --pretrained_params_path only feed the analysis; add --analysis_dir DIR")
    check_min_confidence(min_confidence)
    corpus, asker = _trained_model(variant, corpus_path, reading_params_path, bottleneck_dim, device, answer_by, recall_beams)
    threshold = resolve_min_confidence(min_confidence, asker, reading_params_path)
    model = asker.model
    where = f"question file {eval_corpus_path}"
    questions = predictions = contexts = None
    if analysis_dir is not None or not Path(eval_corpus_path).is_file():
        # The analysis keeps every question anyway, and a pipe can be read only once.
        questions = read_questions(eval_corpus_path)
        source = functools.partial(iter, questions)
    else:  # read a line at a time, once per pass
        source = functools.partial(iter_questions, eval_corpus_path)
    n = count_askable(asker, corpus.vocab, source(), where)
    if analysis_dir is not None:  # every input read and checked before the decoding
        predictions, contexts = [], []
        extras = _analysis_inputs(corpus, asker, questions, eval_corpus_path, finetune_corpus_path, pretrained_params_path)
    total = correct = abstained = 0
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(atomic_writer(outputs_path)) if outputs_path is not None else None
        bar = stack.enter_context(progress_bar(n, "evaluate", progress))
        for chunk, read, answers in predict_stream(asker, corpus.vocab, source(), where):
            given = answers
            if threshold is not None:  # "" where the model abstains: the line count stays the input's
                confident = [c >= threshold for c in asker.confidences(corpus.vocab, read, answers)]
                given = [a if ok else "" for a, ok in zip(answers, confident)]
                abstained += sum(not ok for q, ok in zip(chunk, confident) if q.answer is not None)
            if sink is not None:
                sink.write("".join(a + "\n" for a in given).encode("utf-8"))
            if predictions is not None:
                predictions.extend(answers)  # the analysis studies every answer, abstention included
                contexts.extend(read)
            scored = [q.answer == a for q, a in zip(chunk, given) if q.answer is not None]
            total, correct = total + len(scored), correct + sum(scored)
            bar.update(len(chunk))
    report = None
    if analysis_dir is not None:
        result = analyze(asker, corpus.vocab, corpus.documents, questions, predictions, contexts, **extras)
        result["min_confidence"] = threshold
        result["source"] = {"variant": model.config.variant, **{k: None if v is None else str(v) for k, v in (
            ("corpus", corpus_path), ("params", reading_params_path), ("questions", eval_corpus_path),
            ("finetune_corpus", finetune_corpus_path), ("pretrained_params", pretrained_params_path))}}
        report = write_analysis(analysis_dir, result)
    return Evaluation(correct, total, report, None if threshold is None else abstained, threshold)


def check_min_confidence(value: float | str | None) -> None:
    """The user error a --min_confidence value is, if any (before any model is read)."""
    if value is None or value == "recommended":
        return
    if isinstance(value, str) or not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise KgptError(f"--min_confidence {value} is not a confidence; give a number from 0 to 1, or 'recommended'")


def resolve_min_confidence(value: float | str | None, asker: Answerer, params_path) -> float | None:
    """The threshold itself: "recommended" is the checkpoint's, chosen on held-out people."""
    if value != "recommended":
        return value
    if asker.recommended_threshold is None:
        raise KgptError(f"--min_confidence recommended: {params_path} has no recommended threshold (no calibration); "
                        "run kgpt calibrate on it first, or give a number from 0 to 1")
    return asker.recommended_threshold


@dataclass
class CalibrationResult:
    calibration: Calibration
    fitted: dict  # the operating point at the recommended threshold on the examples fit (in-sample)


def calibrate(
    variant: str | None,
    corpus_path: str | Path,
    reading_params_path: str | Path,
    calibration_corpus_path: str | Path,
    writing_params_path: str | Path,
    made_up: int = N_MADE_UP,
    seed: int = MADE_UP_SEED,
    bottleneck_dim: int | None = None,
    device: str = "auto",
    signal: str = CALIBRATION_SIGNAL,
    made_up_share: float = MADE_UP_SHARE,
) -> CalibrationResult:
    """Fit the confidence of a recall-then-read checkpoint (:mod:`kgpt.confidence`) on the
    people of ``calibration_corpus_path``, who must be held out of the reader's finetuning
    file, and ``made_up`` generated names; write the checkpoint with it to
    ``writing_params_path`` (which may be the checkpoint itself: only the settings change)."""
    check_output(writing_params_path, "--writing_params_path", [corpus_path, calibration_corpus_path])
    corpus, asker = _trained_model(variant, corpus_path, reading_params_path, bottleneck_dim, device)
    if not isinstance(asker, RecallAnswerer):
        raise KgptError(f"kgpt calibrate fits the confidence of a recall-then-read checkpoint (--recipe recall); "
                        f"{reading_params_path} answers the question itself")
    questions = read_questions(calibration_corpus_path, require_answers=True)
    where = f"calibration file {calibration_corpus_path}"
    count_askable(asker, corpus.vocab, questions, where)
    scores = held_out_scores(asker, corpus.vocab, corpus.documents, questions, made_up, seed)
    held = examples(scores, signal)
    if not any(e.made_up for e in held):
        raise KgptError(f"no made-up names could be built from the names in {calibration_corpus_path}; "
                        "it needs people with a given and a family name")
    asker.calibration = fit(held, signal, seed=seed, made_up_share=made_up_share)
    save_answering(writing_params_path, reading_params_path, asker.spec())
    return CalibrationResult(asker.calibration, operating_point(
        held, lambda e: asker.calibration.combine(e.recall_log_p, e.reading_log_p), asker.calibration.threshold))


def progress_bar(total: int | None, stage: str, show: bool):
    """A progress bar on stderr counting questions (a no-op when not shown)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=stage, unit="q", disable=not show, dynamic_ncols=True, mininterval=0.5)


def _analysis_inputs(corpus: Corpus, asker: Answerer, questions, eval_corpus_path, finetune_corpus_path,
                     pretrained_params_path) -> dict:
    """The finetuning answers and the pretrained model for :func:`kgpt.analysis.analyze`
    (a recall-then-read model carries its pretrained model: the recaller)."""
    model = asker.model
    if questions[0].answer is None:
        raise KgptError(f"--analysis_dir compares answers with places, and {eval_corpus_path} has none; "
                        "give a file of QUESTION<TAB>PLACE lines")
    training = None
    if finetune_corpus_path is not None:
        training = {q.answer for q in read_questions(finetune_corpus_path, require_answers=True)}
    pretrained = None
    if pretrained_params_path is not None:
        if not Path(pretrained_params_path).is_file():
            raise KgptError(f"--pretrained_params_path {pretrained_params_path} is not a file; give the pretrained checkpoint")
        pretrained, _ = load_model(pretrained_params_path, corpus.vocab, model.config.variant, model.config.bottleneck_dim, BLOCK_SIZE)
        pretrained = pretrained.to(next(model.parameters()).device)
    elif isinstance(asker, RecallAnswerer):
        pretrained = asker.recaller
    return {"training_answers": training, "pretrained": pretrained}


ASK_CHUNK = 256  # questions `kgpt ask` answers together: one batch of recalls and decodes, then printed


def ask(
    variant: str | None, corpus_path: str | Path, reading_params_path: str | Path, questions: Iterable[str],
    top_k: int = 3, bottleneck_dim: int | None = None, device: str = "auto", chunk: int = ASK_CHUNK,
    answer_by: str | None = None, min_confidence: float | str | None = None, recall_beams: int | None = None,
) -> Iterator[Answer | KgptError]:
    """Answers with their confidence and the top-k answers, in the questions' order;
    a bad question is its own error. Questions are taken ``chunk`` at a time and
    each answer is yielded as its chunk is done, so a stream of any length (stdin) is
    answered in bounded memory. A generator: nothing, not even the checkpoint, is read
    until the first answer is asked for. Below ``min_confidence`` (see :func:`evaluate`) an
    answer is marked abstained: "I don't know"."""
    check_min_confidence(min_confidence)
    corpus, asker = _trained_model(variant, corpus_path, reading_params_path, bottleneck_dim, device, answer_by, recall_beams)
    threshold = resolve_min_confidence(min_confidence, asker, reading_params_path)
    first = 1
    for batch in chunks(questions, chunk):
        yield from answer_questions(asker, corpus.vocab, corpus.documents, batch, top_k, first, threshold)
        first += len(batch)


def storage(
    variant: str | None, corpus_path: str | Path, reading_params_path: str | Path, questions_path: str | Path,
    device: str = "auto",
) -> dict[str, Storage]:
    """What a pretrained model stored about the people asked about, probed both ways
    (:mod:`kgpt.probe`): ``cued`` (the bio up to the place) and ``free_recall`` (from ``NAME.``)."""
    corpus, asker = _trained_model(variant, corpus_path, reading_params_path, None, device)
    questions = read_questions(questions_path)
    if isinstance(asker, RecallAnswerer):
        model, chars = asker.recaller, asker.recall_chars
    else:  # recalled as long as the recall recipe would
        model, chars = asker.model, RECALL.reader_settings.source_chars(asker.model.max_length)
    return {
        "cued": cued_completions(model, corpus.vocab, corpus.documents, questions).tally(),
        "free_recall": free_recalls(model, corpus.vocab, corpus.documents, questions, chars).tally(),
    }


def london_baseline(eval_corpus_path: str | Path, outputs_path: str | Path | None = None) -> Evaluation:
    """"London" for every question, the course's baseline; the file must have places."""
    if outputs_path is not None:
        check_output(outputs_path, "--outputs_path", [eval_corpus_path])
    questions = read_questions(eval_corpus_path)
    predictions = ["London"] * len(questions)
    total, correct = score(questions, predictions, where=str(eval_corpus_path))
    if not total:
        raise KgptError(f"{eval_corpus_path} has no places to score the baseline against")
    if outputs_path is not None:
        write_predictions(outputs_path, predictions)
    return Evaluation(int(correct), int(total))
