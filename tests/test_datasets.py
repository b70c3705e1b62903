"""Finetuning examples and question files.

``NameDataset`` must lay out ``question ⁇ place ⁇ □…□`` exactly as the assignment did
(loss only from the first ⁇ on); question files must accept what editors produce (blank
lines, CRLF, a BOM) and reject malformed lines with their line number.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kgpt.data import CharCorruptionDataset, NameDataset, read_questions
from kgpt.data.corpus import parse_questions, read_corpus
from kgpt.errors import KgptError

PAD = "\u25a1"
MASK = "\u2047"


@pytest.fixture(scope="module")
def pretrain_ds(tiny_data_shared):
    return CharCorruptionDataset(tiny_data_shared.wiki_text, 128)


def expected_pair(q: str, a: str, block_size: int) -> tuple[str, str]:
    """The spec's (x, y) strings, written out independently of kgpt."""
    full = q + MASK + a + MASK
    full += PAD * (block_size - len(full))
    x, y = full[:-1], full[1:]
    first_mask = y.index(MASK)
    y = PAD * first_mask + y[first_mask:]
    return x, y


def decode(ds, ids: torch.Tensor) -> str:
    return "".join(ds.itos[int(i)] for i in ids)


def test_name_dataset_layout(pretrain_ds, tiny_data_shared):
    text = "".join(f"{q}\t{a}\n" for q, a in tiny_data_shared.train_pairs)
    ds = NameDataset(pretrain_ds, text)
    assert len(ds) == len(tiny_data_shared.train_pairs)
    assert ds.block_size == 128 and ds.vocab_size == pretrain_ds.vocab_size
    assert ds.stoi == pretrain_ds.stoi and list(ds.itos) == list(pretrain_ds.itos)
    for i, (q, a) in enumerate(tiny_data_shared.train_pairs):
        x, y = ds[i]
        assert x.dtype == torch.long and y.dtype == torch.long
        assert x.shape == (127,) and y.shape == (127,)
        ex, ey = expected_pair(q, a, 128)
        assert decode(ds, x) == ex
        assert decode(ds, y) == ey
        # the loss sees exactly: first ⁇, the place, the closing ⁇, then pads (ignored)
        assert decode(ds, y).strip(PAD) == MASK + a + MASK


def test_name_dataset_worked_example(pretrain_ds):
    q, a = "Where was Léa Moreau born?", "Dijon"
    x, y = NameDataset(pretrain_ds, f"{q}\t{a}\n")[0]
    xs, ys = decode(pretrain_ds, x), decode(pretrain_ds, y)
    assert xs.startswith(q + MASK + a + MASK + PAD)
    assert ys[: len(q) - 1] == PAD * (len(q) - 1)
    assert ys[len(q) - 1 : len(q) + len(a) + 1] == MASK + a + MASK
    assert set(ys[len(q) + len(a) + 1 :]) == {PAD}


def test_non_ascii_line_in_vocab_is_kept(pretrain_ds):
    text = "Where was Søren Holm born?\tAarhus\nWhere was Tomás Ruiz born?\tMálaga\n"
    ds = NameDataset(pretrain_ds, text)
    assert len(ds) == 2
    assert decode(ds, ds[1][0]).startswith("Where was Tomás Ruiz born?" + MASK + "Málaga" + MASK)


def test_char_outside_vocab_names_line_and_char(pretrain_ds):
    assert "ж" not in pretrain_ds.stoi
    text = "Where was Amélie Durand born?\tLyon\nWhere was Ivan Petrov born?\tжлобин\n"
    with pytest.raises(KgptError) as err:
        NameDataset(pretrain_ds, text)
    msg = str(err.value)
    assert "line 2" in msg
    assert "ж" in msg


def test_name_dataset_crlf_and_blank_lines(pretrain_ds):
    text = "Where was Olaf Berg born?\tBergen\r\n\r\nWhere was Emil Vogt born?\tGraz\r\n"
    ds = NameDataset(pretrain_ds, text)
    assert len(ds) == 2
    assert decode(ds, ds[0][1]).strip(PAD) == MASK + "Bergen" + MASK
    assert decode(ds, ds[1][1]).strip(PAD) == MASK + "Graz" + MASK


