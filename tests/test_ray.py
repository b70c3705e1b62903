"""``kgpt reproduce --ray``: the study's cells as Ray tasks (kgpt.cluster).

A task is a plain function (``cluster._work``), so how it sorts failures by cause, what it
sends back and what it leaves on the node are tested without Ray. The tests that need Ray
share one local cluster of 2 CPUs, started here and torn down after the module; the README's
test command installs the ``ray`` extra, so they run in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import torch

from kgpt import cluster
from kgpt.checkpoint import save_checkpoint
from kgpt.cli import main
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.errors import KgptError
from kgpt.model import GPT, GPTConfig
from kgpt.presets import DEMO_PRESETS, PRESETS, Preset, Setting
from kgpt.study import Cell, Study
from kgpt.training.trainer import Interrupted
from kgpt.vocab import CharVocab

TINY_MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 16}
SIZES = {"pretrain_epochs": 1, "finetune_epochs": 1, "pretrain_batch": 8, "finetune_batch": 8, "model": TINY_MODEL}
SMALL = Preset("small", (Setting("finetune-only", **SIZES),
                                     Setting("pretrain+finetune", **SIZES)))
# One cell long enough (hundreds of epochs of a few steps) to be killed in the middle.
LONG = Preset("long", (Setting("finetune-only", **{**SIZES, "finetune_epochs": 300,
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
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()
    for signum, handler in handlers.items():  # Ray's driver handlers would outlive it, into later tests
        signal.signal(signum, handler)


def reproduce(data: Path, out: Path, preset: str, *extra: str) -> int:
    return main(["reproduce", "--data_dir", str(data), "--out", str(out), "--preset", preset, "--device", "cpu", *extra])


def rows_without_time(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "results.json").read_text())["rows"]]


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- a task, without Ray -------------------------------------------------------------------

def state(path: Path, step: int) -> None:
    """A resumable checkpoint that stands at ``step``."""
    save_checkpoint(path, GPT(GPTConfig(vocab_size=4, block_size=8, n_layer=1, n_head=1, n_embd=8)), CharVocab("ab"),
                    {"stage": "finetune", "step": step})


def spec(tmp_path: Path, study: str) -> cluster.Spec:
    return cluster.Spec(SMALL, "cpu", False, 0.0, 1, study, out=str(tmp_path / "out"), data_dir=str(tmp_path / "data"))


def run_task(study_data: Path, tmp_path: Path, monkeypatch, fails_with: BaseException | None,
             sent: dict[str, bytes] | None = None) -> tuple[cluster.Landed, Path]:
    """Run a cell's task here; its training writes a state at step 7, then fails with ``fails_with``."""
    job = cluster.Job("cell", Cell("finetune-only", "vanilla", 0), "finetune-only-vanilla-s0")
    study = f"test-{tmp_path.name}"
    folder = cluster.scratch_dir(study) / job.name

    def run_cell(self, cell):
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        if not (folder / "checkpoints" / "m.params.resume").exists():
            state(folder / "checkpoints" / "m.params.resume", 7)
        (folder / "checkpoints" / "pretrained.params").write_bytes(b"finished before the failure")
        if fails_with is not None:
            raise fails_with
        return {"correct": 1}

    monkeypatch.setattr(Study, "run_cell", run_cell)
    data = {p.name: p.read_bytes() for p in study_data.iterdir()}
    landed = cluster._work(spec(tmp_path, study), job, data, cluster.Landed("out", files=sent or {}))
    return landed, folder


def test_a_task_stopped_by_a_signal_sends_its_state_back_and_keeps_it_on_the_node(study_data, tmp_path, monkeypatch):
    stopped = Interrupted("interrupted by SIGTERM at step 7", 15, "saved m.params.resume: run the same command with --resume")
    assert str(stopped).endswith("with --resume") and stopped.exit_code == 143
    landed, folder = run_task(study_data, tmp_path, monkeypatch, stopped)
    assert landed.retry and landed.error == "interrupted by SIGTERM at step 7"  # the node goes on by itself: no hint
    assert landed.saved == ["checkpoints/m.params.resume at step 7"]
    assert set(landed.files) == {"checkpoints/m.params.resume", "checkpoints/pretrained.params"}
    assert (folder / "checkpoints" / "m.params.resume").exists()  # for a retry on this node
    cluster._clean(folder.parent.name)
    assert not folder.parent.exists()


