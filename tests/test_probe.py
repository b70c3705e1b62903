"""Storage probes (cued completion, free recall) and the one parser of names they share."""

from __future__ import annotations

import itertools
import math

import torch

from kgpt import probe, recaller
from kgpt.data.corpus import asked_name, bio_name, bios_by_name, parse_questions, person_bio
from kgpt.data.knowledge import END_OF_BIO
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import CharVocab

BIOS = [
    "Ada Quill. Ada Quill was born in Paris and moved to Rome.",
    "Bo Venn. Born in Oslo, Bo Venn became a poet.",
    "Cy Dorn. Cy Dorn is a singer.",  # names no birthplace: cannot be probed
    "J. R. Hale. Born in Lima, Hale sailed.",  # initials: the name runs to the last ". "
]
ASKED = ("Where was Ada Quill born?\tParis\nWhere was Bo Venn born?\tOslo\nWhere was Cy Dorn born?\tLima\n"
         "Where was Di Ro born?\tKyiv\nWhere was J. R. Hale born?\tLima\n")


def _vocab() -> CharVocab:
    return CharVocab.from_text("\n".join(BIOS) + "LimaKyivDi Ro")


def test_a_bio_name_skips_initials_and_needs_the_opening_layout():
    assert bio_name("J. R. Hale. Born in Lima.") == "J. R. Hale"
    assert bio_name("Ann Lee. Ann Lee was.") == "Ann Lee"
    assert bio_name("A. B. ") is None  # only initials: no name
    assert bio_name("no name layout") is None
    assert bio_name("x" * 70 + ". late") is None  # too long to be a name
    assert asked_name("Where was J. R. Hale born?") == "J. R. Hale"
    assert asked_name("Who was J. R. Hale?") is None
    bios = bios_by_name(BIOS + ["Bo Venn. Bo Venn sang."])
    assert person_bio(bios, "J. R. Hale", "Lima") == BIOS[3]
    assert person_bio(bios, "Bo Venn") == BIOS[1] and person_bio(bios, "Bo Venn", "Rome") is None
    assert person_bio(bios, None) is None


def test_cued_completion_probes_each_bio_just_before_the_place(monkeypatch):
    vocab = _vocab()
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))
    seen = []

    def oracle(model, prompts, max_new_tokens, stop_id):  # recites Paris, gets Oslo and Lima wrong
        seen.extend(vocab.decode(p) for p in prompts)
        return [vocab.encode("Paris and" if vocab.decode(p).endswith("born in ") else "Limas") for p in prompts]

    monkeypatch.setattr(probe, "greedy_decode", oracle)
    result = probe.cued_completions(model, vocab, BIOS, parse_questions(ASKED))
    assert seen == ["Ada Quill. Ada Quill was born in ", "Bo Venn. Born in ", "J. R. Hale. Born in "]
    assert result.found == [True, False, None, None, False]  # "Limas" does not open with Lima as a word
    assert result.tally() == probe.Storage(stored=1, probed=3, total=5, chance=0)


def test_free_recall_looks_for_the_place_after_the_cue_as_whole_words(monkeypatch):
    vocab = CharVocab.from_text("\n".join(BIOS) + "LimaKyivDi Roshm")
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))
    seen = []
    recalled = {"Ada Quill.": " Born in Parish, a poet.",  # "Paris" only inside another word
                "Bo Venn.": " Born in Oslo and Paris, a poet.",
                "J. R. Hale.": " Hale sang."}

    def oracle(model, prompts, max_new_tokens, stop_id):
        assert stop_id == END_OF_BIO  # a recall ends where the recaller marks the bio's end
        seen.append(vocab.decode(prompts[0]))
        return [vocab.encode(recalled[vocab.decode(p)]) for p in prompts]

    monkeypatch.setattr(recaller, "greedy_decode", oracle)
    bios = BIOS[:3] + ["Lima Hale. Lima Hale sang.", "J. R. Hale. Born in Lima, Hale sailed."]
    result = probe.free_recalls(model, vocab, bios, parse_questions(ASKED), chars=60)
    # Only people whose bio names the place are probed: Cy Dorn's does not, Di Ro has none.
    assert result.found == [False, True, None, None, False]
    # Bo Venn's recall shows Oslo (his own) and Paris (Ada's): one of the 2 others' places.
    assert result.chance == [0.0, 0.5, None, None, 0.0]
    assert result.tally() == probe.Storage(stored=1, probed=3, total=5, chance=0.5)


