"""Every script under benchmarks/ run end to end on tiny synthetic data, its output checked.

A script no test runs rots silently (knowledge_proxy.py iterated a probe that had become a
``Probe`` object). Each runs here with the smallest sizes its flags allow, on files the
generator writes in the real data's format, in a few seconds.

Covered elsewhere, not repeated here:
* compare.py: test_benchmark.py::test_compare_script_runs_end_to_end;
* reference.py (a module, no command line): the reference tests of test_benchmark.py;
* curves.py's window_means: test_benchmark.py (its command line is run here);
* recall_depth.py: test_recall_depth.py::test_every_person_falls_in_one_band;
* confidence_validation.py summary: test_confidence.py (split and signals are run here);
* every script's import: test_benchmark.py::test_every_benchmark_script_imports.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BENCHMARKS, ENV, load_benchmark

from kgpt.checkpoint import read_checkpoint
from kgpt.cli import build_parser
from kgpt.cli import main as kgpt
from kgpt.confidence import SIGNALS
from kgpt.data.synthetic import FILE_NAMES, SyntheticConfig, generate
from kgpt.presets import DEMO_PRESETS, PRESETS, RECALL_SETTING
from kgpt.training import recipe

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16"]
FAST = ["--max_epochs", "1", "--no_progress", "--device", "cpu"]
# The proxies hold out a fixed 400 training people for validation; 10 more are left to fit.
N_VALIDATION = load_benchmark("knowledge_proxy").VALIDATION_PEOPLE
N_FIT, N_DEV = 10, 8


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The real files' names and format, invented people (never the real data)."""
    folder = tmp_path_factory.mktemp("data")
    generate(SyntheticConfig(n_train=N_VALIDATION + N_FIT, n_dev=N_DEV, n_test=2, n_extra=0, n_places=6,
                             distractors=1)).write(folder)
    return folder


def wiki(data: Path) -> str:
    return str(data / FILE_NAMES["wiki"])


@pytest.fixture(scope="module")
def recaller(data, tmp_path_factory) -> Path:
    """A tiny RoPE model pretrained with the recall recipe (bios as next-character prediction)."""
    out = tmp_path_factory.mktemp("models") / "recaller.params"
    assert kgpt(["pretrain", "rope", wiki(data), "--recipe", "recall", "--writing_params_path", str(out), *TINY, *FAST]) == 0
    return out


