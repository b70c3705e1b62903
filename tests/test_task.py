"""Tasks as data (kgpt.data.task): question forms parsed from a tasks file beside the
question files, a bad file one line naming the field, and the name every step asks about
taken from the task."""

from __future__ import annotations

import json

import pytest

from kgpt.data.corpus import Question, read_questions
from kgpt.data.task import BIRTHPLACE, Task, find_task, read_tasks, task_of
from kgpt.data.words import contains_place, spans
from kgpt.errors import KgptError

YEAR_TOML = """
[birthyear]
questions = ["When was {name} born?", "In which year was {name} born?"]
train = "year_train.tsv"
dev = "year_dev.tsv"
"""


def test_the_default_task_is_the_assignments_question():
    assert BIRTHPLACE.asked_name("Where was Ada Quill born?") == "Ada Quill"
    assert BIRTHPLACE.asked_name("Where was Ada Quill born? ") is None  # the whole line, as before
    assert BIRTHPLACE.asked_name("When was Ada Quill born?") is None
    assert BIRTHPLACE.question("Ada Quill") == "Where was Ada Quill born?" and BIRTHPLACE.form == "Where was NAME born?"
    assert Question("Where was J. R. Hartley born?", "Leeds", 1).name == "J. R. Hartley"  # the default for any Question


def test_every_form_of_a_task_gives_the_name_even_with_pattern_characters():
    task = Task("birthyear", ("When was {name} born?", "In which year was {name} born?"), "t.tsv", "d.tsv")
    assert task.asked_name("When was Ada (Jr.) Quill+ born?") == "Ada (Jr.) Quill+"
    assert task.asked_name("In which year was Bo Li born?") == "Bo Li"
    assert task.asked_name("Where was Bo Li born?") is None
    assert task.question("Bo Li") == "When was Bo Li born?"
    assert Question("In which year was Bo Li born?", "1901", 3, task).name == "Bo Li"


def test_a_form_may_put_the_name_anywhere():
    task = Task("employer", ("{name}: who employed them?",), "t.tsv", "d.tsv")
    assert task.asked_name("Bo Li: who employed them?") == "Bo Li"


@pytest.mark.parametrize("table, field", [
    ({"train": "t.tsv", "dev": "d.tsv"}, "questions"),
    ({"questions": [], "train": "t.tsv", "dev": "d.tsv"}, "questions"),
    ({"questions": ["When was X born?"], "train": "t.tsv", "dev": "d.tsv"}, "{name}"),
    ({"questions": ["{name} and {name}?"], "train": "t.tsv", "dev": "d.tsv"}, "{name}"),
    ({"questions": ["When was {name} born in {year}?"], "train": "t.tsv", "dev": "d.tsv"}, "other than {name}"),
    ({"questions": ["When was {name} born?"], "dev": "d.tsv"}, "train"),
    ({"questions": ["When was {name} born?"], "train": "t.tsv"}, "dev"),
    ({"questions": ["When was {name} born?"], "train": "../t.tsv", "dev": "d.tsv"}, "train"),
    ({"questions": ["When was {name} born?"], "train": "t.tsv", "dev": "d.tsv", "answers": 3}, "answers"),
])
def test_a_bad_task_is_one_error_naming_the_field(tmp_path, table, field):
    (tmp_path / "tasks.json").write_text(json.dumps({"year": table}))
    with pytest.raises(KgptError) as e:
        read_tasks(tmp_path)
    message = str(e.value)
    assert "\n" not in message and "tasks.json" in message and "'year'" in message and field in message


def test_a_tasks_file_that_is_not_toml_or_names_a_file_twice_is_one_error(tmp_path):
    (tmp_path / "tasks.toml").write_text("[birthyear\nquestions = 1\n")
    with pytest.raises(KgptError, match="not valid TOML"):
        read_tasks(tmp_path)
    (tmp_path / "tasks.toml").write_text(YEAR_TOML + YEAR_TOML.replace("[birthyear]", "[again]"))
    with pytest.raises(KgptError, match="year_train.tsv is listed by tasks 'birthyear' and 'again'"):
        read_tasks(tmp_path)


