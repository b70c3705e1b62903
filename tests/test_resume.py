"""Interruption, resume and checkpoint safety.

* An interrupted run resumed with ``resume=True`` ends with weights identical (torch.equal
  on every tensor) to an uninterrupted run with the same seed, on CPU: mid-epoch, at an
  epoch boundary, pretraining and finetuning.
* ``kill -9`` of ``python -m kgpt pretrain`` loses at most the work since its last periodic
  checkpoint: ``--resume`` finishes the run with the same steps and the same weights.
* Ctrl-C (SIGINT) saves a resumable checkpoint, prints one line naming ``--resume`` and
  exits 130.
* A non-finite loss stops training with a clear message; the last good checkpoint and an
  earlier output file are kept.
* Checkpoints: a mismatch (variant, bottleneck, vocabulary, batch size, data) or damage
  (any truncation, any flipped byte, random bytes, empty, foreign safetensors) is a
  one-line :class:`KgptError`; state dicts saved by the assignment's code import.

The pipeline runs use a tiny model (RunOptions.model) so they take milliseconds per step;
the subprocess runs use the CLI's 3.3M model on a four-line corpus with batch 2.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest
import torch
from conftest import (
    FOUR_BIOS,
    assert_same_weights,
    cli_pretrain,
    finish_with_resume,
    one_line_error,
    start_and_wait_for_resume_file,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from kgpt import pipeline
from kgpt.checkpoint import load_model, read_checkpoint, save_checkpoint
from kgpt.cli import main
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import RunOptions, resume_path
from kgpt.training import Interrupted, StepRunner
from kgpt.vocab import CharVocab

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32}
EPOCHS = 3


def opts(**kw) -> RunOptions:
    return RunOptions(**{"model": TINY, "batch_size": 4, "checkpoint_every": 0, "progress": False, "seed": 0, "device": "cpu", **kw})


def run_stage(stage: str, data, out: Path, **kw):
    if stage == "pretrain":
        return pipeline.pretrain("vanilla", data.wiki, out, max_epochs=EPOCHS, opts=opts(**kw))
    return pipeline.finetune("vanilla", data.wiki, out, data.train, max_epochs=EPOCHS, opts=opts(**kw))


def interrupt_at(monkeypatch, step: int) -> None:
    """Press Ctrl-C during the ``step``-th optimiser step of the real training loop."""
    calls = {"n": 0}
    original = StepRunner.__call__

    def step_then_sigint(self, x, y, lr):
        calls["n"] += 1
        if calls["n"] == step:
            signal.raise_signal(signal.SIGINT)
        return original(self, x, y, lr)

    monkeypatch.setattr(StepRunner, "__call__", step_then_sigint)


# -- exact resume, in process --------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_shared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    return {stage: _reference(stage, tiny_data_shared, folder) for stage in ("pretrain", "finetune")}


def _reference(stage, data, folder) -> Path:
    out = folder / f"{stage}.params"
    run_stage(stage, data, out)
    return out


# pretrain: 20 documents / batch 4 = 5 steps an epoch; finetune: 14 questions = 4 steps.
@pytest.mark.parametrize("stage, stop", [("pretrain", 3), ("pretrain", 5), ("pretrain", 12), ("finetune", 6)])
def test_interrupted_and_resumed_equals_uninterrupted(stage, stop, uninterrupted, tiny_data_shared, tmp_path, monkeypatch):
    out = tmp_path / "run.params"
    interrupt_at(monkeypatch, stop)
    with pytest.raises(Interrupted, match="--resume") as e:
        run_stage(stage, tiny_data_shared, out)
    assert e.value.exit_code == 130
    assert not out.exists() and resume_path(out).exists()
    assert read_checkpoint(resume_path(out)).progress["step"] == stop
    monkeypatch.undo()

    result = run_stage(stage, tiny_data_shared, out, resume=True)
    assert out.exists() and not resume_path(out).exists()
    reference = read_checkpoint(uninterrupted[stage]).progress
    assert result.steps == reference["step"] and read_checkpoint(out).progress["tokens"] == reference["tokens"]
    assert_same_weights(out, uninterrupted[stage])


# -- resume refuses what would not continue the same run ------------------------------------------


@pytest.fixture
def interrupted(tiny_data, tmp_path, monkeypatch) -> Path:
    out = tmp_path / "run.params"
    interrupt_at(monkeypatch, 2)
    with pytest.raises(Interrupted):
        run_stage("pretrain", tiny_data, out)
    monkeypatch.undo()
    return out


def test_resume_with_another_batch_size_is_refused(interrupted, tiny_data):
    msg = one_line_error(run_stage, "pretrain", tiny_data, interrupted, resume=True, batch_size=5)
    assert "--batch_size 4" in msg


def test_resume_with_another_recipe_is_refused(interrupted, tiny_data):
    """The optimiser state is saved by position in the recipe's parameter groups."""
    msg = one_line_error(run_stage, "pretrain", tiny_data, interrupted, resume=True, recipe="kgpt-0.1")
    assert "--recipe assignment" in msg