def finetuned(data: Path, recaller: Path, out: Path, *extra: str) -> Path:
    assert kgpt(["finetune", "rope", wiki(data), "--reading_params_path", str(recaller), "--writing_params_path",
                 str(out), *extra, *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def direct(data, recaller) -> Path:
    """The recaller finetuned to answer questions directly (the assignment's recipe)."""
    return finetuned(data, recaller, recaller.with_name("direct.params"), "--finetune_corpus_path",
                     str(data / FILE_NAMES["train"]))


@pytest.fixture(scope="module")
def reader(data, recaller) -> Path:
    """A recall-then-read model: the recaller and a reader finetuned on the training bios."""
    return finetuned(data, recaller, recaller.with_name("reader.params"), "--recipe", "recall",
                     "--finetune_corpus_path", str(data / FILE_NAMES["train"]))


def run_main(monkeypatch, capsys, script: str, *argv) -> list[str]:
    """benchmarks/SCRIPT.py's main() with ``argv`` as its command line; the lines it printed."""
    module = load_benchmark(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *map(str, argv)])
    capsys.readouterr()
    module.main()
    return capsys.readouterr().out.splitlines()


def json_lines(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_knowledge_proxy_reports_validation_memorised_and_stored(data, monkeypatch, capsys):
    out = run_main(monkeypatch, capsys, "knowledge_proxy", "--data_dir", data, "--shape", "1x2x16", "--epochs", 1,
                   "--evals", 1, "--qa", 1, "--ft", 1)
    pattern = re.compile(r"val (\d+)/(\d+) fit (\d+)/(\d+) stored (\d+)/(\d+) \(expected by chance (\d+\.\d)\)")
    reports = [tuple(map(float, m.groups())) for m in map(pattern.search, out) if m]
    assert len(reports) == 2  # one evaluation during pretraining, one after finetuning
    for right, val, memorised, fit, stored, probed, chance in reports:
        # every synthetic bio names its place early enough for the cued probe to see it
        assert (val, fit, probed) == (N_VALIDATION, N_FIT, N_VALIDATION)
        assert right <= val and memorised <= fit and stored <= probed and chance <= probed


def test_recall_proxy_scores_a_reader_on_the_validation_people(data, recaller, tmp_path, monkeypatch, capsys):
    """From bios only (the recipe's default): a one-epoch recaller's recalls are empty, and
    kgpt cannot yet finetune a reader on empty recalls (encode_questions fails on them)."""
    (row,) = json_lines(run_main(monkeypatch, capsys, "recall_proxy", "--data_dir", data, "--pretrained", recaller,
                                 "--epochs", 1, "--swap_places", 1, "--out", tmp_path))
    assert (row["learn_from"], row["swap_places"], row["fit"], row["validation"]) == ("bios", 1, N_FIT, N_VALIDATION)
    assert row["place_in_true_bio_text"] == N_VALIDATION and row["steps"] >= 1
    assert 0 <= row["extract_correct"] <= row["validation"] and 0 <= row["write_correct"] <= row["validation"]
    (params,) = tmp_path.glob("*.params")
    assert row["continue_bios"] is recipe.RECALL.reader_settings.continue_bios is True  # the recipe's default
    assert params.name == "reader-recaller-bios-drop0-swap1-cont-dropout0.1-e1-s0.params"
    assert read_checkpoint(params).answering["swap_places"] == 1
    assert row["dropout"] == read_checkpoint(params).config.attn_pdrop == recipe.RECALL.finetune.dropout == 0.1


def test_recall_proxy_finetunes_the_reader_with_the_optimizer_asked(data, recaller, tmp_path, monkeypatch, capsys):
    (row,) = json_lines(run_main(monkeypatch, capsys, "recall_proxy", "--data_dir", data, "--pretrained", recaller,
                                 "--epochs", 1, "--optimizer", "muon", "--out", tmp_path))
    (params,) = tmp_path.glob("*.params")
    assert row["optimizer"] == read_checkpoint(params).progress["optimizer"] == "muon" and "-muon-e1-" in params.name


def test_recall_proxy_scores_one_reader_at_each_beam_width(data, recaller, tmp_path, monkeypatch, capsys):
    rows = json_lines(run_main(monkeypatch, capsys, "recall_proxy", "--data_dir", data, "--pretrained", recaller,
                               "--epochs", 1, "--recall_beams", 1, 3, "--out", tmp_path))
    assert [r["recall_beams"] for r in rows] == [1, 3]
    assert len(list(tmp_path.glob("*.params"))) == 1 and rows[0]["train_s"] == rows[1]["train_s"]  # one reader
    assert all(0 <= r["recall_lost_the_place"] <= r["place_in_true_bio_text"] for r in rows)


def test_reading_errors_splits_an_analysis_by_kind_and_by_told_places(data, reader, tmp_path, monkeypatch, capsys):
    analysis = tmp_path / "analysis"
    assert kgpt(["evaluate", "rope", wiki(data), "--reading_params_path", str(reader), "--eval_corpus_path",
                 str(data / FILE_NAMES["dev"]), "--outputs_path", str(tmp_path / "dev.txt"), "--analysis_dir",
                 str(analysis), "--finetune_corpus_path", str(data / FILE_NAMES["train"]), "--device", "cpu"]) == 0
    out = json.loads("\n".join(run_main(monkeypatch, capsys, "reading_errors", analysis)))
    row = out[str(analysis)]
    assert row["questions"] == N_DEV == row["right"] + row["reading"] + row["recall"] + row["not in bio"]
    (told, told_n), (new, new_n) = (map(int, row[k].split("/")) for k in ("read_right_told", "read_right_new"))
    assert told + new == row["right"] and told_n + new_n == row["right"] + row["reading"]
    assert new_n == 0  # the synthetic dev people's places are all among the training answers


def test_storage_prints_both_probes_with_chance(data, recaller, monkeypatch, capsys):
    (row,) = json_lines(run_main(monkeypatch, capsys, "storage", wiki(data), recaller, data / FILE_NAMES["dev"]))
    for probe in ("cued", "free_recall"):
        assert row[probe]["total"] == N_DEV and row[probe]["stored"] <= row[probe]["probed"] <= N_DEV


@pytest.mark.parametrize("threads,processes,optimizer", [(1, 1, "adamw"), (2, 2, "muon")])
def test_recall_step_times_steps_of_the_recall_stream(data, monkeypatch, capsys, threads, processes, optimizer):
    (row,) = json_lines(run_main(monkeypatch, capsys, "recall_step", "--data_dir", data, "--threads", threads, "--batch", 4,
                                 "--n_layer", 1, "--n_embd", 16, "--steps", 2, "--processes", processes,
                                 "--dropout", 0.1, "--optimizer", optimizer))
    assert (row["batch"], row["n_layer"], row["n_embd"], row["processes"], row["dropout"], row["optimizer"]) == \
        (4, 1, 16, processes, 0.1, optimizer)
    assert row["s_per_step"] > 0 and 0 < row["columns_per_row"] <= row["block"]


@pytest.mark.parametrize("end_mark,optimizer", [([], "adamw"), (["--end_mark"], "muon")])
def test_recall_passes_counts_the_bios_a_short_training_gives_back_whole(data, monkeypatch, capsys, end_mark, optimizer):
    (row,) = json_lines(run_main(monkeypatch, capsys, "recall_passes", "--data_dir", data, "--every", 20, "--epochs", 1,
                                 "--batch", 4, "--n_layer", 1, "--n_embd", 16, "--chars", 30, "--weight_decay", 0, "--lr_floor", 0.25, "--input_noise", 0.05,
                                 "--input_noise_chars", "0123456789", "--optimizer", optimizer, *end_mark))
    assert ((row["epochs"], row["batch"], row["weight_decay"], row["lr_floor"], row["n_embd"], row["chars"], row["input_noise"],
             row["input_noise_chars"], row["optimizer"]) == (1, 4, 0.0, 0.25, 16, 30, 0.05, "0123456789", optimizer))
    assert row["end_mark"] is bool(end_mark) and row["short_bios_count"]
    assert row["bios"] > 0 and 0 <= row["recalled_whole"] <= row["bios"] and row["steps"] == -(-row["bios"] // 4)


@pytest.mark.parametrize("figure", list(load_benchmark("recall_tradeoff").FIGURES))
def test_recall_tradeoff_tabulates_and_plots_the_committed_runs(figure, tmp_path, monkeypatch, capsys):
    table, plot = tmp_path / "t.csv", tmp_path / "t.png"
    (done,) = json_lines(run_main(monkeypatch, capsys, "recall_tradeoff", "--figure", figure, "--csv", table, "--png", plot))
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    _, points = load_benchmark("recall_tradeoff").FIGURES[figure]
    assert done["points"] == len(rows) == len(points) and plot.stat().st_size > 0
    assert all(0 <= int(r["validation_right"]) <= int(r["people"]) and float(r["pretrain_min"]) > 0 for r in rows)


def test_recall_precision_proxy_compares_float32_with_bf16(data, monkeypatch, capsys):
    *runs, verdict = json_lines(run_main(monkeypatch, capsys, "recall_precision", "--data_dir", data, "--epochs", 1,
                                         "--shape", "1x2x16", "--no-compile"))
    assert [(r["amp"], r["compile"], r["epochs"]) for r in runs] == [(False, False, 1), (True, False, 1)]
    assert all(r["history"] and r["last_losses"] for r in runs)
    assert isinstance(verdict["bf16_within_tolerance"], bool)


def test_recall_precision_timing_without_compile_times_eager_steps(monkeypatch, capsys):
    rows = json_lines(run_main(monkeypatch, capsys, "recall_precision", "--timing", "--shape", "1x2x16", "--no-compile"))
    assert [(r["amp"], r["compile"]) for r in rows] == [(False, False), (True, False)]
    assert all(r["ms_per_step"] > 0 for r in rows)


def test_profile_train_prints_the_operator_table_and_a_rate(data, monkeypatch, capsys):
    out = run_main(monkeypatch, capsys, "profile_train", data, "--steps", 1, "--batch", 2, "--shape", "1x2x16",
                   "--device", "cpu")
    assert any("Self CPU time total" in line for line in out)
    assert re.fullmatch(r"wall [\d.]+ ms/step, [\d,]+ tokens/s", out[-1])


def test_curves_tabulates_and_writes_every_history_entry(recaller, direct, tmp_path, capsys):
    curves = load_benchmark("curves")
    table = tmp_path / "curves.csv"
    assert curves.main([f"pre={recaller}", f"fin={direct}", "--window", "1", "--csv", str(table)]) == 0
    out = capsys.readouterr().out.splitlines()
    history = {name: read_checkpoint(p).progress["history"] for name, p in (("pre", recaller), ("fin", direct))}
    assert out[0] == "| steps | pre | fin |"
    assert len(out) == 2 + max(h[-1]["step"] for h in history.values())  # one row a step at window 1
    with table.open() as f:
        rows = list(csv.reader(f))
    assert [(r[0], int(r[1])) for r in rows[1:]] == [(n, e["step"]) for n, h in history.items() for e in h]


def test_confidence_validation_split_then_signals(data, recaller, tmp_path, monkeypatch, capsys):
    """The documented workflow: split, finetune a reader on fit.tsv, score the signals on val.tsv."""
    split = tmp_path / "conf"
    (counts,) = json_lines(run_main(monkeypatch, capsys, "confidence_validation", "split", "--data_dir", data,
                                    "--out", split))
    assert (counts["fit"], counts["val"]) == (N_FIT, N_VALIDATION)
    fit, val = ((split / name).read_text(encoding="utf-8").splitlines() for name in ("fit.tsv", "val.tsv"))
    assert (len(fit), len(val)) == (N_FIT, N_VALIDATION) and not set(fit) & set(val)
    params = finetuned(data, recaller, tmp_path / "reader.params", "--recipe", "recall", "--finetune_corpus_path",
                       str(split / "fit.tsv"))
    out = run_main(monkeypatch, capsys, "confidence_validation", "signals", "--data_dir", data, "--params", params,
                   "--val", split / "val.tsv", "--made_up", 20)
    result = json.loads("\n".join(out))
    assert (result["people"], result["made_up"]) == (N_VALIDATION, 20)
    assert result["chosen"] in result["candidates"] and result["chosen_signal"] in SIGNALS
    assert all(c["people"] == N_VALIDATION for c in [*result["candidates"].values(), *result["baselines"].values()])


def test_demo_cell_runs_the_tiny_demos_recall_cell_varied(tmp_path, monkeypatch, capsys):
    # The script varies the cell's recipe in kgpt's registry; put it back after the test.
    monkeypatch.setitem(recipe.RECIPES, "recall-end-marked", recipe.RECALL_END_MARKED)
    (row,) = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                                 "--no-group_lengths", "--no-end_mark"))
    dev = DEMO_PRESETS["tiny"].data.n_dev
    assert (row["preset"], row["recipe"], row["group_lengths"], row["end_mark"], row["total"]) == \
        ("tiny", "recall-end-marked", False, False, dev)
    assert 0 <= row["correct"] <= dev
    cell = tmp_path / f"{RECALL_SETTING}-group0"
    predictions = cell / "pretraindefault-finetunedefault" / "predictions" / f"{RECALL_SETTING}-rope-s0.txt"
    assert len(predictions.read_text(encoding="utf-8").splitlines()) == dev


def test_demo_cell_validation_scores_held_out_training_people_with_one_recaller(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(recipe.RECIPES, "recall-end-marked", recipe.RECALL_END_MARKED)
    rows = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                               "--no-group_lengths", "--validation", "--pretrain_epochs", "1", "--finetune_epochs", "1", "2"))
    n_train = DEMO_PRESETS["tiny"].data.n_train
    held = n_train // 5
    assert [(r["finetune_epochs"], r["total"], r["validation"], r["end_mark"]) for r in rows] == \
        [(1, held, True, True), (2, held, True, True)]
    cell = tmp_path / f"{RECALL_SETTING}-group0-end-validation"
    dev, train = cell / "data" / FILE_NAMES["dev"], cell / "data" / FILE_NAMES["train"]
    dev_lines, train_lines = (p.read_text(encoding="utf-8").splitlines() for p in (dev, train))
    assert len(dev_lines) == held and len(train_lines) == n_train - held and not set(dev_lines) & set(train_lines)
    assert len(list((cell / "pretrained1").glob("*.params"))) == 1  # one recaller for both


