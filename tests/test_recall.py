"""The recall recipe: reading examples, recall-then-read answering, its checkpoint, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import one_line_error
from kgpt import answering, probe
from kgpt.answering import RecallReader, load_answerer
from kgpt.checkpoint import RECALLER, read_checkpoint, save_checkpoint
from kgpt.cli import main
from kgpt.data.corpus import Question, parse_questions
from kgpt.data.reading import Reading, reading_examples
from kgpt.evaluate import answer_prompts
from kgpt.model import GPT, GPTConfig
from kgpt.training.recipe import RECALL
from kgpt.vocab import MASK_CHAR, CharVocab

TINY = ["--batch_size", "8", "--no_progress", "--device", "cpu"]
SIZE = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16"]  # pretraining sets the size; finetuning keeps it


def test_reading_text_is_the_bio_cut_to_length_with_its_opening_name_dropped():
    bio = "Ann Lee. Ann Lee was born in Oslo and later moved to Rome."
    assert Reading(chars=30, mask_name=True).text(bio, "Ann Lee") == "Ann Lee was born in O"  # 30 characters, name included
    assert Reading(chars=30, mask_name=False).text(bio, "Ann Lee") == bio[:30]
    assert Reading(chars=100, mask_name=True).text(bio, "Ann Lee", room=8) == "Ann Lee "
    assert Reading(chars=100, mask_name=True).text("Bo Li. x", "Ann Lee") == "Bo Li. x"  # not this person's opening


def test_reading_examples_pair_each_training_persons_bio_with_the_place():
    docs = ["Ann Lee. Ann Lee sang.", "Ann Lee. Ann Lee was born in Oslo.", "Bo Li. Bo Li was born in Rome."]
    questions = parse_questions("Where was Ann Lee born?\tOslo\nWhere was Cy Po born?\tLima\nWhere was Bo Li born?\tParis\n")
    examples = reading_examples(docs, questions, Reading(chars=100, mask_name=True), block_size=32)
    # Ann Lee: the bio that names the place; Cy Po has no bio; Bo Li's bio is read though it lacks the place.
    assert examples == [Question("Ann Lee was born in Oslo.", "Oslo", 1), Question("Bo Li was born in Rome.", "Paris", 3)]
    tight = reading_examples(docs, questions, Reading(chars=100, mask_name=True), block_size=16)
    assert all(len(e.text) + len(e.answer) + 2 <= 16 for e in tight)  # text, ⁇, place, ⁇ fit the block


def _oracle_reader(monkeypatch, vocab, recalled: dict[str, str]) -> RecallReader:
    """A RecallReader whose recaller 'recalls' the given text after each cue."""
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))

    def recall(model, prompts, max_new_tokens, stop_id):
        return [vocab.encode(recalled[vocab.decode(p)[:-1]]) for p in prompts]

    monkeypatch.setattr(probe, "greedy_decode", recall)
    return RecallReader(model, model, Reading(chars=40, mask_name=True))


def test_the_reader_reads_what_was_recalled_from_the_name(monkeypatch):
    vocab = CharVocab.from_text("Where was Ann Lee Bo Li born? Oslo Rome. sang" + "J.R")
    asker = _oracle_reader(monkeypatch, vocab, {"Ann Lee": " Ann Lee was born in Oslo.", "Bo Li": " Bo Li sang."})
    questions = parse_questions("Where was Ann Lee born?\nWhere was Bo Li born?\nWhere was Ann Lee born?\n")
    prompts = answer_prompts(asker, vocab, questions)
    assert [vocab.decode(p) for p in prompts] == [
        "Ann Lee was born in Oslo." + MASK_CHAR, "Bo Li sang." + MASK_CHAR, "Ann Lee was born in Oslo." + MASK_CHAR]
    assert asker.recall(questions[1]) == "Bo Li. Bo Li sang."
    bad = parse_questions("Who is Ann Lee?\n")
    message = one_line_error(answer_prompts, asker, vocab, bad, "questions.tsv")
    assert "line 1" in message and "Where was NAME born?" in message


def test_recalls_kept_are_bounded_and_never_those_asked_for_now(monkeypatch):
    vocab = CharVocab.from_text("Where was Ann Lee Bo Li Cy Po born? sang.")
    asker = _oracle_reader(monkeypatch, vocab, {n: f" {n} sang." for n in ("Ann Lee", "Bo Li", "Cy Po")})
    monkeypatch.setattr(answering, "RECALLS_KEPT", 1)
    both = parse_questions("Where was Ann Lee born?\nWhere was Bo Li born?\n")
    assert len(answer_prompts(asker, vocab, both)) == 2 and set(asker._recalled) == {"Ann Lee", "Bo Li"}  # both needed now
    answer_prompts(asker, vocab, parse_questions("Where was Cy Po born?\n"))
    assert list(asker._recalled) == ["Cy Po"]  # the older recalls are forgotten
    assert asker.recall(both[0]) is None and answer_prompts(asker, vocab, both[:1])  # and recalled again when asked


def test_a_recall_leaves_the_reader_room_for_an_answer():
    vocab = CharVocab.from_text("abc")
    small, large = (GPT(GPTConfig(vocab_size=len(vocab), block_size=b, n_layer=1, n_head=1, n_embd=8)) for b in (64, 128))
    assert RecallReader(small, small, Reading(chars=100)).recall_chars == 64 - answering.ANSWER_ROOM
    assert RecallReader(large, large, Reading(chars=100)).recall_chars == 100


def test_a_recall_checkpoint_holds_both_models_and_how_to_answer(tmp_path):
    vocab = CharVocab.from_text("abc")
    reader, recaller = (GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=1, n_head=1, n_embd=8)) for _ in range(2))
    asker = RecallReader(reader, recaller, Reading(chars=12, mask_name=False))
    path = tmp_path / "r.params"
    save_checkpoint(path, reader, vocab, {}, {f"{RECALLER}.{k}": v for k, v in recaller.state_dict().items()}, asker.spec())
    loaded = load_answerer(path, vocab)
    assert isinstance(loaded, RecallReader) and loaded.reading == Reading(chars=12, mask_name=False)
    for a, b in ((loaded.model, reader), (loaded.recaller, recaller)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    plain = tmp_path / "p.params"
    save_checkpoint(plain, reader, vocab)
    assert type(load_answerer(plain, vocab)) is answering.Answerer
    strange = tmp_path / "s.params"
    save_checkpoint(strange, reader, vocab, answering={"method": "telepathy"})
    assert "answers in a way this kgpt does not know" in one_line_error(load_answerer, strange, vocab)


@pytest.fixture
def recall_model(tiny_data, tmp_path):
    """A tiny recall-recipe model trained from the command line (pretrain, then the reader)."""
    pre, fin = tmp_path / "pre.params", tmp_path / "fin.params"
    assert main(["pretrain", "rope", str(tiny_data.wiki), "--recipe", "recall", "--writing_params_path", str(pre),
                 "--max_epochs", "2", *SIZE, *TINY]) == 0
    assert main(["finetune", "rope", str(tiny_data.wiki), "--recipe", "recall", "--reading_params_path", str(pre),
                 "--writing_params_path", str(fin), "--finetune_corpus_path", str(tiny_data.train),
                 "--max_epochs", "2", *TINY]) == 0
    return pre, fin


def test_recall_recipe_from_the_command_line_evaluate_and_ask(recall_model, tiny_data, tmp_path, capsys):
    pre, fin = recall_model
    ckpt = read_checkpoint(fin)
    assert ckpt.answering == {"method": "recall-read", "chars": RECALL.reading.chars, "mask_name": RECALL.reading.mask_name}
    assert ckpt.config.n_layer == 1 and ckpt.config.n_embd == 16 and ckpt.progress["recipe"] == "recall"
    # The recaller is the pretrained model, unchanged by the reader's finetuning.
    pretrained = read_checkpoint(pre).model_state()
    assert all(torch.equal(ckpt.group(RECALLER)[k], v) for k, v in pretrained.items())
    capsys.readouterr()
    out = tmp_path / "preds.txt"
    assert main(["evaluate", "rope", str(tiny_data.wiki), "--reading_params_path", str(fin), "--eval_corpus_path",
                 str(tiny_data.dev), "--outputs_path", str(out), "--device", "cpu", "--analysis_dir", str(tmp_path / "an")]) == 0
    assert capsys.readouterr().out.startswith("Correct: ")
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(tiny_data.dev_pairs)
    analysis = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert analysis["answering"] == "recall-read" and analysis["pretrained_probe"]  # the recaller is probed
    for r in analysis["questions"]:
        assert r["recall"].startswith(f"{r['name']}.")
        expected = None if r["correct"] else "not in bio" if not r["in_bio"] else "reading" if r["gold"] in r["recall"] else "memory"
        assert r["error"] == expected
    assert "## Recall, then read" in (tmp_path / "an" / "analysis.md").read_text()
    assert main(["ask", "rope", str(tiny_data.wiki), "--reading_params_path", str(fin), "--device", "cpu",
                 "Where was Amélie Durand born?", "--top_k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Where was Amélie Durand born?" and lines[2].startswith("  recall  Amélie Durand.")


@pytest.mark.parametrize("case, expected", [
    ("no pretrained model", "give --reading_params_path"),
    ("finetuned as pretrained", "already a finetuned recall-then-read model"),
])
def test_recall_finetuning_needs_the_pretrained_model(recall_model, tiny_data, tmp_path, capsys, case, expected):
    pre, fin = recall_model
    reading = [] if case == "no pretrained model" else ["--reading_params_path", str(fin)]
    out = tmp_path / "again.params"
    capsys.readouterr()
    assert main(["finetune", "rope", str(tiny_data.wiki), "--recipe", "recall", *reading, "--writing_params_path", str(out),
                 "--finetune_corpus_path", str(tiny_data.train), "--max_epochs", "1", *TINY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert not out.exists()


def test_recall_pretraining_is_label_free_and_bios_only(tiny_data, tmp_path, capsys):
    assert main(["pretrain", "rope", str(tiny_data.wiki), "--recipe", "recall", "--writing_params_path",
                 str(tmp_path / "p.params"), "--question_mix_path", str(tiny_data.train), "--max_epochs", "1", *SIZE, *TINY]) == 1
    assert "pretrains on the corpus alone" in capsys.readouterr().err
    assert not RECALL.mixes_questions


def test_ask_recalls_every_question_in_one_batch(monkeypatch):
    from kgpt.analysis import answer_questions

    vocab = CharVocab.from_text("Where was Ann Lee Bo Li born? Oslo Rome. sang")
    calls = []
    asker = _oracle_reader(monkeypatch, vocab, {"Ann Lee": " Ann Lee was born in Oslo.", "Bo Li": " Bo Li sang."})
    recall = probe.greedy_decode
    monkeypatch.setattr(probe, "greedy_decode", lambda *a, **k: (calls.append(len(a[1])), recall(*a, **k))[1])
    answers = answer_questions(asker, vocab, [], ["Where was Ann Lee born?", "Where was Bo Li born?", "Who is Ann?"], top_k=0)
    assert calls == [2]  # both names at once; the third question cannot be asked and is its own error
    assert [a.recall for a in answers[:2]] == ["Ann Lee. Ann Lee was born in Oslo.", "Bo Li. Bo Li sang."]
    assert "Where was NAME born?" in str(answers[2])
