"""The study matrix on a Ray cluster: every cell a Ray task running :meth:`Study.run_cell`.

The cells of a study are independent and each fits one GPU (the largest model has 3.3M
parameters), so what grows with a study is the number of cells at once, not the size of
one model: data-parallel training of one model (DDP) would buy nothing, and is not offered.
Ray is an optional extra (``pip install 'kgpt[ray]'``); only ``--ray`` imports it.

How files travel. A worker needs kgpt installed and nothing else: it need not share a
filesystem with the driver (the machine that ran ``kgpt reproduce``). The driver puts
the three data files (0.5 MB) into Ray's object store once. Each task works in a folder
of its own on its node (``TMPDIR/kgpt-ray/STUDY/JOB``), receives as task arguments the
checkpoints it builds on, read from ``--out`` (a shared pretrained model lands there
before the cells that build on it are sent), and returns every file it wrote; the driver
writes those into ``--out``, then the cell's JSON, where the in-process run puts them. Checkpoints are a few MB to
tens of MB, seconds of transfer against minutes of training.

Faults, by cause (the driver decides, :meth:`_Driver._land`):

- *Stopped by a signal* (a preempted node sends SIGTERM; Ctrl-C): the training saves its
  state and stops, the task sends that state back with the files it finished, the driver
  keeps it in --out (``CHECKPOINT.resume``, the newest state of that training) and runs
  the job again from it, wherever the retry lands, up to :data:`MAX_RETRIES` times.
- *Out of memory*: the same, from the last saved state.
- *The worker died* (killed, the node lost): Ray runs the task again, up to
  :data:`MAX_RETRIES` times; on the same node the retry continues from the periodic
  ``.resume`` the dead worker left in its folder, elsewhere from the newest state in --out.
- *A user's error* (a damaged file) or *a bug*: not run again (it would fail the same way);
  one line naming the job. The other cells go on; the run ends non-zero, naming the failures.

A task's folder is removed when the task ends, except after a stop or a death, when it
holds the state a retry on that node continues from; when the run ends, however it ends,
the driver removes the study's folders on every node. A driver that was itself stopped
leaves them: rerunning the same command keeps the finished cells and continues the others
from the newest state in --out or in the node's folder. ``.resume`` files in --out are
removed when their training's checkpoint lands.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import threading
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kgpt.analysis import analysis_json
from kgpt.checkpoint import read_checkpoint
from kgpt.data.task import BIRTHPLACE, Task, tasks_file
from kgpt.errors import KgptError
from kgpt.io import atomic_write_bytes
from kgpt.pipeline import resume_path
from kgpt.presets import Preset
from kgpt.study import Cell, Study, best_cell
from kgpt.training.trainer import Interrupted, deferred_signals

INSTALL = "--ray needs Ray, which is not installed: pip install 'kgpt[ray]' (in a checkout: pip install -e '.[ray]')"
MAX_RETRIES = 3  # runs again of a job stopped by a signal, out of memory, or whose worker died
DATA = "data"  # the data files' folder inside a task's folder


@dataclass(frozen=True)
class Job:
    """One task: ``pretrain`` a model several cells share, run a ``cell``, or the ``analysis``."""

    kind: str
    cell: Cell
    name: str  # in progress lines, errors, and the task's folder


@dataclass
class Landed:
    """What a task sends back to the driver (or what the driver gives a task)."""

    name: str
    row: dict | None = None  # a cell's results row
    files: dict[str, bytes] = field(default_factory=dict)  # written by the task, relative to --out
    error: str | None = None  # one line: why the job failed
    retry: bool = False  # failed for a passing cause (a signal, out of memory): run it again from ``files``' states
    resumed: list[str] = field(default_factory=list)  # trainings continued from a .resume checkpoint
    saved: list[str] = field(default_factory=list)  # with ``retry``: the states sent back
    node: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Spec:
    """What every task needs to rebuild the driver's :class:`Study` in its own folder."""

    preset: Preset
    device: str
    compile: bool
    checkpoint_every: float
    threads: int
    study_id: str
    out: str  # the driver's --out and --data_dir, to name them in a task's errors and outputs
    data_dir: str
    task: Task = BIRTHPLACE  # the question asked (its files travel with the corpus)


