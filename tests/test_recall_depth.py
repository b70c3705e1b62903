"""benchmarks/recall_depth.py: recalls that keep the place, by where it stands in the bio."""

import json
import shutil
import sys

from conftest import load_benchmark

from kgpt.cli import main

depth = load_benchmark("recall_depth")


def test_a_place_ends_at_its_first_whole_word_occurrence():
    """The depth of a place is where kgpt.confidence.answer_at, from the bio's start, ends it."""
    from kgpt.confidence import answer_at

    assert answer_at("Ann. Ann was born in Paris, near Paris .", 0, "Paris")[1] == len("Ann. Ann was born in Paris")
    assert answer_at("Ann. Ann left Parish for Paris", 0, "Paris")[1] == len("Ann. Ann left Parish for Paris")
    assert answer_at("Ann. Ann left Parish", 0, "Paris") is None


def test_every_person_falls_in_one_band(tiny_data, tmp_path, monkeypatch, capsys):
    data = tmp_path / "d"
    data.mkdir()
    shutil.copy(tiny_data.wiki, data / "wiki.txt")
    shutil.copy(tiny_data.train, data / "birth_places_train.tsv")
    pre = tmp_path / "pre.params"
    assert main(["pretrain", "rope", str(data / "wiki.txt"), "--recipe", "recall", "--writing_params_path", str(pre),
                 "--max_epochs", "1", "--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--no_progress",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["recall_depth.py", str(pre), "--data_dir", str(data)])
    depth.main()
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Every tiny bio names its place within the first 60 characters: 14 training people.
    assert r["people"] == 14 and r["recall_chars"] == 174
    bands = r["by_place_end"]
    assert sum(b["in_bio"] for b in bands.values()) == 14
    assert all(0 <= b["in_recall"] <= b["in_bio"] for b in bands.values())
    assert r["kept"] == sum(b["in_recall"] for b in bands.values())
    assert all(int(k.split("-")[1]) - int(k.split("-")[0]) == depth.BAND - 1 for k in bands)
