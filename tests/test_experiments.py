"""The study runners: ``kgpt demo`` on a tiny preset and ``kgpt reproduce`` resumption."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kgpt import experiments, pipeline
from kgpt.checkpoint import read_checkpoint
from kgpt.cli import main
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.presets import DEMO_PRESETS, LAPTOP_MODEL, PRESETS, Preset, Setting, for_facts
from kgpt.study import pretraining
from kgpt.training import get_recipe

SETTINGS = {"baseline", "finetune-only", "pretrain+finetune", "knowledge-recipe", "recall-read"}


def test_demo_tiny_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "| pretrain+finetune |" in printed
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert {r["setting"] for r in rows} == SETTINGS
    for r in rows:
        assert set(r) >= {"setting", "variant", "seed", "correct", "total", "accuracy"}
        assert isinstance(r["correct"], int) and r["total"] == 8
        assert r["accuracy"] == pytest.approx(100 * r["correct"] / r["total"], abs=0.01)
    # The baseline answers the most frequent training place for everybody.
    data = generate(DEMO_PRESETS["tiny"].data)
    baseline = next(r for r in rows if r["setting"] == "baseline")
    assert baseline["answer"] == data.most_frequent_place
    preds = (out / "predictions" / "baseline-rope-s0.txt").read_text().splitlines()
    assert preds == [data.most_frequent_place] * 8
    assert (out / "results.png").stat().st_size > 1000
    assert "| baseline |" in (out / "results.md").read_text()
    # Storage beside access: every pretrained cell is probed both ways.
    for setting in ("pretrain+finetune", "knowledge-recipe", "recall-read"):
        pretrained = next(r for r in rows if r["setting"] == setting)
        assert 0 <= pretrained["cued_stored"] <= pretrained["cued_probed"] <= 8
        assert 0 <= pretrained["free_recall_stored"] <= pretrained["free_recall_probed"] == 8
        assert 0 <= pretrained["free_recall_chance"] <= pretrained["free_recall_probed"]  # the chance line beside it
    assert "free recall" in printed and "cued completion" in (out / "results.md").read_text()
    # Both pretraining cells pretrain with Muon (the demo's choice; the course's cell on the
    # assignment's recipe otherwise), and the recipe's own optimiser stays AdamW.
    optimizers = {p.name: read_checkpoint(p).progress["optimizer"] for p in (out / "checkpoints").glob("pretrain-*.params")}
    assert optimizers["pretrain-recall-end-marked-rope-s0.params"] == "muon"
    assert optimizers["pretrain-rope-s0.params"] == "muon"
    assert get_recipe("assignment").pretrain.optimizer == "adamw"
    assert {r["setting"]: r["pretrain_optimizer"] for r in rows if r["setting"] in ("pretrain+finetune", "recall-read", "finetune-only")} \
        == {"pretrain+finetune": "muon", "recall-read": "muon", "finetune-only": None}


def test_demo_unknown_preset_is_one_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--preset", "huge"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown demo preset" in err[0]


@pytest.fixture
def study_data(tmp_path) -> Path:
    """Small real-format data written by the generator (never the real files)."""
    d = tmp_path / "data"
    generate(SyntheticConfig(n_train=12, n_dev=6, n_test=2, n_extra=0, n_places=4, distractors=1)).write(d)
    return d


TINY_MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 16}
SIZES = {"pretrain_epochs": 1, "finetune_epochs": 1, "pretrain_batch": 8, "finetune_batch": 8, "model": TINY_MODEL}
SMALL = Preset("small", (Setting("finetune-only", **SIZES), Setting("pretrain+finetune", **SIZES)))


def shrunk(preset: Preset) -> Preset:
    """The preset's settings, each cut to one epoch per stage of a tiny model."""
    return replace(preset, settings=tuple(replace(s, **SIZES, compile=False) for s in preset.settings))


