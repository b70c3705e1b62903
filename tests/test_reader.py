"""The reader of recall-then-read: the one text it reads, its candidate spans, what it
learns from, and extraction scored exactly."""

from __future__ import annotations

import math

import pytest
import torch

from kgpt import recaller
from kgpt.answering import AnswerPolicy, RecallAnswerer
from kgpt.data.corpus import parse_questions
from kgpt.data.reader import ANSWER_ROOM, WORD_TAIL, ReaderSettings, reader_examples
from kgpt.data.words import contains_place, places_in, spans, word_end_from
from kgpt.inference import answer_log_probs
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import CharVocab

BIO = ("Ann Lee. Ann Lee was a painter and printmaker who was born in Frankfurt, Germany, and later "
       "moved to the city of Rome where she taught until her death in 1990.")


def test_the_text_is_cut_after_chars_at_the_end_of_that_word_without_the_opening_name():
    # Character 40 falls inside "printmaker": the text runs on to its end.
    assert BIO[39] == "t" and ReaderSettings(chars=40).text(BIO, "Ann Lee", 128) == "Ann Lee was a painter and printmaker"
    assert ReaderSettings(chars=40, whole_words=False).text(BIO, "Ann Lee", 128) == "Ann Lee was a painter and print"
    assert ReaderSettings(chars=40, mask_name=False).text(BIO, "Ann Lee", 128) == BIO[:45]
    assert ReaderSettings(chars=40).text("Bo Li. Bo Li sang.", "Ann Lee", 128) == "Bo Li. Bo Li sang."  # not this person's opening
    # A place cut at `chars` is read whole: "Frankfurt", not "Frank".
    cut = BIO.index("Frankfurt") + 5
    assert ReaderSettings(chars=cut).text(BIO, "Ann Lee", 128).endswith("born in Frankfurt")


@pytest.mark.parametrize("max_length", [40, 64, 96, 127, 128])
def test_the_text_leaves_the_answer_its_room_without_splitting_a_word(max_length):
    text = ReaderSettings().text(BIO, "Ann Lee", max_length)
    assert len(text) <= max_length - ANSWER_ROOM
    assert BIO.startswith("Ann Lee. " + text) and not BIO[len("Ann Lee. " + text)].isalnum()


@pytest.mark.parametrize("max_length", [64, 96, 127, 128])
@pytest.mark.parametrize("name", ["Ann Lee", "J. R. R. Hale"])
def test_the_reader_trains_on_exactly_the_text_it_reads(monkeypatch, max_length, name):
    """A reader example made from a true bio and the text read off a recall that is that
    bio, word for word, are equal, for every block: one definition serves both."""
    bio = BIO.replace("Ann Lee", name)
    vocab = CharVocab.from_text(bio + f"Where was {name} born?")
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=max_length, n_layer=1, n_head=1, n_embd=8))
    asker = RecallAnswerer(model, model, ReaderSettings())

    def recites(model, prompts, max_new_tokens, stop_id):  # the recaller knows the bio by heart
        cue = vocab.decode(prompts[0])
        return [vocab.encode(bio[len(cue):][:max_new_tokens])]

    monkeypatch.setattr(recaller, "greedy_decode", recites)
    questions = parse_questions(f"Where was {name} born?\tFrankfurt\n")
    (example,) = reader_examples([bio], questions, ReaderSettings(), model.max_length)
    (context,) = asker.contexts(vocab, questions)
    assert context.text == example.text and context.recall == bio[: asker.recall_chars]
    assert len(example.text) + len("Frankfurt") + 2 <= max_length


def test_spans_are_runs_of_whole_words_in_order_of_first_occurrence():
    text = "born in Saint-Étienne, France, of a New York family; lived in France."
    assert spans(text, 1) == ["born", "in", "Saint", "Étienne", "France", "of", "a", "New", "York", "family", "lived"]
    two = spans(text, 2)
    assert "Saint-Étienne" in two and "New York" in two and "France, of" in two and len(two) == len(set(two))
    assert all(len(s) <= ANSWER_ROOM - 2 for s in spans("x" * 40 + " Oslo", 3)) and spans("x" * 40, 1) == []
    assert spans("... ,", 1) == []
    assert contains_place("born in Paris.", "Paris") and not contains_place("born in Parish.", "Paris")
    assert contains_place("of a New York family", "New York") and not contains_place("a Newark family", "New")
    assert places_in("of a New York family, Parish of York", {"New York", "York", "Paris", "Ark"}) == {"New York", "York"}


