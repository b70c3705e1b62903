"""The assignment's commands end to end, in process through ``kgpt.cli.main``.

The CLI model is the assignment's (3.3M parameters, block 128), so the runs stay cheap
with the tiny corpus (20 lines), ``--max_epochs 1`` and a small ``--batch_size`` where
several steps are wanted. One test goes through ``python -m kgpt`` in a subprocess;
a slow test runs the assignment's commands on the real files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kgpt.checkpoint import load_model, read_checkpoint
from kgpt.cli import main
from kgpt.data.corpus import read_questions
from kgpt.vocab import MASK_CHAR, MASK_ID, CharVocab

SCORE = re.compile(r"^Correct: (\d+) out of (\d+): (\d+\.\d)%$")
FAST = ["--max_epochs", "1", "--no_progress", "--device", "cpu"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def pretrain(tiny, out: Path, capsys, *extra) -> str:
    rc, stdout, stderr = run(["pretrain", "vanilla", tiny.wiki, "--writing_params_path", out, *FAST, *extra], capsys)
    assert rc == 0, stderr
    assert out.is_file()
    return stdout


@torch.no_grad()
def naive_answers(checkpoint: Path, tiny, questions: list[str]) -> list[str]:
    """One question at a time, full recompute per character, cut at the first ⁇."""
    vocab = CharVocab.from_text(tiny.wiki_text)
    model, _ = load_model(checkpoint, vocab)
    model.eval()
    answers = []
    for q in questions:
        x = torch.tensor([vocab.encode(q + MASK_CHAR)])
        n = x.shape[1]
        for _ in range(32):
            x = torch.cat([x, model(x)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
        gen = x[0, n:].tolist()
        answers.append(vocab.decode(gen[: gen.index(MASK_ID)] if MASK_ID in gen else gen))
    return answers


@pytest.fixture(scope="module")
def trained(tiny_data_shared, tmp_path_factory):
    """A pretrained and a finetuned checkpoint on the tiny data, made through the CLI."""
    folder = tmp_path_factory.mktemp("cli")
    pre, fine = folder / "vanilla.pretrain.params", folder / "vanilla.finetune.params"
    t0 = time.perf_counter()
    assert main(["pretrain", "vanilla", str(tiny_data_shared.wiki), "--writing_params_path", str(pre),
                 "--batch_size", "8", *FAST]) == 0
    assert main(["finetune", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(pre),
                 "--writing_params_path", str(fine), "--finetune_corpus_path", str(tiny_data_shared.train),
                 "--batch_size", "8", *FAST]) == 0
    seconds = time.perf_counter() - t0
    return pre, fine, seconds


def test_pretrain_finetune_evaluate(trained, tiny_data_shared, tmp_path, capsys):
    pre, fine, seconds = trained
    assert seconds < 60, f"pretrain + finetune on 20 lines took {seconds:.1f}s"
    p = read_checkpoint(pre).progress
    assert (p["stage"], p["epoch"], p["step"], p["finished"]) == ("pretrain", 1, 3, True)  # ceil(20 / 8)
    f = read_checkpoint(fine).progress
    assert (f["stage"], f["epoch"], f["step"], f["finished"]) == ("finetune", 1, 2, True)  # ceil(14 / 8)
    assert read_checkpoint(fine).config.n_embd == 256 and read_checkpoint(fine).config.block_size == 128
    assert not Path(f"{fine}.resume").exists(), "the resumable state is removed after a finished run"

    out = tmp_path / "preds.txt"
    rc, stdout, stderr = run(["evaluate", "vanilla", tiny_data_shared.wiki, "--reading_params_path", fine,
                              "--eval_corpus_path", tiny_data_shared.dev, "--outputs_path", out, "--device", "cpu"], capsys)
    assert rc == 0, stderr
    m = SCORE.match(stdout.strip())
    assert m, stdout
    predictions = out.read_text(encoding="utf-8").split("\n")
    assert predictions[-1] == "" and len(predictions) == 7  # one line per input, newline-terminated
    predictions = predictions[:-1]
    gold = [a for _, a in tiny_data_shared.dev_pairs]
    correct = sum(p == g for p, g in zip(predictions, gold))
    assert (int(m.group(1)), int(m.group(2))) == (correct, 6)
    assert m.group(3) == f"{100 * correct / 6:.1f}"
    # in order: each line is the naive greedy answer to the question on the same line
    assert predictions == naive_answers(fine, tiny_data_shared, [q for q, _ in tiny_data_shared.dev_pairs])


def test_evaluate_questions_only_file(trained, tiny_data_shared, tmp_path, capsys):
    _, fine, _ = trained
    out = tmp_path / "test_preds.txt"
    rc, stdout, stderr = run(["evaluate", "vanilla", tiny_data_shared.wiki, "--reading_params_path", fine,
                              "--eval_corpus_path", tiny_data_shared.test_inputs, "--outputs_path", out,
                              "--device", "cpu"], capsys)
    assert rc == 0, stderr
    assert stdout.strip() == f"Predictions written to {out}; no targets provided"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(read_questions(tiny_data_shared.test_inputs)) == 6
    # same questions, same model: the same answers as on the dev file
    dev_out = tmp_path / "dev_preds.txt"
    assert main(["evaluate", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(fine),
                 "--eval_corpus_path", str(tiny_data_shared.dev), "--outputs_path", str(dev_out)]) == 0
    assert dev_out.read_text(encoding="utf-8").splitlines() == lines


def test_finetune_from_scratch_with_dash_spellings(tiny_data, tmp_path, capsys):
    out = tmp_path / "scratch.params"
    rc, stdout, stderr = run(["finetune", "vanilla", tiny_data.wiki, "--writing-params-path", out,
                              "--finetune-corpus-path", tiny_data.train, "--max-epochs", "1", "--batch-size", "7",
                              "--no-progress", "--finetune-lr", "6e-4", "--seed", "3"], capsys)
    assert rc == 0, stderr
    assert "finetuned 2 steps" in stdout
    ckpt = read_checkpoint(out)
    assert ckpt.progress["stage"] == "finetune" and ckpt.progress["finished"]
    preds = tmp_path / "p.txt"
    rc, stdout, stderr = run(["evaluate", "vanilla", tiny_data.wiki, "--reading-params-path", out,
                              "--eval-corpus-path", tiny_data.dev, "--outputs-path", preds], capsys)
    assert rc == 0, stderr
    assert SCORE.match(stdout.strip())
    assert len(preds.read_text(encoding="utf-8").splitlines()) == 6


def test_variant_checkpoint_mismatch_is_one_line(trained, tiny_data_shared, tmp_path, capsys):
    _, fine, _ = trained
    rc, stdout, stderr = run(["evaluate", "rope", tiny_data_shared.wiki, "--reading_params_path", fine,
                              "--eval_corpus_path", tiny_data_shared.dev, "--outputs_path", tmp_path / "p"], capsys)
    assert rc == 1
    assert stderr.count("\n") == 1 and "vanilla" in stderr and "Traceback" not in stderr


def test_tensorboard_scalars(tiny_data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    pretrain(tiny_data, tmp_path / "tb.params", capsys, "--tb_expt_name", "run1", "--batch_size", "10")
    logdir = tmp_path / "expt" / "pretrain" / "run1_vanilla"
    events = list(logdir.glob("events.out.tfevents.*"))
    assert events, f"no event files under {logdir}"
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/lr"} <= set(tags)
    loss = acc.Scalars("train/loss")
    assert loss and all(e.value > 0 for e in loss)
    assert loss[-1].step == 2  # ceil(20 / 10) steps
    assert all(0 <= e.value <= 6e-3 for e in acc.Scalars("train/lr"))


def checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_training_is_deterministic_given_initial_state(tiny_data, tmp_path, capsys):
    """Data order, span corruption and dropout all follow --seed (the model init aside)."""
    a, b = tmp_path / "a.params", tmp_path / "b.params"
    torch.manual_seed(1234)
    pretrain(tiny_data, a, capsys, "--seed", "5", "--batch_size", "10")
    torch.manual_seed(1234)
    pretrain(tiny_data, b, capsys, "--seed", "5", "--batch_size", "10")
    assert_same_tensors(a, b)


def test_seed_gives_identical_checkpoints(tiny_data, tmp_path, capsys):
    a, b = tmp_path / "a.params", tmp_path / "b.params"
    pretrain(tiny_data, a, capsys, "--seed", "7", "--batch_size", "10")
    torch.rand(3)  # whatever ran before must not matter
    pretrain(tiny_data, b, capsys, "--seed", "7", "--batch_size", "10")
    assert_same_tensors(a, b)


def test_recipe_flag_chooses_how_to_train_and_is_recorded(tiny_data, tmp_path, capsys):
    course, legacy = tmp_path / "a.params", tmp_path / "b.params"
    pretrain(tiny_data, course, capsys, "--batch_size", "10")
    pretrain(tiny_data, legacy, capsys, "--batch_size", "10", "--recipe", "kgpt-0.1")
    assert read_checkpoint(course).progress["recipe"] == "assignment"
    assert read_checkpoint(legacy).progress["recipe"] == "kgpt-0.1"
    ta, tb = checkpoint_tensors(course), checkpoint_tensors(legacy)
    assert any(not torch.equal(ta[k], tb[k]) for k in ta)  # same seed, another recipe, other weights


def test_different_seeds_give_different_checkpoints(tiny_data, tmp_path, capsys):
    a, b = tmp_path / "a.params", tmp_path / "b.params"
    torch.manual_seed(99)
    pretrain(tiny_data, a, capsys, "--seed", "1", "--batch_size", "10")
    torch.manual_seed(99)
    pretrain(tiny_data, b, capsys, "--seed", "2", "--batch_size", "10")
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert any(not torch.equal(ta[k], tb[k]) for k in ta)


def test_python_dash_m_entry_point(trained, tiny_data_shared, tmp_path):
    _, fine, _ = trained
    out = tmp_path / "preds.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "kgpt", "evaluate", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path",
         str(fine), "--eval_corpus_path", str(tiny_data_shared.dev), "--outputs_path", str(out), "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert SCORE.match(proc.stdout.strip()), proc.stdout
    assert len(out.read_text(encoding="utf-8").splitlines()) == 6
    proc = subprocess.run([sys.executable, "-m", "kgpt", "evaluate", "vanilla", str(tiny_data_shared.wiki),
                           "--reading_params_path", str(tmp_path / "missing.params"), "--eval_corpus_path",
                           str(tiny_data_shared.dev), "--outputs_path", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture
def all_threads():
    """The slow run uses the machine's cores; the fast tests stay on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_assignment_commands_on_real_data(real_data, tmp_path, capsys, all_threads, monkeypatch):
    """DESIGN.md's four commands, one epoch each, on the real files."""
    monkeypatch.chdir(tmp_path)
    wiki, train = real_data / "wiki.txt", real_data / "birth_places_train.tsv"
    dev, test_inputs = real_data / "birth_dev.tsv", real_data / "birth_test_inputs.tsv"
    pre, fine = tmp_path / "vanilla.pretrain.params", tmp_path / "vanilla.finetune.params"
    rc, out, err = run(["pretrain", "vanilla", wiki, "--writing_params_path", pre, "--pretrain_lr", "6e-3",
                        "--max_epochs", "1", "--no_progress"], capsys)
    assert rc == 0, err
    assert "pretrained 23 steps" in out  # ceil(2936 / 128)
    rc, out, err = run(["finetune", "vanilla", wiki, "--reading_params_path", pre, "--writing_params_path", fine,
                        "--finetune_corpus_path", train, "--finetune_lr", "6e-4", "--max_epochs", "1",
                        "--no_progress"], capsys)
    assert rc == 0, err
    assert "finetuned 8 steps" in out  # ceil(2000 / 256)
    rc, out, err = run(["evaluate", "vanilla", wiki, "--reading_params_path", fine, "--eval_corpus_path", dev,
                        "--outputs_path", tmp_path / "vanilla.pretrain.dev.predictions"], capsys)
    assert rc == 0, err
    m = SCORE.match(out.strip())
    assert m and m.group(2) == "500", out
    assert len((tmp_path / "vanilla.pretrain.dev.predictions").read_text(encoding="utf-8").split("\n")) == 501
    rc, out, err = run(["evaluate", "vanilla", wiki, "--reading_params_path", fine, "--eval_corpus_path",
                        test_inputs, "--outputs_path", tmp_path / "test.predictions"], capsys)
    assert rc == 0, err
    assert out.strip() == f"Predictions written to {tmp_path / 'test.predictions'}; no targets provided"
    rc, out, err = run(["london-baseline", "--eval_corpus_path", dev], capsys)
    assert rc == 0 and out.strip() == "Correct: 25 out of 500: 5.0%"