def test_reproduce_runs_matrix_and_resumes_without_work(study_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(PRESETS, "small", SMALL)
    out = tmp_path / "study"
    args = ["reproduce", "--data_dir", str(study_data), "--out", str(out), "--preset", "small",
            "--variants", "vanilla", "rope", "--seeds", "0", "1", "--device", "cpu"]
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())
    assert len(first["rows"]) == 1 + 2 * 2 * 2  # baseline + (2 settings × 2 variants × 2 seeds)
    summary = {(s["setting"], s["variant"]): s for s in first["summary"]}
    assert summary[("pretrain+finetune", "rope")]["seeds"] == 2
    assert summary[("pretrain+finetune", "vanilla")]["published"].startswith("10–25%")
    assert len(list((out / "predictions").glob("*.txt"))) == 9
    md = (out / "results.md").read_text()
    assert "± " in md and "published" in md
    capsys.readouterr()

    def no_training(*a, **k):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(pipeline, "pretrain", no_training)
    monkeypatch.setattr(pipeline, "finetune", no_training)
    monkeypatch.setattr(pipeline, "evaluate", no_training)
    assert main(args) == 0
    assert capsys.readouterr().out.count("done earlier") == 9
    assert json.loads((out / "results.json").read_text())["rows"] == first["rows"]
    # The same preset trained otherwise now (a new kgpt's preset): its finished cells are
    # refused in one line, not shown as its results, and nothing of the folder is lost.
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    monkeypatch.setitem(PRESETS, "small", replace(SMALL, settings=(SMALL.settings[0], replace(SMALL.settings[1], pretrain_epochs=2))))
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained with other settings (pretrain_epochs 1 -> 2)" in err[0], err
    assert sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before


def test_reproduce_reuses_a_finished_pretraining(study_data, tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "small", SMALL)
    out = tmp_path / "study"
    run = lambda: experiments.run_reproduce(study_data, out, ["vanilla"], [0], preset="small", device="cpu")
    run()
    # Drop the finished cell but keep the checkpoints: only finetuning runs again.
    (out / "cells" / "pretrain+finetune-vanilla-s0.json").unlink()
    (out / "checkpoints" / "pretrain+finetune-vanilla-s0.params").unlink()
    calls = []
    real_finetune = pipeline.finetune
    monkeypatch.setattr(pipeline, "pretrain", lambda *a, **k: calls.append("pretrain"))
    monkeypatch.setattr(pipeline, "finetune", lambda *a, **k: (calls.append("finetune"), real_finetune(*a, **k))[1])
    run()
    assert calls == ["finetune"]


def test_reproduce_missing_data_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "--data_dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]



