"""Every mistake a user can make is one clear line, a non-zero exit, and no damage.

One table lists the mistakes (bad paths, malformed files, out-of-range flags, wrong or
damaged checkpoints). Every row runs through ``kgpt.cli.main`` in process; a
representative subset also runs as ``python -m kgpt`` in a subprocess, to prove that no
traceback reaches a real terminal. For every row: the exit code is non-zero, stderr is
exactly one non-empty line, nothing says "Traceback", and every file in the workspace
(inputs, an existing ``--writing_params_path`` and ``--outputs_path``) is byte-identical
afterwards, with nothing new created. All rows fail before any training starts, so each
takes milliseconds in process.

Then property tests: the corpus and question readers either parse arbitrary bytes or
raise :class:`KgptError` (never another exception), and CRLF endings and blank lines
read exactly like LF files without them. (Span corruption on arbitrary strings is
covered by ``test_corruption.py::test_corrupt_property``.)
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from kgpt.checkpoint import save_checkpoint
from kgpt.cli import main
from kgpt.data.corpus import corpus_documents, parse_questions, read_corpus, read_questions
from kgpt.errors import KgptError
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import CharVocab

FAST = ["--max_epochs", "1", "--batch_size", "4", "--no_progress", "--device", "cpu"]
TINY = {"n_layer": 2, "n_head": 2, "n_embd": 16}


# -- the workspace every row runs in ----------------------------------------------------


@dataclass
class Workspace:
    root: Path
    names: dict[str, str]  # placeholder -> path, for the rows' argv

    def argv(self, template: list[str]) -> list[str]:
        return [a.format(**self.names) for a in template]


class _RunsCode:
    """A pickle that would create a folder if unpickled; weights_only must refuse it."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _tiny_model(vocab: CharVocab, variant: str = "vanilla", **kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=len(vocab), block_size=128, variant=variant, **{**TINY, **kw}))


@pytest.fixture
def ws(tiny_data) -> Workspace:
    root = tiny_data.dir.parent
    vocab = CharVocab.from_text(tiny_data.wiki_text)
    ckpt, perceiver = root / "vanilla.params", root / "perceiver.params"
    save_checkpoint(ckpt, _tiny_model(vocab), vocab)
    save_checkpoint(perceiver, _tiny_model(vocab, "perceiver", bottleneck_dim=8), vocab)
    out, preds = root / "existing.params", root / "preds.txt"
    out.write_bytes(b"an earlier model, which an error must not touch\n")
    preds.write_bytes(b"earlier predictions\n")
    (root / "adir").mkdir()
    names = {
        "wiki": tiny_data.wiki, "train": tiny_data.train, "dev": tiny_data.dev, "ckpt": ckpt,
        "perceiver": perceiver, "out": out, "preds": preds, "dir": root / "adir", "root": root,
    }
    return Workspace(root, {k: str(v) for k, v in names.items()})


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes (None for folders) under ``root``."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# -- the table ------------------------------------------------------------------------


@dataclass
class Row:
    id: str
    argv: list[str]
    says: str  # a piece of the message: the what or the where
    files: dict[str, Callable[[Workspace], bytes]] = field(default_factory=dict)  # path in the workspace -> bytes
    subprocess: bool = False


def text(s: str) -> Callable[[Workspace], bytes]:
    return lambda ws: s.encode("utf-8")


def raw(b: bytes) -> Callable[[Workspace], bytes]:
    return lambda ws: b


def ckpt_bytes(edit: Callable[[bytes], bytes]) -> Callable[[Workspace], bytes]:
    return lambda ws: edit(Path(ws.names["ckpt"]).read_bytes())


def flip_last_byte(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 0x01])


def torch_saved(make: Callable[[Workspace], object]) -> Callable[[Workspace], bytes]:
    def build(ws: Workspace) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            torch.save(make(ws), Path(d) / "f")
            return (Path(d) / "f").read_bytes()

    return build


def wrong_layout(ws: Workspace) -> dict:
    state = _tiny_model(CharVocab.from_text(Path(ws.names["wiki"]).read_text(encoding="utf-8"))).state_dict()
    state["blocks.0.attn.key.weight"] = torch.zeros(16, 12)
    return state


def pretrain(corpus: str = "{wiki}", *extra: str) -> list[str]:
    return ["pretrain", "vanilla", corpus, "--writing_params_path", "{out}", *FAST, *extra]


def finetune(questions: str, *extra: str, variant: str = "vanilla", ckpt: str = "{ckpt}") -> list[str]:
    return ["finetune", variant, "{wiki}", "--reading_params_path", ckpt, "--writing_params_path", "{out}",
            "--finetune_corpus_path", questions, *FAST, *extra]


