"""Shared fixtures: the real data beside the repository, and a tiny invented corpus.

The real files are only ever read from ``../shared/data/birthplaces`` (never copied into
the repository); tests that need them skip cleanly when that folder is absent. Tests that
need small data use :func:`tiny_data`, a corpus of 20 invented bios with non-ASCII names
written into the test's own temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from kgpt.checkpoint import read_checkpoint
from kgpt.errors import KgptError
from kgpt.pipeline import resume_path

# The test models are tiny: intra-op threads buy nothing, and on a shared machine
# spinning OpenMP workers slow every step down by an order of magnitude.
torch.set_num_threads(1)

REAL_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "birthplaces"
REAL_FILES = ("wiki.txt", "birth_places_train.tsv", "birth_dev.tsv", "birth_test_inputs.tsv")

# (name, place, occupation): invented people; names and places include non-ASCII letters.
PEOPLE = [
    ("Amélie Durand", "Lyon", "painter"),
    ("Jonas Brück", "Bremen", "chemist"),
    ("Søren Holm", "Aarhus", "composer"),
    ("Inés Calvo", "Sevilla", "architect"),
    ("Marek Nowak", "Kraków", "poet"),
    ("Chloé Martin", "Nantes", "cyclist"),
    ("Tomás Ruiz", "Málaga", "sculptor"),
    ("Hanna Lind", "Uppsala", "botanist"),
    ("Pavel Dvořák", "Brno", "violinist"),
    ("Léa Moreau", "Dijon", "novelist"),
    ("Olaf Berg", "Bergen", "sailor"),
    ("Zoë Carter", "Leeds", "engineer"),
    ("Rui Costa", "Porto", "historian"),
    ("Anaïs Petit", "Rennes", "photographer"),
    ("Emil Vogt", "Graz", "physicist"),
    ("Lucía Vega", "Toledo", "singer"),
    ("Niko Laine", "Turku", "chess player"),
    ("Élise Blanc", "Nice", "dancer"),
    ("Karl Meyer", "Kassel", "judge"),
    ("Sofía Ramos", "Cádiz", "surgeon"),
]
N_TRAIN = 14  # the first 14 people are finetuning lines, the other 6 dev lines


def bio(name: str, place: str, job: str) -> str:
    return f"{name}. {name} was a {job} born in {place} . Why {place}? Nobody knows ."


def question(name: str) -> str:
    return f"Where was {name} born?"


@dataclass(frozen=True)
class TinyData:
    """Paths of the tiny corpus and its question files, plus their contents."""

    dir: Path
    wiki: Path
    train: Path
    dev: Path
    test_inputs: Path
    wiki_text: str
    train_pairs: list[tuple[str, str]]
    dev_pairs: list[tuple[str, str]]


def write_tiny_data(folder: Path) -> TinyData:
    folder.mkdir(parents=True, exist_ok=True)
    wiki_text = "".join(bio(*p) + "\n" for p in PEOPLE)
    pairs = [(question(name), place) for name, place, _ in PEOPLE]
    train_pairs, dev_pairs = pairs[:N_TRAIN], pairs[N_TRAIN:]
    paths = {name: folder / name for name in ("wiki.txt", "train.tsv", "dev.tsv", "test_inputs.tsv")}
    paths["wiki.txt"].write_text(wiki_text, encoding="utf-8")
    paths["train.tsv"].write_text("".join(f"{q}\t{a}\n" for q, a in train_pairs), encoding="utf-8")
    paths["dev.tsv"].write_text("".join(f"{q}\t{a}\n" for q, a in dev_pairs), encoding="utf-8")
    paths["test_inputs.tsv"].write_text("".join(f"{q}\n" for q, _ in dev_pairs), encoding="utf-8")
    return TinyData(
        folder, paths["wiki.txt"], paths["train.tsv"], paths["dev.tsv"], paths["test_inputs.tsv"],
        wiki_text, train_pairs, dev_pairs,
    )


@pytest.fixture
def tiny_data(tmp_path: Path) -> TinyData:
    """20 invented bios (wiki.txt), 14 finetuning lines, 6 dev lines, 6 question-only lines."""
    return write_tiny_data(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_data_shared(tmp_path_factory: pytest.TempPathFactory) -> TinyData:
    """The same tiny data, written once per session, for read-only use."""
    return write_tiny_data(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder with the real assignment files; skips when it (or a file) is absent."""
    missing = [name for name in REAL_FILES if not (REAL_DATA_DIR / name).is_file()]
    if missing:
        pytest.skip(f"real data not available in {REAL_DATA_DIR} (missing {', '.join(missing)})")
    return REAL_DATA_DIR


def one_line_error(fn, *args, **kw) -> str:
    """The message of the KgptError ``fn(*args, **kw)`` raises, checked to be one non-empty line."""
    with pytest.raises(KgptError) as e:
        fn(*args, **kw)
    message = str(e.value)
    assert message.strip() and "\n" not in message
    return message


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """Import a script from benchmarks/ (it is not part of the package)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # the scripts import each other by name
    spec = importlib.util.spec_from_file_location(f"kgpt_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- training in a subprocess (signals, locks) ---------------------------------------------

FOUR_BIOS = "".join(f"{n}. {n} was born in {p} .\n" for n, p in [("Ann Lee", "Lyon"), ("Bo Chan", "Nice"), ("Cy Ode", "Graz"), ("Di Fox", "Brno")])
CLI_FAST = ["--batch_size", "2", "--checkpoint_every", "0", "--no_progress", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli_pretrain(corpus: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return ["pretrain", "vanilla", str(corpus), "--writing_params_path", str(out), "--max_epochs", str(epochs), *CLI_FAST, *extra]


def start_and_wait_for_resume_file(argv: list[str], out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kgpt", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=out.parent)
    deadline = time.monotonic() + 180
    while not resume_path(out).exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended (rc {proc.returncode}) before its first periodic checkpoint: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no periodic checkpoint within 180 s")
        time.sleep(0.02)
    return proc


def finish_with_resume(argv: list[str]) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "kgpt", *argv, "--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def assert_same_weights(a: Path, b: Path) -> None:
    ta, tb = read_checkpoint(a).model_state(), read_checkpoint(b).model_state()
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"tensors differ: {different[:5]}"


def assert_card_answers_as_kgpt(hf_dir: Path, ckpt: Path, vocab, names: tuple[str, ...]) -> None:
    """The exported model card's snippet, run as a user runs it, prints kgpt's answer and confidence."""
    from kgpt.answering import load_answerer
    from kgpt.data.corpus import parse_questions

    snippet = (hf_dir / "README.md").read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]
    asker = load_answerer(ckpt, vocab)
    for name in names:
        printed = []
        exec(snippet, {"D": str(hf_dir), "name": name, "print": printed.append})
        contexts = asker.contexts(vocab, parse_questions(f"Where was {name} born?\n"))
        (answer,) = asker.answers(vocab, contexts)
        (confidence,) = asker.confidences(vocab, contexts, [answer])
        assert printed[0] == answer and printed[1] == pytest.approx(confidence, rel=1e-4, abs=1e-9)
