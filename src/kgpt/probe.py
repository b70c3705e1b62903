"""Storage probes: what a pretrained model holds about a person, asked two ways.

Finetuning can only get out what pretraining stored, so every pretrained model is probed
before any question is asked of it:

* **cued completion**: the person's bio up to the place ("Ada Quill. Ada Quill was born
  in "), then greedy decoding; stored when the continuation starts with the place. The
  model is given everything but the fact.
* **free recall**: the bio's opening alone (``NAME.``, :func:`recall_cue`), then greedy
  decoding for the length of a bio; stored when the recalled text contains the place
  anywhere. The model must bring back the bio by itself, which is what recall-then-read
  answering relies on.

A person is probed only where the bio can show the place: free recall needs a bio that
mentions it, cued completion a bio whose prefix before it fits the model's block.
"""

from __future__ import annotations

from dataclasses import dataclass

from kgpt.data.corpus import Question, asked_name, bios_by_name, person_bio
from kgpt.inference import greedy_decode
from kgpt.model import GPT
from kgpt.vocab import CharVocab

NEVER_STOP = -1  # a stop id no character has: decode the whole budget


@dataclass(frozen=True)
class Storage:
    """How many people's birthplaces a probe found stored."""

    stored: int  # probed people whose birthplace the model produced
    probed: int  # people whose bio mentions their birthplace where the probe can see it
    total: int  # people asked about


def recall_cue(name: str) -> str:
    """The text that starts a free recall: the opening of the person's bio, ``NAME.``."""
    return f"{name}."


def free_recall(model: GPT, vocab: CharVocab, names: list[str], chars: int) -> list[str]:
    """For each name, ``chars`` characters of text (cue included) decoded greedily from its
    :func:`recall_cue`. Decoding never stops early: a bio has no end mark in pretraining."""
    cues = [recall_cue(name) for name in names]
    budget = max(1, chars - min((len(c) for c in cues), default=0))
    outputs = greedy_decode(model, [vocab.encode(c, where="recall cue") for c in cues], budget, stop_id=NEVER_STOP)
    return [(cue + vocab.decode(ids))[:chars] for cue, ids in zip(cues, outputs)]


def cued_completions(model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question]) -> list[bool | None]:
    """Per question, whether the model continues the person's bio with the place (the
    cued-completion probe); None where no bio names the place within the model's block."""
    bios = bios_by_name(documents)
    probes: dict[int, tuple[list[int], str]] = {}
    for i, q in enumerate(questions):
        bio = person_bio(bios, asked_name(q.text), q.answer) if q.answer is not None else None
        if bio is None:
            continue
        prefix = bio[: bio.index(q.answer)]
        if not prefix or len(prefix) + len(q.answer) > model.max_length:
            continue
        probes[i] = (vocab.encode(prefix, where="corpus"), q.answer)
    if not probes:
        return [None] * len(questions)
    places = [place for _, place in probes.values()]
    outputs = greedy_decode(model, [ids for ids, _ in probes.values()], max(map(len, places)), stop_id=NEVER_STOP)
    recited = {i: vocab.decode(ids).startswith(place) for i, ids, place in zip(probes, outputs, places)}
    return [recited.get(i) for i in range(len(questions))]


def free_recalls(
    model: GPT, vocab: CharVocab, documents: list[str], questions: list[Question], chars: int
) -> list[bool | None]:
    """Per question, whether the model's free recall of the person contains the place;
    None where the person has no bio that mentions it."""
    bios = bios_by_name(documents)
    probed = [i for i, q in enumerate(questions)
              if q.answer is not None and person_bio(bios, asked_name(q.text), q.answer) is not None]
    texts = free_recall(model, vocab, [asked_name(questions[i].text) for i in probed], chars)
    found = {i: questions[i].answer in text for i, text in zip(probed, texts)}
    return [found.get(i) for i in range(len(questions))]


def tally(results: list[bool | None]) -> Storage:
    return Storage(sum(r is True for r in results), sum(r is not None for r in results), len(results))
