"""Reading and validating the two kinds of input file.

* the pretraining corpus (``wiki.txt``): one document per line;
* question files (``birth_*.tsv``): ``QUESTION<TAB>ANSWER`` per line, or just
  ``QUESTION`` for files without targets (``birth_test_inputs.tsv``).

Besides reading them, the one parser of their layout: the name a bio opens with
(:func:`bio_name`), which every probe, the knowledge streams and recall-then-read share.
The name a question asks about is its task's to parse (:mod:`kgpt.data.task`): a question
file is read in the task its folder's ``tasks.toml`` lists it under.

Every problem a user can cause is a :class:`KgptError` naming the file and line. Blank
lines and CRLF line endings are accepted: they are how such files usually get edited.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kgpt.data.task import BIRTHPLACE, Task, task_of
from kgpt.errors import KgptError
from kgpt.io import check_input, read_input_bytes
from kgpt.vocab import MASK_CHAR, PAD_CHAR


@dataclass(frozen=True)
class Question:
    """One line of a question file; ``answer`` is None where the file has no targets."""

    text: str
    answer: str | None
    line: int
    task: Task = field(default=BIRTHPLACE, repr=False, compare=False)  # the forms it may be asked in

    @cached_property
    def name(self) -> str | None:
        """The person asked about, by the task's question forms (parsed once); None for a
        question in none of them."""
        return self.task.asked_name(self.text)


def lf_endings(text: str) -> str:
    """``text`` with its line endings read as Python's text mode reads them, which the
    course's ``open(path).read()`` does: ``\\r\\n`` and a lone ``\\r`` each end a line."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: str | Path, what: str) -> str:
    """The whole file as text with ``\\n`` line endings (:func:`lf_endings`), or a clear error."""
    p = Path(path)
    raw = read_input_bytes(p, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = lf_endings(raw[: e.start].decode("utf-8")).count("\n") + 1  # the bytes before the first bad one decode
        raise KgptError(f"{what} {p}, line {line}: bytes that are not UTF-8; save the text as UTF-8") from None
    text = lf_endings(text.removeprefix("\ufeff"))
    if not text.strip():
        raise KgptError(f"{what} {p} is empty (only blank lines); check the path")
    return text


def read_corpus(path: str | Path) -> str:
    """The pretraining corpus, validated: no reserved PAD/MASK characters in it."""
    text = read_text(path, "pretraining corpus")
    for special in (PAD_CHAR, MASK_CHAR):
        if special in text:
            line = text[: text.index(special)].count("\n") + 1
            raise KgptError(
                f"pretraining corpus {path}, line {line}: contains the reserved character "
                f"{special!r} (U+{ord(special):04X}); remove it"
            )
    return text


def corpus_documents(text: str) -> list[str]:
    """The documents of a corpus: its non-blank lines."""
    return [line for line in text.split("\n") if line.strip()]


def parse_questions(text: str, where: str = "questions", task: Task = BIRTHPLACE) -> list[Question]:
    """Parse ``QUESTION[<TAB>ANSWER]`` lines; blank lines are skipped."""
    parsed = (parse_question(line, n, where, task) for n, line in enumerate(text.split("\n"), start=1))
    return [q for q in parsed if q is not None]


def parse_question(line: str, n: int, where: str = "questions", task: Task = BIRTHPLACE) -> Question | None:
    """Line ``n`` as a question of ``task``, or None for a blank line."""
    if not line.strip():
        return None
    fields = line.split("\t")
    if len(fields) > 2:
        raise KgptError(f"{where}, line {n}: {len(fields)} tab-separated columns; expected QUESTION<TAB>PLACE")
    if not fields[0].strip():
        raise KgptError(f"{where}, line {n}: empty question")
    answer = None
    if len(fields) == 2:
        answer = fields[1]
        if not answer.strip():
            raise KgptError(f"{where}, line {n}: empty answer after the tab; give the place or drop the tab")
    return Question(fields[0], answer, n, task)


def read_questions(path: str | Path, require_answers: bool = False) -> list[Question]:
    """A question file, asked in the task its folder's tasks file lists it under
    (:func:`kgpt.data.task.task_of`); with ``require_answers`` every line must carry its place.

    Without it, a file is either all ``QUESTION<TAB>PLACE`` (scored) or all
    ``QUESTION`` (predictions only): a mix is almost always a lost tab, and scoring it
    would silently count those lines as wrong.
    """
    return list(iter_questions(path, require_answers))


def iter_questions(path: str | Path, require_answers: bool = False) -> Iterator[Question]:
    """:func:`read_questions` one line at a time, with the same checks and errors, so a
    file of any length is read in constant memory."""
    p = Path(path)
    what, where = "question file", f"question file {path}"
    task = task_of(p) if p.is_file() else BIRTHPLACE  # a missing file is _text_lines' error
    first, asked = None, False
    for n, line in _text_lines(p, what):
        q = parse_question(line, n, where, task)
        if q is None:
            continue
        first = first or q
        asked = asked or q.name is not None
        if require_answers and q.answer is None:
            raise KgptError(f"{where}, line {q.line}: no tab and place; a finetuning line must be QUESTION<TAB>PLACE")
        if (q.answer is None) != (first.answer is None):
            with_place, without = (first, q) if q.answer is None else (q, first)
            raise KgptError(
                f"{where}, line {without.line}: no tab and place, but line {with_place.line} has one; "
                "give every line QUESTION<TAB>PLACE, or none"
            )
        yield q
    if first is None:
        raise KgptError(f"{what} {p} is empty (only blank lines); check the path")
    if not asked and not task.is_default:
        raise KgptError(f"{where}: no line is asked in a form of task {task.name!r} ({' or '.join(map(repr, task.questions))}); "
                        "fix the task's questions in the tasks file")


def _text_lines(p: Path, what: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for each line of a UTF-8 file, as :func:`read_text` would split it."""
    check_input(p, what)  # the path's own errors (missing, a folder, empty), as for any input
    try:
        with p.open("rb") as f:
            yield from text_lines(f, f"{what} {p}")
    except OSError as e:
        raise KgptError(f"{what} {p} cannot be read ({e.strerror or e}); check the path") from None


def text_lines(stream: Iterable[bytes], where: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for each line of a binary stream of UTF-8 text (a file, stdin),
    decoded as it comes: no byte-order mark, no line ending, and a line that is not UTF-8
    is an error naming ``where`` and its number."""
    for n, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KgptError(f"{where}, line {n}: bytes that are not UTF-8; save the text as UTF-8") from None
        if n == 1:
            line = line.removeprefix("\ufeff")
        yield n, line.removesuffix("\n").removesuffix("\r") if line.endswith("\n") else line


MAX_NAME_CHARS = 60  # a bio's opening name is at most this long; longer means no name


def bio_name(document: str) -> str | None:
    """The name a bio opens with: wiki.txt writes each line ``NAME. text``.

    The name ends at the first ". " that cannot be inside a name. A ". " after an initial
    ("J. R. Hartley", "J.C. Smith") or an abbreviation ("St. John") is inside the name
    when what follows, up to the next ". ", reads as more of a name; "Malcolm X. Malcolm
    X was ..." and "Henry V. Born in ..." go on as a sentence, so X and V end the name.
    A name keeps its own final dot ("John Smith, Jr.. Born ..."). None where no such
    opening exists, or where it would be initials alone.
    """
    ends = [m.start() for m in _NAME_END.finditer(document, 0, MAX_NAME_CHARS + 2)]
    for i, end in enumerate(ends):
        name = document[:end]
        words = name.split()
        if not words:
            return None
        if not _may_continue(words[-1]):
            return name
        after = document[end + 2 : ends[i + 1]] if i + 1 < len(ends) else ""
        if not _reads_as_name(after) and not all(_may_continue(w.rstrip(".")) for w in words):
            return name
    return None


_NAME_END = re.compile(r"\. ")
# Abbreviations that stand before more of a name: "St. John", "Dr. Who".
_NAME_ABBREVIATIONS = frozenset({"St", "Ste", "Mt", "Ft", "Dr", "Mr", "Mrs", "Ms", "Prof", "Rev", "Fr", "Sr", "Gen", "Col",
                                 "Capt", "Lt", "Sgt", "Hon"})
# Lower-case words a name may hold: "Theodore J. van den Broek".
_NAME_PARTICLES = frozenset({"de", "da", "das", "del", "della", "der", "den", "di", "do", "dos", "du", "la", "le", "van",
                             "von", "y", "zu", "ter", "ten", "bin", "ibn", "al", "el", "af", "av"})
# Capitalised words that open a bio's first sentence rather than go on with a name.
_SENTENCE_OPENERS = frozenset({"Born", "He", "She", "His", "Her", "They", "It", "The", "In", "After", "As", "At", "On",
                               "From", "During", "When", "While", "This"})


def _may_continue(word: str) -> bool:
    """Whether a name may go on after ``word`` and a ". ": an initial ("J", "J.C") or an
    abbreviation ("St"); any other word before ". " ends the name."""
    return all(len(part) == 1 and part.isupper() for part in word.split(".")) or word in _NAME_ABBREVIATIONS


def _reads_as_name(text: str) -> bool:
    """Whether ``text`` (what follows an initial, up to the next ". ") is more of a name:
    every word capitalised or a name particle, and not the opening of a sentence."""
    words = text.split()
    return bool(words) and words[0] not in _SENTENCE_OPENERS and all(
        not w[0].islower() and (w[0].isalpha() or w[0] in "'’") or w in _NAME_PARTICLES for w in words)


def name_prefix_length(document: str) -> int:
    """Characters of the bio's opening ``NAME. ``; 0 where there is none."""
    name = bio_name(document)
    return 0 if name is None else len(name) + 2


def bios_by_name(documents: list[str]) -> dict[str, list[str]]:
    """Every bio under the name it opens with, in corpus order."""
    bios: dict[str, list[str]] = {}
    for doc in documents:
        name = bio_name(doc)
        if name is not None:
            bios.setdefault(name, []).append(doc)
    return bios


def asked_name(question: str, task: Task = BIRTHPLACE) -> str | None:
    """The person ``question`` asks about in ``task`` (NAME in "Where was NAME born?");
    None for a question in none of its forms."""
    return task.asked_name(question)


def person_bio(bios: dict[str, list[str]], name: str | None, place: str | None = None) -> str | None:
    """The bio of the person called ``name``: the first that mentions ``place`` when one is
    given (a person may have several lines), else the first; None when there is none."""
    candidates = bios.get(name, []) if name is not None else []
    if place is not None:
        return next((d for d in candidates if place in d), None)
    return candidates[0] if candidates else None


def unseen_names(names: list[str], corpus_text: str, n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` names that occur nowhere in the corpus, built from the names asked about.

    A given name of one person with the family name of another ("Bryan" + "Wadephul"):
    they look like the names the model was asked about and use only characters it
    knows, but the model cannot have read anything about such a person. Deterministic
    for a given seed.
    """
    split = [name.rsplit(" ", 1) for name in names if " " in name]
    firsts, lasts = sorted({s[0] for s in split}), sorted({s[1] for s in split})
    rng = random.Random(seed)
    chosen: list[str] = []
    for _ in range(50 * n if firsts and lasts else 0):
        name = f"{rng.choice(firsts)} {rng.choice(lasts)}"
        if name not in corpus_text and name not in chosen:
            chosen.append(name)
            if len(chosen) == n:
                break
    return chosen
