"""``kgpt reproduce --ray``: the study's cells as Ray tasks (kgpt.cluster).

The tests that need Ray share one local cluster of 2 CPUs, started here and torn down
after the module; without Ray installed (the ``ray`` extra) they skip, saying so.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from kgpt import cluster, experiments
from kgpt.cli import main
from kgpt.data.synthetic import SyntheticConfig, generate

TINY_MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 16}
SIZES = {"pretrain_epochs": 1, "finetune_epochs": 1, "pretrain_batch": 8, "finetune_batch": 8, "model": TINY_MODEL}
SMALL = experiments.Preset("small", (experiments.Setting("finetune-only", **SIZES),
                                     experiments.Setting("pretrain+finetune", **SIZES)))
# One cell long enough (hundreds of epochs of a few steps) to be killed in the middle.
LONG = experiments.Preset("long", (experiments.Setting("finetune-only", **{**SIZES, "finetune_epochs": 300,
                                                                          "finetune_batch": 4}),))


@pytest.fixture
def study_data(tmp_path) -> Path:
    """Small real-format data written by the generator (never the real files)."""
    d = tmp_path / "data"
    generate(SyntheticConfig(n_train=12, n_dev=6, n_test=2, n_extra=0, n_places=4, distractors=1)).write(d)
    return d


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'); the --ray tests need it")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def reproduce(data: Path, out: Path, preset: str, *extra: str) -> int:
    return main(["reproduce", "--data_dir", str(data), "--out", str(out), "--preset", preset, "--device", "cpu", *extra])


def rows_without_time(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "results.json").read_text())["rows"]]


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ray_not_installed_is_one_line(study_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert reproduce(study_data, tmp_path / "o", "quick", "--ray", "local") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'kgpt[ray]'" in err[0]


def test_ray_missing_data_is_one_line_before_any_task(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert reproduce(tmp_path / "data", tmp_path / "o", "quick", "--ray", "local") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wiki.txt is missing" in err[0]


def test_ray_auto_without_a_cluster_is_one_line(study_data, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'); the --ray tests need it")
    if ray.is_initialized() or os.environ.get("RAY_ADDRESS") or Path(tempfile.gettempdir(), "ray", "ray_current_cluster").exists():
        pytest.skip("a Ray cluster is running here, so auto would join it")
    assert reproduce(study_data, tmp_path / "o", "quick", "--ray", "auto") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ray auto: cannot connect to a Ray cluster" in err[0] and "--ray local" in err[0]
    assert not (tmp_path / "o" / "results.json").exists()


def test_ray_local_writes_what_the_in_process_run_writes(ray_cluster, study_data, tmp_path, monkeypatch, capsys):
    """All four trained settings of the tiny preset: same predictions, checkpoints, rows, analysis."""
    monkeypatch.setitem(experiments.PRESETS, "tiny", experiments.DEMO_PRESETS["tiny"])
    here, there = tmp_path / "here", tmp_path / "there"
    assert reproduce(study_data, here, "tiny", "--cpus_per_cell", "1") == 0
    assert reproduce(study_data, there, "tiny", "--ray", "local") == 0
    printed = capsys.readouterr().out
    assert "[5/5 done, 0 in flight, 0 failed]" in printed and "pretrain-recall-vanilla-s0: pretrain done" in printed
    assert rows_without_time(there) == rows_without_time(here)
    a, b = files(here), files(there)
    assert sorted(a) == sorted(b)
    for rel in a:
        if rel.startswith(("predictions/", "checkpoints/", "analysis/")) and rel.endswith((".txt", ".params", ".md")):
            assert a[rel] == b[rel], rel
    assert not any(rel.endswith((".resume", ".lock")) for rel in b)


def test_a_worker_killed_mid_cell_is_retried_from_its_checkpoint(ray_cluster, study_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(experiments.PRESETS, "long", LONG)
    out = tmp_path / "ray"
    folder = cluster.scratch_dir(cluster.study_id(out)) / "finetune-only-vanilla-s0" / "checkpoints"
    killed = {}

    def kill_when_checkpointed():
        """SIGKILL the worker training the cell (its PID is in the writer's lock) once it
        has saved a resumable checkpoint."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            lock = folder / "finetune-only-vanilla-s0.params.lock"
            if (folder / "finetune-only-vanilla-s0.params.resume").exists() and lock.exists():
                holder = lock.read_text().split()
                if holder[:1] == ["PID"]:
                    killed["pid"] = int(holder[1])
                    os.kill(killed["pid"], signal.SIGKILL)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_checkpointed)
    killer.start()
    try:
        assert reproduce(study_data, out, "long", "--ray", "local", "--checkpoint_every", "0") == 0
    finally:
        killed.setdefault("pid", None)
        killer.join()
    assert killed["pid"] is not None, "the cell finished before a checkpoint was seen"
    printed = capsys.readouterr().out
    assert "finetune-only-vanilla-s0: continued checkpoints/finetune-only-vanilla-s0.params.resume at step" in printed
    assert "[2/2 done, 0 in flight, 0 failed]" in printed
    # Resuming is exact: the same answers as a run that was never interrupted.
    here = tmp_path / "here"
    assert reproduce(study_data, here, "long", "--cpus_per_cell", "1") == 0
    name = "predictions/finetune-only-vanilla-s0.txt"
    assert (out / name).read_bytes() == (here / name).read_bytes()
    assert rows_without_time(out) == rows_without_time(here)


def test_a_bad_file_fails_its_cells_only_and_a_rerun_does_only_those(ray_cluster, study_data, tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setitem(experiments.PRESETS, "small", SMALL)
    out = tmp_path / "ray"
    bad = out / "checkpoints" / "pretrain-vanilla-s0.params"  # a pretrained model seed 0's cell reuses
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    args = ("--seeds", "0", "1", "--ray", "local")
    assert reproduce(study_data, out, "small", *args) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "1 of the study's jobs failed (pretrain+finetune-vanilla-s0)" in err[0]
    failure = next(line for line in captured.out.splitlines() if "FAILED" in line)
    assert "pretrain+finetune-vanilla-s0 FAILED" in failure and str(bad) in failure  # the driver's path, not a worker's
    done = {p.stem for p in (out / "cells").glob("*.json")}
    assert done == {"baseline-vanilla-s0", "finetune-only-vanilla-s0", "finetune-only-vanilla-s1",
                    "pretrain+finetune-vanilla-s1"}
    results = json.loads((out / "results.json").read_text())
    assert list(results["failed"]) == ["pretrain+finetune-vanilla-s0"]
    assert "FAILED pretrain+finetune-vanilla-s0" in (out / "results.md").read_text()

    bad.unlink()
    assert reproduce(study_data, out, "small", *args) == 0
    printed = capsys.readouterr().out
    assert printed.count(": done earlier,") == 4
    assert "pretrain-vanilla-s0: pretrain done" in printed and "[5/5 done, 0 in flight, 0 failed]" in printed
    assert "failed" not in json.loads((out / "results.json").read_text())
    assert len(list((out / "predictions").glob("*.txt"))) == 5
