"""The synthetic data must be a faithful, learnable stand-in for the real files.

Every check reads the files back through kgpt's own readers, so what is tested is what
pretraining and finetuning will actually see.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgpt.data.corpus import corpus_documents, parse_questions, read_corpus, read_questions
from kgpt.data.corruption import max_truncation
from kgpt.data.synthetic import (
    BIRTH_WITHIN,
    FILE_NAMES,
    PLACES,
    SyntheticConfig,
    SyntheticData,
    generate,
)
from kgpt.errors import KgptError
from kgpt.presets import DEMO_PRESETS

SMALL = SyntheticConfig(n_train=120, n_dev=40, n_test=15, n_extra=25, n_places=20, seed=3)
QUESTION = re.compile(r"^Where was (\S+ \S+) born\?$")


def name_of(question: str) -> str:
    match = QUESTION.match(question)
    assert match, f"not a birthplace question: {question!r}"
    return match.group(1)


def title_of(doc: str) -> str:
    """The name in a bio's ``NAME.`` title."""
    return doc[: doc.index(". ")]


def all_bios_by_name(data: SyntheticData) -> dict[str, list[str]]:
    """Every bio, grouped by the name in its title, in corpus order."""
    bios: dict[str, list[str]] = {}
    for doc in corpus_documents(data.wiki):
        bios.setdefault(title_of(doc), []).append(doc)
    return bios


def bios_by_name(data: SyntheticData) -> dict[str, str]:
    """The one bio of each person (configs with ``bios_per_person`` = 1)."""
    grouped = all_bios_by_name(data)
    for name, bios in grouped.items():
        assert len(bios) == 1, f"{len(bios)} bios for {name}"
    return {name: bios[0] for name, bios in grouped.items()}


def answered(data: SyntheticData) -> list[tuple[str, str]]:
    """(name, place) of every finetuning and dev question."""
    return [
        (name_of(q.text), q.answer)
        for text in (data.train, data.dev)
        for q in parse_questions(text)
    ]


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    first = generate(SMALL).write(tmp_path / "a")
    second = generate(SMALL).write(tmp_path / "b")
    for key in FILE_NAMES:
        assert first[key].read_bytes() == second[key].read_bytes()


def test_different_seed_gives_different_data() -> None:
    a, b = generate(SMALL), generate(SyntheticConfig(**{**SMALL.__dict__, "seed": 4}))
    assert a.wiki != b.wiki and a.train != b.train and a.dev != b.dev


def test_files_load_through_the_readers_with_real_names(tmp_path: Path) -> None:
    paths = generate(SMALL).write(tmp_path)
    assert {key: p.name for key, p in paths.items()} == FILE_NAMES
    assert len(corpus_documents(read_corpus(paths["wiki"]))) == SMALL.n_people
    train = read_questions(paths["train"], require_answers=True)
    dev = read_questions(paths["dev"], require_answers=True)
    test = read_questions(paths["test_inputs"])
    assert (len(train), len(dev), len(test)) == (SMALL.n_train, SMALL.n_dev, SMALL.n_test)
    assert all(q.answer is None for q in test)
    for q in [*train, *dev, *test]:
        name_of(q.text)
    for path in paths.values():
        assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize(
    "config",
    [
        SyntheticConfig(n_train=1, n_dev=1, n_test=1, n_extra=0, n_places=2, distractors=0),
        SyntheticConfig(n_train=300, n_dev=50, n_test=7, n_extra=0, seed=9),
        SMALL,
    ],
)
def test_sizes_follow_the_config(config: SyntheticConfig) -> None:
    data = generate(config)
    assert len(corpus_documents(data.wiki)) == config.n_people
    assert len(parse_questions(data.train)) == config.n_train
    assert len(parse_questions(data.dev)) == config.n_dev
    assert len(parse_questions(data.test_inputs)) == config.n_test
    assert {q.answer for q in parse_questions(data.train)} <= set(PLACES[: config.n_places])


def test_default_config_is_a_cpu_demo() -> None:
    config = SyntheticConfig()
    assert (config.n_train, config.n_dev, config.n_test, config.n_extra) == (1000, 200, 100, 100)
    assert len(corpus_documents(generate(config).wiki)) == 1400


def test_split_discipline() -> None:
    data = generate(SMALL)
    bios = bios_by_name(data)
    train = {name_of(q.text) for q in parse_questions(data.train)}
    dev = {name_of(q.text) for q in parse_questions(data.dev)}
    test = {name_of(q.text) for q in parse_questions(data.test_inputs)}
    assert not train & dev and not train & test and not dev & test
    assert train | dev | test <= set(bios)
    assert len(bios) - len(train | dev | test) == SMALL.n_extra


def test_birthplace_is_stated_once_and_early() -> None:
    data = generate(SyntheticConfig(distractors=3, seed=1))
    bios = bios_by_name(data)
    for name, place in answered(data):
        bio = bios[name]
        assert bio.count(place) == 1, bio
        assert bio.index(place) + len(place) <= BIRTH_WITHIN, bio


def test_birthplace_is_phrased_in_several_ways_and_places() -> None:
    data = generate(SMALL)
    bios = bios_by_name(data)
    offsets = {bios[name].index(place) for name, place in answered(data)}
    assert len(offsets) > 20
    assert sum("born in" in bio for bio in bios.values()) < len(bios)  # "a Paris-born poet"


