"""The multi-attribute synthetic data must keep every fact learnable and every split honest.

Bios are found by their ``NAME. `` opening and question files are read through kgpt's
own parser, so what is tested is what pretraining and finetuning will see.
"""

from __future__ import annotations

import random
import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from kgpt.data.corpus import corpus_documents, parse_questions
from kgpt.data.synthetic import PLACES
from kgpt.data.synthetic_facts import (
    ATTRIBUTES,
    FACTS_WITHIN,
    QUESTIONS,
    TASKS_FILE,
    UNIVERSITIES,
    WIKI_FILE,
    FactsConfig,
    FactsData,
    _bio,
    _Person,
    generate_facts,
)
from kgpt.errors import KgptError

SMALL = FactsConfig(n_train=60, n_dev=20, n_test=8, n_extra=6, n_places=20, bios_per_person=4, seed=3)
YEAR = re.compile(r"\b\d{4}\b")


def template_pattern(template: str) -> re.Pattern[str]:
    """A question template as a regex that captures the name."""
    before, after = template.split("{name}")
    return re.compile(f"^{re.escape(before)}(\\S+ \\S+){re.escape(after)}$")


PATTERNS = {attribute: [template_pattern(t) for t in templates] for attribute, templates in QUESTIONS.items()}


def name_of(attribute: str, question: str) -> str:
    for pattern in PATTERNS[attribute]:
        if match := pattern.match(question):
            return match.group(1)
    raise AssertionError(f"not a {attribute} question: {question!r}")


def bios_by_name(data: FactsData) -> dict[str, list[str]]:
    bios: dict[str, list[str]] = {}
    for doc in corpus_documents(data.wiki):
        bios.setdefault(doc[: doc.index(". ")], []).append(doc)
    return bios


def answers(data: FactsData) -> dict[str, dict[str, str]]:
    """Name → attribute → answer, from every training and dev file."""
    known: dict[str, dict[str, str]] = {}
    for attribute in ATTRIBUTES:
        for split in ("train", "dev"):
            for q in parse_questions(data.files[f"{attribute}_{split}.tsv"]):
                known.setdefault(name_of(attribute, q.text), {})[attribute] = q.answer
    return known


def names_in(data: FactsData, attribute: str, split: str) -> set[str]:
    return {name_of(attribute, q.text) for q in parse_questions(data.files[f"{attribute}_{split}.tsv"])}


def whole_word_count(text: str, answer: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(answer)}(?!\w)", text))


def test_same_config_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = generate_facts(SMALL).write(tmp_path / "a")
    second = generate_facts(SMALL).write(tmp_path / "b")
    assert first.keys() == second.keys()
    assert all(first[name].read_bytes() == second[name].read_bytes() for name in first)
    other = generate_facts(FactsConfig(**{**SMALL.__dict__, "seed": 4}))
    data = generate_facts(SMALL)
    assert other.wiki != data.wiki
    assert all(other.files[name] != data.files[name] for name in data.files)


def test_write_writes_every_file_and_returns_its_path(tmp_path: Path) -> None:
    data = generate_facts(SMALL)
    paths = data.write(tmp_path / "out")
    expected = {WIKI_FILE, TASKS_FILE, *(f"{a}_{s}.tsv" for a in ATTRIBUTES for s in ("train", "dev", "test_inputs"))}
    assert set(paths) == expected == {WIKI_FILE, TASKS_FILE, *data.files}
    contents = {WIKI_FILE: data.wiki, TASKS_FILE: data.tasks, **data.files}
    for name, path in paths.items():
        assert path == tmp_path / "out" / name
        assert path.read_bytes() == contents[name].encode("utf-8")
        assert path.read_bytes().endswith(b"\n")