def test_reader_examples_from_bios_recalls_or_both_and_without_the_place():
    docs = ["Ann Lee. Ann Lee was born in Oslo.", "Bo Li. Bo Li sang.", "Cy Po. Cy Po was born in Lima."]
    questions = parse_questions("Where was Ann Lee born?\tOslo\nWhere was Bo Li born?\tParis\n"
                                "Where was Di Wu born?\tRome\nWhere was Cy Po born?\tLima\n")
    recalls = {"Ann Lee": "Ann Lee. Ann Lee was born in Bergen.", "Bo Li": "Bo Li. Bo Li was born in Paris.",
               "Cy Po": "Cy Po. Cy Po was born in Lima."}
    bios = reader_examples(docs, questions, ReaderSettings(), 128)
    assert [(e.text, e.answer) for e in bios] == [  # Di Wu has no bio: nothing to read
        ("Ann Lee was born in Oslo.", "Oslo"), ("Bo Li sang.", "Paris"), ("Cy Po was born in Lima.", "Lima")]
    recalled = reader_examples(docs, questions, ReaderSettings(learn_from="recalls"), 128, recalls)
    assert [e.text for e in recalled] == ["Ann Lee was born in Bergen.", "Bo Li was born in Paris.", "Cy Po was born in Lima."]
    both = reader_examples(docs, questions, ReaderSettings(learn_from="both"), 128, recalls)
    assert len(both) == 6 and [e.line for e in both] == [1, 1, 2, 2, 4, 4]
    dropped = reader_examples(docs, questions, ReaderSettings(learn_from="both", drop_absent=True), 128, recalls)
    assert [(e.text, e.answer) for e in dropped] == [
        ("Ann Lee was born in Oslo.", "Oslo"), ("Bo Li was born in Paris.", "Paris"),
        ("Cy Po was born in Lima.", "Lima"), ("Cy Po was born in Lima.", "Lima")]
    with pytest.raises(ValueError, match="no recall"):
        reader_examples(docs, questions, ReaderSettings(learn_from="recalls"), 128, {})


def test_swapped_places_are_copied_from_the_text_every_occurrence_whole_words_only():
    docs = ["Ann Lee. Ann Lee was born in Oslo, lived in Oslo and Osloby.", "Bo Li. Bo Li sang.",
            "Cy Po. Cy Po was born in Lima, Peru."]
    questions = parse_questions("Where was Ann Lee born?\tOslo\nWhere was Bo Li born?\tParis\n"
                                "Where was Cy Po born?\tLima\n")
    plain = reader_examples(docs, questions, ReaderSettings(), 128)
    examples = reader_examples(docs, questions, ReaderSettings(swap_places=4), 128, seed=1)
    assert [e for e in examples if e in plain] == plain  # each true example kept, in order
    copies = [e for e in examples if e not in plain]
    expected = {1: "Ann Lee was born in {}, lived in {} and Osloby.", 3: "Cy Po was born in {}, Peru."}
    assert copies and {e.line for e in copies} <= set(expected)  # Bo Li's text names no place: nothing to copy
    for e in copies:  # the other answers and capitalised words, never one the text already holds
        assert e.answer in {"Paris", "Lima", "Ann", "Lee", "Peru", "Osloby", "Oslo"}
        assert e.answer not in expected[e.line].format("", "").split()
        assert e.text == expected[e.line].format(e.answer, e.answer)
    assert examples == reader_examples(docs, questions, ReaderSettings(swap_places=4), 128, seed=1)  # seeded
    assert ReaderSettings(swap_places=2).spec()["swap_places"] == 2 and "swap_places" not in ReaderSettings().spec()


def test_without_swap_words_a_place_is_swapped_only_for_another_training_answer():
    docs = ["Ann Lee. She was born in Oslo in March.", "Bo Li. He was born in Paris.", "Cy Po. Cy Po was born in Lima."]
    questions = parse_questions("Where was Ann Lee born?\tOslo\nWhere was Bo Li born?\tParis\n"
                                "Where was Cy Po born?\tLima\n")
    settings = ReaderSettings(swap_places=6, swap_words=False)
    plain = reader_examples(docs, questions, ReaderSettings(), 128)
    copies = [e for e in reader_examples(docs, questions, settings, 128, seed=3) if e not in plain]
    assert copies and {e.answer for e in copies} <= {"Oslo", "Paris", "Lima"}  # never "She", "March" or "Cy"
    with_words = [e for e in reader_examples(docs, questions, ReaderSettings(swap_places=6), 128, seed=3) if e not in plain]
    assert {e.answer for e in with_words} - {"Oslo", "Paris", "Lima"}  # the default also draws capitalised words
    assert settings.spec()["swap_words"] is False and "swap_words" not in ReaderSettings().spec()
    assert ReaderSettings.from_spec(settings.spec()) == settings


def test_a_short_bio_goes_on_with_another_training_persons_words_up_to_the_text_read():
    docs = ["Ann Lee. Ann Lee was born in Oslo.", "Bo Li. Bo Li sang in Paris and Rome for many years on end.",
            "Cy Po. Cy Po was born in Lima, Peru, and was a potter who made bowls and jugs of clay in Cusco."]
    questions = parse_questions("Where was Ann Lee born?\tOslo\nWhere was Bo Li born?\tParis\nWhere was Cy Po born?\tLima\n")
    settings = ReaderSettings(chars=60, continue_bios=True)
    plain = reader_examples(docs, questions, ReaderSettings(chars=60), 128)
    examples = reader_examples(docs, questions, settings, 128, seed=2)
    assert [e.answer for e in examples] == ["Oslo", "Paris", "Lima"]
    for e, p, doc in zip(examples, plain, docs):
        assert e.text.startswith(p.text)  # the bio itself comes first, whole where it is shorter than the cut
        if len(doc) >= settings.source_chars(128):
            assert e.text == p.text  # a bio as long as the text read is left as it is
        else:
            rest = e.text[len(p.text):]
            assert rest.startswith(" ") and any(rest.strip() in other for other in docs if other != doc)
            assert word_end_from(doc + rest, 60) >= len(doc) + len(rest)  # no further than the text read
    assert examples == reader_examples(docs, questions, settings, 128, seed=2)  # seeded
    assert settings.spec()["continue_bios"] is True and "continue_bios" not in ReaderSettings().spec()
    assert ReaderSettings.from_spec(settings.spec()) == settings


