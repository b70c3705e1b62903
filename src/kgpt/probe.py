"""Storage probes: what a pretrained model holds about a person, asked two ways.

Finetuning can only get out what pretraining stored, so every pretrained model is probed
before any question is asked of it:

* **cued completion**: the person's bio up to the place ("Ada Quill. Ada Quill was born
  in "), then greedy decoding; stored when the continuation starts with the place. The
  model is given everything but the fact.
* **free recall**: the bio's opening alone (``NAME.``), then greedy decoding for the
  length of a bio (:func:`kgpt.recaller.recall`, the recall recipe's own first step);
  stored when what was recalled after the cue contains the place as whole words ("Paris"
  does not count inside "Parish"), outside every repetition of the person's name: the
  name was given in the cue, so "Lima" in "Lima Hale sang" says nothing about where Lima
  Hale was born. The model must bring back the bio by itself, which is what
  recall-then-read answering relies on.

A frequent place written into a made-up bio counts as stored too, by luck. So each probe
also has its **chance** figure: the number of probed people whose output shows the place
of another probed person drawn at random, as an exact expectation (:func:`chance_shares`).
What stands above chance was stored.

A person is probed only where the bio can show the place: free recall needs a bio that
mentions it, cued completion a bio whose prefix before it fits the model's block.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kgpt.data.corpus import Question, bios_by_name, person_bio
from kgpt.data.knowledge import END_OF_BIO
from kgpt.data.words import places_in, splits_word
from kgpt.inference import greedy_decode
from kgpt.model import GPT
from kgpt.recaller import recall, recall_cue
from kgpt.vocab import CharVocab



@dataclass(frozen=True)
class Storage:
    """How many people's birthplaces a probe found stored, and how many it would find by chance."""

    stored: int  # probed people whose birthplace the model produced
    probed: int  # people whose bio mentions their birthplace where the probe can see it
    total: int  # people asked about
    chance: float  # expected number of probed people whose output shows a random other probed person's place


@dataclass(frozen=True)
class Probe:
    """Per question: whether the model produced the place (None: not probed), and the
    share of the other probed people whose place the same output shows (the chance test)."""

    found: list[bool | None]
    chance: list[float | None]

    def tally(self) -> Storage:
        return Storage(sum(r is True for r in self.found), sum(r is not None for r in self.found), len(self.found),
                       round(sum(c for c in self.chance if c is not None), 3))


def chance_shares(own: list[str], shown: list[set[str]]) -> list[float]:
    """For each probed person i (``own[i]`` their place, ``shown[i]`` the places among
    ``own`` that their output shows), the share of the other probed people whose place
    the output shows.

    Scored against one other person drawn at random (uniformly among the n-1 others, as a
    random pairing gives each person), person i counts by chance with exactly that
    probability, so the expected chance count is the sum of the shares, by linearity of
    expectation: the mean over all pairings, computed rather than sampled. A place two
    people share counts: guessing a frequent place is the luck this measures.
    """
    n, counts = len(own), Counter(own)
    if n < 2:
        return [0.0] * n
    return [sum(counts[p] - (p == place) for p in places) / (n - 1) for place, places in zip(own, shown)]


def _probe(questions: list[Question], outputs: dict[int, str], shows: Callable[[str, set[str]], set[str]]) -> Probe:
    """``shows(output, places)``: the places among ``places`` that an output shows."""
    places = {questions[i].answer for i in outputs}
    own = [questions[i].answer for i in outputs]
    shown = [shows(out, places) for out in outputs.values()]
    found = {i: place in hits for i, place, hits in zip(outputs, own, shown)}
    chance = dict(zip(outputs, chance_shares(own, shown)))
    return Probe([found.get(i) for i in range(len(questions))], [chance.get(i) for i in range(len(questions))])


def cued_completions(model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question]) -> Probe:
    """Whether the model continues each person's bio with the place (the cued-completion
    probe); not probed where no bio names the place within the model's block."""
    bios = bios_by_name(documents)
    probes: dict[int, tuple[list[int], str]] = {}
    for i, q in enumerate(questions):
        bio = person_bio(bios, q.name, q.answer) if q.answer is not None else None
        if bio is None:
            continue
        prefix = bio[: bio.index(q.answer)]
        if not prefix or len(prefix) + len(q.answer) > model.max_length:
            continue
        probes[i] = (vocab.encode(prefix, where="corpus"), q.answer)
    if not probes:
        return Probe([None] * len(questions), [None] * len(questions))
    # Enough characters for any place (the chance test reads another's) and the one after it.
    budget = 1 + max(len(q.answer) for q in questions if q.answer is not None)
    outputs = greedy_decode(model, [ids for ids, _ in probes.values()], budget, stop_id=END_OF_BIO)
    return _probe(questions, {i: vocab.decode(ids) for i, ids in zip(probes, outputs)}, places_opening)


def starts_with_place(text: str, place: str) -> bool:
    """Whether ``text`` opens with ``place`` as whole words ("Paris" does not open "Parish")."""
    return text.startswith(place) and not splits_word(text, len(place))


def places_opening(text: str, places: set[str]) -> set[str]:
    """The places that ``text`` opens with (:func:`starts_with_place`)."""
    return {p for p in places if starts_with_place(text, p)}


def free_recalls(model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question], chars: int) -> Probe:
    """Whether the model's free recall of each person (``chars`` characters, cue included)
    holds the place, as whole words, after the cue and outside the person's name; not
    probed where the person has no bio that mentions it."""
    bios = bios_by_name(documents)
    probed = [i for i, q in enumerate(questions)
              if q.answer is not None and person_bio(bios, q.name, q.answer) is not None]
    names = [questions[i].name for i in probed]
    texts = recall(model, vocab, names, chars)
    # A newline where the name stood: no place has one, so no span found runs across it.
    recalled = {i: text[len(recall_cue(name)):].replace(name, "\n") for i, name, text in zip(probed, names, texts)}
    return _probe(questions, recalled, places_in)
