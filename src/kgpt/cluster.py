"""The study matrix on a Ray cluster: every cell a Ray task running :meth:`Study.run_cell`.

The cells of a study are independent and each fits one GPU (the largest model has 3.3M
parameters), so what grows with a study is the number of cells at once, not the size of
one model: data-parallel training of one model (DDP) would buy nothing, and is not offered.
Ray is an optional extra (``pip install 'kgpt[ray]'``); only ``--ray`` imports it.

How files travel. A worker needs kgpt installed and nothing else: it need not share a
filesystem with the driver (the machine that ran ``kgpt reproduce``). The driver puts
the three data files (0.5 MB) into Ray's object store once. Each task works in a folder
of its own on its node (``TMPDIR/kgpt-ray/STUDY/JOB``), receives as task arguments the
checkpoints it builds on (the shared pretrained model, or what an earlier run left in
``--out``), and returns every file it wrote; the driver writes those into ``--out``,
then the cell's JSON, where the in-process run puts them. Checkpoints are a few MB to
tens of MB, seconds of transfer against minutes of training.

Faults. A task whose worker dies (killed, out of memory, node lost) is retried by Ray up
to :data:`MAX_RETRIES` times. The task's folder on the node keeps its training's periodic
``.resume`` checkpoint, so a retry on the same node continues from there (on another node
it starts that stage over). A cell that fails for a user's reason (a bad file) is one line
naming the cell; the other cells go on, and the run ends non-zero, naming the failures.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kgpt.checkpoint import read_checkpoint
from kgpt.errors import KgptError
from kgpt.experiments import Cell, Preset, Study, best_cell
from kgpt.io import atomic_write_bytes
from kgpt.pipeline import resume_path

INSTALL = "--ray needs Ray, which is not installed: pip install 'kgpt[ray]' (in a checkout: pip install -e '.[ray]')"
MAX_RETRIES = 3  # retries of a task whose worker died; a user's error is never retried
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
    error: str | None = None  # one line: a user's error
    resumed: list[str] = field(default_factory=list)  # trainings continued from a .resume checkpoint
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
    out: str  # the driver's --out and --data_dir, to name them in a task's errors
    data_dir: str


def study_id(out: Path) -> str:
    """The study's name on the nodes: the same on a rerun, so a retried or rerun task finds
    its folder (and its ``.resume``) again."""
    return hashlib.sha256(f"{socket.gethostname()}:{out.resolve()}".encode()).hexdigest()[:16]


def scratch_dir(study: str) -> Path:
    """Where a study's tasks work on a node (evaluated on the node)."""
    return Path(tempfile.gettempdir()) / "kgpt-ray" / study


# ---- on a worker -------------------------------------------------------------------------

def _work(spec: Spec, job: Job, data: dict[str, bytes], *inputs: Landed) -> Landed:
    """A Ray task: the job's own folder on this node, the study rebuilt there, the same
    :class:`Study` method the in-process run calls, and the files it wrote sent back."""
    t0, node = time.perf_counter(), socket.gethostname()
    folder = scratch_dir(spec.study_id) / job.name
    failed = next((i for i in inputs if i.error is not None), None)
    if failed is not None:
        return Landed(job.name, error=f"needs {failed.name}, which failed", node=node)
    torch.set_num_threads(spec.threads)  # the CPUs Ray gave this task, not the node's
    try:
        _unpack(folder / DATA, data)
        received = set().union(*(_unpack(folder, i.files) for i in inputs))
        study = Study(folder / DATA, folder, spec.preset, spec.device, spec.compile, progress=False,
                      checkpoint_every=spec.checkpoint_every)
        resumed = _resumable(folder)
        result = {"pretrain": Study.pretrain, "cell": Study.run_cell, "analysis": Study.analyze}[job.kind](study, job.cell)
    except KgptError as e:
        # Nothing of a failed job stays on the node: the rerun's inputs come from --out,
        # where the user can see and fix them.
        shutil.rmtree(folder, ignore_errors=True)
        return Landed(job.name, error=_driver_paths(str(e), folder, spec), node=node)
    files = _pack(folder, received)
    for rel in files:
        if rel.endswith((".json", ".md")):  # the analysis names its inputs
            files[rel] = _driver_paths(files[rel].decode("utf-8"), folder, spec).encode("utf-8")
    shutil.rmtree(folder, ignore_errors=True)  # done: nothing left to resume
    return Landed(job.name, result if isinstance(result, dict) else None, files, resumed=resumed, node=node,
                  seconds=round(time.perf_counter() - t0, 1))


def _driver_paths(text: str, folder: Path, spec: Spec) -> str:
    """``text`` naming the driver's --data_dir and --out where it names this task's folder."""
    return text.replace(str(folder / DATA), spec.data_dir).replace(str(folder), spec.out)


def _unpack(folder: Path, files: dict[str, bytes]) -> set[str]:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, content)
    return set(files)


def _resumable(folder: Path) -> list[str]:
    """The trainings this task will continue (an earlier attempt's, or an earlier run's)."""
    found = []
    for path in sorted(folder.glob("checkpoints/*.resume")):
        try:
            found.append(f"{path.relative_to(folder)} at step {read_checkpoint(path).progress['step']}")
        except KgptError:
            pass  # the training itself reports a damaged file
    return found


