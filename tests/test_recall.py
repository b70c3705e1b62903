"""The recall recipe: reading examples, recall-then-read answering, its checkpoint, the CLI."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest
import torch

from conftest import FOUR_BIOS, one_line_error
from kgpt import answering, pipeline, recaller
from kgpt.answering import AnswerPolicy, RecallAnswerer, load_answerer
from kgpt.checkpoint import RECALLER, load_model, read_checkpoint, save_checkpoint
from kgpt.cli import main
from kgpt.data.corpus import parse_questions
from kgpt.asking import answer_questions
from kgpt.data.reader import WORD_TAIL, ReaderSettings
from kgpt.data.words import spans
from kgpt.model import GPT, GPTConfig
from kgpt.pipeline import Corpus
from kgpt.training.recipe import RECALL
from kgpt.vocab import CharVocab

TINY = ["--batch_size", "8", "--no_progress", "--device", "cpu"]
SIZE = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16"]  # pretraining sets the size; finetuning keeps it


def _oracle_reader(monkeypatch, vocab, recalled: dict[str, str], settings: ReaderSettings = ReaderSettings(chars=40),
                   policy: AnswerPolicy = AnswerPolicy()) -> RecallAnswerer:
    """A RecallAnswerer whose recaller 'recalls' the given text after each cue."""
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))

    def recall(model, prompts, max_new_tokens, stop_id):
        return [vocab.encode(recalled[vocab.decode(p)[:-1]]) for p in prompts]

    monkeypatch.setattr(recaller, "greedy_decode", recall)
    return RecallAnswerer(model, model, settings, policy)


def test_the_reader_reads_what_was_recalled_from_the_name(monkeypatch):
    vocab = CharVocab.from_text("Where was Ann Lee Bo Li born? Oslo Rome. sang" + "J.R")
    asker = _oracle_reader(monkeypatch, vocab, {"Ann Lee": " Ann Lee was born in Oslo.", "Bo Li": " Bo Li sang."})
    questions = parse_questions("Where was Ann Lee born?\nWhere was Bo Li born?\nWhere was Ann Lee born?\n")
    contexts = asker.contexts(vocab, questions)
    assert [c.text for c in contexts] == ["Ann Lee was born in Oslo.", "Bo Li sang.", "Ann Lee was born in Oslo."]
    assert contexts[1].recall == "Bo Li. Bo Li sang."
    bad = parse_questions("Who is Ann?\n")
    message = one_line_error(asker.contexts, vocab, bad, "questions.tsv")
    assert "line 1" in message and "Where was NAME born?" in message


def test_a_recall_is_as_long_as_the_readers_text_can_use():
    vocab = CharVocab.from_text("abc")
    small, large = (GPT(GPTConfig(vocab_size=len(vocab), block_size=b, n_layer=1, n_head=1, n_embd=8)) for b in (64, 256))
    assert RecallAnswerer(small, small, ReaderSettings(chars=100)).recall_chars == 64  # all the block holds: the cut comes after
    assert RecallAnswerer(large, large, ReaderSettings(chars=100)).recall_chars == 100 + WORD_TAIL
    assert RecallAnswerer(large, large, ReaderSettings(chars=100, whole_words=False)).recall_chars == 100


@pytest.mark.parametrize("extract", [True, False])
def test_checkpoints_written_with_the_extract_key_load_and_answer_the_same(tmp_path, monkeypatch, extract):
    """Checkpoints from before answer_by say ``extract`` (true or false) instead."""
    vocab = CharVocab.from_text("Where was Ann Lee born? Oslo Rome. sang near in")
    torch.manual_seed(0)
    reader_net, recaller_net = (GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=2, n_embd=16)) for _ in range(2))
    settings, policy = ReaderSettings(chars=40), AnswerPolicy("extract" if extract else "write", 2)
    old_spec = {"method": "recall-read", **settings.spec(), "extract": extract, "max_words": 2}
    old = tmp_path / "old.params"
    save_checkpoint(old, reader_net, vocab, {}, {f"{RECALLER}.{k}": v for k, v in recaller_net.state_dict().items()}, old_spec)
    loaded = load_answerer(old, vocab)
    assert (loaded.settings, loaded.policy) == (settings, policy)
    monkeypatch.setattr(recaller, "greedy_decode",
                        lambda m, prompts, n, stop_id: [vocab.encode(" Ann Lee was born in Oslo near Rome.")] * len(prompts))
    questions = parse_questions("Where was Ann Lee born?\n")
    built = RecallAnswerer(reader_net, recaller_net, settings, policy)
    contexts = built.contexts(vocab, questions)
    assert loaded.contexts(vocab, questions) == contexts
    assert loaded.replies(vocab, contexts, 3) == built.replies(vocab, contexts, 3)
    assert loaded.spec() == built.spec() and "extract" not in built.spec()  # saved again, in the current keys


def test_a_recall_checkpoint_holds_both_models_and_how_to_answer(tmp_path):
    vocab = CharVocab.from_text("abc")
    reader, recaller = (GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=1, n_head=1, n_embd=8)) for _ in range(2))
    asker = RecallAnswerer(reader, recaller, ReaderSettings(chars=12, mask_name=False), AnswerPolicy(max_words=2))
    path = tmp_path / "r.params"
    save_checkpoint(path, reader, vocab, {}, {f"{RECALLER}.{k}": v for k, v in recaller.state_dict().items()}, asker.spec())
    loaded = load_answerer(path, vocab)
    assert isinstance(loaded, RecallAnswerer) and loaded.settings == ReaderSettings(chars=12, mask_name=False)
    assert loaded.policy == AnswerPolicy(max_words=2)
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


def test_a_reader_finetuned_with_dropout_trains_with_it_and_leaves_the_recaller_as_pretrained(recall_model, tiny_data,
                                                                                                tmp_path):
    # The recall recipe pretrains without dropout; a finetuning stage's dropout applies to
    # the reader alone: its training draws masks (another reader than without), while the
    # recaller in the same file keeps the pretrained weights.
    pre, _ = recall_model
    readers = {}
    for rate in (None, 0.3):
        recipe = replace(RECALL, finetune=replace(RECALL.finetune, dropout=rate))
        out = tmp_path / f"reader-{rate}.params"
        opts = pipeline.RunOptions(device="cpu", recipe=recipe, progress=False, batch_size=8, checkpoint_every=0)
        pipeline.finetune("rope", tiny_data.wiki, out, tiny_data.train, reading_params_path=pre, max_epochs=2, opts=opts)
        readers[rate] = read_checkpoint(out)
    pretrained = read_checkpoint(pre)
    assert pretrained.config.attn_pdrop == 0.0 and readers[None].config.attn_pdrop == 0.0
    assert (readers[0.3].config.embd_pdrop, readers[0.3].config.attn_pdrop, readers[0.3].config.resid_pdrop) == (0.3,) * 3
    recalled = readers[0.3].group(RECALLER)
    assert all(torch.equal(recalled[k], v) for k, v in pretrained.model_state().items())
    assert not all(torch.equal(readers[0.3].model_state()[k], v) for k, v in readers[None].model_state().items())


def test_recall_recipe_from_the_command_line_evaluate_and_ask(recall_model, tiny_data, tmp_path, capsys, monkeypatch):
    pre, fin = recall_model
    ckpt = read_checkpoint(fin)
    # The reader's spans are as long as the longest training place (one word in the tiny data).
    assert ckpt.answering == {"method": "recall-read", **RECALL.reader_settings.spec(),
                              **AnswerPolicy(max_words=1, recall_beams=RECALL.recall_beams).spec()}
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
        assert r["recall"].startswith(f"{r['name']}.") and r["reader_text"] in r["recall"]
        assert r["prediction"] in spans(r["reader_text"], 1) or (r["prediction"] == "" and not spans(r["reader_text"], 1))
        read_words = re.findall(r"\w+", r["reader_text"])
        expected = None if r["correct"] else "not in bio" if not r["in_bio"] else "reading" if r["gold"] in read_words else "recall"
        assert r["error"] == expected
    assert "## Recall, then read" in (tmp_path / "an" / "analysis.md").read_text()
    assert main(["ask", "rope", str(tiny_data.wiki), "--reading_params_path", str(fin), "--device", "cpu",
                 "Where was Amélie Durand born?", "--top_k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Where was Amélie Durand born?" and lines[2].startswith('  recall  "Amélie Durand.')
    answer, top = lines[1].split()[1], lines[3].split()
    assert top[:2] == ["top", "1"] and top[3] == answer  # the answer is the first of its own top k
    for flag in ("--answer_by", "--read"):  # --read: the flag's earlier name, still accepted
        assert main(["ask", "rope", str(tiny_data.wiki), "--reading_params_path", str(fin), "--device", "cpu",
                     "Where was Amélie Durand born?", "--top_k", "0", flag, "write"]) == 0
        assert capsys.readouterr().out.splitlines()[2] == lines[2]  # the same recall, read by writing

    def no_beams(*a, **k):
        raise AssertionError("a beam search where --recall_beams 1 asked for greedy recall")

    monkeypatch.setattr(recaller, "beam_decode", no_beams)  # the recipe's checkpoint recalls by beam search,
    assert main(["ask", "rope", str(tiny_data.wiki), "--reading_params_path", str(fin), "--device", "cpu",
                 "Where was Amélie Durand born?", "--top_k", "0", "--recall_beams", "1"]) == 0  # unless told otherwise
    with pytest.raises(AssertionError, match="a beam search"):
        main(["ask", "rope", str(tiny_data.wiki), "--reading_params_path", str(fin), "--device", "cpu",
              "Where was Amélie Durand born?", "--top_k", "0"])
    with pytest.raises(SystemExit):
        main(["ask", "--help"])
    shown = capsys.readouterr().out
    assert "--answer_by" in shown and "--read " not in shown  # the old name is accepted, not offered


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
    vocab = CharVocab.from_text("Where was Ann Lee Bo Li born? Oslo Rome. sang")
    calls = []
    asker = _oracle_reader(monkeypatch, vocab, {"Ann Lee": " Ann Lee was born in Oslo.", "Bo Li": " Bo Li sang."})
    recall = recaller.greedy_decode
    monkeypatch.setattr(recaller, "greedy_decode", lambda *a, **k: (calls.append(len(a[1])), recall(*a, **k))[1])
    answers = answer_questions(asker, vocab, [], ["Where was Ann Lee born?", "Where was Bo Li born?", "Who is Ann?"], top_k=0)
    assert calls == [2]  # both names at once; the third question cannot be asked and is its own error
    assert [a.recall for a in answers[:2]] == ["Ann Lee. Ann Lee was born in Oslo.", "Bo Li. Bo Li sang."]
    assert "Where was NAME born?" in str(answers[2])


def test_ask_scores_each_span_once_and_shows_the_top_ones_own_probability(monkeypatch):
    vocab = CharVocab.from_text("Where was Ann Lee Bo Li born? Oslo Rome. sang near")
    recalled = {"Ann Lee": " Ann Lee was born in Oslo near Rome.", "Bo Li": " Bo Li sang in Rome."}
    asker = _oracle_reader(monkeypatch, vocab, recalled, ReaderSettings(chars=40), AnswerPolicy(max_words=2))
    calls = {"continuation_log_probs": 0, "answer_log_probs": 0}
    for name in calls:
        scorer = getattr(answering, name)
        monkeypatch.setattr(answering, name, lambda *a, _f=scorer, _n=name, **k: (calls.__setitem__(_n, calls[_n] + 1), _f(*a, **k))[1])
    questions = ["Where was Ann Lee born?", "Where was Bo Li born?"]
    answers = answer_questions(asker, vocab, [], questions, top_k=3)
    assert calls == {"continuation_log_probs": 1, "answer_log_probs": 0}  # every span of both texts, once
    for a in answers:
        assert len(a.alternatives) == 3 and a.answer == a.alternatives[0][0]
        assert a.reading_confidence == a.alternatives[0][1]  # the same number, not a second scoring of it
        assert math.isclose(a.confidence, a.recall_confidence * a.reading_confidence, rel_tol=1e-9)  # uncalibrated
    assert [a.answer for a in answers] == asker.answers(vocab, asker.contexts(vocab, parse_questions("\n".join(questions))))
    calls.update(dict.fromkeys(calls, 0))
    (alone,) = answer_questions(asker, vocab, [], questions[:1], top_k=0)
    assert calls == {"continuation_log_probs": 1, "answer_log_probs": 0} and alone.alternatives == []
    assert alone.answer == answers[0].answer and alone.reading_confidence == answers[0].reading_confidence


def test_the_end_marked_recipe_recalls_each_bio_and_stops_where_it_ends(tmp_path):
    # The same tiny recaller memorises four one-sentence bios with and without end marks:
    # with them, each recall is its bio, exactly; without, it writes on past the end.
    wiki = tmp_path / "wiki.txt"
    wiki.write_text(FOUR_BIOS, encoding="utf-8")
    bios = FOUR_BIOS.splitlines()
    names = [b.split(".")[0] for b in bios]
    recalled = {}
    for name in ("recall", "recall-end-marked"):
        params = tmp_path / f"{name}.params"
        assert main(["pretrain", "rope", str(wiki), "--recipe", name, "--writing_params_path", str(params),
                     "--max_epochs", "150", "--pretrain_lr", "3e-3", "--n_layer", "2", "--n_head", "2", "--n_embd", "64",
                     "--batch_size", "4", "--checkpoint_every", "0", "--no_progress", "--device", "cpu", "--seed", "0"]) == 0
        vocab = Corpus.load(wiki).vocab
        model, _ = load_model(params, vocab)
        recalled[name] = recaller.recall(model.eval(), vocab, names, 80)
    assert recalled["recall-end-marked"] == bios
    assert all(r.startswith(b) and len(r) == 80 for r, b in zip(recalled["recall"], bios))