def evaluate(questions: str = "{dev}", ckpt: str = "{ckpt}", *extra: str, variant: str = "vanilla", corpus: str = "{wiki}") -> list[str]:
    return ["evaluate", variant, corpus, "--reading_params_path", ckpt, "--eval_corpus_path", questions,
            "--outputs_path", "{preds}", *extra]


F = "bad/f"  # a row's own input file, relative to the workspace
BAD = "{root}/" + F
Q = "Where was Amélie Durand born?"
ROWS = [
    # the pretraining corpus
    Row("corpus-missing", pretrain("{root}/nope.txt"), "does not exist"),
    Row("corpus-directory", pretrain("{dir}"), "is a directory"),
    Row("corpus-empty", pretrain(BAD), "is empty", {F: raw(b"")}),
    Row("corpus-blank-lines-only", pretrain(BAD), "is empty", {F: text("\n  \r\n\n")}),
    Row("corpus-not-utf8", pretrain(BAD), "line 2", {F: raw(b"Ann Lee.\n\xff\xfe born\n")}, subprocess=True),
    Row("corpus-mask-char", pretrain(BAD), "U+2047", {F: text("Ann Lee.\nBo \u2047 Chan.\n")}),
    Row("corpus-pad-char", pretrain(BAD), "U+25A1", {F: text("Ann \u25a1 Lee.\n")}),
    # finetuning files
    Row("finetune-file-missing", finetune("{root}/nope.tsv"), "does not exist"),
    Row("finetune-file-directory", finetune("{dir}"), "is a directory"),
    Row("finetune-no-tab", finetune(BAD), "line 2", {F: text(f"{Q}\tLyon\n{Q}\n")}, subprocess=True),
    Row("finetune-empty-answer", finetune(BAD), "empty answer", {F: text(f"{Q}\t\n")}),
    Row("finetune-extra-column", finetune(BAD), "3 tab-separated columns", {F: text(f"{Q}\tLyon\tFrance\n")}),
    Row("finetune-too-long", finetune(BAD), "longer than the block", {F: text("Where " * 30 + "\tLyon\n")}),
    Row("finetune-outside-vocab", finetune(BAD), "U+03A9", {F: text(f"{Q}\tLyon\nWhere was Ω born?\tNice\n")}),
    Row("finetune-not-utf8", finetune(BAD), "UTF-8", {F: raw(b"Where was \xe9 born?\tLyon\n")}),
    # evaluation files
    Row("evaluate-too-long", evaluate(BAD), "too long", {F: text("Where " * 30 + "\n")}),
    Row("evaluate-outside-vocab", evaluate(BAD), "not in the vocabulary", {F: text("Where was Ω born?\tNice\n")}),
    Row("evaluate-mixed-columns", evaluate(BAD), "line 2", {F: text(f"{Q}\tLyon\n{Q}\n")}),
    Row("evaluate-file-empty", evaluate(BAD), "is empty", {F: raw(b"")}),
    Row("london-file-missing", ["london-baseline", "--eval_corpus_path", "{root}/nope.tsv"], "does not exist"),
    # flags
    Row("unknown-variant", ["pretrain", "gpt5", "{wiki}", "--writing_params_path", "{out}"], "invalid choice", subprocess=True),
    Row("unknown-option", pretrain("{wiki}", "--learning_rate", "0.1"), "unrecognized"),
    Row("missing-writing-path", ["pretrain", "vanilla", "{wiki}"], "writing_params_path"),
    Row("epochs-negative", pretrain("{wiki}", "--max_epochs", "-1"), "out of range"),
    Row("epochs-huge", pretrain("{wiki}", "--max_epochs", "10000000"), "out of range"),
    Row("epochs-not-int", pretrain("{wiki}", "--max_epochs", "2.5"), "whole number"),
    Row("pretrain-lr-zero", pretrain("{wiki}", "--pretrain_lr", "0"), "out of range"),
    Row("pretrain-lr-huge", pretrain("{wiki}", "--pretrain_lr", "5"), "out of range"),
    Row("pretrain-lr-nan", pretrain("{wiki}", "--pretrain_lr", "nan"), "out of range"),
    Row("finetune-lr-negative", finetune("{train}", "--finetune_lr", "-0.001"), "out of range"),
    Row("seed-negative", pretrain("{wiki}", "--seed", "-1"), "out of range"),
    Row("checkpoint-every-negative", pretrain("{wiki}", "--checkpoint_every", "-5"), "out of range"),
    Row("checkpoint-every-inf", pretrain("{wiki}", "--checkpoint_every", "inf"), "out of range"),
    Row("bottleneck-zero", pretrain("{wiki}", "--bottleneck_dim", "0"), "at least 1"),
    Row("unknown-recipe", pretrain("{wiki}", "--recipe", "fast"), "invalid choice"),
    Row("evaluate-without-reading-path",
        ["evaluate", "vanilla", "{wiki}", "--eval_corpus_path", "{dev}", "--outputs_path", "{preds}"],
        "--reading_params_path", subprocess=True),
    # output paths
    Row("writing-path-is-directory", pretrain("{wiki}", "--writing_params_path", "{dir}"), "is a directory", subprocess=True),
    Row("writing-path-under-a-file", pretrain("{wiki}", "--writing_params_path", "{preds}/m.params"), "is a file, not a folder"),
    Row("writing-path-is-the-corpus", pretrain("{wiki}", "--writing_params_path", "{wiki}"), "would destroy it"),
    Row("outputs-path-is-directory", evaluate("{dev}", "{ckpt}", "--outputs_path", "{dir}"), "is a directory"),
    Row("outputs-path-is-the-questions", evaluate("{dev}", "{ckpt}", "--outputs_path", "{dev}"), "would destroy it"),
    Row("london-outputs-path-is-directory",
        ["london-baseline", "--eval_corpus_path", "{dev}", "--outputs_path", "{dir}"], "is a directory"),
    Row("stale-resume-without-flag", pretrain("{wiki}"), "--resume", {"existing.params.resume": raw(b"state")}),
    Row("resume-without-state", pretrain("{wiki}", "--resume"), "no resumable checkpoint"),
    # checkpoints
    Row("checkpoint-missing", evaluate("{dev}", "{root}/nope.params"), "does not exist"),
    Row("checkpoint-directory", evaluate("{dev}", "{dir}"), "is a directory"),
    Row("checkpoint-zero-length", evaluate("{dev}", BAD), "is empty", {F: raw(b"")}),
    Row("checkpoint-truncated", evaluate("{dev}", BAD), "truncated", {F: ckpt_bytes(lambda b: b[: len(b) // 2])}, subprocess=True),
    Row("checkpoint-truncated-header", evaluate("{dev}", BAD), "truncated", {F: ckpt_bytes(lambda b: b[:200])}),
    Row("checkpoint-flipped-byte", evaluate("{dev}", BAD), "SHA-256", {F: ckpt_bytes(flip_last_byte)}),
    Row("checkpoint-random-bytes", evaluate("{dev}", BAD), "corrupted", {F: raw(random.Random(0).randbytes(4096))}),
    Row("checkpoint-safetensors-without-kgpt-metadata", evaluate("{dev}", BAD), "without kgpt metadata",
        {F: raw(st_save({"tok_emb.weight": torch.zeros(4, 4)}))}),
    Row("checkpoint-pickled-object", evaluate("{dev}", BAD), "refused without running it",
        {F: torch_saved(lambda ws: _RunsCode(f"{ws.root}/pwned"))}, subprocess=True),
    Row("checkpoint-pickled-non-tensors", evaluate("{dev}", BAD), "state dict", {F: torch_saved(lambda ws: {"lr": 0.1})}),
    Row("checkpoint-legacy-wrong-layout", evaluate("{dev}", BAD), "blocks.0.attn.key.weight", {F: torch_saved(wrong_layout)}),
    Row("evaluate-other-variant", evaluate("{dev}", "{ckpt}", variant="rope"), "holds a vanilla model"),
    Row("finetune-other-variant", finetune("{train}", variant="synthesizer"), "holds a vanilla model"),
    Row("evaluate-other-bottleneck", evaluate("{dev}", "{perceiver}", "--bottleneck_dim", "16", variant="perceiver"),
        "--bottleneck_dim 8"),
    Row("finetune-other-bottleneck", finetune("{train}", "--bottleneck_dim", "32", variant="perceiver", ckpt="{perceiver}"),
        "--bottleneck_dim 8"),
    Row("evaluate-other-vocabulary", evaluate("{dev}", "{ckpt}", corpus=BAD), "different vocabulary",
        {F: text("Where was Zoë born? Lyon.\n")}),
]
assert len({r.id for r in ROWS}) == len(ROWS)


def _prepare(ws: Workspace, row: Row) -> list[str]:
    for name, make in row.files.items():
        path = ws.root / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(make(ws))
    return ws.argv(row.argv)


def _check(ws: Workspace, before: dict, rc: int, out: str, err: str) -> None:
    assert rc != 0, f"exit code 0; stdout {out!r}"
    assert "Traceback" not in out + err
    assert err.endswith("\n") and err.count("\n") == 1 and err.strip(), f"stderr is not one line: {err!r}"
    assert snapshot(ws.root) == before, "files changed or appeared"


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_user_error_is_one_line_in_process(row: Row, ws: Workspace, capsys) -> None:
    argv = _prepare(ws, row)
    before = snapshot(ws.root)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's usage errors exit from inside parse_args
        rc = e.code
    out, err = capsys.readouterr()
    _check(ws, before, rc, out, err)
    assert row.says in err, err


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS if r.subprocess])
def test_user_error_is_one_line_from_the_command(row: Row, ws: Workspace) -> None:
    argv = _prepare(ws, row)
    before = snapshot(ws.root)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "kgpt", *argv], capture_output=True, text=True, cwd=ws.root, env=env, timeout=120)
    _check(ws, before, r.returncode, r.stdout, r.stderr)
    assert row.says in r.stderr, r.stderr


