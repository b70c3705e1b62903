"""Scoring predictions, the London baseline, and the predictions file."""

from __future__ import annotations

import pytest
import torch

from kgpt.checkpoint import save_checkpoint
from kgpt.cli import main
from kgpt.errors import KgptError
from kgpt.evaluate import evaluate_places, score_line
from kgpt.model import GPT, GPTConfig
from kgpt.vocab import CharVocab


def test_evaluate_places_counts_exact_matches(tiny_data):
    gold = [a for _, a in tiny_data.dev_pairs]
    predictions = list(gold)
    predictions[0] = gold[0].lower()  # case matters
    predictions[1] = gold[1] + " "  # so does whitespace
    predictions[2] = "London"
    result = evaluate_places(tiny_data.dev, predictions)
    assert result == (6.0, 3.0)
    assert all(isinstance(v, float) for v in result)
    assert evaluate_places(tiny_data.dev, gold) == (6.0, 6.0)
    assert evaluate_places(tiny_data.dev, ["nowhere"] * 6) == (6.0, 0.0)


def test_evaluate_places_without_gold(tiny_data):
    assert evaluate_places(tiny_data.test_inputs, ["Lyon"] * 6) == (0, 0)


def test_evaluate_places_wrong_number_of_predictions(tiny_data):
    with pytest.raises(KgptError, match="5 predictions for 6"):
        evaluate_places(tiny_data.dev, ["Lyon"] * 5)


def test_score_line():
    assert score_line(25.0, 500.0) == "Correct: 25 out of 500: 5.0%"
    assert score_line(72.0, 500.0) == "Correct: 72 out of 500: 14.4%"
    assert score_line(1.0, 3.0) == "Correct: 1 out of 3: 33.3%"


def test_london_baseline_real_dev(real_data, tmp_path, capsys):
    out = tmp_path / "london.txt"
    rc = main(["london-baseline", "--eval_corpus_path", str(real_data / "birth_dev.tsv"), "--outputs_path", str(out)])
    assert rc == 0
    assert capsys.readouterr().out.strip() == "Correct: 25 out of 500: 5.0%"
    assert out.read_text(encoding="utf-8").splitlines() == ["London"] * 500


def test_london_baseline_tiny(tiny_data, tmp_path, capsys):
    dev = tmp_path / "dev_with_london.tsv"
    dev.write_text(tiny_data.dev.read_text(encoding="utf-8") + "\nWhere was Ada Smith born?\tLondon\n", encoding="utf-8")
    out = tmp_path / "sub" / "preds.txt"
    assert main(["london-baseline", "--eval-corpus-path", str(dev), "--outputs-path", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "Correct: 1 out of 7: 14.3%"
    assert out.read_text(encoding="utf-8") == "London\n" * 7


def test_london_baseline_errors_are_one_line(tiny_data, tmp_path, capsys):
    assert main(["london-baseline", "--eval_corpus_path", str(tiny_data.test_inputs)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no places" in err and "Traceback" not in err
    assert main(["london-baseline", "--eval_corpus_path", str(tmp_path / "missing.tsv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_predictions_file_one_line_per_input_even_if_model_emits_newline(tiny_data, tmp_path, capsys):
    """The corpus vocabulary contains '\\n', so a (badly trained) model can predict it."""
    vocab = CharVocab.from_text(tiny_data.wiki_text)
    assert "\n" in vocab.stoi
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=128, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():  # a model whose every prediction is the newline character
        model.ln_f.weight.zero_()
        model.ln_f.bias.zero_()
        model.ln_f.bias[0] = 1.0
        model.head.weight.zero_()
        model.head.weight[vocab.stoi["\n"], 0] = 10.0
    ckpt = tmp_path / "newline.params"
    save_checkpoint(ckpt, model, vocab)
    out = tmp_path / "preds.txt"
    rc = main(["evaluate", "vanilla", str(tiny_data.wiki), "--reading_params_path", str(ckpt),
               "--eval_corpus_path", str(tiny_data.dev), "--outputs_path", str(out), "--device", "cpu"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == "Correct: 0 out of 6: 0.0%"
    assert len(out.read_text(encoding="utf-8").splitlines()) == 6
