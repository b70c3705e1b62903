"""Every input a user hands kgpt, tried: each command answers, or exits non-zero with one
line per problem and no traceback, and no file the user had changes.

Hypothesis draws the inputs; every example runs a command in process through
``kgpt.cli.main`` against two tiny models trained once for the module (a vanilla model
asked directly, and a recall-then-read model). Before each run the workspace is
snapshotted; afterwards every file is byte-identical and the only new file, on success,
is the command's own output. ``test_reliability.py`` holds the table of known mistakes;
this file sweeps the space around them.

Examples tried per command (default run; ``-m slow`` runs the sweep column). "Files" are
well-formed (every line with a place or none, LF or CRLF, blank lines, a BOM), or one of
those damaged (any text or non-UTF-8 bytes put anywhere, a stray tab, cut short, CR or
mixed line ends), or lines of 1000-5000 characters, or empty, or any bytes.

=====================  ===================================================  =======  =====
command                what varies                                          default  sweep
=====================  ===================================================  =======  =====
ask QUESTION           any Unicode (NUL, controls, BOM, CR, LF, tabs),          50    500
                       questions of 108-1200 characters
ask < stdin            files of questions                                       40    400
ask, recall model      the same questions, to a model that recalls, reads       25    250
ask NAME               names around and beyond the block (108-512)              20    200
evaluate               files of questions, with or without places; both         40    400
                       models
london-baseline        the same files                                           60    600
evaluate, ask CORPUS   the vocabulary's corpus: its lines reordered, CRLF,      30    300
                       blank lines; edited; one line; empty; any bytes
pretrain CORPUS        the same corpora                                         10    100
finetune TSV           files of questions                                       10    100
evaluate, ask,         a checkpoint (either model) cut short at any byte        30    300
finetune, export
=====================  ===================================================  =======  =====

Each property test also checks that its examples both answered and were refused (a
sweep that only ever hit one wall would prove little). A recall model asked about a name
whose cue ``NAME.`` fills the block is refused in one line too.

And no command overwrites its own input: ``finetune`` refuses to write the checkpoint it
reads (same path, relative, through a symlink or ``..``), and every other command that
reads and writes files is tried with its output on one of its inputs.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PEOPLE, question, write_tiny_data
from kgpt.cli import main
from kgpt.data.corpus import asked_name
from kgpt.training.recipe import RECALL

# (default run, slow sweep) examples per command; the table above shows the same numbers.
TRIED = {
    "ask-arguments": (50, 500),
    "ask-stdin": (40, 400),
    "ask-recall": (25, 250),
    "ask-long-names": (20, 200),
    "evaluate": (40, 400),
    "london-baseline": (60, 600),
    "vocabulary-corpus": (30, 300),
    "pretrain": (10, 100),
    "finetune": (10, 100),
    "cut-checkpoint": (30, 300),
}
SIZE = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16"]
QUICK = ["--batch_size", "8", "--no_progress", "--device", "cpu", "--max_epochs", "1"]
BLOCK = 128  # the CLI's block size


def examples(name: str) -> list:
    """The test's two example counts: the default run's, and the slow sweep's."""
    fast, sweep = TRIED[name]
    return [pytest.param(fast, id=f"{fast}-examples"), pytest.param(sweep, id=f"{sweep}-examples", marks=pytest.mark.slow)]