def test_demo_cell_runs_another_setting_and_refuses_a_bios_flag_there(tmp_path, monkeypatch, capsys):
    (row,) = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                                 "--setting", "pretrain+finetune", "--validation"))
    assert (row["setting"], row["recipe"], row["end_mark"], row["pretrain_epochs"]) == ("pretrain+finetune", "assignment", None, 1)
    assert (tmp_path / "pretrain+finetune-validation" / "pretraineddefault" / "pretrain-rope-s0.params").exists()
    with pytest.raises(SystemExit):
        run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path, "--setting", "pretrain+finetune",
                 "--end_mark")
    assert "--end_mark vary a bios recipe" in capsys.readouterr().err


def test_demo_cell_pretrains_one_model_a_learning_rate_and_names_each(tmp_path, monkeypatch, capsys):
    rows = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                               "--setting", "pretrain+finetune", "--pretrain_lr", "3e-3", "5e-3"))
    assert [(r["pretrain_lr"], r["pretrain_epochs"]) for r in rows] == [(3e-3, 1), (5e-3, 1)]
    cell = tmp_path / "pretrain+finetune"
    first, second = (cell / f"pretraineddefault-lr{lr}" / "pretrain-rope-s0.params" for lr in ("0.003", "0.005"))
    assert first.exists() and second.exists() and first.read_bytes() != second.read_bytes()