def test_pipeline_itself_refuses_an_output_over_an_input(tiny_data):
    """The checks live in the pipeline, so API users and studies get them too, before any work."""
    from kgpt import pipeline
    from kgpt.errors import KgptError

    before = tiny_data.wiki.read_bytes(), tiny_data.dev.read_bytes()
    with pytest.raises(KgptError, match="is the input file"):
        pipeline.pretrain("vanilla", tiny_data.wiki, tiny_data.wiki, max_epochs=1)
    with pytest.raises(KgptError, match="is the input file"):
        pipeline.london_baseline(tiny_data.dev, tiny_data.dev)
    assert (tiny_data.wiki.read_bytes(), tiny_data.dev.read_bytes()) == before


@pytest.mark.parametrize("command", [["demo", "--preset", "tiny"], ["attention-lab"], ["reproduce", "--data_dir", "."]])
def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys, command):
    taken = tmp_path / "results.txt"
    taken.write_text("mine")
    assert main([*command, "--out", str(taken)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0] and taken.read_text() == "mine"


def test_the_analysis_never_writes_over_an_input(tiny_data, tmp_path, capsys):
    """--analysis_dir writes fixed names into its folder; one of them may be an input."""
    questions = tmp_path / "analysis.md"
    questions.write_text(tiny_data.dev.read_text(encoding="utf-8"), encoding="utf-8")
    before = questions.read_bytes()
    assert main(["evaluate", "vanilla", str(tiny_data.wiki), "--reading_params_path", str(tmp_path / "none.params"),
                 "--eval_corpus_path", str(questions), "--outputs_path", str(tmp_path / "p.txt"),
                 "--analysis_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--analysis_dir" in err[0] and "input file" in err[0] and questions.read_bytes() == before