def test_a_question_file_is_read_in_the_task_that_lists_it(tmp_path):
    (tmp_path / "tasks.toml").write_text(YEAR_TOML)
    (tmp_path / "year_train.tsv").write_text("When was Bo Li born?\t1901\nIn which year was Ada Quill born?\t1877\n")
    (tmp_path / "birth_dev.tsv").write_text("Where was Bo Li born?\tOslo\n")
    year = read_questions(tmp_path / "year_train.tsv")
    assert [q.name for q in year] == ["Bo Li", "Ada Quill"] and year[0].task.name == "birthyear"
    assert task_of(tmp_path / "birth_dev.tsv") is BIRTHPLACE  # a file no task lists: the assignment's form
    assert read_questions(tmp_path / "birth_dev.tsv")[0].name == "Bo Li"
    assert find_task(tmp_path, "birthyear").train == "year_train.tsv"
    assert find_task(tmp_path, "birthplace") is BIRTHPLACE  # the assignment's, by its name, where no table redefines it
    with pytest.raises(KgptError, match="no task 'university' .*choose birthyear, birthplace"):
        find_task(tmp_path, "university")


def test_a_form_that_matches_no_question_of_its_file_is_one_error(tmp_path):
    (tmp_path / "tasks.toml").write_text(YEAR_TOML.replace("When was {name} born?", "When was {name} born ?")
                                         .replace("In which year was {name} born?", "Year of {name}?"))
    (tmp_path / "year_train.tsv").write_text("When was Bo Li born?\t1901\n")
    with pytest.raises(KgptError) as e:
        read_questions(tmp_path / "year_train.tsv")
    assert "\n" not in str(e.value) and "no line is asked in a form of task 'birthyear'" in str(e.value)


def test_without_a_tasks_file_the_folder_has_only_the_assignments_task(tmp_path):
    assert read_tasks(tmp_path) == {} and find_task(tmp_path, "birthplace") is BIRTHPLACE
    with pytest.raises(KgptError, match="only birthplace"):
        find_task(tmp_path, "birthyear")


def test_a_task_round_trips_through_its_spec():
    task = Task("birthyear", ("When was {name} born?", "In which year was {name} born?"), "t.tsv", "d.tsv", None)
    assert Task.from_spec(task.spec()) == task and not task.is_default and BIRTHPLACE.is_default


def test_spans_and_places_longer_than_the_default_room():
    long = "University of Villafranca del Bierzo"  # 36 characters, 5 words
    text = f"She studied at the {long} in 1901."
    assert long not in spans(text, 5) and long in spans(text, 5, max_chars=len(long))
    assert contains_place(text, long)  # a probe finds a long answer whatever its length


JOB_TOML = """
[job]
questions = ["What did {name} do?", "{name} did what?"]
train = "job_train.tsv"
dev = "job_dev.tsv"
"""
TINY = ["--batch_size", "8", "--no_progress", "--device", "cpu"]


@pytest.fixture
def job_data(tiny_data):
    """The tiny corpus asked another attribute: each person's job, in two forms (the
    characters of both are in the corpus, as a finetuning question's must be)."""
    from conftest import N_TRAIN, PEOPLE

    (tiny_data.dir / "tasks.toml").write_text(JOB_TOML)
    forms = ("What did {} do?", "{} did what?")
    lines = [f"{forms[i % 2].format(name)}\ta {job}" for i, (name, _, job) in enumerate(PEOPLE)]
    (tiny_data.dir / "job_train.tsv").write_text("".join(f"{line}\n" for line in lines[:N_TRAIN]), encoding="utf-8")
    (tiny_data.dir / "job_dev.tsv").write_text("".join(f"{line}\n" for line in lines[N_TRAIN:]), encoding="utf-8")
    return tiny_data