def test_a_renamed_preset_names_its_new_name_in_one_line(study_data, tmp_path, capsys):
    assert main(["reproduce", "--data_dir", str(study_data), "--out", str(tmp_path / "o"), "--preset", "half-hour"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--preset laptop" in err[0]
    assert not (tmp_path / "o").exists()


def test_laptop_preset_code_path_on_tiny_data(study_data, tmp_path, monkeypatch):
    """The laptop preset's structure (London, then recall-then-read, eager so that length
    buckets apply), with its sizes cut down so it runs in seconds."""
    laptop = PRESETS["laptop"]
    (recall,) = laptop.settings
    assert (recall.name, recall.recipe, recall.model, recall.compile, recall.processes) == (
        "recall-read", "recall-half-hour", LAPTOP_MODEL, False, 2)
    monkeypatch.setitem(PRESETS, "laptop", shrunk(laptop))
    out = tmp_path / "study"
    assert main(["reproduce", "--data_dir", str(study_data), "--out", str(out), "--preset", "laptop",
                 "--seeds", "0", "1", "--device", "cpu"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["setting"], r["variant"], r["seed"], r["recipe"]) for r in rows] == [
        ("baseline", "vanilla", 0, None),
        ("recall-read", "rope", 0, "recall-half-hour"),
        ("recall-read", "rope", 1, "recall-half-hour"),
    ]
    for r in rows[1:]:  # every pretrained cell says what pretraining stored, both ways
        assert 0 <= r["cued_stored"] <= r["cued_probed"]
        assert 0 <= r["free_recall_stored"] <= r["free_recall_probed"]
    # Recall-then-read: the pretrained model and the reader travel in one file.
    assert (out / "checkpoints" / "pretrain-recall-half-hour-rope-s0.params").is_file()
    assert read_checkpoint(out / "checkpoints" / "recall-read-rope-s0.params").answering["method"] == "recall-read"
    assert "| recall-read | rope | 2 |" in (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 1000


def test_gpu_preset_is_london_and_the_recipes_at_full_size(study_data, tmp_path, monkeypatch):
    gpu = PRESETS["gpu"]
    assert {s.name: s.recipe for s in gpu.settings} == {"knowledge-recipe": "knowledge", "recall-read": "recall"}
    assert all(s.model == {} for s in gpu.settings)  # the assignment's 4x256 model
    small = shrunk(gpu)
    small = replace(small, settings=(replace(small.settings[0], finetune_epochs=None), small.settings[1]))  # knowledge: no finetuning
    monkeypatch.setitem(PRESETS, "gpu", small)
    rows = experiments.run_reproduce(study_data, tmp_path / "gpu", ["vanilla"], [3], preset="gpu", device="cpu")
    assert [(r["setting"], r["variant"], r["seed"]) for r in rows] == [
        ("baseline", "vanilla", 3), ("knowledge-recipe", "rope", 3), ("recall-read", "rope", 3)]


def test_facts_demo_keeps_the_cells_chosen_before_muon():
    """The birthplace demo's cells took Muon and fewer passes on one-sentence bios; the
    facts demo (several sentences) was not measured with them and keeps its AdamW cells."""
    for name, birthplace in (("cpu", DEMO_PRESETS["cpu"]), ("tiny", DEMO_PRESETS["tiny"])):
        facts = {s.name: s for s in for_facts(birthplace).settings}
        for s in birthplace.settings:
            if s.pretrains and s.pretrain_optimizer == "muon":
                assert facts[s.name].pretrain_optimizer is None, (name, s.name)
                assert get_recipe(facts[s.name].recipe).pretrain.optimizer == "adamw"
        assert all(f.model.get("block_size", 128) >= 128 for f in facts.values())
    cpu = {s.name: s for s in for_facts(DEMO_PRESETS["cpu"]).settings}
    assert cpu["pretrain+finetune"].pretrain_epochs == 120 and cpu["recall-read"].pretrain_epochs == 60


def test_reproduce_refuses_a_pretrained_model_trained_otherwise(study_data, tmp_path, monkeypatch, capsys):
    """A cell interrupted after its pretraining, then its preset changed: the rerun refuses
    the pretrained model in one line instead of finetuning the old one as the new setting's."""
    monkeypatch.setitem(PRESETS, "small", SMALL)
    out = tmp_path / "study"
    args = ["reproduce", "--data_dir", str(study_data), "--out", str(out), "--preset", "small",
            "--variants", "rope", "--seeds", "0", "--device", "cpu"]
    assert main(args) == 0
    pretrained = out / "checkpoints" / "pretrain-rope-s0.params"
    assert read_checkpoint(pretrained).progress["peak_lr"] == get_recipe("assignment").pretrain.lr
    (out / "cells" / "pretrain+finetune-rope-s0.json").unlink()  # interrupted before the cell finished
    (out / "checkpoints" / "pretrain+finetune-rope-s0.params").unlink()
    capsys.readouterr()
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    for change, named in (({"pretrain_lr": 1e-3}, "peak_lr 0.006 -> 0.001"), ({"pretrain_optimizer": "muon"}, "optimizer 'adamw' -> 'muon'"),
                          ({"model": {**TINY_MODEL, "n_embd": 32}}, "n_embd 16 -> 32"), ({"pretrain_epochs": 2}, "max_epochs 1 -> 2")):
        changed = replace(SMALL.settings[1], **change)
        monkeypatch.setitem(PRESETS, "small", replace(SMALL, settings=(SMALL.settings[0], changed)))
        assert main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "pretrained with other settings" in err[0] and named in err[0], err
        assert sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before
    # The preset as it was: the model is its own, and only finetuning runs.
    monkeypatch.setitem(PRESETS, "small", SMALL)
    monkeypatch.setattr(pipeline, "pretrain", lambda *a, **k: pytest.fail("its own pretrained model was trained again"))
    assert main(args) == 0
    assert (out / "cells" / "pretrain+finetune-rope-s0.json").is_file()


@pytest.mark.parametrize("preset", [*PRESETS.values(), *DEMO_PRESETS.values(), *map(for_facts, DEMO_PRESETS.values())],
                         ids=lambda p: p.name)
def test_settings_that_share_a_pretrained_model_pretrain_it_alike(preset):
    """A study keeps one pretrained model per recipe, variant and seed, so two settings of
    one recipe must pretrain it the same way (else the second would be refused)."""
    by_recipe = {}
    for s in preset.settings:
        if s.pretrains:
            by_recipe.setdefault(s.recipe, []).append(pretraining(s))
    for recipe, specs in by_recipe.items():
        assert all(spec == specs[0] for spec in specs), f"{preset.name}: settings of recipe {recipe} pretrain differently"
