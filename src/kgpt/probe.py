"""Storage probes: what a pretrained model holds about a person, asked two ways.

Finetuning can only get out what pretraining stored, so every pretrained model is probed
before any question is asked of it:

* **cued completion**: the person's bio up to the place ("Ada Quill. Ada Quill was born
  in "), then greedy decoding; stored when the continuation starts with the place. The
  model is given everything but the fact.
* **free recall**: the bio's opening alone (``NAME.``), then greedy decoding for the
  length of a bio (:func:`kgpt.recaller.recall`, the recall recipe's own first step);
  stored when what was recalled after the cue contains the place as whole words ("Paris"
  does not count inside "Parish", nor a place inside the person's name). The model must
  bring back the bio by itself, which is what recall-then-read answering relies on.

A frequent place written into a made-up bio counts as stored too, by luck. So each probe
also has its **chance** figure: the same test against the place of another probed person
(a fixed shuffled pairing). What stands above chance was stored.

A person is probed only where the bio can show the place: free recall needs a bio that
mentions it, cued completion a bio whose prefix before it fits the model's block.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from kgpt.data.corpus import Question, bios_by_name, person_bio
from kgpt.data.reader import contains_place, splits_word
from kgpt.inference import greedy_decode
from kgpt.model import GPT
from kgpt.recaller import NEVER_STOP, recall, recall_cue
from kgpt.vocab import CharVocab

PAIRING_SEED = 0


@dataclass(frozen=True)
class Storage:
    """How many people's birthplaces a probe found stored, and found by chance."""

    stored: int  # probed people whose birthplace the model produced
    probed: int  # people whose bio mentions their birthplace where the probe can see it
    total: int  # people asked about
    chance: int  # probed people whose probe produced the place of the person paired with them


@dataclass(frozen=True)
class Probe:
    """Per question: whether the model produced the place (None: not probed), and whether
    it produced the place of the person paired with this one (the chance test)."""

    found: list[bool | None]
    by_chance: list[bool | None]

    def tally(self) -> Storage:
        return Storage(sum(r is True for r in self.found), sum(r is not None for r in self.found), len(self.found),
                       sum(r is True for r in self.by_chance))


def pairing(indices: list[int], seed: int = PAIRING_SEED) -> dict[int, int]:
    """Each index paired with another (a fixed shuffle, then each with the next one round
    the circle), so no one is paired with themselves when there are two or more."""
    order = sorted(indices)
    random.Random(seed).shuffle(order)
    return {i: order[(k + 1) % len(order)] for k, i in enumerate(order)}


def _probe(questions: list[Question], outputs: dict[int, str], test) -> Probe:
    partner = pairing(list(outputs))
    found = {i: test(out, questions[i].answer) for i, out in outputs.items()}
    chance = {i: test(out, questions[partner[i]].answer) for i, out in outputs.items()}
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
    outputs = greedy_decode(model, [ids for ids, _ in probes.values()], budget, stop_id=NEVER_STOP)
    return _probe(questions, {i: vocab.decode(ids) for i, ids in zip(probes, outputs)}, starts_with_place)


def starts_with_place(text: str, place: str) -> bool:
    """Whether ``text`` opens with ``place`` as whole words ("Paris" does not open "Parish")."""
    return text.startswith(place) and not splits_word(text, len(place))


def free_recalls(model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question], chars: int) -> Probe:
    """Whether the model's free recall of each person (``chars`` characters, cue included)
    holds the place, as whole words, after the cue; not probed where the person has no bio
    that mentions it."""
    bios = bios_by_name(documents)
    probed = [i for i, q in enumerate(questions)
              if q.answer is not None and person_bio(bios, q.name, q.answer) is not None]
    names = [questions[i].name for i in probed]
    texts = recall(model, vocab, names, chars)
    after_cue = {i: text[len(recall_cue(name)):] for i, name, text in zip(probed, names, texts)}
    return _probe(questions, after_cue, contains_place)
