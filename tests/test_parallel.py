"""Processes sharing every step (kgpt.training.parallel) take the steps one process takes.

The reference is the plain one-process trainer: the same batches, the gradient of the
whole batch. Two processes sum the same products in another order, so weights agree to
float tolerance, not bit for bit. The runs go through ``parallel.run`` with two processes
whatever the machine's cores, so the mechanism is tested on a 1-core runner too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ENV, FOUR_BIOS, cli_pretrain, one_line_error

from kgpt.checkpoint import read_checkpoint
from kgpt.data.knowledge import KnowledgeBatcher
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import resume_path
from kgpt.training import Trainer, TrainerConfig, muon, parallel
from kgpt.training.recipe import RECALL
from kgpt.vocab import CharVocab


@pytest.fixture(scope="module")
def bios():
    """Bios of many lengths (PAD in every batch), as the recall recipe pretrains on them."""
    data = generate(SyntheticConfig(n_train=40, n_dev=4, n_test=2, n_extra=0, n_places=6, seed=3))
    vocab = CharVocab.from_text(data.wiki + data.train + data.dev)
    documents = [d for d in data.wiki.split("\n") if d]
    return vocab, KnowledgeBatcher(documents, [], vocab, 96, RECALL.mix)


def trainer(bios, batch: int, optimizer: str = "adamw") -> Trainer:
    vocab, batcher = bios
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=96, variant="rope", n_layer=2, n_head=2, n_embd=32,
                          embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    # Shuffled, grouped by length, the LR rising and falling within the run.
    cfg = TrainerConfig(max_epochs=3, batch_size=batch, learning_rate=3e-3, final_tokens=3 * len(batcher) * 96,
                        warmup_tokens=len(batcher) * 16, recipe=RECALL, log_every=1, progress=False,
                        optimizer=optimizer)
    return Trainer(model, batcher, cfg, vocab, torch.device("cpu"))


@pytest.fixture
def two_processes_anywhere(monkeypatch):
    monkeypatch.setattr(parallel, "usable_processes", lambda asked: asked)


def assert_same_training(shared: Trainer, alone: Trainer, shared_history: list[dict], alone_history: list[dict]) -> None:
    assert [h["step"] for h in shared_history] == [h["step"] for h in alone_history]
    assert [h["loss"] for h in shared_history] == pytest.approx([h["loss"] for h in alone_history], rel=1e-4)
    for (name, p), q in zip(alone.model.named_parameters(), shared.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=2e-5, msg=name)
    assert shared.progress.step == alone.progress.step and shared.progress.tokens == alone.progress.tokens


@pytest.mark.parametrize("batch", [23, 45], ids=["even-batches", "a-last-batch-of-one-row"])
def test_two_processes_take_the_steps_of_one(bios, batch, two_processes_anywhere):
    alone = trainer(bios, batch)
    alone_history = alone.train().history
    shared = trainer(bios, batch)
    shared_history = parallel.train(shared, 2).history
    assert len(bios[1]) % batch in (0, 1)  # 46 bios: at 45 a batch, the last step's second process has no row
    assert_same_training(shared, alone, shared_history, alone_history)


def test_two_processes_take_the_muon_steps_of_one(bios, two_processes_anywhere, monkeypatch):
    """Each process orthogonalises half the matrices; the step is the one process's."""
    calls = {"n": 0}
    original = muon.orthogonalised

    def counted(g):
        calls["n"] += 1
        return original(g)

    monkeypatch.setattr(muon, "orthogonalised", counted)
    alone = trainer(bios, 23, "muon")
    alone_history = alone.train().history
    alone_calls, calls["n"] = calls["n"], 0
    shared = trainer(bios, 23, "muon")
    shared_history = parallel.train(shared, 2).history
    assert_same_training(shared, alone, shared_history, alone_history)
    assert calls["n"] * 2 == alone_calls  # this process (rank 0) took half of them: 12 matrices, 6 each
    assert shared.optimizer.shard is None  # the trainer's own again