def test_a_reader_finetuned_on_a_task_answers_its_forms_with_spans_of_its_answers(job_data, tmp_path, capsys):
    from kgpt.checkpoint import read_checkpoint
    from kgpt.cli import main

    pre, fin = tmp_path / "pre.params", tmp_path / "fin.params"
    assert main(["pretrain", "rope", str(job_data.wiki), "--recipe", "recall", "--writing_params_path", str(pre),
                 "--max_epochs", "1", "--n_layer", "1", "--n_head", "2", "--n_embd", "16", *TINY]) == 0
    assert main(["finetune", "rope", str(job_data.wiki), "--recipe", "recall", "--reading_params_path", str(pre),
                 "--writing_params_path", str(fin), "--finetune_corpus_path", str(job_data.dir / "job_train.tsv"),
                 "--max_epochs", "1", *TINY]) == 0
    answering = read_checkpoint(fin).answering
    assert answering["task"]["questions"] == ["What did {name} do?", "{name} did what?"]
    assert answering["max_words"] == 2  # "a painter": the longest training answer's words
    capsys.readouterr()
    assert main(["ask", "rope", str(job_data.wiki), "--reading_params_path", str(fin), "--device", "cpu", "--top_k", "0",
                 "Amélie Durand did what?", "Where was Amélie Durand born?"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "Amélie Durand did what?" and lines[2].startswith('  recall  "Amélie Durand.')
    assert '"What did NAME do?" or "NAME did what?"' in err  # the other task's question: its forms named
    assert main(["evaluate", "rope", str(job_data.wiki), "--reading_params_path", str(fin), "--eval_corpus_path",
                 str(job_data.dir / "job_dev.tsv"), "--outputs_path", str(tmp_path / "p.txt"), "--device", "cpu"]) == 0


def test_an_answer_too_long_for_the_readers_block_is_one_error(job_data, tmp_path, capsys):
    from kgpt.cli import main

    pre = tmp_path / "pre.params"
    assert main(["pretrain", "rope", str(job_data.wiki), "--recipe", "recall", "--writing_params_path", str(pre),
                 "--max_epochs", "1", "--n_layer", "1", "--n_head", "2", "--n_embd", "16", *TINY]) == 0
    train = job_data.dir / "job_train.tsv"
    train.write_text(train.read_text(encoding="utf-8") + "What did Amélie Durand do?\t" + "a painter " * 20 + "x\n",
                     encoding="utf-8")
    out = tmp_path / "fin.params"
    capsys.readouterr()
    assert main(["finetune", "rope", str(job_data.wiki), "--recipe", "recall", "--reading_params_path", str(pre),
                 "--writing_params_path", str(out), "--finetune_corpus_path", str(train), "--max_epochs", "1", *TINY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 15" in err[0] and "too long for the reader's block" in err[0] and not out.exists()


def test_reproduce_asks_a_task_of_the_folder_and_keeps_a_study_folder_to_one_task(job_data, tmp_path, capsys):
    from kgpt.cli import main

    out = tmp_path / "study"
    assert main(["reproduce", "--data_dir", str(job_data.dir), "--out", str(out), "--preset", "quick", "--task", "job",
                 "--device", "cpu", "--variants", "rope"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["setting"] for r in rows} == {"baseline", "finetune-only", "pretrain+finetune"}
    assert next(r for r in rows if r["setting"] == "baseline")["answer"] == "a painter"  # the job file's commonest answer
    capsys.readouterr()
    assert main(["reproduce", "--data_dir", str(job_data.dir), "--out", str(out), "--preset", "quick", "--device", "cpu",
                 "--variants", "rope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a study of task 'job', not 'birthplace'" in err[0]
    assert main(["reproduce", "--data_dir", str(job_data.dir), "--out", str(tmp_path / "o"), "--task", "year"]) == 1
    assert "no task 'year'" in capsys.readouterr().err


def test_demo_asks_every_attribute_of_the_same_people_pretraining_once(tmp_path, capsys):
    from kgpt.checkpoint import read_checkpoint
    from kgpt.cli import main
    from kgpt.data.synthetic_facts import ATTRIBUTES

    out = tmp_path / "demo"
    assert main(["demo", "--preset", "tiny", "--task", "all", "--out", str(out)]) == 0
    table = (out / "results.md").read_text().splitlines()
    assert [line.split(" | ")[0].lstrip("| ") for line in table if line.startswith("| ") and "attribute" not in line] \
        == list(ATTRIBUTES)
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["task"] for r in rows} == set(ATTRIBUTES) and all((out / t / "results.md").is_file() for t in ATTRIBUTES)
    # Pretraining that reads no question is shared by the three tasks; the knowledge
    # recipe's reads each task's training questions, so each task has its own.
    shared = sorted(p.name for p in (out / "pretrained").glob("*.params"))
    assert shared == ["pretrain-recall-rope-s0.params", "pretrain-rope-s0.params"]
    # The facts' pretraining cells keep AdamW (Muon was chosen on the birthplace demo's bios).
    for name in shared:
        assert read_checkpoint(out / "pretrained" / name).progress["optimizer"] == "adamw"
    for t in ATTRIBUTES:
        own = sorted(p.name for p in (out / t / "checkpoints").glob("pretrain-*.params"))
        assert own == ["pretrain-knowledge-rope-s0.params"]
    printed = capsys.readouterr().out
    assert "birthyear: When was NAME born?" in printed
    assert main(["demo", "--preset", "tiny", "--task", "employer", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown --task 'employer'" in err[0] and not (tmp_path / "x" / "data").exists()