def test_name_dataset_too_long_line_is_an_error(pretrain_ds):
    with pytest.raises(KgptError, match="line 1"):
        NameDataset(pretrain_ds, "W" * 130 + "\tLyon\n")


# -- question files -----------------------------------------------------------------------


def write(tmp_path, content: bytes, name: str = "q.tsv"):
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_read_questions_blank_lines_crlf_and_bom(tmp_path):
    p = write(tmp_path, "\ufeffWhere was A born?\tLyon\r\n\r\n   \r\nWhere was B born?\tNice\r\n".encode())
    qs = read_questions(p, require_answers=True)
    assert [(q.text, q.answer) for q in qs] == [("Where was A born?", "Lyon"), ("Where was B born?", "Nice")]
    assert [q.line for q in qs] == [1, 4]


@pytest.mark.parametrize("content", [b"Ann Lee.\r\r\nBo Li.\r", b"Ann\rLee.\n\r\nBo Li.\r\n\r", "\ufeffA.\r\u00e9\r\n".encode()])
def test_corpus_line_endings_are_read_as_the_courses_open_read_reads_them(tmp_path, content):
    """The course reads wiki.txt with open(path, encoding='utf-8').read(): Python's text mode
    turns \\r\\n and a lone \\r into \\n (a lone \\r left in would be a vocabulary character)."""
    p = write(tmp_path, content, "wiki.txt")
    with open(p, encoding="utf-8") as f:
        course = f.read().removeprefix("\ufeff")
    assert read_corpus(p) == course and "\r" not in read_corpus(p)


def test_the_courses_datasets_end_lines_where_the_file_readers_do():
    ds = CharCorruptionDataset("Ann Lee.\rBo Li.\r\n", 16)
    assert ds.data == ["Ann Lee.", "Bo Li."] and "\r" not in ds.stoi


def test_a_non_utf8_line_is_counted_with_lone_cr_endings(tmp_path):
    with pytest.raises(KgptError, match="line 3"):
        read_corpus(write(tmp_path, b"A.\rB.\r\nC \xff\n", "wiki.txt"))


def test_read_questions_without_answers(tmp_path):
    p = write(tmp_path, b"Where was A born?\nWhere was B born?\n")
    qs = read_questions(p)
    assert [(q.text, q.answer) for q in qs] == [("Where was A born?", None), ("Where was B born?", None)]


@pytest.mark.parametrize(
    "content, line",
    [
        (b"Where was A born?\tLyon\nWhere was B born?\n", 2),  # missing tab
        (b"Where was A born?\tLyon\n\nWhere was B born?\t\n", 3),  # empty answer
        (b"Where was A born?\t   \n", 1),  # blank answer
        (b"Where was A born?\tLyon\tFrance\n", 1),  # extra column
        (b"Where was A born?\tLyon\n\tNice\n", 2),  # empty question
    ],
)
def test_read_questions_malformed_finetuning_lines(tmp_path, content, line):
    p = write(tmp_path, content)
    with pytest.raises(KgptError) as err:
        read_questions(p, require_answers=True)
    assert f"line {line}" in str(err.value)
    assert str(p) in str(err.value)


def test_read_questions_file_errors(tmp_path):
    with pytest.raises(KgptError, match="does not exist"):
        read_questions(tmp_path / "missing.tsv")
    with pytest.raises(KgptError, match="empty"):
        read_questions(write(tmp_path, b"\n\n"))
    with pytest.raises(KgptError, match="line 2"):
        read_questions(write(tmp_path, b"ok\tfine\n\xff\xfe\tbad\n"))


_field = st.text(
    alphabet=st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(_field, st.one_of(st.none(), _field)), min_size=1, max_size=15),
    blank_after=st.lists(st.booleans(), min_size=15, max_size=15),
    trailing_newline=st.booleans(),
)
def test_parse_questions_round_trip(rows, blank_after, trailing_newline):
    lines, expected_lines = [], []
    for (q, a), blank in zip(rows, blank_after):
        lines.append(q if a is None else f"{q}\t{a}")
        expected_lines.append(len(lines))
        if blank:
            lines.append("")
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    parsed = parse_questions(text)
    assert [(p.text, p.answer) for p in parsed] == rows
    assert [p.line for p in parsed] == expected_lines