def test_the_place_in_the_name_is_not_recalled(monkeypatch):
    vocab = CharVocab.from_text("Where was Lima Hale born?\tLima. sang in")
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))
    asked = parse_questions("Where was Lima Hale born?\tLima\n")
    bios = ["Lima Hale. Lima Hale sang in Lima."]
    for recalled, found in ((" Lima Hale sang.", False),  # only the name repeated: not recalled
                            (" He sang.", False),  # the cue's own "Lima" does not count
                            (" Lima Hale sang in Lima.", True)):  # the place itself, beside the name
        monkeypatch.setattr(recaller, "greedy_decode", lambda m, prompts, n, stop_id, r=recalled: [vocab.encode(r)])
        assert probe.free_recalls(model, vocab, bios, asked, chars=60).found == [found], recalled


def test_chance_is_the_exact_mean_over_every_pairing():
    """Hand-computed: four people; each output's share of the other three's places."""
    own = ["Oslo", "Oslo", "Rome", "Lima"]
    shown = [{"Oslo"}, {"Rome", "Lima"}, set(), {"Oslo", "Lima"}]
    # 0: the other Oslo person, 1 of 3; 1: Rome and Lima, 2 of 3; 2: none; 3: both Oslo people, 2 of 3.
    assert probe.chance_shares(own, shown) == [1 / 3, 2 / 3, 0.0, 2 / 3]
    assert probe.chance_shares(["Oslo"], [{"Oslo"}]) == [0.0]  # no one else to be paired with
    # The mean over all pairings, enumerated: every assignment of a partner j != i to each i.
    n = len(own)
    total = counted = 0
    for partners in itertools.product(*[[j for j in range(n) if j != i] for i in range(n)]):
        total += sum(own[j] in shown[i] for i, j in enumerate(partners))
        counted += 1
    assert math.isclose(total / counted, sum(probe.chance_shares(own, shown)))


def test_cued_chance_counts_another_persons_place_the_completion_opens_with(monkeypatch):
    vocab = _vocab()
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=1, n_head=1, n_embd=8))
    # Everybody is completed with "Paris": Ada's own place; for Bo Venn and Hale one of 2 others' (Ada's).
    monkeypatch.setattr(probe, "greedy_decode", lambda m, prompts, n, stop_id: [vocab.encode("Paris.")] * len(prompts))
    result = probe.cued_completions(model, vocab, BIOS, parse_questions(ASKED))
    assert result.found == [True, False, None, None, False]
    assert result.chance == [0.0, 0.5, None, None, 0.5]
    assert result.tally().chance == 1.0


def test_probes_tell_a_model_that_memorised_bios_from_one_that_did_not():
    vocab = _vocab()
    questions = parse_questions(ASKED)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=2, n_head=2, n_embd=64,
                          embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    assert probe.cued_completions(model, vocab, BIOS, questions).tally().stored == 0
    assert probe.free_recalls(model, vocab, BIOS, questions, 60).tally().stored == 0
    ids = [vocab.encode(b + "\n") for b in BIOS]
    x = torch.zeros(len(ids), 64, dtype=torch.long)
    for i, row in enumerate(ids):
        x[i, : len(row)] = torch.tensor(row)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(200):
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        opt.step()
        opt.zero_grad()
    # Stored: all three. By chance (each scored against another's place): none of these bios
    # names another person's birthplace where the probe looks.
    assert probe.cued_completions(model, vocab, BIOS, questions).tally() == probe.Storage(3, 3, 5, 0)
    assert probe.free_recalls(model, vocab, BIOS, questions, 60).tally() == probe.Storage(3, 3, 5, 0)
