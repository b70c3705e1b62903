"""The recaller: the recall recipe's first step, in which the pretrained model recalls a person's
bio from its opening.

The cue is what every bio starts with, ``NAME.``, never the question: pretraining saw
each bio from that opening, so recalling from it is a step the model was trained for.
Answering (:mod:`kgpt.answering`) reads the recall; the storage probes
(:mod:`kgpt.probe`) look for the place in it.
"""

from __future__ import annotations

from kgpt.inference import greedy_decode
from kgpt.model import GPT
from kgpt.vocab import CharVocab

NEVER_STOP = -1  # a stop id no character has: decode the whole budget


def recall_cue(name: str) -> str:
    """The text that starts a recall: the opening of the person's bio, ``NAME.``."""
    return f"{name}."


def recall(model: GPT, vocab: CharVocab, names: list[str], chars: int) -> list[str]:
    """For each name, ``chars`` characters of text (cue included) decoded greedily from its
    :func:`recall_cue`, in one batch. Decoding never stops early: a bio has no end mark in
    pretraining."""
    cues = [recall_cue(name) for name in names]
    budget = max(1, chars - min((len(c) for c in cues), default=0))
    outputs = greedy_decode(model, [vocab.encode(c, where="recall cue") for c in cues], budget, stop_id=NEVER_STOP)
    return [(cue + vocab.decode(ids))[:chars] for cue, ids in zip(cues, outputs)]