def test_demo_cell_finetunes_one_pretrained_model_at_each_learning_rate(tmp_path, monkeypatch, capsys):
    rows = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                               "--setting", "pretrain+finetune", "--finetune_lr", "3e-4", "3e-3"))
    assert [r["finetune_lr"] for r in rows] == [3e-4, 3e-3]
    cell = tmp_path / "pretrain+finetune"
    assert len(list(cell.glob("pretrained*/*.params"))) == 1  # pretrained once, for both
    first, second = (cell / f"pretraindefault-finetunedefault-lr{lr}" for lr in ("0.0003", "0.003"))
    weights = [(d / "checkpoints" / "pretrain+finetune-rope-s0.params").read_bytes() for d in (first, second)]
    assert weights[0] != weights[1]


def test_demo_cell_pretrains_with_the_optimizer_asked(tmp_path, monkeypatch, capsys):
    assert DEMO_PRESETS["tiny"].settings[-1].pretrain_optimizer == "muon"  # so AdamW is the one to ask for
    (row,) = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                                 "--optimizer", "adamw"))
    assert (row["setting"], row["optimizer"]) == (RECALL_SETTING, "adamw")
    (pretrained,) = (tmp_path / f"{RECALL_SETTING}-group0-end-adamw").glob("pretrained*/*.params")
    assert read_checkpoint(pretrained).progress["optimizer"] == "adamw"


