"""A task: what is asked about each person, and in which words.

The assignment asks one thing, "Where was NAME born?". A task names its question forms
as templates with the person's name as a field (``"When was {name} born?"``) and the
question files asked in them. Every step that needs the person a question is about (the
recall cue, the reader's examples, the probes, the analysis) takes the name from the
task that parsed the question, never from a pattern of its own.

Tasks are data: a ``tasks.toml`` (or ``tasks.json``) beside the question files, one table
per task::

    [birthyear]
    questions = ["When was {name} born?", "In which year was {name} born?"]
    train = "birthyear_train.tsv"
    dev = "birthyear_dev.tsv"
    test = "birthyear_test_inputs.tsv"   # optional

A question file belongs to the task that lists it; a file no task lists, or a folder
without a tasks file (the real data), is asked in the assignment's form, :data:`BIRTHPLACE`.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kgpt.errors import KgptError

TASK_FILES = ("tasks.toml", "tasks.json")  # looked for beside a question file, in this order
NAME_FIELD = "{name}"


def check_template(template: str, where: str) -> None:
    """One error for a question form that cannot say whom it asks about."""
    count = template.count(NAME_FIELD)
    if count != 1:
        raise KgptError(f"{where}: the question form {template!r} has {count} {NAME_FIELD} fields; "
                        f"it needs exactly one, where the person's name goes")
    rest = template.replace(NAME_FIELD, "")
    if "{" in rest or "}" in rest:
        raise KgptError(f"{where}: the question form {template!r} has a field other than {NAME_FIELD}")
    if "\t" in template or "\n" in template:
        raise KgptError(f"{where}: the question form {template!r} holds a tab or a line break")


@dataclass(frozen=True)
class Task:
    """A question asked of every person, in one or more forms, and the files that ask it."""

    name: str = "birthplace"
    questions: tuple[str, ...] = ("Where was {name} born?",)  # templates, each with one {name}
    train: str = "birth_places_train.tsv"
    dev: str = "birth_dev.tsv"
    test: str | None = "birth_test_inputs.tsv"
    _patterns: tuple[re.Pattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for template in self.questions:
            check_template(template, f"task {self.name!r}")
        # The name is whatever stands where the field does: the rest must match exactly.
        patterns = tuple(re.compile("^" + re.escape(t).replace(re.escape(NAME_FIELD), "(.+)") + "$") for t in self.questions)
        object.__setattr__(self, "_patterns", patterns)

    def asked_name(self, question: str) -> str | None:
        """The name a question asks about, by the first form it matches; None for a
        question in none of this task's forms."""
        for pattern in self._patterns:
            match = pattern.match(question)
            if match:
                return match.group(1)
        return None

    def question(self, name: str) -> str:
        """The question about ``name`` in the task's first form."""
        return self.questions[0].replace(NAME_FIELD, name)

    @cached_property
    def form(self) -> str:
        """The first form as users read it: ``Where was NAME born?``."""
        return self.question("NAME")

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.train, self.dev, self.test) if f is not None)

    @property
    def is_default(self) -> bool:
        return self == BIRTHPLACE

    def spec(self) -> dict:
        """What a checkpoint records of the task its reader was finetuned on."""
        return {"name": self.name, "questions": list(self.questions), "train": self.train, "dev": self.dev,
                "test": self.test}

    @classmethod
    def from_spec(cls, spec: dict, where: str = "task") -> Task:
        """A task from its table (a tasks file's, or a checkpoint's :meth:`spec`), validated:
        a bad field is one error naming it."""
        if not isinstance(spec, dict):
            raise KgptError(f"{where}: expected a table of fields (questions, train, dev, test)")
        unknown = sorted(set(spec) - {"name", "questions", "train", "dev", "test"})
        if unknown:
            raise KgptError(f"{where}: unknown field {unknown[0]!r}; a task has questions, train, dev and test")
        questions = spec.get("questions")
        if isinstance(questions, str):
            questions = [questions]
        if not isinstance(questions, list) or not questions or not all(isinstance(q, str) for q in questions):
            raise KgptError(f'{where}: questions must be a list of question forms, e.g. ["When was {{name}} born?"]')
        files = {}
        for key in ("train", "dev", "test"):
            value = spec.get(key)
            if value is None and key != "test":
                raise KgptError(f"{where}: no {key} field; name the task's {key} question file")
            if value is not None and (not isinstance(value, str) or not value or "/" in value or "\\" in value):
                raise KgptError(f"{where}: {key} must be the name of a file beside the tasks file, got {value!r}")
            files[key] = value
        for template in questions:
            check_template(template, where)
        return cls(spec.get("name", "task"), tuple(questions), files["train"], files["dev"], files["test"])


BIRTHPLACE = Task()
"""The assignment's task: "Where was NAME born?" over the real files' names."""


def tasks_file(directory: Path) -> Path | None:
    """The tasks file of a data folder, if it has one."""
    return next((directory / n for n in TASK_FILES if (directory / n).is_file()), None)


def read_tasks(directory: str | Path) -> dict[str, Task]:
    """The tasks a data folder declares, by name ({} without a tasks file)."""
    path = tasks_file(Path(directory))
    if path is None:
        return {}
    try:
        raw = path.read_bytes().decode("utf-8")
        tables = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KgptError(f"tasks file {path}: not valid {path.suffix[1:].upper()} ({e})") from None
    except OSError as e:
        raise KgptError(f"tasks file {path} cannot be read ({e.strerror or e})") from None
    if not isinstance(tables, dict) or not tables:
        raise KgptError(f"tasks file {path}: no task in it; give one table per task, e.g. [birthyear]")
    tasks = {name: Task.from_spec({"name": name, **table} if isinstance(table, dict) else table,
                                  f"tasks file {path}, task {name!r}")
             for name, table in tables.items()}
    owners: dict[str, str] = {}
    for task in tasks.values():
        for f in task.files:
            if owners.setdefault(f, task.name) != task.name:
                raise KgptError(f"tasks file {path}: {f} is listed by tasks {owners[f]!r} and {task.name!r}; "
                                "a question file belongs to one task")
    return tasks


def task_of(path: str | Path) -> Task:
    """The task a question file is asked in: the one its folder's tasks file lists it
    under, else the assignment's."""
    p = Path(path)
    return next((t for t in read_tasks(p.parent).values() if p.name in t.files), BIRTHPLACE)


def find_task(directory: str | Path, name: str) -> Task:
    """The task called ``name`` in a data folder's tasks file, or the assignment's by its
    name where the file does not define it; one error naming the choices."""
    tasks = read_tasks(directory)
    if name in tasks:
        return tasks[name]
    if name == BIRTHPLACE.name:
        return BIRTHPLACE
    known = ", ".join([*tasks, BIRTHPLACE.name]) if tasks else f"only {BIRTHPLACE.name} (the folder has no {TASK_FILES[0]})"
    raise KgptError(f"no task {name!r} in {directory}; choose {known}")
