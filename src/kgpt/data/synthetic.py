"""Embedded default data: fictional people, real city names, files shaped like the real ones.

The real experiment needs four files that kgpt may not ship. This module writes a
stand-in with the same shape and the same property that makes the experiment mean
something: the people asked about in dev appear in the pretraining corpus but never in
the finetuning file, so a correct dev answer can only come from knowledge stored in
pretraining.

Everything is generated here, from a seed (``random.Random(seed)``, never global state),
so a config always gives byte-identical files:

* names are built from syllables, so no real person is described, and each is unique;
* birthplaces are real city names drawn with a Zipf-like skew (the top city holds about
  8% of the people at the default 40 places), so "always answer the most frequent place"
  is a baseline to beat, as "London" is on the real data;
* bios phrase the birth fact in several ways, at varying positions, and add facts about
  *other* cities (studied in, moved to, died in) so that copying the first city is not
  enough;
* the birthplace always ends within the first :data:`BIRTH_WITHIN` characters, because
  pretraining only ever shows a model the first ``int(128 * 7 / 8) = 112`` characters of
  a bio: a fact further in could never be learned.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

from kgpt.data.task import BIRTHPLACE
from kgpt.errors import KgptError

FILE_NAMES: dict[str, str] = {
    "wiki": "wiki.txt",
    "train": "birth_places_train.tsv",
    "dev": "birth_dev.tsv",
    "test_inputs": "birth_test_inputs.tsv",
}
"""Attribute of :class:`SyntheticData` → the real data's file name it is written to."""

BIRTH_WITHIN = 100
"""The birthplace ends at most this many characters into every bio (pretraining sees 112)."""

PLACES: tuple[str, ...] = (
    "London", "Paris", "New York", "Berlin", "Chicago", "Vienna", "Moscow", "Rome",
    "Boston", "Madrid", "Dublin", "Toronto", "Sydney", "Glasgow", "Prague", "Budapest",
    "Warsaw", "Amsterdam", "Stockholm", "Milan", "Lisbon", "Athens", "Tokyo", "Montreal",
    "Edinburgh", "Manchester", "Munich", "Hamburg", "Philadelphia", "Liverpool", "Oslo",
    "Copenhagen", "Helsinki", "Brussels", "Geneva", "Naples", "Florence", "Barcelona",
    "Buenos Aires", "Melbourne", "Los Angeles", "San Francisco", "Mexico City", "Istanbul",
    "Cairo", "Mumbai", "Kyoto", "Seoul", "Lyon", "Leeds", "Bristol", "Belfast", "Cardiff",
    "Detroit", "Baltimore", "Krakow", "Riga", "Havana", "Zurich", "Marseille",
)
"""Real city names, most frequent first; none is a substring of another."""

ZIPF_SHIFT = 5
"""Place of rank k gets weight 1/(k + ZIPF_SHIFT): skewed, but no single city dominates."""

OCCUPATIONS: tuple[str, ...] = (
    "painter", "poet", "chemist", "footballer", "composer", "architect", "actor", "novelist",
    "politician", "engineer", "historian", "botanist", "singer", "sculptor", "journalist",
    "economist", "physician", "cyclist", "photographer", "mathematician", "lawyer",
    "film director", "pianist", "astronomer", "diplomat", "playwright", "philosopher",
)

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p",
           "pr", "r", "s", "st", "t", "tr", "v", "w", "z", "ch", "sh", "th")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "nd", "k")
_ACCENTED = {"e": "é", "o": "ö", "a": "á"}
_ACCENT_RATE = 0.04

# Birth sentences that open a bio. Fields: name, place, year, death, job (with article),
# place_job ("a London-born painter"), pron.
_BIRTH_OPENERS = (
    "{name} (born {year} in {place}) is {job}.",
    "{name} was born in {place} in {year}.",
    "Born in {place} in {year}, {name} became {job}.",
    "{name} is {place_job}.",
    "{name} is {job} born in {place}.",
    "{name} was {job}, born in {place} in {year}.",
    "{name} ({year}-{death}) was {job} born in {place}.",
    "{name}, {job}, was born in {place}.",
)
# A first sentence about another city, then the birth fact: the birthplace is not the
# first city named, so the model has to read "born".
_LEAD_INS = (
    "{name} grew up in {city}.",
    "{name} lived and worked in {city}.",
    "{name} is {job} based in {city}.",
)
_BIRTH_AFTER_LEAD_IN = (
    "{pron} was born in {place} in {year}.",
    "{pron} was born in {place}.",
)
# In life order: a bio states its facts in this order, so nobody moves after dying.
_FACTS = (
    "{pron} studied in {city}.",
    "{pron} worked in {city}.",
    "{pron} taught in {city}.",
    "{pron} moved to {city}.",
    "{pron} settled in {city}.",
    "{pron} wrote Why {city}?",
    "{pron} died in {city}.",
)
# Every character of a question must be in the corpus vocabulary, as in the real data.
_QUESTION_CHARS = frozenset("Where was born?")
_LEAD_IN_RATE = 0.3