def test_demo_cell_shares_each_step_between_the_processes_asked(tmp_path, monkeypatch, capsys):
    (row,) = json_lines(run_main(monkeypatch, capsys, "demo_cell", "--preset", "tiny", "--out", tmp_path,
                                 "--setting", "pretrain+finetune", "--processes", "2"))
    assert (row["setting"], row["processes"], row["total"]) == ("pretrain+finetune", 2, DEMO_PRESETS["tiny"].data.n_dev)
    assert (tmp_path / "pretrain+finetune-p2" / "pretraineddefault" / "pretrain-rope-s0.params").exists()


def test_export_check_finds_the_same_answers_and_logits(data, direct, monkeypatch, capsys):
    pytest.importorskip("transformers", reason="export_check needs the hf extra")
    (row,) = json_lines(run_main(monkeypatch, capsys, "export_check", direct, data / FILE_NAMES["dev"]))
    assert (row["variant"], row["questions"], row["same_answers"]) == ("rope", N_DEV, N_DEV)
    assert row["max_abs_logit_difference"] < 1e-4


def test_load_runs_evaluate_and_ask_as_processes(data, direct, tmp_path, monkeypatch, capsys):
    out = tmp_path / "load.jsonl"
    rows = json_lines(run_main(monkeypatch, capsys, "load", wiki(data), direct, data / FILE_NAMES["dev"],
                               "--variant", "rope", "--n", 3, "--out", out))
    assert [(r["command"], r["n"], r["rc"]) for r in rows] == [("evaluate", 3, 0), ("ask", 3, 0)], rows
    assert all(r["peak_rss_mib"] > 0 and r["questions_per_s"] > 0 for r in rows)
    assert json_lines(out.read_text().splitlines()) == rows