def tried(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


# -- the workspace: the user's files and two tiny models, made once -----------------------


@dataclass(frozen=True)
class Workspace:
    root: Path
    wiki: Path
    train: Path
    dev: Path
    vanilla: Path  # asked directly
    recall: Path  # recalls the bio, then reads the place


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("inputs")
    data = write_tiny_data(root)
    vanilla, pre, recall = root / "vanilla.params", root / "recall.pretrain.params", root / "recall.params"
    assert main(["pretrain", "vanilla", str(data.wiki), "--writing_params_path", str(vanilla), *SIZE, *QUICK]) == 0
    assert main(["pretrain", "rope", str(data.wiki), "--recipe", "recall", "--writing_params_path", str(pre), *SIZE, *QUICK]) == 0
    assert main(["finetune", "rope", str(data.wiki), "--recipe", "recall", "--reading_params_path", str(pre),
                 "--writing_params_path", str(recall), "--finetune_corpus_path", str(data.train), *QUICK]) == 0
    return Workspace(root, data.wiki, data.train, data.dev, vanilla, recall)


def snapshot(*roots: Path) -> dict[Path, bytes | None]:
    """Every file's bytes (None for a folder) under ``roots``."""
    return {p: p.read_bytes() if p.is_file() else None for root in roots for p in sorted(root.rglob("*"))}


@dataclass(frozen=True)
class Outcome:
    rc: int
    out: str
    err: str


def run(argv: list[str], capsys, stdin: bytes | None = None) -> Outcome:
    """``kgpt ARGV`` in process (stdin from ``stdin``), its exit status and what it printed."""
    capsys.readouterr()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors exit from inside parse_args
        rc = e.code
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return Outcome(rc, out, err)


def assert_answers_or_one_line(o: Outcome, questions: int = 1) -> None:
    """It answered (exit 0, nothing on stderr), or it exited non-zero with one ``kgpt``
    line per problem: at most one per question, plus the line that sums them up."""
    assert "Traceback" not in o.out + o.err
    lines = o.err.splitlines()
    if o.rc == 0:
        assert o.err == "" and o.out.strip()
        return
    assert lines and len(lines) <= questions + 1, o.err
    assert all(line.startswith("kgpt") and line.strip() for line in lines), o.err
    assert o.err.endswith("\n")


def assert_untouched(before: dict[Path, bytes | None], roots: tuple[Path, ...], output: Path | None, rc: int) -> None:
    """Every file as it was; the one new file, on success only, is the command's output."""
    after = snapshot(*roots)
    new = set(after) - set(before)
    assert new == ({output} if rc == 0 and output is not None else set()), f"new files: {sorted(new)}"
    assert {p: after[p] for p in before} == before, "a file the user had changed"


@dataclass
class Trial:
    """One example: snapshot, run, check, and clean the output away for the next."""

    ws: Workspace
    scratch: Path
    capsys: object
    statuses: list[int] = field(default_factory=list)  # every example's exit status

    def __call__(self, argv: list[str], output: Path | None = None, stdin: bytes | None = None, questions: int = 1) -> Outcome:
        roots = (self.ws.root, self.scratch)
        before = snapshot(*roots)
        o = run(argv, self.capsys, stdin)
        self.statuses.append(o.rc)
        assert_answers_or_one_line(o, questions)
        assert_untouched(before, roots, output, o.rc)
        if output is not None:
            output.unlink(missing_ok=True)
        return o


@pytest.fixture
def trial(ws, tmp_path, capsys) -> Trial:
    """Runs examples whose drawn inputs go in the test's own folder."""
    return Trial(ws, tmp_path, capsys)


# -- what users type ------------------------------------------------------------------

_any_char = st.characters(blacklist_categories=("Cs",))  # every code point a file can hold
_corpus_char = st.sampled_from(sorted({c for name, place, job in PEOPLE for c in name + place + job} | set(" .?")))
_asked = st.one_of(st.sampled_from([question(name) for name, _, _ in PEOPLE]),
                   st.builds(question, st.text(_corpus_char, min_size=1, max_size=40)))
_place = st.one_of(st.sampled_from([place for _, place, _ in PEOPLE]), st.text(_corpus_char, min_size=1, max_size=12))
_text = st.one_of(  # anything a line may hold
    st.text(_any_char, max_size=60),
    st.text(_corpus_char, max_size=60),
    _asked,
    st.sampled_from(["", " ", "\x00", "\ufeff", "\u2047", "\u25a1", "Where was  born?", "Where was \x00 born?", "\t"]),
    st.integers(BLOCK - 20, 1200).map(lambda n: question("a" * n)),
)
QUESTION_ARGUMENTS = _text


@st.composite
def question_file(draw, places: bool | None = None) -> bytes:
    """A well-formed question file: a question per line, all with a place or none, LF or
    CRLF endings, maybe blank lines and a BOM."""
    with_places = draw(st.booleans()) if places is None else places
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [q + (f"\t{draw(_place)}" if with_places else "") for q in draw(st.lists(_asked, min_size=1, max_size=6))]
    lines += draw(st.lists(st.sampled_from(["", " "]), max_size=2))
    return (("\ufeff" if draw(st.booleans()) else "") + end.join(lines) + draw(st.sampled_from(["", end]))).encode("utf-8")


@st.composite
def damaged(draw, files: st.SearchStrategy[bytes]) -> bytes:
    """A well-formed file with one thing done to it: text of any kind or bytes that are not
    UTF-8 put anywhere (mid-character too), a stray tab, cut short, other line ends."""
    data = draw(files)
    at = draw(st.integers(0, len(data)))
    kind = draw(st.sampled_from(["text", "bytes", "tab", "cut", "line ends"]))
    if kind == "text":
        return data[:at] + draw(_text).encode("utf-8") + data[at:]
    if kind == "bytes":
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\r", b"\xef\xbb\xbf"])) + data[at:]
    if kind == "tab":
        return data[:at] + b"\t" + data[at:]
    if kind == "cut":
        return data[:at]
    return data.replace(b"\n", draw(st.sampled_from([b"\r", b"\r\r\n", b"\n\n", b"\n\r"])))


def _files(well_formed: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Well-formed, damaged, very long lines, empty, or any bytes at all."""
    long_line = st.builds(lambda n, q: (q + "x" * n + "\n").encode("utf-8"), st.integers(1000, 5000), _asked)
    return st.one_of(well_formed, damaged(well_formed), long_line, st.just(b""), st.binary(max_size=300))


STDIN = _files(question_file(places=False))
QUESTION_FILES = _files(question_file())


def lines_in(data: bytes) -> int:
    return max(1, data.count(b"\n") + data.count(b"\r") + 1)


def tried_both_ways(rcs: list[int]) -> None:
    """A sweep that never answered, or never refused, did not try what it claims to."""
    assert 0 in rcs and any(rc != 0 for rc in rcs), f"exit statuses seen: {sorted(set(rcs))}"


# -- ask ------------------------------------------------------------------------------


def _ask(ws: Workspace, model: Path, *questions: str) -> list[str]:
    variant = "vanilla" if model == ws.vanilla else "rope"
    return ["ask", variant, ws.wiki, "--reading_params_path", model, "--device", "cpu", "--no_progress", "--top_k", "2",
            *questions]


@pytest.mark.parametrize("n", examples("ask-arguments"))
def test_ask_answers_any_question_argument(trial, ws, n):
    @tried(n)
    @given(q=QUESTION_ARGUMENTS)
    def attempt(q: str) -> None:
        trial(_ask(ws, ws.vanilla, q))

    attempt()
    tried_both_ways(trial.statuses)


@pytest.mark.parametrize("n", examples("ask-stdin"))
def test_ask_answers_any_stdin(trial, ws, n):
    @tried(n)
    @given(data=STDIN)
    def attempt(data: bytes) -> None:
        trial(_ask(ws, ws.vanilla), stdin=data, questions=lines_in(data))

    attempt()
    tried_both_ways(trial.statuses)


@pytest.mark.parametrize("n", examples("ask-recall"))
def test_a_recall_model_answers_any_question(trial, ws, n):
    """(Names whose cue ``NAME.`` is longer than the block are the next test's.)"""

    @tried(n)
    @given(q=QUESTION_ARGUMENTS.filter(lambda q: len(asked_name(q) or "") < BLOCK))
    def attempt(q: str) -> None:
        trial(_ask(ws, ws.recall, q))

    attempt()
    tried_both_ways(trial.statuses)


@pytest.mark.parametrize("n", examples("ask-long-names"))
def test_names_longer_than_the_block_are_one_line(trial, ws, n):
    """A question longer than the block is refused in one line."""

    @tried(n)
    @given(length=st.integers(BLOCK - 12, 4 * BLOCK))
    def attempt(length: int) -> None:
        name = ("Amélie Durand " * length)[:length].strip()
        o = trial(_ask(ws, ws.vanilla, question(name)))
        if len(question(name)) > BLOCK:
            assert o.rc != 0 and "block" in o.err

    attempt()


@pytest.mark.parametrize("length", [RECALL.block_size - 1, RECALL.block_size, 3 * RECALL.block_size])
def test_a_recall_cue_longer_than_the_block_is_one_line(trial, ws, length):
    """The recall model never sees the question, only the cue ``NAME.``: a name that
    fills the block must be refused in one line too (the question itself may fit)."""
    o = trial(_ask(ws, ws.recall, question("a" * length)))
    assert o.rc != 0 and "block" in o.err


# -- question files: evaluate, london-baseline ------------------------------------------


@pytest.mark.parametrize("n", examples("evaluate"))
def test_evaluate_answers_any_question_file(trial, ws, tmp_path, n):
    questions, preds = tmp_path / "questions.tsv", tmp_path / "preds.txt"

    @tried(n)
    @given(data=QUESTION_FILES, model=st.sampled_from(["vanilla", "recall"]))
    def attempt(data: bytes, model: str) -> None:
        questions.write_bytes(data)
        variant = "vanilla" if model == "vanilla" else "rope"
        o = trial(["evaluate", variant, ws.wiki, "--reading_params_path", getattr(ws, model), "--eval_corpus_path",
                   questions, "--outputs_path", preds, "--device", "cpu", "--no_progress"], output=preds)
        assert o.rc != 0 or o.out.startswith(("Correct: ", "Predictions written to"))

    attempt()
    tried_both_ways(trial.statuses)


@pytest.mark.parametrize("n", examples("london-baseline"))
def test_london_baseline_scores_any_question_file(trial, tmp_path, n):
    questions, preds = tmp_path / "questions.tsv", tmp_path / "preds.txt"

    @tried(n)
    @given(data=QUESTION_FILES)
    def attempt(data: bytes) -> None:
        questions.write_bytes(data)
        trial(["london-baseline", "--eval_corpus_path", questions, "--outputs_path", preds], output=preds)

    attempt()
    tried_both_ways(trial.statuses)


# -- corpora ----------------------------------------------------------------------------


def _corpus_variants(wiki_text: str) -> st.SearchStrategy[bytes]:
    """The tiny corpus as users hand it over: its lines in any order, with CRLF ends or
    blank lines (same characters); edited (lines dropped, lines of any text added); one
    line; empty; or any bytes."""
    lines = wiki_text.splitlines()
    same_chars = st.builds(lambda order, end, blank: (end + blank).join(order).encode("utf-8"),
                           st.permutations(lines), st.sampled_from(["\n", "\r\n"]), st.sampled_from(["", "\n", " \n"]))
    edited = st.builds(lambda keep, extra: "\n".join([lines[i] for i in sorted(set(keep))] + extra).encode("utf-8"),
                       st.lists(st.integers(0, len(lines) - 1), max_size=len(lines)), st.lists(_text, max_size=2))
    return st.one_of(same_chars, edited, st.sampled_from(lines).map(str.encode), st.just(b""), st.binary(max_size=200),
                     damaged(same_chars))


@pytest.mark.parametrize("n", examples("vocabulary-corpus"))
def test_evaluate_and_ask_answer_or_refuse_any_corpus(trial, ws, tmp_path, n):
    """The corpus gives the vocabulary: the model's own (in any order, with any line ends)
    answers, any other is refused in one line."""
    corpus, preds = tmp_path / "corpus.txt", tmp_path / "preds.txt"

    @tried(n)
    @given(data=_corpus_variants(ws.wiki.read_text(encoding="utf-8")), command=st.sampled_from(["evaluate", "ask"]))
    def attempt(data: bytes, command: str) -> None:
        corpus.write_bytes(data)
        if command == "ask":
            trial(["ask", "vanilla", corpus, "--reading_params_path", ws.vanilla, "--device", "cpu", question("Zoë Carter")])
        else:
            trial(["evaluate", "vanilla", corpus, "--reading_params_path", ws.vanilla, "--eval_corpus_path", ws.dev,
                   "--outputs_path", preds, "--device", "cpu", "--no_progress"], output=preds)

    attempt()
    tried_both_ways(trial.statuses)


@pytest.mark.parametrize("n", examples("pretrain"))
def test_pretrain_trains_or_refuses_any_corpus(trial, ws, tmp_path, n):
    corpus, out = tmp_path / "corpus.txt", tmp_path / "model.params"

    @tried(n)
    @given(data=_corpus_variants(ws.wiki.read_text(encoding="utf-8")))
    def attempt(data: bytes) -> None:
        corpus.write_bytes(data)
        trial(["pretrain", "vanilla", corpus, "--writing_params_path", out, *SIZE, *QUICK], output=out)

    attempt()
    tried_both_ways(trial.statuses)


@pytest.mark.parametrize("n", examples("finetune"))
def test_finetune_trains_or_refuses_any_question_file(trial, ws, tmp_path, n):
    questions, out = tmp_path / "train.tsv", tmp_path / "model.params"

    @tried(n)
    @given(data=QUESTION_FILES)
    def attempt(data: bytes) -> None:
        questions.write_bytes(data)
        trial(["finetune", "vanilla", ws.wiki, "--reading_params_path", ws.vanilla, "--writing_params_path", out,
               "--finetune_corpus_path", questions, *QUICK], output=out)

    attempt()
    tried_both_ways(trial.statuses)


# -- checkpoints cut short ------------------------------------------------------------------


@pytest.mark.parametrize("n", examples("cut-checkpoint"))
def test_a_checkpoint_cut_short_at_any_byte_is_one_line(trial, ws, tmp_path, n):
    cut, out = tmp_path / "cut.params", tmp_path / "out"
    whole = {"vanilla": ws.vanilla.read_bytes(), "recall": ws.recall.read_bytes()}

    def commands(model: str) -> dict[str, list]:
        variant = "vanilla" if model == "vanilla" else "rope"
        return {
            "evaluate": ["evaluate", variant, ws.wiki, "--reading_params_path", cut, "--eval_corpus_path", ws.dev,
                         "--outputs_path", out, "--device", "cpu", "--no_progress"],
            "ask": ["ask", variant, ws.wiki, "--reading_params_path", cut, "--device", "cpu", question("Zoë Carter")],
            "finetune": ["finetune", variant, ws.wiki, "--reading_params_path", cut, "--writing_params_path", out,
                         "--finetune_corpus_path", ws.train, *QUICK],
            "export": ["export", "--reading_params_path", cut, "--hf_dir", out],
        }

    @tried(n)
    @given(model=st.sampled_from(["vanilla", "recall"]), command=st.sampled_from(["evaluate", "ask", "finetune", "export"]),
           data=st.data())
    def attempt(model: str, command: str, data: st.DataObject) -> None:
        raw = whole[model]
        cut.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="bytes kept")])
        o = trial(commands(model)[command], output=out)
        assert o.rc != 0

    attempt()