def study_id(out: Path) -> str:
    """The study's name on the nodes: the same on a rerun, so a retried or rerun task finds
    its folder (and its ``.resume``) again."""
    return hashlib.sha256(f"{socket.gethostname()}:{out.resolve()}".encode()).hexdigest()[:16]


def scratch_dir(study: str) -> Path:
    """Where a study's tasks work on a node (evaluated on the node)."""
    return Path(tempfile.gettempdir()) / "kgpt-ray" / study


# ---- on a worker -------------------------------------------------------------------------

def _passing_errors() -> tuple[type[BaseException], ...]:
    """Failures another attempt may not meet: a signal (the state was saved), out of memory."""
    return (Interrupted, torch.OutOfMemoryError, MemoryError)


def _work(spec: Spec, job: Job, data: dict[str, bytes], *inputs: Landed) -> Landed:
    """A Ray task: the job's own folder on this node, the study rebuilt there, the same
    :class:`Study` method the in-process run calls, and the files it wrote sent back."""
    t0, node = time.perf_counter(), socket.gethostname()
    folder = scratch_dir(spec.study_id) / job.name
    torch.set_num_threads(spec.threads)  # the CPUs Ray gave this task, not the node's
    received: set[str] = set()
    resumed: list[str] = []
    keep = False  # the folder, for a retry on this node
    try:
        _unpack(folder / DATA, data)
        received = set().union(*(_unpack(folder, i.files) for i in inputs))
        study = Study(folder / DATA, folder, spec.preset, spec.device, spec.compile, progress=False,
                      checkpoint_every=spec.checkpoint_every, task=spec.task)
        resumed = _resumable(folder)
        result = {"pretrain": Study.pretrain, "cell": Study.run_cell, "analysis": Study.analyze}[job.kind](study, job.cell)
        files = _shown_outputs(_pack(folder, received), folder, spec)
        return Landed(job.name, result if isinstance(result, dict) else None, files, resumed=resumed, node=node,
                      seconds=round(time.perf_counter() - t0, 1))
    except _passing_errors() as e:
        keep = True
        why = "out of memory" if not isinstance(e, Interrupted) else _shown(e.what, folder, spec)
        return Landed(job.name, files=_pack(folder, received, states=True), error=why, retry=True, resumed=resumed,
                      saved=_resumable(folder), node=node)
    except KgptError as e:  # a user's error: the rerun's inputs come from --out, where the user can fix them
        return Landed(job.name, error=_shown(str(e), folder, spec), node=node)
    except Exception as e:  # a bug: it would fail again
        return Landed(job.name, error=_shown(f"{type(e).__name__}: {e}", folder, spec)[:400], node=node)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _shown(text: str, folder: Path, spec: Spec) -> str:
    """A message naming the driver's --data_dir and --out where it names this task's folder."""
    return text.replace(str(folder / DATA), spec.data_dir).replace(str(folder), spec.out)


def _shown_outputs(files: dict[str, bytes], folder: Path, spec: Spec) -> dict[str, bytes]:
    """``files`` with an analysis naming its inputs by the driver's paths (its ``source``
    values rewritten, then the JSON written again as the analysis writes it)."""
    for rel in [r for r in files if r.endswith("/analysis.json")]:
        analysis = json.loads(files[rel])
        analysis["source"] = {k: _shown(v, folder, spec) if isinstance(v, str) else v
                              for k, v in analysis.get("source", {}).items()}
        files[rel] = analysis_json(analysis)
    return files


def _unpack(folder: Path, files: dict[str, bytes]) -> set[str]:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".resume" and not _later_state(path, content):
            continue  # an earlier attempt on this node got further than what --out holds
        atomic_write_bytes(path, content)
    return set(files)


