"""Embedded synthetic data with several facts per person: birthplace, birth year, university.

:mod:`kgpt.data.synthetic` asks one question of its people (where was X born?). A model
can answer that by learning one habit, "the city after *born*", without storing anything
*about a person*. Asking three questions of the same people tells the two apart: only a
model that stored each person's facts can say where X was born, when, and where X
studied. This module writes such a corpus and one set of question files per attribute,
with the single-attribute generator's guarantees and building blocks (names, places,
Zipf skew, which it imports rather than repeats):

* dev and test people appear in the corpus but in no training file of *any* attribute,
  so a correct dev answer can only come from what pretraining stored;
* birthplaces and universities are Zipf-skewed per split exactly as synthetic birthplaces
  are, so "always answer the commonest" is a baseline to beat;
* every bio states all three facts, each exactly once and unambiguously (the only city of
  :data:`~kgpt.data.synthetic.PLACES`, the only 4-digit number, the only university), in
  varied words and orders, and each answer ends within :data:`FACTS_WITHIN` characters,
  because pretraining only ever shows a model the first 112 characters of a bio;
* everything comes from ``random.Random(seed)``: a config always gives the same bytes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kgpt.data.synthetic import (
    OCCUPATIONS,
    PLACES,
    People,
    _allocate_places,
    _article,
    _lines,
    _unique_names,
    write_texts,
)
from kgpt.errors import KgptError

ATTRIBUTES: tuple[str, ...] = ("birthplace", "birthyear", "university")
"""What every bio says about its person, in the order files and tasks are listed."""

QUESTIONS: dict[str, tuple[str, ...]] = {
    "birthplace": ("Where was {name} born?",),
    "birthyear": ("When was {name} born?", "In which year was {name} born?"),
    "university": ("Where did {name} study?",),
}
"""Question templates per attribute; each question line fills one, drawn at random."""

UNIVERSITIES: tuple[str, ...] = tuple(f"University of {city}" for city in (
    "Uppsala", "Leiden", "Heidelberg", "Bologna", "Salamanca", "Coimbra", "Tartu", "Padua",
    "Graz", "Basel", "Leuven", "Ghent", "Bergen", "Turku", "Aarhus", "Utrecht", "Groningen",
    "Freiburg", "Tübingen", "Göttingen",
))
"""Universities, most frequent first. Their cities are none of PLACES and hold none, so a
bio's only birthplace city stays its birthplace and "Where was X born?" stays unambiguous."""

FACTS_WITHIN = 110
"""Every answer ends at most this many characters into every bio (pretraining sees 112)."""

YEARS = (1820, 1950)
"""Birth years are drawn uniformly from this range, both ends included."""

WIKI_FILE = "wiki.txt"
TASKS_FILE = "tasks.toml"
SPLITS: tuple[str, ...] = ("train", "dev", "test_inputs")
"""Question file suffixes: ``{attribute}_{split}.tsv``; test inputs carry no answers."""


def question_file(attribute: str, split: str) -> str:
    """The file name of one attribute's questions for one split."""
    return f"{attribute}_{split}.tsv"


@dataclass(frozen=True)
class FactsConfig(People):
    """Size of a multi-attribute dataset (:class:`~kgpt.data.synthetic.People`: every
    attribute is asked of the same splits); the defaults suit a quick CPU run."""

    n_train: int = 200
    n_dev: int = 50
    n_test: int = 10
    n_extra: int = 0
    n_places: int = 20
    bios_per_person: int = 4
    what: ClassVar[str] = "synthetic facts"

    def __post_init__(self) -> None:
        super().__post_init__()
        # One place cannot be skewed, and a most-frequent baseline over it would be perfect.
        if not 2 <= self.n_places <= len(PLACES):
            raise KgptError(f"synthetic facts: n_places must be 2 to {len(PLACES)}, got {self.n_places}")