def _pack(folder: Path, received: set[str]) -> dict[str, bytes]:
    """Every file the job wrote: not the data or what it was given, nor temporary files,
    locks and resumable states (which stay, or went, with the training)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (not path.is_file() or rel in received or rel.startswith(f"{DATA}/") or path.name.startswith(".")
                or path.suffix in (".lock", ".resume")):
            continue
        files[rel] = path.read_bytes()
    return files


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
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise KgptError(f"--ray {address}: cannot connect to a Ray cluster ({first}); start one with `ray start --head` "
                        "and give auto (on its nodes) or ray://HEAD:10001, or use --ray local") from None
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
    """Submits the study's jobs, lands their files in --out as they finish, and says so."""

    def __init__(self, ray, study: Study, device: str, resources: dict, cpus: int):
        self.ray, self.study = ray, study
        self.spec = Spec(study.preset, device, study.compile, study.checkpoint_every, cpus, study_id(study.out),
                         str(study.out), str(study.data_dir))
        self.resources = resources
        self.task = ray.remote(_work)
        self.data = ray.put({p.name: p.read_bytes() for p in (study.wiki, study.train, study.dev)})
        self.pending: dict = {}  # ObjectRef -> Job
        self.rows: dict[str, dict] = {}  # cell key -> row, in landing order
        self.failed: dict[str, str] = {}  # job name -> why
        self.cells = self.cells_failed = 0

    def run(self, cells: list[Cell]) -> tuple[list[dict], dict[str, str], Path | None]:
        self.cells = len(cells)
        pretraining: dict[Path, object] = {}  # a shared pretrained model -> its task
        for cell in cells:
            row = self.study.finished(cell)
            if row is not None:
                self.rows[cell.key] = row
                print(f"{cell.key}: done earlier, {row['accuracy']:.1f}%")
                continue
            deps = []
            shared = None if cell.setting == "baseline" else self.study.pretrained_path(cell)
            if shared is not None and not shared.exists():
                if shared not in pretraining:
                    pretraining[shared] = self._submit(Job("pretrain", cell, shared.stem), [self._given(shared)])
                deps.append(pretraining[shared])
            self._submit(Job("cell", cell, cell.key), deps + [self._given(*self._built_on(cell))])
        print(f"kgpt reproduce: {len(self.pending)} tasks on Ray ({len(self.rows)} of {len(cells)} cells done earlier)",
              flush=True)
        self._collect()
        rows = [self.rows[c.key] for c in cells if c.key in self.rows]
        return rows, self.failed, self._analysis(rows)

    def _built_on(self, cell: Cell) -> list[Path]:
        if cell.setting == "baseline":
            return []
        return [p for p in (self.study.pretrained_path(cell), self.study.answering_path(cell)) if p is not None]

    def _given(self, *paths: Path) -> Landed:
        """The files (and interrupted trainings) in --out that a job builds on."""
        files = {}
        for path in {q for p in paths for q in (p, resume_path(p))}:
            if path.is_file():
                files[path.relative_to(self.study.out).as_posix()] = path.read_bytes()
        return Landed(f"{self.study.out}", files=files)

    def _submit(self, job: Job, inputs: list):
        resources = {"num_cpus": 1, "num_gpus": 0} if job.cell.setting == "baseline" else self.resources
        task = self.task.options(max_retries=MAX_RETRIES, name=job.name, **resources)
        ref = task.remote(self.spec, job, self.data, *inputs)
        self.pending[ref] = job
        return ref

    def _collect(self) -> None:
        while self.pending:
            [ref], _ = self.ray.wait(list(self.pending), num_returns=1)
            job = self.pending.pop(ref)
            self._land(job, self._get(ref, job))

    def _get(self, ref, job: Job) -> Landed:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # its worker died more than MAX_RETRIES times, or a bug
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
        if landed.error is not None:
            self.failed[job.name] = landed.error
            self.cells_failed += job.kind == "cell"
            print(f"{self._tally()} {job.name} FAILED{where}: {landed.error}", flush=True)
        elif job.kind == "cell":
            row = self.rows[job.name] = landed.row
            self.study.record(job.cell, row)
            print(f"{self._tally()} {job.name}: {row['correct']}/{row['total']} = {row['accuracy']:.1f}% "
                  f"({row['seconds']}s{where})", flush=True)
        else:
            print(f"{self._tally()} {job.name}: {job.kind} done ({landed.seconds}s{where})", flush=True)

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
            job = Job("analysis", best, f"analysis-{best.key}")
            self._submit(job, [self._given(*self._built_on(best))])
            self._collect()
        return report if report.exists() else None


def run_study(study: Study, cells: list[Cell], address: str, cpus_per_cell: int = 1
              ) -> tuple[list[dict], dict[str, str], Path | None]:
    """Run the cells not yet done as Ray tasks on the cluster at ``address``; the rows of
    all finished cells, the failures (job name -> one line), and the best cell's analysis."""
    ray = _import_ray()
    connected = _connect(ray, address)
    try:
        device, resources = _resources(ray, study.device, cpus_per_cell)
        return _Driver(ray, study, device, resources, cpus_per_cell).run(cells)
    finally:
        if connected:
            ray.shutdown()