def test_out_of_memory_is_run_again(study_data, tmp_path, monkeypatch):
    landed, folder = run_task(study_data, tmp_path, monkeypatch, torch.OutOfMemoryError("CUDA out of memory"))
    assert landed.retry and landed.error == "out of memory" and "checkpoints/m.params.resume" in landed.files
    cluster._clean(folder.parent.name)


@pytest.mark.parametrize("error, line", [
    (KgptError("{folder}/data/wiki.txt line 3: unknown character"), "{data}/wiki.txt line 3: unknown character"),
    (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
])
def test_a_users_error_or_a_bug_is_not_run_again_and_leaves_nothing_on_the_node(study_data, tmp_path, monkeypatch,
                                                                                error, line):
    folder = cluster.scratch_dir(f"test-{tmp_path.name}") / "finetune-only-vanilla-s0"
    error.args = (str(error).format(folder=folder),)
    landed, folder = run_task(study_data, tmp_path, monkeypatch, error)
    assert not landed.retry and landed.error == line.format(data=tmp_path / "data") and not landed.files
    assert not folder.exists()


def test_a_finished_task_sends_its_outputs_not_its_state_and_leaves_nothing(study_data, tmp_path, monkeypatch):
    landed, folder = run_task(study_data, tmp_path, monkeypatch, None)
    assert landed.error is None and landed.row == {"correct": 1}
    assert set(landed.files) == {"checkpoints/pretrained.params"}
    assert not folder.exists()


def test_the_node_keeps_a_later_state_than_the_one_sent(study_data, tmp_path, monkeypatch):
    """A retry on the node where an earlier attempt got further continues from there."""
    older, newer = tmp_path / "older", tmp_path / "newer"
    state(older, 3)
    state(newer, 9)
    folder = cluster.scratch_dir(f"test-{tmp_path.name}") / "finetune-only-vanilla-s0"
    (folder / "checkpoints").mkdir(parents=True)
    state(folder / "checkpoints" / "m.params.resume", 7)  # left by an attempt that died here
    landed, _ = run_task(study_data, tmp_path, monkeypatch, Interrupted("stop"),
                         sent={"checkpoints/m.params.resume": older.read_bytes()})
    assert landed.resumed == ["checkpoints/m.params.resume at step 7"]
    landed, folder = run_task(study_data, tmp_path, monkeypatch, Interrupted("stop"),
                              sent={"checkpoints/m.params.resume": newer.read_bytes()})
    assert landed.resumed == ["checkpoints/m.params.resume at step 9"]
    cluster._clean(folder.parent.name)


def test_an_analysis_names_the_drivers_paths_whatever_characters_they_hold(tmp_path):
    folder = tmp_path / "task"
    odd = cluster.Spec(SMALL, "cpu", False, 0.0, 1, "s", out='C:\\runs\\"quoted" out', data_dir="d\\ata")
    source = {"variant": "rope", "corpus": f"{folder}/data/wiki.txt", "params": f"{folder}/checkpoints/m.params",
              "pretrained_params": None}
    files = {"analysis/c/analysis.json": json.dumps({"source": source, "n": 1}).encode()}
    shown = json.loads(cluster._shown_outputs(files, folder, odd)["analysis/c/analysis.json"])
    assert shown == {"source": {"variant": "rope", "corpus": "d\\ata/wiki.txt",
                                "params": 'C:\\runs\\"quoted" out/checkpoints/m.params', "pretrained_params": None}, "n": 1}


def test_a_ray_run_says_when_its_threads_differ_from_the_in_process_runs():
    assert "with 1 CPU thread, the same command without --ray with 2" in cluster.threads_note(None, 2)
    assert cluster.threads_note(1, 2) is None and cluster.threads_note(None, 1) is None


# ---- with Ray ------------------------------------------------------------------------------

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
    monkeypatch.setitem(PRESETS, "tiny", DEMO_PRESETS["tiny"])
    here, there = tmp_path / "here", tmp_path / "there"
    assert reproduce(study_data, here, "tiny", "--cpus_per_cell", "1") == 0
    assert reproduce(study_data, there, "tiny", "--ray", "local") == 0
    printed = capsys.readouterr().out
    assert "[5/5 done, 0 in flight, 0 failed]" in printed and "pretrain-recall-end-marked-vanilla-s0: pretrain done" in printed
    assert ("each cell on Ray trains with 1 CPU thread" in printed) == (torch.get_num_threads() > 1)
    assert rows_without_time(there) == rows_without_time(here)
    a, b = files(here), files(there)
    assert sorted(a) == sorted(b)
    for rel in a:
        if rel.startswith(("predictions/", "checkpoints/", "analysis/")) and rel.endswith((".txt", ".params", ".md")):
            assert a[rel] == b[rel], rel
    assert not any(rel.endswith((".resume", ".lock")) for rel in b)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["preempted", "killed"])
