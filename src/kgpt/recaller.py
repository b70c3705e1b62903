"""The recaller: the recall recipe's first step, in which the pretrained model recalls a person's
bio from its opening.

The cue is what every bio starts with, ``NAME.``, never the question: pretraining saw
each bio from that opening, so recalling from it is a step the model was trained for.
Answering (:mod:`kgpt.answering`) reads the recall; the storage probes
(:mod:`kgpt.probe`) look for the place in it.
"""

from __future__ import annotations

from kgpt.data.knowledge import END_OF_BIO
from kgpt.inference import beam_decode, greedy_decode
from kgpt.model import GPT
from kgpt.vocab import CharVocab


def recall_cue(name: str) -> str:
    """The text that starts a recall: the opening of the person's bio, ``NAME.``."""
    return f"{name}."


def recall(model: GPT, vocab: CharVocab, names: list[str], chars: int, beams: int = 1) -> list[str]:
    """For each name, the text decoded from its :func:`recall_cue` (cue included), greedily
    or, with ``beams`` above 1, by beam search (:func:`kgpt.inference.beam_decode`), up to
    :data:`~kgpt.data.knowledge.END_OF_BIO` or ``chars`` characters. A recaller pretrained
    without end marks never writes one and always decodes the whole budget."""
    cues = [recall_cue(name) for name in names]
    prompts = [vocab.encode(c, where="recall cue") for c in cues]
    if beams == 1:  # a greedy text's start does not depend on how far it goes: one budget, the longest
        outputs = greedy_decode(model, prompts, max(1, chars - min(map(len, cues), default=0)), stop_id=END_OF_BIO)
    else:  # a beam's choice does: each recall exactly ``chars`` long, as the exported card decodes it
        outputs = beam_decode(model, prompts, [max(1, chars - len(c)) for c in cues], beams, stop_id=END_OF_BIO)
    return [(cue + vocab.decode(ids))[:chars] for cue, ids in zip(cues, outputs)]
