"""The knowledge recipe: its pretraining stream, its command line, its study cells."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import one_line_error

from kgpt.cli import main
from kgpt.data.corpus import Question, name_prefix_length
from kgpt.data.knowledge import END_OF_BIO, KnowledgeBatcher, QuestionMix
from kgpt.data.questions import encode_questions
from kgpt.training.recipe import KNOWLEDGE
from kgpt.vocab import MASK_CHAR, MASK_ID, PAD_CHAR, CharVocab

BLOCK = 32
LONG = "Ann Lee. " + "".join(f"w{i:02d} " for i in range(40)) + "."  # 170 characters, past the block
SHORT = "Bo Li. Bo Li was born in Oslo ."
NO_NAME = "a line without the name layout"
QUESTIONS = [Question("Where was Bo Li born?", "Oslo", 1), Question("Where was Ann Lee born?", "Rome", 2)]


def _vocab() -> CharVocab:
    return CharVocab.from_text("\n".join([LONG, SHORT, NO_NAME, *(q.text + q.answer for q in QUESTIONS)]))


def _decode(vocab: CharVocab, ids: torch.Tensor) -> str:
    return vocab.decode(ids.tolist())


def test_name_prefix_is_the_text_up_to_the_first_period_and_space():
    assert LONG[: name_prefix_length(LONG)] == "Ann Lee. "
    assert SHORT[: name_prefix_length(SHORT)] == "Bo Li. "
    assert name_prefix_length(NO_NAME) == 0


def test_an_epoch_is_every_bio_once_and_every_question_qa_repeats_times():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG, SHORT, NO_NAME], QUESTIONS, vocab, BLOCK, QuestionMix(qa_repeats=3))
    assert len(b) == 3 + 3 * 2
    assert len(KnowledgeBatcher([LONG, SHORT], QUESTIONS, vocab, BLOCK, QuestionMix(qa_repeats=0))) == 2


def test_question_rows_are_the_finetuning_pairs():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG, SHORT], QUESTIONS, vocab, BLOCK, QuestionMix(qa_repeats=2))
    x, y = b.sample(torch.tensor([2, 3, 4, 5]))
    qx, qy = encode_questions(QUESTIONS, vocab, BLOCK)
    assert torch.equal(x, torch.cat([qx, qx])) and torch.equal(y, torch.cat([qy, qy]))
    assert _decode(vocab, x[0]).startswith("Where was Bo Li born?" + MASK_CHAR + "Oslo" + MASK_CHAR)


def test_bio_rows_are_next_character_prediction_on_the_name_then_a_window_of_the_bio():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG, SHORT, NO_NAME], QUESTIONS, vocab, BLOCK, QuestionMix())
    x, y = b.sample(torch.tensor([0, 1, 2] * 1000), torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (3000, BLOCK - 1)
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    offsets = []
    for row in range(0, 3000, 3):
        long_text = _decode(vocab, torch.cat([x[row, :1], y[row]]))
        assert long_text.startswith("Ann Lee. ") and len(long_text) == BLOCK
        body = long_text[len("Ann Lee. "):]
        offsets.append(LONG.index(body, len("Ann Lee. ")) - len("Ann Lee. "))  # a window of the text after the name
        # Short bios are the whole bio, then PAD; a line without "NAME. " is windowed from its start.
        assert _decode(vocab, torch.cat([x[row + 1, :1], y[row + 1]])) == (SHORT + PAD_CHAR * BLOCK)[:BLOCK]
        assert _decode(vocab, torch.cat([x[row + 2, :1], y[row + 2]])) == (NO_NAME + PAD_CHAR * BLOCK)[:BLOCK]
    # The bio's start about half the time; otherwise any window that ends inside the bio.
    spare = len(LONG) - BLOCK
    assert 0.4 < offsets.count(0) / len(offsets) < 0.6
    assert min(offsets) == 0 and max(offsets) == spare and len(set(offsets)) > spare * 0.9


def test_name_windows_put_every_word_of_the_bio_right_after_the_name():
    vocab = _vocab()
    mix = QuestionMix(qa_repeats=1, name_windows=2, name_window_chars=10)
    b = KnowledgeBatcher([LONG, SHORT], QUESTIONS, vocab, BLOCK, mix)
    assert len(b) == 2 * (1 + 2) + 2  # full bios, two windows of each, the questions
    index = torch.tensor([2, 3, 4, 5] * 300)  # the window rows: bio 0, bio 1, bio 0, bio 1
    x, y = b.sample(index, torch.Generator().manual_seed(3))
    starts = {0: set(), 1: set()}
    for row in range(len(index)):
        doc = (LONG, SHORT)[row % 2]
        prefix = doc[: name_prefix_length(doc)]
        text = _decode(vocab, torch.cat([x[row, :1], y[row]])).rstrip(PAD_CHAR)
        assert text.startswith(prefix)
        window = text[len(prefix):]
        assert 0 < len(window) <= 10
        start = doc.index(window, len(prefix)) - len(prefix)
        assert start == 0 or doc[len(prefix) + start - 1] == " "  # a window opens at a word
        assert len(window) == min(10, len(doc) - len(prefix) - start)  # and runs its length, or to the end
        starts[row % 2].add(start)
    words = lambda doc: 1 + doc[name_prefix_length(doc):].rstrip(" ").count(" ")
    assert len(starts[0]) == words(LONG) and len(starts[1]) == words(SHORT)  # every word gets its turn
    # The rows after the windows are still the questions.
    qx, _ = encode_questions(QUESTIONS, vocab, BLOCK)
    assert torch.equal(b.sample(torch.tensor([6, 7]))[0], qx)


def test_bio_chars_cuts_every_bio_example():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG, SHORT], [], vocab, BLOCK, QuestionMix(bio_chars=12))
    x, y = b.sample(torch.tensor([0, 1] * 200), torch.Generator().manual_seed(4))
    texts = [_decode(vocab, torch.cat([x[i, :1], y[i]])).rstrip(PAD_CHAR) for i in range(400)]
    assert all(len(t) == 12 for t in texts)
    assert all(t.startswith("Ann Lee. ") and t[9:] in LONG[9:] for t in texts[::2])
    assert all(t.startswith("Bo Li. ") and t[7:] in SHORT[7:] for t in texts[1::2])
    assert SHORT[:12] in texts[1::2] and LONG[:12] in texts[::2]  # the start, half the time
    assert len(set(texts[::2])) > 20  # and windows over the whole bio otherwise
    no_windows = KnowledgeBatcher([LONG, SHORT], [], vocab, BLOCK, QuestionMix(windows=False, bio_chars=12))
    x, y = no_windows.sample(torch.tensor([0, 1]))
    assert [_decode(vocab, torch.cat([x[i, :1], y[i]])).rstrip(PAD_CHAR) for i in (0, 1)] == [LONG[:12], SHORT[:12]]


def test_without_name_loss_the_first_target_is_the_text_after_the_name():
    vocab = _vocab()
    mix = QuestionMix(qa_repeats=1, windows=False, name_windows=1, name_loss=False)
    b = KnowledgeBatcher([SHORT, NO_NAME], QUESTIONS, vocab, BLOCK, mix)
    x, y = b.sample(torch.tensor([0, 1, 2, 4]), torch.Generator().manual_seed(6))
    for row in (0, 2):  # the bio and its name window: no targets inside "Bo Li. "
        targets = _decode(vocab, y[row])
        assert targets[: len("Bo Li. ") - 1] == PAD_CHAR * (len("Bo Li. ") - 1)
        assert targets[len("Bo Li. ") - 1] != PAD_CHAR and _decode(vocab, x[row]).startswith("Bo Li. ")
    assert _decode(vocab, y[1]).startswith(NO_NAME[1:])  # no name: every character is a target
    assert torch.equal(y[3], encode_questions(QUESTIONS, vocab, BLOCK)[1][0])  # questions unchanged


def test_bio_prompt_replaces_the_opening_name_with_the_prompt():
    vocab = CharVocab.from_text("\n".join([LONG, SHORT, NO_NAME, "Where was born?"]))
    mix = QuestionMix(qa_repeats=0, windows=False, name_windows=1, name_loss=False, bio_prompt="Where was {name} born? ")
    b = KnowledgeBatcher([SHORT, NO_NAME], [], vocab, 64, mix)
    x, y = b.sample(torch.tensor([0, 1, 2]), torch.Generator().manual_seed(7))
    head = "Where was Bo Li born? "
    assert _decode(vocab, x[0]).startswith(head + SHORT[len("Bo Li. "):])
    assert _decode(vocab, x[2]).startswith(head)  # the name window opens with the prompt too
    assert _decode(vocab, y[0]).startswith(PAD_CHAR * (len(head) - 1) + SHORT[len("Bo Li. ")])
    assert _decode(vocab, x[1]).startswith(NO_NAME)  # no name, no prompt


def test_without_windows_a_long_bio_is_its_start():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG], [], vocab, BLOCK, QuestionMix(windows=False))
    x, y = b.sample(torch.zeros(20, dtype=torch.long), torch.Generator().manual_seed(1))
    assert all(_decode(vocab, torch.cat([x[i, :1], y[i]])) == LONG[:BLOCK] for i in range(20))


def test_span_objective_corrupts_the_bios_as_the_assignment_does():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG, SHORT], QUESTIONS, vocab, BLOCK, QuestionMix(bio_objective="span"))
    x, y = b.sample(torch.tensor([0, 1, 0, 1]), torch.Generator().manual_seed(2))
    for row in range(4):
        text = _decode(vocab, torch.cat([x[row, :1], y[row]]))
        assert text.count(MASK_CHAR) == 2  # prefix ⁇ suffix ⁇ masked


def test_same_generator_state_gives_the_same_stream():
    vocab = _vocab()
    b = KnowledgeBatcher([LONG, SHORT], QUESTIONS, vocab, BLOCK, QuestionMix())
    idx = torch.tensor([0, 0, 0, 0, 1, 2])
    a = b.sample(idx, torch.Generator().manual_seed(5))
    c = b.sample(idx, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, c))


FAST = ["--max_epochs", "2", "--no_progress", "--device", "cpu", "--batch_size", "8"]


def test_knowledge_pretraining_from_the_command_line_then_evaluate(tiny_data, tmp_path, capsys):
    params = tmp_path / "k.params"
    rc = main(["pretrain", "rope", str(tiny_data.wiki), "--recipe", "knowledge", "--question_mix_path",
               str(tiny_data.train), "--writing_params_path", str(params), *FAST])
    assert rc == 0, capsys.readouterr().err
    from kgpt.checkpoint import read_checkpoint

    ckpt = read_checkpoint(params)
    assert ckpt.progress["recipe"] == "knowledge"
    assert ckpt.config.embd_pdrop == ckpt.config.attn_pdrop == ckpt.config.resid_pdrop == 0.0
    # An epoch: the 20 bios once and the 14 questions qa_repeats times, in batches of 8.
    assert ckpt.progress["step"] == 2 * math.ceil((20 + KNOWLEDGE.mix.qa_repeats * 14) / 8)
    # The pretrained model answers questions as it is (no finetuning needed to evaluate).
    preds = tmp_path / "p.txt"
    rc = main(["evaluate", "rope", str(tiny_data.wiki), "--reading_params_path", str(params),
               "--eval_corpus_path", str(tiny_data.dev), "--outputs_path", str(preds)])
    assert rc == 0 and len(preds.read_text().splitlines()) == len(tiny_data.dev_pairs)


def test_knowledge_cosine_spans_the_run(tiny_data, tmp_path):
    from kgpt import pipeline
    from kgpt.training.recipe import RUN_WARMUP

    out = tmp_path / "k.params"
    r = pipeline.pretrain("vanilla", tiny_data.wiki, out, max_epochs=3, question_mix_path=tiny_data.train,
                          opts=pipeline.RunOptions(device="cpu", recipe="knowledge", progress=False, batch_size=4))
    # At the 10% floor by the end of this run, not 200 corpus passes later.
    assert r.history[-1]["lr"] == pytest.approx(0.1 * KNOWLEDGE.pretrain.lr)
    assert r.tokens == 3 * (20 + KNOWLEDGE.mix.qa_repeats * 14) * 127
    assert RUN_WARMUP < 0.1


@pytest.mark.parametrize("argv, expected", [
    (["--recipe", "knowledge"], "give --question_mix_path"),
    (["--question_mix_path", "TRAIN"], "question mix of --recipe knowledge"),
])
def test_flags_that_do_not_fit_the_recipe_are_one_line_errors(tiny_data, tmp_path, capsys, argv, expected):
    params = tmp_path / "k.params"
    argv = [str(tiny_data.train) if a == "TRAIN" else a for a in argv]
    rc = main(["pretrain", "rope", str(tiny_data.wiki), "--writing_params_path", str(params), *FAST, *argv])
    err = capsys.readouterr().err
    assert rc == 1 and expected in err and len(err.strip().splitlines()) == 1
    assert not params.exists()


def test_a_question_with_an_unknown_character_fails_before_training(tiny_data, tmp_path):
    from kgpt import pipeline

    bad = tmp_path / "bad.tsv"
    bad.write_text("Where was Ωmega born?\tLyon\n", encoding="utf-8")
    message = one_line_error(pipeline.pretrain, "rope", tiny_data.wiki, tmp_path / "k.params", max_epochs=1,
                             question_mix_path=bad, opts=pipeline.RunOptions(device="cpu", recipe="knowledge"))
    assert "line 1" in message and str(bad) in message


def test_with_end_mark_a_bio_that_fits_is_followed_by_the_end_and_a_cut_one_is_not():
    vocab = _vocab()
    mix = QuestionMix(qa_repeats=0, windows=False, bio_chars=len(SHORT) + 1, end_mark=True)
    b = KnowledgeBatcher([LONG, SHORT], [], vocab, 64, mix)
    x, y = b.sample(torch.tensor([0, 1]))
    short = y[1].tolist()
    assert short[len(SHORT) - 1] == END_OF_BIO == MASK_ID  # the target after the bio's last character
    assert set(short[len(SHORT):]) <= {vocab.stoi[PAD_CHAR]}
    assert END_OF_BIO not in y[0].tolist()  # LONG is cut at bio_chars: it does not end there
    assert b.lengths.tolist() == [len(SHORT) + 1, len(SHORT) + 1]  # grouping counts the mark
    # one character shorter a cut, and SHORT no longer fits with its mark
    tight = KnowledgeBatcher([SHORT], [], vocab, 64, QuestionMix(qa_repeats=0, windows=False, bio_chars=len(SHORT), end_mark=True))
    assert END_OF_BIO not in tight.sample(torch.tensor([0]))[1][0].tolist()
    without = KnowledgeBatcher([LONG, SHORT], [], vocab, 64, QuestionMix(qa_repeats=0, windows=False, bio_chars=len(SHORT) + 1))
    assert END_OF_BIO not in without.sample(torch.tensor([0, 1]))[1].flatten().tolist()


def test_input_noise_changes_some_inputs_after_the_name_and_never_a_target():
    vocab = _vocab()
    clean = KnowledgeBatcher([LONG, SHORT], [], vocab, 64, QuestionMix(qa_repeats=0, windows=False, end_mark=True))
    noisy = KnowledgeBatcher([LONG, SHORT], [], vocab, 64, QuestionMix(qa_repeats=0, windows=False, end_mark=True,
                                                                         input_noise=0.2))
    idx = torch.tensor([0, 1] * 300)
    x0, y0 = clean.sample(idx, torch.Generator().manual_seed(3))
    x1, y1 = noisy.sample(idx, torch.Generator().manual_seed(3))
    assert torch.equal(y0, y1)  # the targets are the true text
    changed = x0 != x1
    for row, name in ((0, "Ann Lee. "), (1, "Bo Li. ")):
        rows = changed[row::2]
        assert not rows[:, : len(name)].any()  # the name, the recall's cue, stays exact
        text = LONG[:64] if row == 0 else SHORT + MASK_CHAR
        assert not rows[:, len(text) :].any()  # PAD after the text stays PAD
        share = rows[:, len(name) : len(text)].float().mean().item()
        assert 0.1 < share < 0.2  # 20% drawn, a few of them the same character again
        # each replacement is a character of the same text, never the end mark
        assert set(x1[row::2][rows].tolist()) <= set(vocab.encode(text.replace(MASK_CHAR, "")))
    assert (x1[1::2, len(SHORT)] == END_OF_BIO).all() and not (x1[1::2, : len(SHORT)] == END_OF_BIO).any()
    again = noisy.sample(idx, torch.Generator().manual_seed(3))[0]
    assert torch.equal(x1, again)  # drawn from the training generator: a resumed run repeats it
    with pytest.raises(ValueError, match="input_noise"):
        KnowledgeBatcher([SHORT], [], vocab, 64, QuestionMix(input_noise=1.0))


def test_input_noise_on_digits_alone_changes_digits_into_digits():
    dated = "Al Ho. Al Ho (born 30 August 1968 in Oslo) is a boxer ."
    vocab = CharVocab.from_text(dated + "0123456789")
    mix = QuestionMix(qa_repeats=0, windows=False, input_noise=0.5, input_noise_chars="0123456789")
    x, y = KnowledgeBatcher([dated], [], vocab, 64, mix).sample(torch.zeros(400, dtype=torch.long),
                                                                 torch.Generator().manual_seed(8))
    clean = torch.tensor(vocab.encode(dated))
    assert all(vocab.decode(y[i].tolist()).startswith(dated[1:]) for i in range(400))  # targets: the true text
    changed = x[:, : len(dated)] != clean
    digits = torch.tensor([c.isdigit() for c in dated])
    assert not changed[:, ~digits].any()  # only digits change
    assert set(vocab.decode(x[:, : len(dated)][changed].tolist())) <= set("0123456789")
    assert 0.35 < changed[:, digits].float().mean().item() < 0.5  # half drawn, a tenth of them the same digit again
