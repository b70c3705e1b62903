"""Faults that shared machines and clusters bring, each met through the command line.

* preemption: SIGTERM saves a resumable state and exits 143, and ``--resume`` ends on the
  weights of an uninterrupted run; SIGTERM outside training leaves no half-written file;
* a write that fails part-way (a full disk), simulated by a file whose ``write`` stores
  half its bytes and then raises ENOSPC: the previous checkpoint or predictions stay whole;
* two runs on one checkpoint path: the second refuses while the first lives; a lock left
  by a killed run does not block the next;
* a checkpoint damaged on disk, or written in a newer format: refused in one line;
* load: ``evaluate`` and ``ask`` answer a long stream a chunk at a time, in order, check
  every line before decoding, and report progress.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import (
    ENV,
    FOUR_BIOS,
    assert_same_weights,
    cli_pretrain,
    finish_with_resume,
    start_and_wait_for_resume_file,
)
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import kgpt
from kgpt import evaluate as evaluate_module
from kgpt import pipeline
from kgpt.answering import Answerer
from kgpt.checkpoint import load_model, read_checkpoint, save_checkpoint
from kgpt.cli import main
from kgpt.data.corpus import read_questions
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import resume_path
from kgpt.vocab import CharVocab

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and locks")

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16"]


def one_stderr_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def leftovers(folder: Path) -> list[str]:
    """Temporary files of an atomic write, or lock files, left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock")))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tiny_data_shared) -> Path:
    """An untrained tiny vanilla model of the tiny corpus (its answers are arbitrary but fixed)."""
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.params"
    save_checkpoint(path, GPT(GPTConfig(vocab_size=len(vocab), block_size=128, n_layer=1, n_head=2, n_embd=16)), vocab)
    return path


def evaluate_argv(data, model: Path, questions: Path, outputs: Path, *extra: str) -> list[str]:
    return ["evaluate", "vanilla", str(data.wiki), "--reading_params_path", str(model), "--eval_corpus_path",
            str(questions), "--outputs_path", str(outputs), "--device", "cpu", *extra]


def many_questions(data, path: Path, n: int, last: str | None = None) -> Path:
    """``n`` dev lines (the dev file over and over), the last one replaced by ``last``."""
    lines = [f"{q}\t{a}" for q, a in data.dev_pairs]
    rows = [lines[i % len(lines)] for i in range(n)]
    if last is not None:
        rows[-1] = last
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# -- 1. preemption -------------------------------------------------------------------------


def test_sigterm_saves_exits_143_and_resume_ends_on_the_uninterrupted_weights(tmp_path, capsys):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    out, epochs = tmp_path / "run.params", 30
    proc = start_and_wait_for_resume_file(cli_pretrain(corpus, out, epochs), out)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stdout + stderr and stderr.count("\n") == 1, stderr
    assert "interrupted by SIGTERM" in stderr and "--resume" in stderr and "error" not in stderr
    assert not out.exists() and leftovers(tmp_path) == []
    saved = read_checkpoint(resume_path(out)).progress
    stopped_at = int(re.search(r"at step (\d+) ", stderr).group(1))
    assert saved["step"] == stopped_at < epochs * 2 and not saved["finished"]  # saved where the signal stopped it

    finish_with_resume(cli_pretrain(corpus, out, epochs))
    reference = tmp_path / "uninterrupted.params"
    assert main(cli_pretrain(corpus, reference, epochs)) == 0
    capsys.readouterr()
    assert read_checkpoint(out).progress["step"] == epochs * 2
    assert_same_weights(out, reference)