def test_a_run_continued_in_new_processes_starts_where_it_stopped(bios, two_processes_anywhere):
    """Each call of run() starts its other processes from this one's state: weights,
    AdamW moments, data generator, order of the epoch, progress."""
    alone = trainer(bios, 16)
    alone_history = alone.train().history
    shared = trainer(bios, 16)
    parallel.train(shared, 2, 4)  # stops in the middle of the second epoch
    assert shared.progress.step == 4
    shared_history = parallel.train(shared, 2).history
    assert_same_training(shared, alone, shared_history, alone_history)


def test_processes_are_at_most_the_threads_and_cores_given():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a Ray task given one CPU
        assert parallel.usable_processes(2) == 1
        torch.set_num_threads(2)
        assert parallel.usable_processes(2) == min(2, len(os.sched_getaffinity(0)))
        assert parallel.usable_processes(1) == 1
    finally:
        torch.set_num_threads(threads)


def test_a_process_that_dies_ends_the_run_with_one_line(bios, monkeypatch, two_processes_anywhere):
    monkeypatch.setattr(parallel, "STEP_TIMEOUT", parallel.datetime.timedelta(seconds=3))
    monkeypatch.setattr(parallel, "_worker_command", lambda *args: [sys.executable, "-c", "raise SystemExit(1)"])
    message = one_line_error(parallel.train, trainer(bios, 16), 2)
    assert "a training process stopped" in message and "--processes 1" in message


def start_shared_run(tmp_path: Path):
    """A CLI pretraining whose steps two processes share, once its first resumable state is
    written; returns the process, the command and its environment."""
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS * 8, encoding="utf-8")
    out = tmp_path / "run.params"
    argv = cli_pretrain(corpus, out, 60, "--processes", "2")
    env = {**ENV, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "kgpt", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 180
    while not resume_path(out).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    return proc, argv, env


def helper_processes(proc: subprocess.Popen) -> list[int] | None:
    """The processes sharing ``proc``'s steps (None where /proc cannot say)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else None


def assert_stopped_then_resumes(proc: subprocess.Popen, argv: list[str], env: dict, signum: int, tmp_path: Path) -> None:
    """``proc`` exits as the shell says for ``signum``, with one line, having saved where it
    was; the same command with --resume, asked for the epochs begun, finishes them."""
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stdout + stderr and stderr.count("\n") == 1, stderr
    assert f"interrupted by {signal.Signals(signum).name}" in stderr, stderr
    out = Path(argv[argv.index("--writing_params_path") + 1])
    epochs = read_checkpoint(resume_path(out)).progress["epoch"] + 1
    argv[argv.index("--max_epochs") + 1] = str(epochs)
    r = subprocess.run([sys.executable, "-m", "kgpt", *argv, "--resume"], capture_output=True, text=True, env=env,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(out).progress["step"] == epochs * 16


def test_ctrl_c_stops_both_processes_and_the_run_resumes(tmp_path):
    proc, argv, env = start_shared_run(tmp_path)
    helpers = helper_processes(proc)
    if len(os.sched_getaffinity(0)) >= 2 and helpers is not None:
        assert helpers, "no second process shares the steps"
    proc.send_signal(signal.SIGINT)
    assert_stopped_then_resumes(proc, argv, env, signal.SIGINT, tmp_path)


def test_sigterm_to_the_helper_alone_stops_every_process_at_one_step_and_the_run_resumes(tmp_path):
    """A scheduler signals every process of a job, not at the same instant; whichever gets
    it first, all stop after the same step. Here only the process sharing the steps gets it:
    the run saves where it was and exits 143 as if signalled itself, rather than ending
    "a training process stopped" or waiting for a process that has gone."""
    proc, argv, env = start_shared_run(tmp_path)
    helpers = helper_processes(proc)
    if not helpers:
        proc.kill()
        proc.communicate()
        pytest.skip("one core, or no /proc: no second process shares the steps")
    os.kill(helpers[0], signal.SIGTERM)
    assert_stopped_then_resumes(proc, argv, env, signal.SIGTERM, tmp_path)


def test_processes_must_be_a_positive_count(tmp_path):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "kgpt", *cli_pretrain(corpus, tmp_path / "x.params", 1, "--processes", "0")],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "--processes" in r.stderr, r.stderr