# -- no command overwrites its own input --------------------------------------------------


def _spellings(path: Path, folder: Path) -> Iterator[tuple[str, Path]]:
    """The same file named another way: as given, relative, through ``..``, a symlink."""
    yield "same", path
    yield "relative", Path(os.path.relpath(path))
    yield "dotdot", path.parent / ".." / path.parent.name / path.name
    link = folder / "link.params"
    link.symlink_to(path)
    yield "symlink", link


@pytest.mark.parametrize("spelling", ["same", "relative", "dotdot", "symlink"])
def test_finetune_refuses_to_write_the_checkpoint_it_reads(ws, tmp_path, capsys, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model.params"
    model.write_bytes(ws.vanilla.read_bytes())
    writing = dict(_spellings(model, tmp_path))[spelling]
    before = snapshot(tmp_path)
    o = run(["finetune", "vanilla", ws.wiki, "--reading_params_path", model, "--writing_params_path", writing,
             "--finetune_corpus_path", ws.train, *QUICK], capsys)
    assert o.rc == 1 and o.err.count("\n") == 1 and "Traceback" not in o.err
    assert "--writing_params_path" in o.err and "would destroy it" in o.err
    assert snapshot(tmp_path) == before  # the model, and no lock or resume file left


OWN_INPUT_CASES = {  # case: (what a refusal says, at the input it protects)
    "pretrain-corpus": "would destroy it",
    "finetune-questions": "would destroy it",
    "finetune-corpus": "would destroy it",
    "evaluate-model": "would destroy it",
    "evaluate-questions": "would destroy it",
    "evaluate-corpus": "would destroy it",
    "london-baseline-questions": "would destroy it",
    "export-model": "not an empty directory",
    "data-fetch-dest": "not a folder",
}


def _own_input_runs(ws: Workspace, folder: Path, link: Path) -> dict[str, tuple[list, Path]]:
    """Every other command that reads and writes files, its output ``link`` made a symlink
    to one of its inputs (the hardest spelling): argv, and the input at stake."""
    model, questions, corpus = folder / "model.params", folder / "dev.tsv", folder / "wiki.txt"
    finetune = ["finetune", "vanilla", corpus, "--reading_params_path", model, "--writing_params_path", link,
                "--finetune_corpus_path", questions, *QUICK]
    evaluate = ["evaluate", "vanilla", corpus, "--reading_params_path", model, "--eval_corpus_path", questions,
                "--outputs_path", link, "--device", "cpu"]
    return {
        "pretrain-corpus": (["pretrain", "vanilla", corpus, "--writing_params_path", link, *SIZE, *QUICK], corpus),
        "finetune-questions": (finetune, questions),
        "finetune-corpus": (finetune, corpus),
        "evaluate-model": (evaluate, model),
        "evaluate-questions": (evaluate, questions),
        "evaluate-corpus": (evaluate, corpus),
        "london-baseline-questions": (["london-baseline", "--eval_corpus_path", questions, "--outputs_path", link], questions),
        "export-model": (["export", "--reading_params_path", model, "--hf_dir", link], model),
        "data-fetch-dest": (["data", "fetch", "--url", f"file://{questions}", "--dest", link], questions),
    }


@pytest.mark.parametrize("case", OWN_INPUT_CASES)
def test_no_command_writes_over_its_own_input(ws, tmp_path, capsys, case):
    for source, name in ((ws.vanilla, "model.params"), (ws.dev, "dev.tsv"), (ws.wiki, "wiki.txt")):
        (tmp_path / name).write_bytes(source.read_bytes())
    link = tmp_path / "link"
    runs = _own_input_runs(ws, tmp_path, link)
    assert set(runs) == set(OWN_INPUT_CASES)
    argv, victim = runs[case]
    link.symlink_to(victim)
    before = snapshot(tmp_path)
    o = run(argv, capsys)
    assert o.rc != 0 and o.err.count("\n") == 1 and "Traceback" not in o.err, o.err
    assert OWN_INPUT_CASES[case] in o.err, o.err
    assert snapshot(tmp_path) == before
