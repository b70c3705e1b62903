"""One study on disk: its cells, each run from pretraining to its result row.

A cell is one setting (:mod:`kgpt.presets`) with one variant and one seed. Every cell
goes through :mod:`kgpt.pipeline`, the code behind the CLI. A study folder is resumable:
a finished cell's JSON is kept and skipped; a finished pretraining is reused by later
cells that pretrain as it did (and refused to any other); an interrupted training
continues from its ``.resume`` checkpoint. The in-process loop (:meth:`Study.run`) and a
Ray task (:mod:`kgpt.cluster`) both run a cell with :meth:`Study.run_cell`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kgpt import pipeline
from kgpt.checkpoint import read_checkpoint
from kgpt.data.corpus import read_questions
from kgpt.data.task import BIRTHPLACE, Task
from kgpt.errors import KgptError
from kgpt.evaluate import most_frequent_place, score, write_predictions
from kgpt.io import atomic_write_bytes
from kgpt.presets import Preset, Setting
from kgpt.training import get_recipe



@dataclass
class Cell:
    setting: str
    variant: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.setting}-{self.variant}-s{self.seed}"


def pretraining(s: Setting) -> dict:
    """What a setting's pretrained model is trained with, by the names its checkpoint
    records them under (its progress and its model's config)."""
    stage = get_recipe(s.recipe).pretrain
    return {
        "recipe": s.recipe, "max_epochs": stage.epochs if s.pretrain_epochs is None else s.pretrain_epochs,
        "batch_size": s.pretrain_batch or stage.batch, "optimizer": s.pretrain_optimizer or stage.optimizer,
        "peak_lr": stage.lr if s.pretrain_lr is None else s.pretrain_lr, **pipeline.model_sizes(s.recipe, s.model),
    }


def _changes(was: dict, now: dict, keys) -> str:
    """``key was -> now`` for each of ``keys`` whose value differs, for a one-line refusal."""
    return ", ".join(f"{k} {was.get(k)!r} -> {now.get(k)!r}" for k in keys if was.get(k) != now.get(k))


class Study:
    """One study directory: data paths, the cells' results, and what is already done."""

    def __init__(self, data_dir: Path, out: Path, preset: Preset, device: str, compile: bool = False, progress: bool = True,
                 checkpoint_every: float = 60.0, task: Task = BIRTHPLACE, shared_pretraining: Path | None = None):
        """``task``: the question asked (its train and dev files in ``data_dir``).
        ``shared_pretraining``: a folder for pretrained models that read no question, so
        that the studies of several tasks on one corpus pretrain once (default: this
        study's checkpoints)."""
        self.data_dir, self.out, self.preset, self.task = data_dir, out, preset, task
        self.device, self.compile, self.progress = device, compile, progress
        self.checkpoint_every = checkpoint_every  # seconds between a training's resumable checkpoints
        self._claim(out, task)
        self.wiki = data_dir / "wiki.txt"
        self.train = data_dir / task.train
        self.dev = data_dir / task.dev
        for p in (self.wiki, self.train, self.dev):
            if not p.is_file():
                raise KgptError(f"{p} is missing; the data folder needs wiki.txt, {task.train} and {task.dev}")
        for sub in ("cells", "checkpoints", "predictions"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        self.shared_pretraining = shared_pretraining or out / "checkpoints"
        self.shared_pretraining.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _claim(out: Path, task: Task) -> None:
        """Keep a study folder to one task: its finished cells answer that task's questions
        (finished cells without the mark are the assignment's)."""
        mark = out / "task.json"
        if mark.is_file():
            held = Task.from_spec(json.loads(mark.read_text()), str(mark))
        else:
            held = BIRTHPLACE if any((out / "cells").glob("*.json")) else task
        if held != task:
            raise KgptError(f"{out} holds a study of task {held.name!r}, not {task.name!r}; give another --out")
        if not task.is_default and not mark.is_file():
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(mark, json.dumps(task.spec(), indent=1).encode())

    def _opts(self, s: Setting, seed: int, out_path: Path, batch: int | None,
              optimizer: str | None = None) -> pipeline.RunOptions:
        return pipeline.RunOptions(
            seed=seed, device=self.device, compile=self.compile or s.compile, processes=s.processes,
            resume=pipeline.resume_path(out_path).exists(),
            progress=self.progress, batch_size=batch, model=s.model or None, checkpoint_every=self.checkpoint_every,
            recipe=s.recipe, optimizer=optimizer,
        )

    def _setting(self, cell: Cell) -> Setting:
        return next(s for s in self.preset.settings if s.name == cell.setting)

    def run(self, cells: list[Cell]) -> list[dict]:
        """The cells one after another in this process."""
        rows = []
        for i, cell in enumerate(cells, 1):
            row = self.finished(cell)
            if row is not None:
                rows.append(row)
                print(f"[{i}/{len(cells)}] {cell.key}: done earlier, {row['accuracy']:.1f}%")
                continue
            print(f"[{i}/{len(cells)}] {cell.key}: running", flush=True)
            row = self.run_cell(cell)
            self.record(cell, row)
            rows.append(row)
            print(f"[{i}/{len(cells)}] {cell.key}: {row['correct']}/{row['total']} = {row['accuracy']:.1f}% ({row['seconds']}s)")
        return rows

    def _done_path(self, cell: Cell) -> Path:
        return self.out / "cells" / f"{cell.key}.json"

    def finished(self, cell: Cell) -> dict | None:
        """The row of a cell finished by an earlier run (which a rerun keeps), else None.
        A cell finished with other settings than its setting's now (a preset changed
        between two kgpt versions) is refused, not shown as this one's result; rows
        written before settings were recorded are kept as they are."""
        done = self._done_path(cell)
        if not done.exists():
            return None
        row = json.loads(done.read_text())
        was, now = row.pop("trained_with", None), self._spec(cell)
        if was is not None and was != now:
            changed = _changes(was, now, sorted(set(was) | set(now)))
            raise KgptError(f"{self.out} holds cell {cell.key} trained with other settings ({changed}); "
                            "give another --out to run it as it is now")
        return row

    def record(self, cell: Cell, row: dict) -> None:
        """Mark the cell finished, with the settings it trained with: written last, so a
        cell interrupted before it reruns."""
        atomic_write_bytes(self._done_path(cell), json.dumps({**row, "trained_with": self._spec(cell)}, indent=1).encode())

    def _spec(self, cell: Cell) -> dict:
        return {"setting": "baseline"} if cell.setting == "baseline" else asdict(self._setting(cell))

    def run_cell(self, cell: Cell) -> dict:
        """One cell from its pretraining (unless done) to its row, timed. The one cell
        function: the in-process loop and a Ray task (:mod:`kgpt.cluster`) both call it."""
        t0 = time.perf_counter()
        row = self._run_cell(cell)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        return row

    def pretrain(self, cell: Cell) -> Path | None:
        """The cell's pretrained model, trained unless it exists; None for a setting without
        pretraining. Several cells share one, so on Ray it is a task of its own, before theirs."""
        s = self._setting(cell)
        pretrained = self.pretrained_path(cell)
        if pretrained is not None and pretrained.exists():
            self._check_pretrained(s, pretrained)
        elif pretrained is not None:
            pipeline.pretrain(
                cell.variant, self.wiki, pretrained, lr=s.pretrain_lr, max_epochs=s.pretrain_epochs,
                opts=self._opts(s, cell.seed, pretrained, s.pretrain_batch, s.pretrain_optimizer),
                question_mix_path=self.train if get_recipe(s.recipe).mixes_questions else None,
            )
        return pretrained

    def _check_pretrained(self, s: Setting, path: Path) -> None:
        """Refuse a pretrained model at the setting's path that was trained otherwise (a
        cell interrupted after pretraining, then its preset changed; or two settings of one
        recipe that pretrain differently), as :meth:`finished` refuses a finished cell.
        What a model written by an older kgpt does not record is not compared."""
        saved = read_checkpoint(path)
        held = {**saved.progress, **saved.config.to_dict()}
        wanted = pretraining(s)
        changed = _changes(held, wanted, [k for k in wanted if held.get(k) is not None])
        if changed:
            raise KgptError(f"{path} holds a model pretrained with other settings ({changed}) than setting "
                            f"{s.name}'s; give another --out to pretrain it as it is now")

    def _run_cell(self, cell: Cell) -> dict:
        pred_path = self.out / "predictions" / f"{cell.key}.txt"
        if cell.setting == "baseline":
            place = most_frequent_place(read_questions(self.train, require_answers=True))
            dev = read_questions(self.dev)
            predictions = [place] * len(dev)
            write_predictions(pred_path, predictions)
            total, correct = score(dev, predictions, where=str(self.dev))
            return self._row(cell, int(correct), int(total), answer=place)
        s = self._setting(cell)
        pretrained = self.pretrain(cell)
        finetuned = self.answering_path(cell)
        if not finetuned.exists():
            pipeline.finetune(
                cell.variant, self.wiki, finetuned, self.train, reading_params_path=pretrained, lr=s.finetune_lr,
                max_epochs=s.finetune_epochs, opts=self._opts(s, cell.seed, finetuned, s.finetune_batch),
            )
        ev = pipeline.evaluate(cell.variant, self.wiki, finetuned, self.dev, pred_path, device=self.device)
        if pretrained is None:
            return self._row(cell, ev.correct, ev.total)
        # What pretraining stored, probed both ways, beside what finetuning got out of it.
        storage = pipeline.storage(cell.variant, self.wiki, pretrained, self.dev, device=self.device)
        return self._row(cell, ev.correct, ev.total, **{f"{probe}_{k}": getattr(found, k) for probe, found in storage.items()
                                                        for k in ("stored", "probed", "chance")})

    def answering_path(self, cell: Cell) -> Path:
        """The model that answers dev: the finetuned one, or the pretrained one itself
        where the setting has no finetuning stage (the knowledge recipe can answer after
        pretraining alone)."""
        pretrained = self.pretrained_path(cell)
        s = self._setting(cell)
        epochs = s.finetune_epochs if s.finetune_epochs is not None else get_recipe(s.recipe).finetune.epochs
        if pretrained is not None and epochs == 0:
            return pretrained
        return self.out / "checkpoints" / f"{cell.key}.params"

    def pretrained_path(self, cell: Cell) -> Path | None:
        """Where a cell's pretrained model is (one per recipe, variant and seed); None without pretraining."""
        s = self._setting(cell)
        if not s.pretrains:
            return None
        recipe = "" if s.recipe == "assignment" else f"{s.recipe}-"
        folder = self.out / "checkpoints" if get_recipe(s.recipe).mixes_questions else self.shared_pretraining
        return folder / f"pretrain-{recipe}{cell.variant}-s{cell.seed}.params"

    def analyze_best(self, rows: list[dict]) -> Path | None:
        """The confidence and error analysis (:mod:`kgpt.analysis`) of the most accurate
        trained cell, written once under ``analysis/CELL`` (a rerun keeps it)."""
        best = best_cell(rows)
        return None if best is None else self.analyze(best)

    def analyze(self, cell: Cell) -> Path:
        """The analysis of one trained cell, unless an earlier run wrote it."""
        report = self.out / "analysis" / cell.key / "analysis.md"
        if not report.exists():
            pipeline.evaluate(
                cell.variant, self.wiki, self.answering_path(cell), self.dev, device=self.device,
                analysis_dir=report.parent, finetune_corpus_path=self.train, pretrained_params_path=self.pretrained_path(cell),
            )
        return report

    def _row(self, cell: Cell, correct: int, total: int, **extra) -> dict:
        s = None if cell.setting == "baseline" else self._setting(cell)
        return {
            "setting": cell.setting, "variant": cell.variant, "seed": cell.seed, "recipe": s and s.recipe,
            # A setting may pretrain with another optimiser than its recipe's (the demo's course cell).
            "pretrain_optimizer": pretraining(s)["optimizer"] if s and s.pretrains else None,
            "correct": correct, "total": total, "accuracy": round(100.0 * correct / total, 2), **extra,
        }

    def loss_curves(self) -> dict[str, list[dict]]:
        """Training histories kept in the checkpoints, by checkpoint name (a damaged one is
        left out: the cell that needed it has already failed, naming it)."""
        curves = {}
        for path in sorted({*(self.out / "checkpoints").glob("*.params"), *self.shared_pretraining.glob("*.params")}):
            try:
                history = read_checkpoint(path).progress.get("history", [])
            except KgptError:
                continue
            if history:
                curves[path.stem] = history
        return curves


def best_cell(rows: list[dict]) -> Cell | None:
    """The most accurate trained cell (pretrain+finetune on a tie), the one analysed."""
    trained = [r for r in rows if r["setting"] != "baseline"]
    if not trained:
        return None
    best = max(trained, key=lambda r: (r["accuracy"], r["setting"] == "pretrain+finetune"))
    return Cell(best["setting"], best["variant"], best["seed"])


def study_cells(variants: list[str], seeds: list[int], preset: Preset) -> list[Cell]:
    cells = [Cell("baseline", variants[0], seeds[0])]
    for s in preset.settings:
        for variant in [s.variant] if s.variant else variants:
            cells += [Cell(s.name, variant, seed) for seed in seeds]
    return cells