def test_questions_and_bios_fit_the_model_context() -> None:
    data = generate()
    for name, place in answered(data):
        question = f"Where was {name} born?"
        assert len(question) <= 60 and len(place) <= 20
        assert len(question) + len(place) + 2 < 128  # question MASK place MASK
    lengths = sorted(len(doc) for doc in corpus_documents(data.wiki))
    assert 60 <= lengths[len(lengths) // 2] <= 112
    assert all(c.isascii() or c in "áéö" for c in set(data.wiki))  # never PAD or MASK


def test_most_frequent_place_is_a_modest_baseline() -> None:
    data = generate()
    for text in (data.train, data.dev):
        counts = Counter(q.answer for q in parse_questions(text))
        place, count = counts.most_common(1)[0]
        assert place == data.most_frequent_place == "London"
        assert 0.05 <= count / counts.total() <= 0.10
        assert len(counts) == SyntheticConfig().n_places


@pytest.mark.parametrize("distractors", [0, 1, 2, 3])
def test_each_bio_names_the_configured_number_of_other_cities(distractors: int) -> None:
    config = SyntheticConfig(n_train=200, n_dev=50, n_test=5, n_extra=5, distractors=distractors)
    data = generate(config)
    bios = bios_by_name(data)
    for name, place in answered(data):
        others = [c for c in PLACES if c != place and c in bios[name]]
        assert len(others) == distractors, bios[name]


def test_place_names_do_not_overlap() -> None:
    """A city inside another ("York" in "New York") would make the counts above lie."""
    assert len(set(PLACES)) == len(PLACES)
    assert not [(a, b) for a in PLACES for b in PLACES if a != b and a in b]
    assert all(len(p) <= 20 and p.isascii() for p in PLACES)


@pytest.mark.parametrize(
    "changes",
    [{"n_train": 0}, {"n_dev": 0}, {"n_test": 0}, {"n_extra": -1}, {"distractors": 4},
     {"n_places": 1}, {"n_places": len(PLACES) + 1}, {"n_places": 3, "distractors": 3}],
)
def test_bad_config_is_a_clear_error(changes: dict[str, int]) -> None:
    with pytest.raises(KgptError, match="synthetic data: (n_|distractors)"):
        SyntheticConfig(**changes)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n_train=st.integers(1, 60),
    n_dev=st.integers(1, 30),
    n_places=st.integers(4, len(PLACES)),
    distractors=st.integers(0, 3),
)
def test_invariants_hold_for_any_config(
    seed: int, n_train: int, n_dev: int, n_places: int, distractors: int
) -> None:
    config = SyntheticConfig(
        n_train=n_train, n_dev=n_dev, n_test=3, n_extra=5,
        n_places=n_places, distractors=distractors, seed=seed,
    )
    data = generate(config)
    bios = bios_by_name(data)
    assert len(bios) == config.n_people
    for name, place in answered(data):
        assert bios[name].index(place) + len(place) <= BIRTH_WITHIN
    assert data == generate(config)


def test_several_bios_per_person_agree_on_the_facts_in_varied_words() -> None:
    config = SyntheticConfig(n_train=40, n_dev=10, n_test=2, n_extra=0, distractors=2, bios_per_person=4, seed=5)
    data = generate(config)
    docs = corpus_documents(data.wiki)
    assert len(docs) == config.n_bios == 4 * config.n_people
    by_name = all_bios_by_name(data)
    assert len(by_name) == config.n_people and all(len(v) == 4 for v in by_name.values())
    places = set(PLACES[: config.n_places])
    for name, place in answered(data):
        bios = by_name[name]
        assert all(place in bio and bio.index(place) + len(place) <= BIRTH_WITHIN for bio in bios)
        # The same other cities and years in every bio of a person: facts, not noise.
        named = [frozenset(c for c in places if c in bio) for bio in bios]
        assert len(set(named)) == 1, name
        years = {y for bio in bios for y in re.findall(r"\b(?:18|19|20)\d\d\b", bio)}
        assert len(years) <= 2, (name, years)  # birth and death, never a second birth year
    # Different wordings: most people are not written up the same way twice.
    varied = sum(len(set(v)) > 1 for v in by_name.values())
    assert varied >= 0.8 * len(by_name)
    # Bios of one person are spread through the corpus, not next to each other.
    order = [title_of(doc) for doc in docs]
    assert sum(a == b for a, b in itertools.pairwise(order)) < 0.2 * len(order)


def test_cpu_demo_preset_only_asks_facts_its_pretraining_can_see() -> None:
    """Pretraining shows at most int(7/8 · block) characters of a bio: every birthplace must end inside."""
    preset = DEMO_PRESETS["cpu"]
    data = generate(preset.data)
    visible = max_truncation(next(s for s in preset.settings if s.name == "pretrain+finetune").model["block_size"])
    assert len(corpus_documents(data.wiki)) == preset.data.n_bios
    by_name = all_bios_by_name(data)
    for name, place in answered(data):
        bios = by_name[name]
        assert len(bios) == preset.data.bios_per_person
        assert all(bio.index(place) + len(place) <= visible for bio in bios), name