def _step(path: Path) -> int:
    try:
        return int(read_checkpoint(path).progress["step"])
    except (KgptError, KeyError):
        return -1


def _later_state(path: Path, content: bytes) -> bool:
    """Whether ``content`` (a ``.resume`` sent by the driver) is further on than the state
    this node already holds at ``path``."""
    if not path.exists():
        return True
    sent = path.with_name(f"{path.name}.sent")
    atomic_write_bytes(sent, content)
    try:
        return _step(sent) > _step(path)
    finally:
        sent.unlink()


def _resumable(folder: Path) -> list[str]:
    """The trainings in this folder that have a resumable state, and where they stand."""
    found = []
    for path in sorted(folder.glob("checkpoints/*.resume")):
        step = _step(path)
        if step >= 0:  # a damaged file: the training itself reports it
            found.append(f"{path.relative_to(folder)} at step {step}")
    return found


def _pack(folder: Path, received: set[str], states: bool = False) -> dict[str, bytes]:
    """Every file the job wrote: not the data or what it was given, nor temporary files and
    locks; resumable states only with ``states`` (a stopped job's, for its retry)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        state = path.suffix == ".resume"
        if (not path.is_file() or rel.startswith(f"{DATA}/") or path.name.startswith(".") or path.suffix == ".lock"
                or (rel in received and not state) or (state and not states)):
            continue
        files[rel] = path.read_bytes()
    return files


def _clean(study: str) -> None:
    """A Ray task: remove this node's folders of ``study``."""
    shutil.rmtree(scratch_dir(study), ignore_errors=True)


# ---- on the driver -----------------------------------------------------------------------

def _import_ray():
    try:
        import ray
    except ImportError:
        raise KgptError(INSTALL) from None
    return ray


def _connect(ray, address: str) -> bool:
    """Join (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or start (``local``) a cluster;
    True when this call connected, so the run disconnects (and stops what it started).
    A process already connected (a script or test that called ``ray.init``) keeps its
    connection, whatever the address."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False} if address == "local" else {}  # the dashboard needs ray[default]
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise KgptError(f"--ray {address}: cannot connect to a Ray cluster ({first}); start one with `ray start --head` "
                        "and give auto (on its nodes) or ray://HEAD:10001, or use --ray local") from None
    # Ray's driver handler exits at once with status 1; kgpt's unwinds (disconnecting, so
    # a local cluster stops and its tasks keep their state on the node) and exits 143.
    if on_sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _resources(ray, device: str, cpus: int) -> tuple[str, dict]:
    """The device the cells train on and what each task asks Ray for: one GPU with cuda
    (``auto``: when the cluster has any), else ``cpus`` CPUs."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gpus = sum(n.get("GPU", 0) for n in nodes)
    device = ("cuda" if gpus else "cpu") if device == "auto" else device
    if device == "cuda" and not gpus:
        raise KgptError("--device cuda: the Ray cluster has no GPU; give --device cpu, or start workers on GPU machines")
    most = max((n.get("CPU", 0) for n in nodes), default=0)
    if cpus > most:  # Ray would wait for such a node forever
        raise KgptError(f"--cpus_per_cell {cpus}: no node of the Ray cluster has {cpus} CPUs (the largest has {most:g})")
    return device, {"num_cpus": cpus, "num_gpus": 1 if device == "cuda" else 0}