def test_sizes_follow_the_config() -> None:
    data = generate_facts(SMALL)
    assert len(corpus_documents(data.wiki)) == SMALL.n_bios
    bios = bios_by_name(data)
    assert len(bios) == SMALL.n_people and all(len(v) == SMALL.bios_per_person for v in bios.values())
    for attribute in ATTRIBUTES:
        for split, size in (("train", SMALL.n_train), ("dev", SMALL.n_dev), ("test_inputs", SMALL.n_test)):
            questions = parse_questions(data.files[f"{attribute}_{split}.tsv"])
            assert len(questions) == size
            assert all((q.answer is None) == (split == "test_inputs") for q in questions)


def test_dev_and_test_people_are_in_the_corpus_but_in_no_training_file() -> None:
    data = generate_facts(SMALL)
    in_corpus = set(bios_by_name(data))
    trained = set().union(*(names_in(data, a, "train") for a in ATTRIBUTES))
    for attribute in ATTRIBUTES:
        dev, test = names_in(data, attribute, "dev"), names_in(data, attribute, "test_inputs")
        assert dev and test and dev <= in_corpus and test <= in_corpus
        assert not dev & trained and not test & trained and not dev & test
    # The same people are asked every attribute, so the splits agree across files.
    for split in ("train", "dev", "test_inputs"):
        assert len({frozenset(names_in(data, a, split)) for a in ATTRIBUTES}) == 1
    assert len(in_corpus - trained - names_in(data, "birthplace", "dev")
               - names_in(data, "birthplace", "test_inputs")) == SMALL.n_extra


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_answer_is_stated_once_as_whole_words_and_early_in_every_bio(seed: int) -> None:
    data = generate_facts(FactsConfig(seed=seed))
    bios = bios_by_name(data)
    places = PLACES[: FactsConfig().n_places]
    for name, facts in answers(data).items():
        assert set(facts) == set(ATTRIBUTES)
        for bio in bios[name]:
            assert bio.startswith(f"{name}. ")
            for answer in facts.values():
                assert whole_word_count(bio, answer) == 1, (answer, bio)
                assert bio.index(answer) + len(answer) <= FACTS_WITHIN, (answer, bio)
            # Unambiguous: no second year-like number, city or university to confuse it with.
            assert YEAR.findall(bio) == [facts["birthyear"]], bio
            assert [p for p in PLACES if p in bio] == [facts["birthplace"]], bio
            assert [u for u in UNIVERSITIES if u in bio] == [facts["university"]], bio
        assert facts["birthplace"] in places and facts["university"] in UNIVERSITIES
        assert 1820 <= int(facts["birthyear"]) <= 1950


def test_the_longest_name_place_and_university_still_fit() -> None:
    """The guarantee behind the generator's assertion: the plainest wording always fits."""
    # Two and three syllables of the longest onsets and vowels, the longest coda each.
    person = _Person(name="Shoushound Chaishaishaind", place="San Francisco", year=1900,
                     university="University of Heidelberg", job="mathematician", pron="She")
    assert len(person.name) == 25 and len(person.place) == max(map(len, PLACES))
    assert len(person.university) == max(map(len, UNIVERSITIES))
    rng = random.Random(0)
    for _ in range(200):
        bio = _bio(rng, person)
        for answer in person.answers.values():
            assert whole_word_count(bio, answer) == 1 and bio.index(answer) + len(answer) <= FACTS_WITHIN, bio


def test_every_question_line_fills_one_of_its_templates() -> None:
    data = generate_facts(SMALL)
    for attribute in ATTRIBUTES:
        used = Counter()
        for split in ("train", "dev", "test_inputs"):
            for q in parse_questions(data.files[f"{attribute}_{split}.tsv"]):
                matching = [i for i, p in enumerate(PATTERNS[attribute]) if p.match(q.text)]
                assert matching, q.text
                used[matching[0]] += 1
        assert len(used) == len(QUESTIONS[attribute])  # a template per line, drawn: all get used


@pytest.mark.parametrize("seed", range(5))
def test_question_and_answer_characters_occur_in_the_corpus(seed: int) -> None:
    config = FactsConfig(n_train=1, n_dev=1, n_test=1, n_places=2, bios_per_person=1, seed=seed)
    for data in (generate_facts(config), generate_facts(SMALL)):
        asked = set("".join(data.files.values())) - {"\t", "\n"}
        assert asked <= set(data.wiki), asked - set(data.wiki)