@dataclass(frozen=True)
class FactsData:
    """The corpus, every question file and the tasks file (all newline-terminated).

    ``files`` maps each question file's name to its contents; ``most_frequent`` maps each
    attribute to its commonest answer among the training questions: what a model that
    learned nothing about individuals would answer for everyone.
    """

    wiki: str
    files: dict[str, str]
    tasks: str
    most_frequent: dict[str, str]

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write ``wiki.txt``, every question file and ``tasks.toml`` (:func:`~kgpt.data.synthetic.write_texts`);
        returns file name → path."""
        return write_texts(directory, {WIKI_FILE: self.wiki, **self.files, TASKS_FILE: self.tasks})


@dataclass(frozen=True)
class _Person:
    """One fictional life: what every bio of this person says, in whatever words."""

    name: str
    place: str
    year: int
    university: str
    job: str
    pron: str

    @property
    def answers(self) -> dict[str, str]:
        """Attribute → the answer its questions expect (and its bios state)."""
        return {"birthplace": self.place, "birthyear": str(self.year), "university": self.university}


@dataclass(frozen=True)
class _Sentence:
    """A bio sentence template and the attributes it states.

    ``opens``: only a bio's first sentence, because it names the person mid-sentence
    ("Born in Paris in 1890, NAME ...") where later sentences say "He" or "She".
    """

    template: str
    states: frozenset[str]
    opens: bool = False


def _sentences(states: str, *templates: str, opens: bool = False) -> tuple[_Sentence, ...]:
    return tuple(_Sentence(t, frozenset(states.split()), opens) for t in templates)


# Fields: subj (the name in a first sentence, else He/She), subj_poss (its possessive),
# name, place, year, university, job (with its article). Every birth-year sentence says
# "born" or "birth" and every university one "of": with _COVER that gives every character
# the questions use (see _cover).
_SENTENCES: tuple[_Sentence, ...] = (
    *_sentences("birthplace birthyear",
                "{subj} was born in {place} in {year}.",
                "{subj} was born in {year} in {place}.",
                "{subj} was {job}, born in {place} in {year}."),
    *_sentences("birthplace birthyear",
                "{name} (born {year} in {place}) was {job}.",
                "In {year}, {name} was born in {place}.",
                "Born in {place} in {year}, {name} became {job}.", opens=True),
    *_sentences("birthplace",
                "{subj} was born in {place}.",
                "{subj} is a native of {place}.",
                "{subj} was {job} born in {place}."),
    *_sentences("birthyear",
                "{subj} was born in {year}.",
                "{subj_poss} birth year was {year}.",
                "{subj} was born in the year {year}."),
    *_sentences("university",
                "{subj} studied at the {university}.",
                "{subj} graduated from the {university}.",
                "{subj} was educated at the {university}.",
                "{subj} attended the {university}."),
    *_sentences("birthplace birthyear university",
                "{name} (born {year} in {place}) studied at the {university}.",
                "Born in {place} in {year}, {name} studied at the {university}.", opens=True),
    *_sentences("birthplace university",
                "Born in {place}, {name} studied at the {university}.", opens=True),
    *_sentences("birthyear university",
                "Born in {year}, {name} graduated from the {university}.", opens=True),
)
_JOB = _Sentence("{subj} was {job}.", frozenset())
_JOB_RATE = 0.3  # a bio without a job phrase gets a job sentence this often
_NAME_SUBJECT_RATE = 0.5  # else the first sentence says He/She: the title already names
_TRIES = 20
_LONGEST_BIO = 112  # pretraining never shows more of a bio, so longer wordings are redrawn
# The plainest wording with pronouns: it fits even the longest name (25 characters),
# place (13) and university (24): its university ends at character 109.
_FALLBACK = (_SENTENCES[0], next(s for s in _SENTENCES if s.states == {"university"}))
# Sentences appended to one bio, each only if it adds a character the questions need and
# the corpus lacks: questions end in "?", which no bio template writes.
_COVER = ("Why?", "In which year?", "What did they study?", "Nobody knows.")


def generate_facts(config: FactsConfig = FactsConfig()) -> FactsData:
    """A dataset for ``config``; the same config always gives the same bytes."""
    rng = random.Random(config.seed)
    places = PLACES[: config.n_places]
    names = _unique_names(rng, config.n_people)
    people: list[list[_Person]] = []
    start = 0
    for size in (config.n_train, config.n_dev, config.n_test, config.n_extra):
        # Each split gets its own exact quotas, so the dev baseline is the same share as
        # in train rather than whatever a random draw gives.
        split_places = _allocate_places(rng, places, size)
        split_universities = _allocate_places(rng, UNIVERSITIES, size)
        people.append([
            _Person(name=name, place=place, year=rng.randint(*YEARS), university=university,
                    job=rng.choice(OCCUPATIONS), pron=rng.choice(("He", "She")))
            for name, place, university in zip(names[start : start + size], split_places, split_universities)
        ])
        start += size
    train, dev, test, _extra = people
    corpus = [bio for split in people for p in split for bio in _bios(rng, p, config.bios_per_person)]
    files: dict[str, str] = {}
    for attribute in ATTRIBUTES:
        for split, split_people in zip(SPLITS, (train, dev, test)):
            files[question_file(attribute, split)] = _lines(
                _question_line(rng, p, attribute, answered=split != "test_inputs") for p in split_people
            )
    # Small configs may lack a question character; the appended sentences state no fact
    # (no digits, no city), so every answer still occurs once and early.
    corpus[0] += _cover(set("".join(corpus)), set("".join(files.values())) - {"\t", "\n"})
    rng.shuffle(corpus)  # the corpus order must not give the splits away
    return FactsData(
        wiki=_lines(corpus),
        files=files,
        tasks=_tasks_toml(),
        most_frequent={
            "birthplace": _most_frequent([p.place for p in train], places),
            "birthyear": _most_frequent([str(p.year) for p in train], [str(y) for y in range(YEARS[0], YEARS[1] + 1)]),
            "university": _most_frequent([p.university for p in train], UNIVERSITIES),
        },
    )


def _question_line(rng: random.Random, person: _Person, attribute: str, answered: bool) -> str:
    question = rng.choice(QUESTIONS[attribute]).format(name=person.name)
    return f"{question}\t{person.answers[attribute]}" if answered else question


def _most_frequent(answers: list[str], ranked: Sequence[str]) -> str:
    """The commonest answer; a tie goes to the one ranked first (the more frequent place)."""
    counts = Counter(answers)
    return max(ranked, key=lambda answer: (counts[answer], -ranked.index(answer)))


def _cover(corpus_chars: set[str], needed: set[str]) -> str:
    """The :data:`_COVER` sentences (space-led) that add a needed character the corpus lacks."""
    missing = needed - corpus_chars
    added = ""
    for sentence in _COVER:
        if missing & set(sentence):
            added += f" {sentence}"
            missing -= set(sentence)
    assert not missing, f"no cover sentence holds {sorted(missing)}"
    return added


def _tasks_toml() -> str:
    """One TOML table per attribute: its question templates and its three files."""

    def string(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)  # JSON's escapes are TOML's basic-string ones

    tables = [
        "\n".join((
            f"[{attribute}]",
            f"questions = [{', '.join(string(q) for q in QUESTIONS[attribute])}]",
            f"train = {string(question_file(attribute, 'train'))}",
            f"dev = {string(question_file(attribute, 'dev'))}",
            f"test = {string(question_file(attribute, 'test_inputs'))}",
        ))
        for attribute in ATTRIBUTES
    ]
    comment = "# The questions kgpt asks of this corpus, one table per task (kgpt.data.task)."
    return "\n".join((comment, "\n\n".join(tables))) + "\n"


def _bios(rng: random.Random, person: _Person, n: int) -> list[str]:
    """``n`` bios of one person, each worded unlike the others where a fitting wording is found."""
    bios: list[str] = []
    for _ in range(n):
        bios.append(_bio(rng, person, avoid=bios))
    return bios


def _bio(rng: random.Random, person: _Person, avoid: Sequence[str] = ()) -> str:
    """One corpus line: ``NAME. `` and sentences stating every attribute once, drawn here.

    Random plans are tried until every answer fits within :data:`FACTS_WITHIN`, the bio
    within what pretraining shows, and the bio is none of ``avoid`` (a repeat teaches
    nothing a fresh wording would not); long names make the wordier plans miss, and
    :data:`_FALLBACK` always fits.
    """
    for _ in range(_TRIES):
        bio = _render(person, _plan(rng), by_name=rng.random() < _NAME_SUBJECT_RATE)
        if len(bio) <= _LONGEST_BIO and _facts_fit(bio, person) and bio not in avoid:
            return bio
    bio = _render(person, _FALLBACK, by_name=False)
    assert _facts_fit(bio, person), f"facts end past {FACTS_WITHIN} characters: {bio!r}"
    return bio


def _plan(rng: random.Random) -> list[_Sentence]:
    """Sentences that together state every attribute exactly once, in a random order.

    Each step draws which attributes the next sentence states before drawing its wording,
    so the many birth wordings do not crowd out bios that open with the university.
    """
    plan: list[_Sentence] = []
    left = frozenset(ATTRIBUTES)
    while left:
        fitting = [s for s in _SENTENCES if s.states <= left and (not plan or not s.opens)]
        group = rng.choice(list(dict.fromkeys(s.states for s in fitting)))  # ordered: same seed, same draw
        plan.append(rng.choice([s for s in fitting if s.states == group]))
        left -= group
    if rng.random() < _JOB_RATE and not any("{job}" in s.template for s in plan):
        plan.insert(rng.randint(1 if plan[0].opens else 0, len(plan)), _JOB)
    return plan


def _render(person: _Person, plan: Sequence[_Sentence], by_name: bool) -> str:
    """The bio ``plan`` words; ``by_name``: its first sentence names the person, not He/She."""
    possessive = "His" if person.pron == "He" else "Her"
    sentences = []
    for i, sentence in enumerate(plan):
        named = by_name and i == 0
        sentences.append(sentence.template.format(
            subj=person.name if named else person.pron,
            subj_poss=f"{person.name}'s" if named else possessive,
            name=person.name, place=person.place, year=person.year, university=person.university,
            job=_article(person.job),
        ))
    return " ".join([f"{person.name}.", *sentences])


def _facts_fit(bio: str, person: _Person) -> bool:
    """Whether every answer (each stated once) ends early enough to be learned."""
    return all(bio.index(answer) + len(answer) <= FACTS_WITHIN for answer in person.answers.values())