def test_accepted_variations_train(ws: Workspace, capsys) -> None:
    """Blank lines and CRLF endings are accepted in every input file, BOM too."""
    root = ws.root
    corpus = Path(ws.names["wiki"]).read_text(encoding="utf-8")
    train = Path(ws.names["train"]).read_text(encoding="utf-8").splitlines()
    (root / "wiki_crlf.txt").write_bytes(("\n\n" + corpus.replace("\n", "\r\n\r\n")).encode())
    (root / "train_crlf.tsv").write_bytes(("\ufeff\r\n" + "\r\n \r\n".join(train[:3]) + "\r\n").encode())
    ckpt = root / "crlf.params"
    vocab = CharVocab.from_text(read_corpus(root / "wiki_crlf.txt"))
    assert vocab == CharVocab.from_text(corpus)
    save_checkpoint(ckpt, _tiny_model(vocab), vocab)
    rc = main(["finetune", "vanilla", str(root / "wiki_crlf.txt"), "--reading_params_path", str(ckpt),
               "--writing_params_path", str(root / "ft.params"), "--finetune_corpus_path", str(root / "train_crlf.tsv"), *FAST])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "finetuned 1 steps" in out


# -- property tests for the readers ---------------------------------------------------------

_any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
_tsv_like = st.lists(
    st.one_of(st.text(alphabet=st.sampled_from("ab é\t\r\u2047\u25a1?"), max_size=12), st.just("")), max_size=8
).map("\n".join)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("props")