def test_decode_cache_times_both_caches_on_a_recall_then_read_model(data, reader, tmp_path, monkeypatch, capsys):
    out = tmp_path / "decode.jsonl"
    rows = json_lines(run_main(monkeypatch, capsys, "decode_cache", wiki(data), reader, data / FILE_NAMES["dev"],
                               "--n", 3, "--batch", 2, "--out", out))
    assert [(r["cache"], r["batch"], r["n"]) for r in rows] == [("grown", 2, 3), ("in-place", 2, 3)]
    assert all(r["questions_per_s"] > 0 for r in rows)
    assert json_lines(out.read_text().splitlines()) == rows


def test_gpu_pipeline_chains_the_three_stages(data, tmp_path):
    """A dry run: the script is for a GPU (hours of training), so its ``python3`` here is a
    stand-in that records each command line; kgpt's own parser must accept every one, and
    each stage must read what the one before it wrote."""
    if not Path("/usr/bin/time").exists():
        pytest.skip("the script times each stage with /usr/bin/time, absent here")
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    stand_in = bin_dir / "python3"
    stand_in.write_text(f"#!{sys.executable}\nimport json, sys\n"
                        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    stand_in.chmod(0o755)
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(BENCHMARKS / "gpu_pipeline.sh"), str(data), str(out), "rope", "--max_epochs", "1"],
                       capture_output=True, text=True, env={**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}"})
    assert r.returncode == 0, r.stderr
    argvs = [json.loads(line) for line in calls.read_text().splitlines()]
    assert all(argv[:2] == ["-m", "kgpt"] for argv in argvs)
    pre, fin, ev = (build_parser().parse_args(argv[2:]) for argv in argvs)
    assert [a.command for a in (pre, fin, ev)] == ["pretrain", "finetune", "evaluate"]
    assert pre.max_epochs == 1 and fin.max_epochs is None  # the extra flags go to pretraining only
    assert fin.reading_params_path == pre.writing_params_path and ev.reading_params_path == fin.writing_params_path
    assert ev.eval_corpus_path == str(data / FILE_NAMES["dev"])
    assert sorted(p.name for p in out.glob("*.log")) == ["rope.eval.log", "rope.finetune.log", "rope.pretrain.log"]


def test_ray_local_in_process_half_needs_no_ray(data, tmp_path, monkeypatch):
    """Without Ray: the cut preset trains and predicts in process, and the byte comparison
    finds every file the same as itself (the Ray half is the next test)."""
    ray_local = load_benchmark("ray_local")
    monkeypatch.setitem(PRESETS, "cut", ray_local.CUT)
    out = tmp_path / "inprocess"
    assert ray_local.timed_run(["reproduce", "--data_dir", str(data), "--preset", "cut", "--variants", "vanilla",
                                "--device", "cpu", "--out", str(out)]) > 0
    same = ray_local.compare(out, out)
    assert same and all(same.values())
    assert not any(ray_local.compare(out, tmp_path / "missing").values())


def test_ray_local_writes_the_same_files_on_ray(data, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (the ray extra)")
    ray_local = load_benchmark("ray_local")
    monkeypatch.setitem(PRESETS, "cut", ray_local.CUT)
    summary = ray_local.run(data, tmp_path, "cut", ["vanilla"], 1)
    assert summary["identical"] and summary["files"]