def test_resume_with_another_optimizer_is_refused(interrupted, tiny_data):
    msg = one_line_error(run_stage, "pretrain", tiny_data, interrupted, resume=True, optimizer="muon")
    assert "--optimizer adamw" in msg


def test_a_muon_run_interrupted_and_resumed_equals_uninterrupted(tiny_data_shared, tmp_path, monkeypatch):
    """Muon's momentum and the AdamW moments of its other parameters are saved and restored."""
    reference = tmp_path / "reference.params"
    run_stage("pretrain", tiny_data_shared, reference, optimizer="muon")
    out = tmp_path / "run.params"
    interrupt_at(monkeypatch, 7)
    with pytest.raises(Interrupted):
        run_stage("pretrain", tiny_data_shared, out, optimizer="muon")
    monkeypatch.undo()
    assert read_checkpoint(resume_path(out)).progress["optimizer"] == "muon"
    run_stage("pretrain", tiny_data_shared, out, resume=True, optimizer="muon")
    assert_same_weights(out, reference)


def test_resume_with_another_corpus_is_refused(interrupted, tiny_data):
    lines = tiny_data.wiki_text.splitlines()
    tiny_data.wiki.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # same characters, one document fewer
    assert "training examples" in one_line_error(run_stage, "pretrain", tiny_data, interrupted, resume=True)


def test_resume_with_another_model_is_refused(interrupted, tiny_data):
    msg = one_line_error(pipeline.pretrain, "rope", tiny_data.wiki, interrupted, max_epochs=EPOCHS, opts=opts(resume=True))
    assert "vanilla" in msg


def test_resume_of_a_damaged_state_is_refused(interrupted, tiny_data):
    path = resume_path(interrupted)
    path.write_bytes(path.read_bytes()[:-10])
    assert "truncated" in one_line_error(run_stage, "pretrain", tiny_data, interrupted, resume=True)


# -- non-finite loss ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(bad, tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "run.params"
    out.write_bytes(b"an earlier model")
    calls = {"n": 0}
    original = GPT.forward

    def forward(self, idx, targets=None):
        logits, loss = original(self, idx, targets)
        calls["n"] += 1
        return logits, (loss * bad if calls["n"] >= 7 and loss is not None else loss)

    monkeypatch.setattr(GPT, "forward", forward)
    msg = one_line_error(run_stage, "pretrain", tiny_data, out)
    assert "diverged" in msg and f"{resume_path(out)} is kept" in msg and "learning rate" in msg
    assert out.read_bytes() == b"an earlier model"
    saved = read_checkpoint(resume_path(out))
    assert saved.progress["step"] == 5  # the end of epoch 1, before the bad step 7
    assert all(torch.isfinite(t).all() for t in saved.model_state().values())


# -- the command line under kill -9 and Ctrl-C ----------------------------------------------------