MAX_DISTRACTORS = 3
"""More facts per bio would mostly fall past the 112 characters pretraining ever shows."""


@dataclass(frozen=True)
class People:
    """Who a generator writes up: ``n_train`` people get finetuning questions, ``n_dev``
    and ``n_test`` people get dev questions and test inputs (never finetuning ones),
    ``n_extra`` appear only in the corpus; birthplaces are drawn from the first
    ``n_places`` of :data:`PLACES`. Both generators' configs are sized by these fields.

    ``bios_per_person`` > 1 writes each person up several times, the same facts in
    freshly drawn phrasings and positions ("knowledge augmentation"). Finetuning can
    only teach a model to *access* stored facts for people it never saw a question about
    if the facts were stored in a form that does not depend on one wording; Allen-Zhu &
    Li (2023, "Physics of Language Models: Part 3.1") found that extraction from one
    bio per person mostly fails and that varied bios per person make it work.
    """

    n_train: int = 1000
    n_dev: int = 200
    n_test: int = 100
    n_extra: int = 100
    n_places: int = 40
    bios_per_person: int = 1
    seed: int = 0
    what: ClassVar[str] = "synthetic data"  # the generator, as its errors name it

    def __post_init__(self) -> None:
        for name, least in (("n_train", 1), ("n_dev", 1), ("n_test", 1), ("n_extra", 0), ("bios_per_person", 1)):
            value = getattr(self, name)
            if value < least:
                raise KgptError(f"{self.what}: {name} must be at least {least}, got {value}")

    def sizes(self) -> dict:
        """These fields by name: another generator's config sized alike."""
        return {f.name: getattr(self, f.name) for f in fields(People)}

    @property
    def n_people(self) -> int:
        return self.n_train + self.n_dev + self.n_test + self.n_extra

    @property
    def n_bios(self) -> int:
        """The corpus's line count."""
        return self.n_people * self.bios_per_person


@dataclass(frozen=True)
class SyntheticConfig(People):
    """Size and difficulty of a synthetic dataset; the defaults suit a CPU demo.
    ``distractors`` is the number of facts about other cities in every bio."""

    distractors: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.distractors <= MAX_DISTRACTORS:
            raise KgptError(
                f"synthetic data: distractors must be 0 to {MAX_DISTRACTORS}, got {self.distractors}"
            )
        # Each bio names distinct cities: its birthplace and one per distractor.
        fewest = max(2, self.distractors + 1)
        if not fewest <= self.n_places <= len(PLACES):
            raise KgptError(
                f"synthetic data: n_places must be {fewest} to {len(PLACES)} "
                f"with {self.distractors} distractors, got {self.n_places}"
            )


@dataclass(frozen=True)
class SyntheticData:
    """The four files' contents (newline-terminated) and the baseline's answer.

    ``most_frequent_place`` is the commonest birthplace in the finetuning file: what a
    model that learned nothing about individuals would answer for everyone.
    """

    wiki: str
    train: str
    dev: str
    test_inputs: str
    most_frequent_place: str

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write the files under their real names (:func:`write_texts`); returns attribute name → path."""
        paths = write_texts(directory, {file_name: getattr(self, attr) for attr, file_name in FILE_NAMES.items()})
        return {attr: paths[file_name] for attr, file_name in FILE_NAMES.items()}


def write_texts(directory: str | Path, texts: dict[str, str]) -> dict[str, Path]:
    """Each text (file name → contents) written under ``directory`` as UTF-8 bytes, not in
    text mode, so the files are identical on every platform; returns file name → path."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in texts.items():
        paths[name] = root / name
        paths[name].write_bytes(text.encode("utf-8"))
    return paths


@dataclass(frozen=True)
class _Person:
    """One fictional life: what every bio of this person says, in whatever words."""

    name: str
    place: str
    year: int
    death: int
    job: str
    pron: str
    cities: tuple[str, ...]  # the other cities the bios mention, in life order
    facts: tuple[int, ...]  # which of _FACTS goes with each of them


def _person(rng: random.Random, name: str, place: str, places: tuple[str, ...], distractors: int) -> _Person:
    year = rng.randint(1820, 1950)
    return _Person(
        name=name, place=place, year=year, death=year + rng.randint(40, 72), job=rng.choice(OCCUPATIONS),
        pron=rng.choice(("He", "She")), cities=tuple(rng.sample([c for c in places if c != place], distractors)),
        facts=tuple(sorted(rng.sample(range(len(_FACTS)), distractors))),
    )