def test_a_recall_of_nothing_but_the_name_gives_no_example():
    """A recaller that has stored nothing may recall only the cue: the reader would read an
    empty text (which the finetuning encoder cannot place), so there is no example."""
    docs = ["Ann Lee. Ann Lee was born in Oslo.", "Bo Li. Bo Li sang in Paris."]
    questions = parse_questions("Where was Ann Lee born?\tOslo\nWhere was Bo Li born?\tParis\n")
    recalls = {"Ann Lee": "Ann Lee.", "Bo Li": "Bo Li. Bo Li sang in Paris."}
    examples = reader_examples(docs, questions, ReaderSettings(learn_from="recalls"), 128, recalls)
    assert [(e.text, e.answer) for e in examples] == [("Bo Li sang in Paris.", "Paris")]


def test_old_checkpoints_read_a_hard_cut_and_write_freely():
    old = {"chars": 100, "mask_name": True}  # before extraction
    assert ReaderSettings.from_spec(old) == ReaderSettings(whole_words=False)
    assert AnswerPolicy.from_spec(old) == AnswerPolicy("write")
    new = {**ReaderSettings(chars=90).spec(), **AnswerPolicy("write", 2).spec()}
    assert (ReaderSettings.from_spec(new), AnswerPolicy.from_spec(new)) == (ReaderSettings(chars=90), AnswerPolicy("write", 2))


@pytest.mark.parametrize("variant", ["rope", "vanilla", "synthesizer", "perceiver"])
def test_extraction_ranks_every_span_by_the_readers_exact_probability(monkeypatch, variant):
    """The extracted answer and the top k are the spans that answer_log_probs, scoring each
    span on its own full row, ranks first; the confidence is that probability."""
    recall = "Ann Lee. Ann Lee was born in Oslo near Bergen, or so New York says."
    vocab = CharVocab.from_text(recall + "Where was born?")
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=96, n_layer=2, n_head=2, n_embd=16, variant=variant,
                          bottleneck_dim=8))
    with torch.no_grad():  # sharpen the random model so the ranking is not a near-tie
        model.head.weight.mul_(40)
    monkeypatch.setattr(recaller, "greedy_decode",
                        lambda m, prompts, n, stop_id: [vocab.encode(recall[len(vocab.decode(p)):][:n]) for p in prompts])
    asker = RecallAnswerer(model, model, ReaderSettings(), AnswerPolicy(max_words=2))
    questions = parse_questions("Where was Ann Lee born?\n")
    contexts = asker.contexts(vocab, questions)
    candidates = spans(contexts[0].text, 2)
    prompt = vocab.encode(contexts[0].text + "⁇")
    exact = answer_log_probs(model, [prompt] * len(candidates), [vocab.encode(c) for c in candidates])
    expected = sorted(zip(candidates, exact), key=lambda cs: -cs[1])[:4]
    ranked = asker.ranked(vocab, contexts, 4)[0]
    assert [c for c, _ in ranked] == [c for c, _ in expected]
    assert all(math.isclose(p, math.exp(lp), rel_tol=1e-4) for (_, p), (_, lp) in zip(ranked, expected))
    (answer,) = asker.answers(vocab, contexts)
    assert answer == ranked[0][0] and answer in candidates
    # the reading part of the confidence is that probability (the recall part is the recaller's: kgpt.confidence)
    assert math.isclose(asker.confidence_parts(vocab, contexts, [answer])[0].reading, ranked[0][1], rel_tol=1e-4)
    writer = RecallAnswerer(model, model, ReaderSettings(), AnswerPolicy("write", max_words=2))
    assert writer.contexts(vocab, questions) == contexts  # the switch changes how it answers, not what it reads


def test_a_text_without_words_gives_an_empty_answer(monkeypatch):
    vocab = CharVocab.from_text("Where was Ann Lee born?. ,")
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))
    monkeypatch.setattr(recaller, "greedy_decode", lambda m, prompts, n, stop_id: [vocab.encode(" . , .")])
    asker = RecallAnswerer(model, model, ReaderSettings())
    contexts = asker.contexts(vocab, parse_questions("Where was Ann Lee born?\n"))
    assert asker.answers(vocab, contexts) == [""] and asker.ranked(vocab, contexts, 3) == [[]]


def test_a_recall_reaches_past_chars_to_finish_its_word():
    assert ReaderSettings().source_chars(256) == 100 + WORD_TAIL and ReaderSettings().source_chars(96) == 96