def test_bios_vary_in_words_and_in_the_order_of_facts() -> None:
    data = generate_facts(SMALL)
    bios = bios_by_name(data)
    orders: Counter[tuple[str, ...]] = Counter()
    together = apart = 0
    for name, facts in answers(data).items():
        for bio in bios[name]:
            orders[tuple(sorted(ATTRIBUTES, key=lambda a: bio.index(facts[a])))] += 1
            start, end = sorted((bio.index(facts["birthplace"]), bio.index(facts["birthyear"])))
            if ". " in bio[start:end]:
                apart += 1
            else:
                together += 1
    university_first = sum(n for order, n in orders.items() if order.index("university") < order.index("birthplace"))
    assert len(orders) >= 4
    assert 0.15 * orders.total() < university_first < 0.85 * orders.total()
    assert together > 0.1 * orders.total() and apart > 0.1 * orders.total()
    # Each person's bios are worded differently, not copies.
    assert sum(len(set(v)) == len(v) for v in bios.values()) >= 0.9 * len(bios)
    lengths = sorted(len(doc) for doc in corpus_documents(data.wiki))
    assert 60 <= lengths[len(lengths) // 2] <= 112


def test_corpus_order_does_not_reveal_the_splits() -> None:
    data = generate_facts(SMALL)
    order = [doc[: doc.index(". ")] for doc in corpus_documents(data.wiki)]
    train = names_in(data, "birthplace", "train")
    first = [name in train for name in order[: len(order) // 2]]
    assert 0.3 < sum(first) / len(first) < 0.9  # train holds ~64% of people, spread through the corpus


def test_answers_are_zipf_skewed_and_most_frequent_is_the_training_mode() -> None:
    data = generate_facts()
    for attribute in ("birthplace", "university"):
        counts = Counter(q.answer for q in parse_questions(data.files[f"{attribute}_train.tsv"]))
        ranked = sorted(counts.values())
        assert counts.most_common(1)[0][1] > ranked[len(ranked) // 2] + 2
        assert counts[data.most_frequent[attribute]] == max(counts.values())
    assert data.most_frequent["birthplace"] == PLACES[0] and data.most_frequent["university"] == UNIVERSITIES[0]
    years = Counter(q.answer for q in parse_questions(data.files["birthyear_train.tsv"]))
    assert years[data.most_frequent["birthyear"]] == max(years.values())


def test_universities_never_name_a_birthplace() -> None:
    assert len(set(UNIVERSITIES)) == len(UNIVERSITIES) >= 20
    assert all(u.startswith("University of ") for u in UNIVERSITIES)
    assert not [(u, p) for u in UNIVERSITIES for p in PLACES if p in u]


def test_tasks_file_lists_every_attribute_and_its_files() -> None:
    tasks = generate_facts(SMALL).tasks
    assert tasks.startswith("# ") and tasks.endswith("\n")
    assert tomllib.loads(tasks) == {
        attribute: {
            "questions": list(QUESTIONS[attribute]),
            "train": f"{attribute}_train.tsv",
            "dev": f"{attribute}_dev.tsv",
            "test": f"{attribute}_test_inputs.tsv",
        }
        for attribute in ATTRIBUTES
    }
    assert list(tomllib.loads(tasks)) == list(ATTRIBUTES)


@pytest.mark.parametrize(
    "changes",
    [{"n_train": 0}, {"n_dev": 0}, {"n_test": 0}, {"n_extra": -1}, {"bios_per_person": 0},
     {"n_places": 1}, {"n_places": len(PLACES) + 1}],
)
def test_bad_config_is_a_clear_error(changes: dict[str, int]) -> None:
    with pytest.raises(KgptError, match=f"^synthetic facts: {next(iter(changes))} must be"):
        FactsConfig(**changes)