def generate(config: SyntheticConfig = SyntheticConfig()) -> SyntheticData:
    """A dataset for ``config``; the same config always gives the same bytes."""
    rng = random.Random(config.seed)
    places = PLACES[: config.n_places]
    names = _unique_names(rng, config.n_people)
    splits = (config.n_train, config.n_dev, config.n_test, config.n_extra)
    people: list[list[_Person]] = []
    start = 0
    for size in splits:
        # Each split gets its own exact quota of places, so the dev baseline is the same
        # share as in train rather than whatever a random draw gives.
        split_places = _allocate_places(rng, places, size)
        people.append([
            _person(rng, name, place, places, config.distractors)
            for name, place in zip(names[start : start + size], split_places)
        ])
        start += size
    train, dev, test, _extra = people
    corpus = [_bio(rng, p) for split in people for p in split for _ in range(config.bios_per_person)]
    if not _QUESTION_CHARS <= set("".join(corpus)):
        # Small configs may draw no "Why ...?" fact; one bio gets the characters instead.
        corpus[0] += " Why?"
    rng.shuffle(corpus)  # the corpus order must not give the splits away
    counts = Counter(p.place for p in train)
    most_frequent = max(places, key=lambda place: (counts[place], -places.index(place)))
    return SyntheticData(
        wiki=_lines(corpus),
        train=_lines(f"{_question(p.name)}\t{p.place}" for p in train),
        dev=_lines(f"{_question(p.name)}\t{p.place}" for p in dev),
        test_inputs=_lines(_question(p.name) for p in test),
        most_frequent_place=most_frequent,
    )


def _question(name: str) -> str:
    return BIRTHPLACE.question(name)


def _lines(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def place_weights(n_places: int) -> list[float]:
    """Zipf-Mandelbrot shares of the first ``n_places`` places, summing to 1."""
    raw = [1.0 / (rank + ZIPF_SHIFT) for rank in range(1, n_places + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def _allocate_places(rng: random.Random, places: tuple[str, ...], n: int) -> list[str]:
    """``n`` birthplaces in random order whose counts follow :func:`place_weights` exactly.

    Largest-remainder rounding: floor every quota, then give the leftover people to the
    places with the biggest fractional parts (ties to the more frequent place).
    """
    quotas = [n * w for w in place_weights(len(places))]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(places)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    allocated = [place for place, count in zip(places, counts) for _ in range(count)]
    rng.shuffle(allocated)
    return allocated


def _unique_names(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct syllable names; none contains a city name.

    A city inside a name ("Romeo" holds "Rome") would put a second copy of a place into
    a bio and blur which city the bio says the person was born in.
    """
    lowered_places = [p.lower() for p in PLACES]
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < n:
        name = f"{_word(rng, rng.choice((1, 2, 2)))} {_word(rng, rng.choice((2, 2, 3)))}"
        if rng.random() < _ACCENT_RATE:
            name = _accent(rng, name)
        lowered = name.lower()
        if name in seen or any(p in lowered for p in lowered_places):
            continue
        seen.add(name)
        names.append(name)
    return names


def _word(rng: random.Random, syllables: int) -> str:
    """Consonant-vowel syllables with an optional final consonant, capitalised.

    Short words keep names (and so bios and questions) short: pretraining sees only the
    start of a bio, and each name fills it twice.
    """
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (word + rng.choice(_CODAS)).capitalize()


def _accent(rng: random.Random, name: str) -> str:
    """Accent one vowel of the surname: a little non-ASCII, as real names have."""
    first, last = name.split(" ")
    spots = [i for i, c in enumerate(last) if c in _ACCENTED]
    if not spots:
        return name
    i = rng.choice(spots)
    return f"{first} {last[:i]}{_ACCENTED[last[i]]}{last[i + 1:]}"


def _article(phrase: str) -> str:
    return f"{'an' if phrase[0].lower() in 'aeiou' else 'a'} {phrase}"


def _bio(rng: random.Random, person: _Person) -> str:
    """One corpus line: ``NAME. <birth fact> <facts about other cities>``, phrasing drawn here.

    Only phrasings that keep the birthplace within :data:`BIRTH_WITHIN` characters are
    used; the plainest one always fits, even for the longest names.
    """
    name, place, cities = person.name, person.place, person.cities
    fields = {
        "name": name,
        "place": place,
        "year": person.year,
        "death": person.death,
        "job": _article(person.job),
        "place_job": _article(f"{place}-born {person.job}"),
        "pron": person.pron,
    }
    facts = [_FACTS[t].format(city=c, **fields) for t, c in zip(person.facts, cities)]
    title = f"{name}."
    if facts and rng.random() < _LEAD_IN_RATE:
        lead_in = rng.choice(_LEAD_INS).format(city=cities[0], **fields)
        birth = rng.choice(_BIRTH_AFTER_LEAD_IN).format(**fields)
        bio = " ".join([title, lead_in, birth, *facts[1:]])
        if _birth_fits(bio, place):
            return bio
    openers = [t.format(**fields) for t in _BIRTH_OPENERS]
    opener = rng.choice([o for o in openers if _birth_fits(f"{title} {o}", place)])
    return " ".join([title, opener, *facts])


def _birth_fits(bio: str, place: str) -> bool:
    """Whether the birthplace (the bio's only mention of it) ends early enough to learn."""
    return bio.index(place) + len(place) <= BIRTH_WITHIN