def test_a_worker_stopped_mid_cell_is_run_again_from_its_state(ray_cluster, study_data, tmp_path, monkeypatch, capsys,
                                                               signum):
    """SIGTERM (a preempted node): the training saves, the state travels to --out, the job
    runs again from it. SIGKILL: Ray runs the task again, from the state left on the node."""
    monkeypatch.setitem(PRESETS, "long", LONG)
    out = tmp_path / "ray"
    folder = cluster.scratch_dir(cluster.study_id(out)) / "finetune-only-vanilla-s0" / "checkpoints"
    stopped = {}

    def stop_when_checkpointed():
        """Signal the worker training the cell (its PID is in the writer's lock) once it
        has saved a resumable checkpoint."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not stopped:
            lock = folder / "finetune-only-vanilla-s0.params.lock"
            if (folder / "finetune-only-vanilla-s0.params.resume").exists() and lock.exists():
                holder = lock.read_text().split()
                if holder[:1] == ["PID"]:
                    stopped["pid"] = int(holder[1])
                    os.kill(stopped["pid"], signum)
            time.sleep(0.01)

    stopper = threading.Thread(target=stop_when_checkpointed)
    stopper.start()
    try:
        assert reproduce(study_data, out, "long", "--ray", "local", "--checkpoint_every", "0") == 0
    finally:
        stopped.setdefault("pid", None)
        stopper.join()
    assert stopped["pid"] is not None, "the cell finished before a checkpoint was seen"
    printed = capsys.readouterr().out
    if signum == signal.SIGTERM:
        assert "finetune-only-vanilla-s0: interrupted by SIGTERM at step" in printed
        assert "; running it again (1 of 3)" in printed
    assert "finetune-only-vanilla-s0: continued checkpoints/finetune-only-vanilla-s0.params.resume at step" in printed
    assert "[2/2 done, 0 in flight, 0 failed]" in printed
    assert not list(out.rglob("*.resume")) and not cluster.scratch_dir(cluster.study_id(out)).exists()
    # Resuming is exact: the same answers as a run that was never interrupted.
    here = tmp_path / "here"
    assert reproduce(study_data, here, "long", "--cpus_per_cell", "1") == 0
    name = "predictions/finetune-only-vanilla-s0.txt"
    assert (out / name).read_bytes() == (here / name).read_bytes()
    assert rows_without_time(out) == rows_without_time(here)


def test_a_rerun_after_the_driver_was_stopped_continues_the_cell(ray_cluster, study_data, tmp_path, monkeypatch, capsys):
    """SIGTERM to `kgpt reproduce --ray local` itself mid-cell: it stops, and the same
    command run again continues the cell from the state its task left."""
    out = tmp_path / "ray"
    folder = cluster.scratch_dir(cluster.study_id(out)) / "finetune-only-vanilla-s0" / "checkpoints"
    driver = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_ray import LONG, reproduce; "
              f"from kgpt.presets import PRESETS; PRESETS['long'] = LONG; "
              f"sys.exit(reproduce(__import__('pathlib').Path({str(study_data)!r}), __import__('pathlib').Path({str(out)!r}), "
              f"'long', '--ray', 'local', '--checkpoint_every', '0'))")
    run = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "finetune-only-vanilla-s0.params.resume").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    printed, _ = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM, printed
    assert "kgpt reproduce: stopped by SIGTERM; run the same command again" in printed
    assert not (out / "cells" / "finetune-only-vanilla-s0.json").exists()

    monkeypatch.setitem(PRESETS, "long", LONG)
    assert reproduce(study_data, out, "long", "--ray", "local", "--checkpoint_every", "0") == 0
    printed = capsys.readouterr().out
    assert "finetune-only-vanilla-s0: continued checkpoints/finetune-only-vanilla-s0.params.resume at step" in printed
    assert "[2/2 done, 0 in flight, 0 failed]" in printed
    assert not cluster.scratch_dir(cluster.study_id(out)).exists()


def test_a_bad_file_fails_its_cells_only_and_a_rerun_does_only_those(ray_cluster, study_data, tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setitem(PRESETS, "small", SMALL)
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