class _Driver:
    """Submits the study's jobs, lands their files in --out as they finish, runs again the
    ones that failed for a passing cause, and says so."""

    def __init__(self, ray, study: Study, device: str, resources: dict, cpus: int):
        self.ray, self.study = ray, study
        self.spec = Spec(study.preset, device, study.compile, study.checkpoint_every, cpus, study_id(study.out),
                         str(study.out), str(study.data_dir), study.task)
        self.resources = resources
        self.task = ray.remote(_work)
        # The tasks file too, where there is one: a node reads the questions in their task's forms.
        data = (study.wiki, study.train, study.dev, *filter(None, [tasks_file(study.data_dir)]))
        self.data = ray.put({p.name: p.read_bytes() for p in data})
        self.pending: dict = {}  # ObjectRef -> Job
        self.waiting: dict[str, list[Cell]] = {}  # a pretraining job -> the cells that build on it
        self.attempts: dict[str, int] = {}  # job name -> runs again so far
        self.rows: dict[str, dict] = {}  # cell key -> row, in landing order
        self.failed: dict[str, str] = {}  # job name -> why
        self.cells = self.cells_failed = 0

    def run(self, cells: list[Cell]) -> tuple[list[dict], dict[str, str], Path | None]:
        self.cells = len(cells)
        for cell in cells:
            row = self.study.finished(cell)
            if row is not None:
                self.rows[cell.key] = row
                print(f"{cell.key}: done earlier, {row['accuracy']:.1f}%")
                continue
            shared = None if cell.setting == "baseline" else self.study.pretrained_path(cell)
            if shared is not None and not shared.exists():  # cells wait for their pretraining to land
                if shared.stem not in self.waiting:
                    self.waiting[shared.stem] = []
                    self._submit(Job("pretrain", cell, shared.stem))
                self.waiting[shared.stem].append(cell)
            else:
                self._submit(Job("cell", cell, cell.key))
        print(f"kgpt reproduce: {len(self.pending)} tasks on Ray ({len(self.rows)} of {len(cells)} cells done earlier)",
              flush=True)
        self._collect()
        rows = [self.rows[c.key] for c in cells if c.key in self.rows]
        return rows, self.failed, self._analysis(rows)

    def _built_on(self, job: Job) -> list[Path]:
        """The checkpoints a job trains or reads (what --out holds of them travels with it)."""
        if job.kind == "pretrain":
            return [self.study.pretrained_path(job.cell)]
        if job.cell.setting == "baseline":
            return []
        return [p for p in (self.study.pretrained_path(job.cell), self.study.answering_path(job.cell)) if p is not None]

    def _given(self, job: Job) -> Landed:
        """The files (and interrupted trainings) in --out that a job builds on."""
        files = {}
        for path in {q for p in self._built_on(job) for q in (p, resume_path(p))}:
            if path.is_file():
                files[path.relative_to(self.study.out).as_posix()] = path.read_bytes()
        return Landed(f"{self.study.out}", files=files)

    def _submit(self, job: Job) -> None:
        resources = {"num_cpus": 1, "num_gpus": 0} if job.cell.setting == "baseline" else self.resources
        task = self.task.options(max_retries=MAX_RETRIES, name=job.name, **resources)
        self.pending[task.remote(self.spec, job, self.data, self._given(job))] = job

    def _collect(self) -> None:
        """Land jobs as they finish. Ctrl-C or SIGTERM to the driver stops it between two
        waits (raised inside Ray's wait, it would come out as Ray's SystemError)."""
        with deferred_signals() as stop:
            while self.pending:
                ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=0.5)
                if stop["signal"]:
                    raise Interrupted(f"stopped by {signal.Signals(stop['signal']).name}", stop["signal"],
                                      "run the same command again: finished cells are kept, the others "
                                      "continue from their saved state")
                for ref in ready:
                    job = self.pending.pop(ref)
                    self._land(job, self._get(ref, job))

    def _get(self, ref, job: Job) -> Landed:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # its worker died more than MAX_RETRIES times
            last = (str(e).strip().splitlines() or [""])[-1]
            return Landed(job.name, error=f"{type(e).__name__}: {last}"[:400])

    def _land(self, job: Job, landed: Landed) -> None:
        for rel, content in landed.files.items():
            path = self.study.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, content)
        where = f" on {landed.node}" if landed.node else ""
        for state in landed.resumed:
            print(f"{job.name}: continued {state}{where}")
        if landed.retry and self.attempts.get(job.name, 0) < MAX_RETRIES:
            self.attempts[job.name] = self.attempts.get(job.name, 0) + 1
            saved = f", saved {', '.join(landed.saved)}" if landed.saved else ""
            print(f"{job.name}: {landed.error}{where}{saved}; running it again "
                  f"({self.attempts[job.name]} of {MAX_RETRIES})", flush=True)
            self._submit(job)
            return
        if landed.error is not None:
            self._fail(job, landed.error + (f" (after {MAX_RETRIES} runs again; rerun the same command to continue "
                                            "from the state kept in --out)" if landed.retry else ""), where)
            return
        for path in self._built_on(job):  # the training finished: its state is spent
            if path.exists():
                resume_path(path).unlink(missing_ok=True)
        if job.kind == "cell":
            row = self.rows[job.name] = landed.row
            self.study.record(job.cell, row)
            print(f"{self._tally()} {job.name}: {row['correct']}/{row['total']} = {row['accuracy']:.1f}% "
                  f"({row['seconds']}s{where})", flush=True)
            return
        print(f"{self._tally()} {job.name}: {job.kind} done ({landed.seconds}s{where})", flush=True)
        for cell in self.waiting.pop(job.name, []):
            self._submit(Job("cell", cell, cell.key))

    def _fail(self, job: Job, why: str, where: str = "") -> None:
        self.failed[job.name] = why
        self.cells_failed += job.kind == "cell"
        print(f"{self._tally()} {job.name} FAILED{where}: {why}", flush=True)
        for cell in self.waiting.pop(job.name, []):
            self._fail(Job("cell", cell, cell.key), f"needs {job.name}, which failed")

    def _tally(self) -> str:
        in_flight = sum(1 for j in self.pending.values() if j.kind == "cell")  # queued or running: Ray does not say which
        return f"[{len(self.rows)}/{self.cells} done, {in_flight} in flight, {self.cells_failed} failed]"

    def _analysis(self, rows: list[dict]) -> Path | None:
        """The best cell's analysis, as a task too (the driver may have no GPU, or no torch threads to spare)."""
        best = best_cell(rows)
        if best is None:
            return None
        report = self.study.out / "analysis" / best.key / "analysis.md"
        if not report.exists():
            self._submit(Job("analysis", best, f"analysis-{best.key}"))
            self._collect()
        return report if report.exists() else None

    def clean(self) -> None:
        """Remove the study's folders on every live node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        clean = self.ray.remote(_clean)
        refs = [clean.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(self.spec.study_id) for n in self.ray.nodes() if n.get("Alive")]
        self.ray.wait(refs, num_returns=len(refs), timeout=60)


def threads_note(cpus_per_cell: int | None, in_process_threads: int) -> str | None:
    """The line that says a Ray run trains with other thread counts than the in-process run
    (whose numbers then differ in the last bits), or None when they agree."""
    if cpus_per_cell is not None or in_process_threads == 1:
        return None
    return (f"kgpt reproduce: each cell on Ray trains with 1 CPU thread, the same command without --ray with "
            f"{in_process_threads}: their predictions can differ; give both --cpus_per_cell N for the same files")


def run_study(study: Study, cells: list[Cell], address: str, cpus_per_cell: int | None = None
              ) -> tuple[list[dict], dict[str, str], Path | None]:
    """Run the cells not yet done as Ray tasks on the cluster at ``address``, each with
    ``cpus_per_cell`` CPUs (default 1); the rows of all finished cells, the failures (job
    name -> one line), and the best cell's analysis."""
    ray = _import_ray()
    connected = _connect(ray, address)
    try:
        device, resources = _resources(ray, study.device, cpus_per_cell or 1)
        note = threads_note(cpus_per_cell, torch.get_num_threads()) if device == "cpu" else None
        if note:
            print(note, flush=True)
        driver = _Driver(ray, study, device, resources, cpus_per_cell or 1)
        result = driver.run(cells)
        driver.clean()  # not when the driver itself is stopped: a rerun continues from the nodes' folders
        return result
    finally:
        if connected:
            ray.shutdown()