def test_sigkill_then_resume_finishes_like_an_uninterrupted_run(tmp_path, capsys):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    out, epochs = tmp_path / "killed.params", 5
    proc = start_and_wait_for_resume_file(cli_pretrain(corpus, out, epochs), out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert 2 <= read_checkpoint(resume_path(out)).progress["step"] < epochs * 2

    finish_with_resume(cli_pretrain(corpus, out, epochs))
    assert out.exists() and not resume_path(out).exists()
    reference = tmp_path / "uninterrupted.params"
    assert main(cli_pretrain(corpus, reference, epochs)) == 0
    capsys.readouterr()
    assert read_checkpoint(out).progress["step"] == read_checkpoint(reference).progress["step"] == epochs * 2
    assert_same_weights(out, reference)


def test_sigint_saves_and_exits_130_then_resume_finishes(tmp_path):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text(FOUR_BIOS, encoding="utf-8")
    out = tmp_path / "run.params"
    proc = start_and_wait_for_resume_file(cli_pretrain(corpus, out, 50), out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr
    assert stderr.count("\n") == 1 and "interrupted" in stderr and "--resume" in stderr, stderr
    assert not out.exists()
    saved = read_checkpoint(resume_path(out)).progress
    assert saved["stage"] == "pretrain" and saved["step"] >= 2 and not saved["finished"]

    # Resume, asking for one more epoch than had been started, so the test stays short.
    epochs = saved["epoch"] + 1
    finish_with_resume(cli_pretrain(corpus, out, epochs))
    assert not resume_path(out).exists()
    assert read_checkpoint(out).progress["step"] == epochs * 2


# -- checkpoints: mismatches and damage --------------------------------------------------------


class SmallCheckpoint:
    """A small perceiver checkpoint of the tiny corpus (short repr for hypothesis' reports)."""

    def __init__(self, path: Path, vocab: CharVocab):
        self.path, self.raw, self.vocab = path, path.read_bytes(), vocab

    def __repr__(self) -> str:
        return f"SmallCheckpoint({self.path.name}, {len(self.raw)} bytes)"


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory, tiny_data_shared) -> SmallCheckpoint:
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, variant="perceiver", n_layer=2, n_head=2, n_embd=8, bottleneck_dim=4))
    path = tmp_path_factory.mktemp("ckpt") / "perceiver.params"
    save_checkpoint(path, model, vocab, {"stage": "pretrain", "step": 3, "history": [{"loss": 1.5}]})
    return SmallCheckpoint(path, vocab)


def test_checkpoint_mismatches_name_the_fix(small_ckpt):
    path, vocab = small_ckpt.path, small_ckpt.vocab
    assert "run with variant perceiver" in one_line_error(load_model, path, vocab, "vanilla")
    assert "pass --bottleneck_dim 4" in one_line_error(load_model, path, vocab, "perceiver", 32)
    other = CharVocab([c if c != "z" else "Z" for c in vocab.itos[2:]])
    assert "different vocabulary" in one_line_error(load_model, path, other)
    model, ckpt = load_model(path, vocab, "perceiver", 4)
    assert ckpt.progress["step"] == 3


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "is empty"),
        (os.urandom(1), "neither"),
        (b"\x00" * 64, "neither"),
        (st_save({"x": torch.zeros(2)}), "without kgpt metadata"),
        (st_save({"x": torch.zeros(2)}, metadata={"kgpt": "{not json"}), "truncated or corrupted"),
        (st_save({"x": torch.zeros(2)}, metadata={"kgpt": '{"format": "kgpt-checkpoint/1"}'}), "metadata is incomplete"),
    ],
    ids=["empty", "one-byte", "zeros", "foreign-safetensors", "bad-metadata-json", "incomplete-metadata"],
)
def test_damaged_or_foreign_files_are_refused(content, says, tmp_path):
    path = tmp_path / "f.params"
    path.write_bytes(content)
    assert says in one_line_error(read_checkpoint, path)


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(data=st.data())
def test_any_truncation_is_refused(data, small_ckpt, tmp_path_factory):
    raw = small_ckpt.raw
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    damaged = tmp_path_factory.getbasetemp() / "truncated.params"
    damaged.write_bytes(raw[:cut])
    one_line_error(read_checkpoint, damaged)


