"""kgpt export: a checkpoint as a transformers model and tokenizer that compute what kgpt computes."""

from __future__ import annotations

import builtins
import json

import pytest
import torch

from conftest import assert_card_answers_as_kgpt, one_line_error
from kgpt.checkpoint import save_checkpoint
from kgpt.confidence import SIGNALS, Calibration
from kgpt.cli import main
from kgpt.data.corpus import read_questions
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import MASK_ID, PAD_ID, CharVocab

transformers = pytest.importorskip("transformers")
export = pytest.importorskip("kgpt.export")


def _model(vocab: CharVocab, variant: str, seed: int = 0) -> GPT:
    """A small model with weights spread wide enough that no two logits tie."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=2, n_head=2, n_embd=32, variant=variant,
                          embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


@pytest.mark.parametrize("variant", ["vanilla", "rope"])
def test_exported_logits_equal_kgpts(tiny_data_shared, variant):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    model = _model(vocab, variant)
    hf = export.hf_model(model)
    assert type(hf).__name__ == {"vanilla": "GPT2LMHeadModel", "rope": "GPTNeoXForCausalLM"}[variant]
    g = torch.Generator().manual_seed(1)
    for length in (1, 7, 64):
        idx = torch.randint(0, len(vocab), (3, length), generator=g)
        with torch.no_grad():
            ours, theirs = model(idx)[0], hf(idx).logits
        assert theirs.shape == ours.shape
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_rotary_order_pairs_kgpts_adjacent_dimensions_as_halves():
    assert export.rotary_order(6).tolist() == [0, 2, 4, 1, 3, 5]


def test_the_tokenizer_round_trips_every_character_of_the_corpus(tiny_data_shared):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    tok = export.hf_tokenizer(vocab)
    text = "".join(vocab.itos[2:]) + tiny_data_shared.wiki_text + "⁇□"
    ids = tok(text).input_ids
    assert ids == vocab.encode(text, where="test")
    assert tok.decode(ids) == text
    assert (tok.pad_token, tok.pad_token_id, tok.mask_token, tok.mask_token_id) == ("□", 0, "⁇", MASK_ID)


def test_the_exported_tokenizer_decodes_spaces_before_punctuation_as_kgpt_does(tmp_path):
    """Bios write " ." and " ,"; a tokenizer that cleans up tokenization spaces (a default
    that changed between transformers releases) decodes them as "." and ",". The export
    turns it off in its saved config, so whichever release loads it decodes what kgpt does."""
    text = "Ann Lee , a poet , was born in Oslo . Why Oslo ? Nobody knows ."
    vocab = CharVocab.from_text(text)
    export.hf_tokenizer(vocab).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))["clean_up_tokenization_spaces"] is False
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ids = tok(text).input_ids
    assert ids == vocab.encode(text, where="test")
    assert tok.decode(ids) == vocab.decode(ids) == text
    assert tok.batch_decode([ids[:9], ids]) == [vocab.decode(ids[:9]), text]


@pytest.mark.parametrize("variant", ["vanilla", "rope"])
def test_transformers_alone_answers_as_kgpt_evaluate_does(tiny_data_shared, tmp_path, capsys, variant):
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    ckpt = tmp_path / f"{variant}.params"
    save_checkpoint(ckpt, _model(vocab, variant), vocab, {"stage": "finetune", "recipe": "assignment", "epoch": 3})
    preds = tmp_path / "preds.txt"
    assert main(["evaluate", variant, str(tiny_data_shared.wiki), "--reading_params_path", str(ckpt), "--eval_corpus_path",
                 str(tiny_data_shared.dev), "--outputs_path", str(preds), "--device", "cpu"]) == 0
    out = tmp_path / "hf"
    assert main(["export", "--reading_params_path", str(ckpt), "--hf_dir", str(out),
                 "--eval_corpus_path", str(tiny_data_shared.dev)]) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "Dev accuracy" in card and "out of" not in card and "/6 = " in card and "finetune" in card
    tok = transformers.AutoTokenizer.from_pretrained(out)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    answers = []
    for q in read_questions(tiny_data_shared.dev):
        ids = tok(q.text + "⁇", return_tensors="pt").input_ids
        budget = min(32, 64 - ids.shape[1])
        gen = hf.generate(ids, max_new_tokens=budget, do_sample=False, eos_token_id=tok.mask_token_id,
                          pad_token_id=tok.pad_token_id)
        answers.append(tok.decode(gen[0, ids.shape[1]:]).split("⁇")[0].split("\n")[0])
    assert answers == preds.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("variant", ["perceiver", "synthesizer"])
def test_variants_without_a_transformers_architecture_are_one_line_errors(tmp_path, variant):
    vocab = CharVocab.from_text("abc")
    ckpt = tmp_path / "m.params"
    save_checkpoint(ckpt, GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=2, n_head=1, n_embd=8,
                                        variant=variant)), vocab)
    message = one_line_error(export.export, ckpt, tmp_path / "hf")
    assert variant in message and "vanilla (as GPT-2" in message and "rope (as GPT-NeoX" in message
    assert not (tmp_path / "hf").exists()


def test_an_existing_directory_is_never_overwritten(tmp_path):
    vocab = CharVocab.from_text("abc")
    ckpt = tmp_path / "m.params"
    save_checkpoint(ckpt, GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=1, n_head=1, n_embd=8)), vocab)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert "not an empty directory" in one_line_error(export.export, ckpt, out)
    assert (out / "mine.txt").read_text() == "keep" and len(list(out.iterdir())) == 1


def test_without_transformers_the_export_says_how_to_install(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_hf(name, *a, **k):
        if name in ("transformers", "tokenizers"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_hf)
    assert main(["export", "--reading_params_path", str(tmp_path / "x"), "--hf_dir", str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0] and "[hf]" in err[0]


def _recall_checkpoint(tmp_path, settings: dict, policy: dict, calibration: Calibration | None = None):
    """A recall-then-read checkpoint of two small random RoPE models: (path, vocab, reader, recaller)."""
    from kgpt.answering import AnswerPolicy, RecallAnswerer
    from kgpt.checkpoint import RECALLER
    from kgpt.data.reader import ReaderSettings

    vocab = CharVocab.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,-'Where born?")
    reader, recaller = _model(vocab, "rope", 0), _model(vocab, "rope", 1)
    ckpt = tmp_path / "r.params"
    answering = RecallAnswerer(reader, recaller, ReaderSettings(chars=30, **settings), AnswerPolicy(**policy), calibration)
    save_checkpoint(ckpt, reader, vocab, {}, {f"{RECALLER}.{k}": v for k, v in recaller.state_dict().items()},
                    answering.spec())
    return ckpt, vocab, reader, recaller


@pytest.mark.parametrize("settings, policy", [({}, {"max_words": 1}), ({}, {"max_words": 2, "answer_by": "write"}),
                                              ({"whole_words": False}, {}), ({}, {"recall_beams": 3})])
def test_a_recall_checkpoint_exports_both_models_and_a_card_that_answers_as_kgpt_does(tmp_path, settings, policy):
    ckpt, vocab, reader, recaller = _recall_checkpoint(tmp_path, settings, policy)
    out = export.export(ckpt, tmp_path / "hf")
    idx = torch.randint(0, len(vocab), (2, 9))
    for sub, model in (("", reader), ("recaller", recaller)):
        hf = transformers.AutoModelForCausalLM.from_pretrained(out / sub).eval()
        with torch.no_grad():
            torch.testing.assert_close(hf(idx).logits, model(idx)[0], atol=1e-5, rtol=0)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "recall-then-read" in card
    assert_card_answers_as_kgpt(out, ckpt, vocab, ("Ann Lee", "J. R. Hale", "Bo"))


@pytest.mark.parametrize("signal", SIGNALS)
def test_the_cards_calibrated_confidence_is_kgpts_for_every_signal(tmp_path, signal):
    ckpt, vocab, _, _ = _recall_checkpoint(tmp_path, {}, {}, Calibration((0.3, 0.8, 1.7), 0.5, 0.2, signal))
    out = export.export(ckpt, tmp_path / "hf")
    assert_card_answers_as_kgpt(out, ckpt, vocab, ("Ann Lee", "Bo"))


@pytest.mark.parametrize("beams", [2, 3, 5])
def test_beam_recall_finds_what_transformers_beam_search_finds(tmp_path, beams):
    """kgpt's beam search is written to decode as ``generate(num_beams=…,
    length_penalty=0.0, eos_token_id=STOP)`` does, so that the exported recaller recalls
    the same text: checked against transformers itself. A random recaller seldom writes
    ⁇, so the stops here are also the characters it writes most (PAD aside)."""
    from collections import Counter

    from kgpt.inference import beam_decode, greedy_decode

    ckpt, vocab, _, recaller = _recall_checkpoint(tmp_path, {}, {"recall_beams": beams})
    hf = transformers.AutoModelForCausalLM.from_pretrained(export.export(ckpt, tmp_path / "hf") / "recaller").eval()
    prompts = [vocab.encode(s) for s in ("Ann Lee.", "Bo.", "J. R. Hale.", "Where", "a", "Ed Ray.", "Zoe Q.")]
    budgets = [20, 25, 15, 30, 40, 35, 12]
    written = Counter(i for out in greedy_decode(recaller, prompts, 40, stop_id=-1) for i in out if i != PAD_ID)
    lengths = []
    for stop in [MASK_ID] + [i for i, _ in written.most_common(4)]:
        ours = beam_decode(recaller, prompts, budgets, beams, stop_id=stop, batch_size=2 * beams)  # two prompts a batch
        for prompt, budget, got in zip(prompts, budgets, ours):
            with torch.no_grad():
                ids = hf.generate(torch.tensor([prompt]), max_new_tokens=budget, num_beams=beams, length_penalty=0.0,
                                  early_stopping=False, eos_token_id=stop, pad_token_id=stop, do_sample=False)
            theirs = ids[0, len(prompt):].tolist()
            assert got == (theirs[: theirs.index(stop)] if stop in theirs else theirs), (vocab.decode(prompt), stop)
            lengths.append(len(got) < budget)
    assert any(lengths) and not all(lengths), "every recall stopped, or none did: the stop went untested"