def test_sigterm_while_predictions_are_written_keeps_the_old_file(model_file, tiny_data, monkeypatch, capsys):
    questions = many_questions(tiny_data, tiny_data.dir / "many.tsv", 30)
    outputs = tiny_data.dir / "preds.txt"
    outputs.write_text("yesterday's predictions\n")
    monkeypatch.setattr(evaluate_module, "EVAL_CHUNK", 10)
    real, calls = Answerer.answers, []

    def terminated_on_the_second_chunk(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
        return real(*args, **kw)

    monkeypatch.setattr(Answerer, "answers", terminated_on_the_second_chunk)
    assert main(evaluate_argv(tiny_data, model_file, questions, outputs, "--no_progress")) == 128 + signal.SIGTERM
    assert "terminated by SIGTERM" in one_stderr_line(capsys)
    assert outputs.read_text() == "yesterday's predictions\n" and leftovers(tiny_data.dir) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # main put the default back


# -- 2. a write that fails part-way ---------------------------------------------------------


class _HalfWritten:
    """A file that stores half of what it is given, then reports a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def disk_fills_after(monkeypatch, writes: int) -> None:
    """The disk is full after ``writes`` more files opened for writing by kgpt's atomic writer."""
    real, opened = os.fdopen, []

    def fdopen(fd, mode="r", *args, **kw):
        f = real(fd, mode, *args, **kw)
        if mode != "wb":
            return f
        opened.append(fd)
        return f if len(opened) <= writes else _HalfWritten(f)

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_full_disk_at_the_final_save_keeps_the_previous_model(model_file, tiny_data, monkeypatch, capsys):
    out = tiny_data.dir / "model.params"
    out.write_bytes(model_file.read_bytes())
    disk_fills_after(monkeypatch, 0)
    argv = ["pretrain", "vanilla", str(tiny_data.wiki), "--writing_params_path", str(out), "--max_epochs", "1",
            "--batch_size", "8", "--no_progress", "--device", "cpu", *TINY]
    assert main(argv) == 1
    err = one_stderr_line(capsys)
    assert f"cannot write {out}" in err and "No space left on device" in err and "unchanged" in err
    assert out.read_bytes() == model_file.read_bytes() and leftovers(tiny_data.dir) == []
    read_checkpoint(out)  # still whole


def test_a_full_disk_at_a_periodic_save_keeps_the_last_state_to_resume_from(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    out, epochs = tmp_path / "run.params", 3
    argv = cli_pretrain(corpus, out, epochs, *TINY)
    disk_fills_after(monkeypatch, 1)  # the first epoch's state is written, the second's is not
    assert main(argv) == 1
    err = one_stderr_line(capsys)
    assert f"cannot write {resume_path(out)}" in err and "training stopped at step 4" in err and "--resume" in err
    assert read_checkpoint(resume_path(out)).progress["step"] == 2 and leftovers(tmp_path) == []

    monkeypatch.undo()  # room again
    assert main([*argv, "--resume"]) == 0
    reference = tmp_path / "uninterrupted.params"
    assert main(cli_pretrain(corpus, reference, epochs, *TINY)) == 0
    capsys.readouterr()
    assert_same_weights(out, reference)


def test_a_full_disk_writing_predictions_keeps_the_old_ones(model_file, tiny_data, monkeypatch, capsys):
    outputs = tiny_data.dir / "preds.txt"
    outputs.write_text("yesterday's predictions\n")
    disk_fills_after(monkeypatch, 0)
    assert main(evaluate_argv(tiny_data, model_file, tiny_data.dev, outputs, "--no_progress")) == 1
    assert f"cannot write {outputs}" in one_stderr_line(capsys)
    assert outputs.read_text() == "yesterday's predictions\n" and leftovers(tiny_data.dir) == []


# -- 3. two writers ------------------------------------------------------------------------


def test_a_second_run_on_the_same_checkpoint_is_refused_while_the_first_lives(tmp_path, capsys):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    out = tmp_path / "run.params"
    first = start_and_wait_for_resume_file(cli_pretrain(corpus, out, 500), out)
    try:
        for extra in ([], ["--resume"]):
            assert main(cli_pretrain(corpus, out, 1, *extra)) == 1
            err = one_stderr_line(capsys)
            assert f"{out} is being written by another kgpt run (PID {first.pid} on " in err
            assert "--writing_params_path" in err
        assert first.poll() is None and resume_path(out).exists()  # the first run is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM
    assert leftovers(tmp_path) == []  # the lock went with the run


def test_a_lock_left_by_a_killed_run_does_not_block_the_next(tmp_path, capsys):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    out = tmp_path / "run.params"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; from kgpt.io import writer_lock; "
         "held = writer_lock(sys.argv[1], '--writing_params_path'); held.__enter__(); os.kill(os.getpid(), signal.SIGKILL)", str(out)],
        env=ENV, timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    assert leftovers(tmp_path) == ["run.params.lock"] and "PID" in Path(f"{out}.lock").read_text()
    assert main(cli_pretrain(corpus, out, 1, *TINY)) == 0
    capsys.readouterr()
    assert out.exists() and leftovers(tmp_path) == []


# -- 4. damaged and newer checkpoints ------------------------------------------------------------


def test_a_flipped_byte_in_a_tensor_is_refused_by_evaluate(model_file, tiny_data, capsys):
    raw = bytearray(model_file.read_bytes())
    (header,) = struct.unpack("<Q", raw[:8])
    raw[8 + header + (len(raw) - 8 - header) // 2] ^= 0x04  # a byte in the middle of the tensor data
    damaged = tiny_data.dir / "damaged.params"
    damaged.write_bytes(bytes(raw))
    outputs = tiny_data.dir / "preds.txt"
    assert main(evaluate_argv(tiny_data, damaged, tiny_data.dev, outputs)) == 1
    err = one_stderr_line(capsys)
    assert f"checkpoint {damaged} is truncated or corrupted" in err and "SHA-256" in err
    assert not outputs.exists()


def test_a_checkpoint_of_a_newer_format_is_refused_naming_both_versions(model_file, tiny_data, capsys):
    raw = model_file.read_bytes()
    (header,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(json.loads(raw[8 : 8 + header])["__metadata__"]["kgpt"])
    newer = {**meta, "format": "kgpt-checkpoint/2", "kgpt_version": "9.0.0", "a_field_of_the_future": 1}
    path = tiny_data.dir / "newer.params"
    path.write_bytes(st_save(st_load(raw), metadata={"kgpt": json.dumps(newer)}))
    assert main(evaluate_argv(tiny_data, path, tiny_data.dev, tiny_data.dir / "preds.txt")) == 1
    err = one_stderr_line(capsys)
    assert str(path) in err and "kgpt-checkpoint/2" in err and "kgpt 9.0.0" in err
    assert f"this kgpt {kgpt.__version__} reads kgpt-checkpoint/1" in err and "upgrade kgpt" in err


# -- 5. load -----------------------------------------------------------------------------


def spy_on_predictions(monkeypatch) -> list[int]:
    """The size of every batch of questions evaluate decodes."""
    real, sizes = Answerer.answers, []

    def answers(self, vocab, contexts):
        sizes.append(len(contexts))
        return real(self, vocab, contexts)

    monkeypatch.setattr(Answerer, "answers", answers)
    return sizes


def test_evaluate_streams_a_long_file_in_chunks_with_progress(model_file, tiny_data, monkeypatch, capsys):
    questions = many_questions(tiny_data, tiny_data.dir / "many.tsv", 2500)
    outputs = tiny_data.dir / "preds.txt"
    monkeypatch.setattr(evaluate_module, "EVAL_CHUNK", 1000)
    sizes = spy_on_predictions(monkeypatch)
    assert main(evaluate_argv(tiny_data, model_file, questions, outputs)) == 0
    captured = capsys.readouterr()
    assert sizes == [1000, 1000, 500]
    assert "2500/2500" in captured.err and "Traceback" not in captured.err  # the progress bar's last state

    # The same answers, in the same order, as one unstreamed pass over the file.
    monkeypatch.undo()
    vocab = CharVocab.from_text(tiny_data.wiki_text)
    model, _ = load_model(model_file, vocab)
    asked = read_questions(questions)
    expected = evaluate_module.predict_places(model, vocab, asked)
    assert outputs.read_text(encoding="utf-8").split("\n")[:-1] == expected
    correct = sum(p == q.answer for p, q in zip(expected, asked))
    assert f"Correct: {correct} out of 2500" in captured.out


def test_evaluate_checks_every_line_before_decoding_any(model_file, tiny_data, monkeypatch, capsys):
    questions = many_questions(tiny_data, tiny_data.dir / "many.tsv", 2500, last="Where was Жанна born?\tKyiv")
    outputs = tiny_data.dir / "preds.txt"
    outputs.write_text("yesterday's predictions\n")
    sizes = spy_on_predictions(monkeypatch)
    assert main(evaluate_argv(tiny_data, model_file, questions, outputs)) == 1
    err = one_stderr_line(capsys)
    assert f"question file {questions}, line 2500: character 'Ж'" in err
    assert sizes == [] and outputs.read_text() == "yesterday's predictions\n"


def test_ask_answers_a_stdin_stream_a_chunk_at_a_time(model_file, tiny_data, monkeypatch, capsys):
    good = [q for q, _ in tiny_data.dev_pairs]
    lines = [good[i % len(good)] for i in range(250)]
    lines[123] = "Where was Жанна born?"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode())))
    monkeypatch.setattr(pipeline, "ASK_CHUNK", 100)
    real, sizes = pipeline.answer_questions, []

    def answer_questions(asker, vocab, documents, texts, *args):
        sizes.append(len(texts))
        return real(asker, vocab, documents, texts, *args)

    monkeypatch.setattr(pipeline, "answer_questions", answer_questions)
    argv = ["ask", "vanilla", str(tiny_data.wiki), "--reading_params_path", str(model_file), "--top_k", "0", "--device", "cpu"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert sizes == [100, 100, 50]
    answered = [line for line in captured.out.split("\n") if line.startswith("Where was")]
    assert answered == lines[:123] + lines[124:]  # every other question, in order
    errors = [line for line in captured.err.splitlines() if line.startswith("kgpt ask:")]
    assert errors[0].startswith("kgpt ask: error: question 124: character 'Ж'")
    assert errors[1:] == ["kgpt ask: error: 1 of 250 questions could not be answered (see above)"]
    assert "250q" in captured.err  # stdout is not a terminal: progress counted on stderr


def test_evaluate_reads_a_question_file_from_a_pipe(model_file, tiny_data, capsys):
    fifo = tiny_data.dir / "questions.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(tiny_data.dev.read_bytes()))
    writer.start()
    assert main(evaluate_argv(tiny_data, model_file, fifo, tiny_data.dir / "piped.txt", "--no_progress")) == 0
    writer.join(timeout=30)
    assert main(evaluate_argv(tiny_data, model_file, tiny_data.dev, tiny_data.dir / "file.txt", "--no_progress")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[1] and out[0].startswith("Correct: ")
    assert (tiny_data.dir / "piped.txt").read_bytes() == (tiny_data.dir / "file.txt").read_bytes()


def test_training_outside_the_main_thread_leaves_signals_alone():
    from kgpt.training.trainer import deferred_signals

    before, errors = signal.getsignal(signal.SIGTERM), []

    def train_here():
        try:
            with deferred_signals() as stop:
                assert stop == {"signal": 0}
        except Exception as e:  # noqa: BLE001 - the assertion below reports it
            errors.append(e)

    worker = threading.Thread(target=train_here)
    worker.start()
    worker.join(timeout=30)
    assert errors == [] and signal.getsignal(signal.SIGTERM) == before


def test_ask_names_the_stdin_line_that_is_not_utf8(model_file, tiny_data, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfWhere was Karl Meyer born?\n\xff\xfe\n")))
    argv = ["ask", "vanilla", str(tiny_data.wiki), "--reading_params_path", str(model_file), "--top_k", "0", "--device", "cpu",
            "--no_progress"]
    assert main(argv) == 1
    assert one_stderr_line(capsys) == "kgpt ask: error: stdin, line 2: bytes that are not UTF-8; save the text as UTF-8"
