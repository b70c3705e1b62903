"""Words, as the recall recipe and the probes count them: maximal runs of letters and
digits. An extracting reader answers with a run of whole words of what it read
(:func:`spans`); a probe finds a place in a text only as whole words
(:func:`contains_place`); a text is cut only between words (:func:`cut_whole`)."""

from __future__ import annotations

import re

# The longest answer a span may be unless the training answers are longer: the reader's
# block keeps room for it (kgpt.data.reader.ReaderSettings.answer_chars). The longest place
# in the real files has 15 characters.
MAX_PLACE_CHARS = 26

_WORD = re.compile(r"\w+")


def words(text: str) -> list[re.Match]:
    """The words of a text: maximal runs of letters and digits. "Saint-Étienne" is two
    words joined by a hyphen, "Frankfurt," one word and a comma."""
    return list(_WORD.finditer(text))


def word_count(place: str) -> int:
    return len(words(place))


def spans(text: str, max_words: int, max_chars: int = MAX_PLACE_CHARS) -> list[str]:
    """Every answer the reader may extract from ``text``: a run of 1 to ``max_words``
    consecutive words, exactly as written between them ("New York", "Saint-Étienne"), of
    at most ``max_chars`` characters; each once, in order of first occurrence."""
    found = words(text)
    out: dict[str, None] = {}
    for i, first in enumerate(found):
        for last in found[i : i + max_words]:
            span = text[first.start() : last.end()]
            if len(span) > max_chars:
                break
            out.setdefault(span)
    return list(out)


def contains_place(text: str, place: str, max_words: int | None = None) -> bool:
    """Whether ``place`` occurs in ``text`` as whole words (so "Paris" not in "Parish")."""
    return place in spans(text, max_words or word_count(place), len(place))  # no longer span can be it


def whole_word_pattern(place: str) -> re.Pattern:
    """A pattern that finds ``place`` only as whole words: not inside a longer word."""
    return re.compile(rf"(?<!\w){re.escape(place)}(?!\w)")


def places_in(text: str, places: set[str]) -> set[str]:
    """The ``places`` that occur in ``text`` as whole words."""
    return places & set(spans(text, max((word_count(p) for p in places), default=1), max(map(len, places), default=0)))


def splits_word(text: str, i: int) -> bool:
    """Whether a cut at position ``i`` would split a word."""
    return 0 < i < len(text) and bool(_WORD.match(text[i - 1])) and bool(_WORD.match(text[i]))


def word_end_from(text: str, i: int) -> int:
    """Position ``i``, or the end of the word a cut there would split."""
    return _WORD.match(text, i).end() if splits_word(text, i) else min(i, len(text))


def cut_whole(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters without splitting a word: a word the
    limit falls in is left out, with the space before it."""
    while splits_word(text, limit):
        limit -= 1
    return text[:limit].rstrip()