@_SETTINGS
@given(data=st.data())
def test_any_flipped_byte_is_refused(data, small_ckpt, tmp_path_factory):
    raw = small_ckpt.raw
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    damaged = tmp_path_factory.getbasetemp() / "flipped.params"
    damaged.write_bytes(raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1 :])
    one_line_error(read_checkpoint, damaged)


# -- state dicts saved by the assignment's code ----------------------------------------------------


@pytest.fixture
def assignment_files(tiny_data, tmp_path):
    """One model as a kgpt checkpoint and as the assignment's torch.save(state_dict()) files."""
    vocab = CharVocab.from_text(tiny_data.wiki_text)
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=128, n_layer=2, n_embd=32))  # the assignment's 8 heads
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = model.state_dict()
    mask = torch.tril(torch.ones(128, 128)).view(1, 1, 128, 128)
    legacy = {**state, **{f"blocks.{i}.attn.mask": mask for i in range(2)}}
    files = {"kgpt": tmp_path / "kgpt.params", "plain": tmp_path / "plain.pt", "compiled": tmp_path / "compiled.pt"}
    save_checkpoint(files["kgpt"], model, vocab)
    torch.save(legacy, files["plain"])
    torch.save({f"_orig_mod.{k}": v for k, v in legacy.items()}, files["compiled"])
    return model, files


def test_assignment_state_dicts_evaluate_and_finetune_like_kgpt_checkpoints(assignment_files, tiny_data, tmp_path, capsys):
    model, files = assignment_files
    predictions = {}
    for name, path in files.items():
        preds = tmp_path / f"{name}.txt"
        rc = main(["evaluate", "vanilla", str(tiny_data.wiki), "--reading_params_path", str(path),
                   "--eval_corpus_path", str(tiny_data.dev), "--outputs_path", str(preds), "--device", "cpu"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        predictions[name] = (out, preds.read_bytes())
    assert predictions["plain"] == predictions["kgpt"] == predictions["compiled"]

    finetuned = tmp_path / "finetuned.params"
    rc = main(["finetune", "vanilla", str(tiny_data.wiki), "--reading_params_path", str(files["compiled"]),
               "--writing_params_path", str(finetuned), "--finetune_corpus_path", str(tiny_data.train),
               "--max_epochs", "0", "--no_progress", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    saved = read_checkpoint(finetuned).model_state()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda s: {k: v for k, v in s.items() if k != "tok_emb.weight"}, "no 2-D tok_emb.weight"),
        (lambda s: {**s, "tok_emb.weight": s["tok_emb.weight"].flatten()}, "no 2-D tok_emb.weight"),
        (lambda s: {**s, "pos_emb": s["pos_emb"][0]}, "pos_emb has shape"),
        (lambda s: {**s, "blocks.x.ln1.weight": torch.ones(32)}, "not numbered"),
        (lambda s: {**s, "head.weight": torch.zeros(3, 32)}, "head.weight has shape (3, 32)"),
        (lambda s: {**s, "extra.weight": torch.zeros(1)}, "unexpected extra.weight"),
        (lambda s: {k: v for k, v in s.items() if k != "ln_f.bias"}, "missing ln_f.bias"),
        (lambda s: {**s, 3: torch.zeros(1)}, "names to tensors"),
    ],
    ids=["no-embedding", "flat-embedding", "flat-positions", "unnumbered-block", "wrong-shape", "unexpected", "missing", "int-key"],
)
def test_assignment_state_dict_layout_is_checked(edit, says, assignment_files, tiny_data, tmp_path):
    model, _ = assignment_files
    path = tmp_path / "edited.pt"
    torch.save(edit(model.state_dict()), path)
    assert says in one_line_error(load_model, path, CharVocab.from_text(tiny_data.wiki_text), "vanilla")
