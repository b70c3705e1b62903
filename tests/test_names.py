"""The name a bio opens with, and how many asked-about people it finds a bio for.

Every probe, the knowledge streams and recall-then-read find a person's bio by the name
it opens with (``NAME. text``), so a name cut short or run on loses that person. The
examples below are invented; the real files are only read, never copied or listed here.
"""

from __future__ import annotations

import pytest

from kgpt.data.corpus import asked_name, bio_name, bios_by_name, corpus_documents, read_corpus, read_questions

# People of train + dev in the real files who get a bio: 2498 of 2500 before initials
# written "J.C." and regnal numerals ("Anastasius I") were read as names. Never lower.
MIN_REAL_PEOPLE_WITH_A_BIO = 2500


@pytest.mark.parametrize("bio, name", [
    ("Ann Lee. Ann Lee was a poet .", "Ann Lee"),
    ("J. R. Hale. Born in Lima .", "J. R. Hale"),
    ("J.R. Hale. Born in Lima .", "J.R. Hale"),
    ("A. Ledbury Vance. He was born in Kyiv .", "A. Ledbury Vance"),
    ("Malcolm X. Malcolm X was an activist. He was born in Omaha .", "Malcolm X"),
    ("Malcolm X. Born Malcolm Little in Omaha. He spoke .", "Malcolm X"),
    ("Henry V. King Henry V was born in Monmouth. He reigned .", "Henry V"),
    ("Pope Linus II. Born in Rome .", "Pope Linus II"),
    ("St. John Rivers. St. John Rivers was born in Leeds .", "St. John Rivers"),
    ("Ada St. Clair. She was born in Nice .", "Ada St. Clair"),
    ("Dr. Ian Moss. Moss was born in Hull .", "Dr. Ian Moss"),
    ("Ned Quill, Jr.. Born in Dover, Quill sailed .", "Ned Quill, Jr."),
    ("Ned Quill Jr.. Ned Quill Jr. was born in Dover .", "Ned Quill Jr."),
    ("Pieter J. van der Berg. Van der Berg was born in Delft .", "Pieter J. van der Berg"),
    ("Zoë É. Ruiz. Née à Lyon .", "Zoë É. Ruiz"),
])
def test_a_bio_opens_with_its_name(bio, name):
    assert bio_name(bio) == name
    assert asked_name(f"Where was {name} born?") == name  # the question asks for the same string


@pytest.mark.parametrize("bio", [
    "A. B. ",  # initials alone are no name
    "A. B. born in Lima .",
    "no name layout",
    "x" * 70 + ". late",  # too long to be a name
    ". Born in Lima .",
])
def test_no_name_where_a_bio_has_no_opening_name(bio):
    assert bio_name(bio) is None


def test_the_name_ends_at_an_initial_when_a_sentence_follows():
    """An initial before a sentence ends the name; before more name it does not."""
    assert bio_name("Ann Q. Lee was born in Oslo. Lee sang .") == "Ann Q"
    assert bio_name("Ann Q. Lee. Lee sang .") == "Ann Q. Lee"


def test_every_real_question_finds_its_persons_bio(real_data, capsys):
    """Of every training and dev question of the real files, how many people get a bio
    (the rest are printed, not kept: run with ``-s`` to see them)."""
    bios = bios_by_name(corpus_documents(read_corpus(real_data / "wiki.txt")))
    questions = read_questions(real_data / "birth_places_train.tsv") + read_questions(real_data / "birth_dev.tsv")
    names = [asked_name(q.text) for q in questions]
    without = [n for n in names if n not in bios]
    with capsys.disabled():
        print(f"\n{len(names) - len(without)} of {len(names)} asked-about people get a bio; without one: {without}")
    assert len(names) - len(without) >= MIN_REAL_PEOPLE_WITH_A_BIO, f"people without a bio: {without}"