def _outcome(read: Callable[[], object]) -> object:
    """What a reader returns, or the KgptError it raises (as a marker); anything else fails."""
    try:
        return read()
    except KgptError as e:
        assert "\n" not in str(e), f"multi-line message {e!r}"
        return KgptError


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200), _any_text.map(str.encode), _tsv_like.map(str.encode)))
def test_readers_parse_or_raise_kgpt_error(data: bytes, scratch: Path) -> None:
    path = scratch / "input"
    path.write_bytes(data)
    corpus = _outcome(lambda: read_corpus(path))
    if corpus is not KgptError:
        assert "\u2047" not in corpus and "\u25a1" not in corpus and "\r\n" not in corpus
        assert corpus_documents(corpus)
    questions = _outcome(lambda: read_questions(path))
    if questions is not KgptError:
        assert questions and len({q.answer is None for q in questions}) == 1
        assert all(q.text.strip() and "\t" not in q.text for q in questions)
    _outcome(lambda: read_questions(path, require_answers=True))
    _outcome(lambda: parse_questions(data.decode("utf-8", errors="replace")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.one_of(_any_text.filter(lambda s: "\r" not in s and "\n" not in s), st.sampled_from(["a\tb", "q", ""])), max_size=8),
    blanks=st.lists(st.sampled_from(["", "  ", "\t"]), min_size=8, max_size=8),
)
def test_crlf_and_blank_lines_read_like_plain_lf(lines: list[str], blanks: list[str], scratch: Path) -> None:
    """Same questions and documents (or the same failure) whatever the endings and blank lines."""
    plain = "\n".join(lines) + "\n"
    spaced = "".join(line + "\n" + blank + "\n" for line, blank in zip(lines, blanks))
    results = []
    for name, content in (("lf", plain), ("crlf", plain.replace("\n", "\r\n")), ("blank", spaced.replace("\n", "\r\n"))):
        path = scratch / name
        path.write_bytes(content.encode("utf-8"))
        qs = _outcome(lambda: read_questions(path))
        docs = _outcome(lambda: corpus_documents(read_corpus(path)))
        results.append((qs if qs is KgptError else [(q.text, q.answer) for q in qs], docs))
    assert results[0] == results[1] == results[2]
