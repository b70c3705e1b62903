"""Study runners: ``kgpt demo`` on embedded synthetic data and ``kgpt reproduce``.

Both run the settings the assignment compares, cell by cell, and kgpt's own:

* ``baseline``: one answer for everybody (the training file's most frequent place;
  "London" on the real data, as the assignment's London baseline);
* ``finetune-only``: finetune a fresh model on the questions, then answer dev;
* ``pretrain+finetune``: span-corruption pretraining on the corpus, then the same;
* ``knowledge-recipe``: the knowledge recipe (:data:`kgpt.training.recipe.KNOWLEDGE`),
  which pretrains on the bios and the training questions together. Unlike the others
  it sees the training questions during pretraining; the dev people only ever through
  their bios, as in the assignment.
* ``recall-read``: the recall recipe (:data:`kgpt.training.recipe.RECALL`): pretraining
  on the bios alone, a reader finetuned on the training people's bios and places, and
  answers by recalling the dev person's bio and reading it (:mod:`kgpt.answering`).

Every pretrained cell also reports storage, probed two ways (:mod:`kgpt.probe`): cued
completion of the bio up to the place, and free recall from ``NAME.`` alone.

Every cell goes through :mod:`kgpt.pipeline`, the code behind the CLI. ``reproduce`` is
resumable: a finished cell's JSON is kept and skipped; a finished pretraining is reused
by later cells; an interrupted training continues from its ``.resume`` checkpoint.
With ``ray``, :mod:`kgpt.cluster` runs the same :meth:`Study.run_cell` as Ray tasks.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from kgpt import pipeline
from kgpt.checkpoint import read_checkpoint
from kgpt.data.corpus import read_questions
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.errors import KgptError
from kgpt.evaluate import most_frequent_place, score, write_predictions
from kgpt.io import atomic_write_bytes
from kgpt.training import get_recipe

REAL_FILES = ("wiki.txt", "birth_places_train.tsv", "birth_dev.tsv")
KNOWLEDGE_SETTING = "knowledge-recipe"
RECALL_SETTING = "recall-read"
SETTING_COLORS = {"baseline": "0.6", "finetune-only": "C0", "pretrain+finetune": "C1", KNOWLEDGE_SETTING: "C2",
                  RECALL_SETTING: "C4"}
# Published dev-set reference points (DESIGN.md): shown beside measured results.
PUBLISHED = {
    ("baseline", "vanilla"): "5.0% (London)",
    ("finetune-only", "vanilla"): "about 2%",
    ("pretrain+finetune", "vanilla"): "10–25% (14.4% in one write-up)",
    ("pretrain+finetune", "synthesizer"): "about 17–24%",
}


@dataclass(frozen=True)
class Setting:
    """One row of a study: what its cells train, with which recipe, at what size."""

    name: str  # "finetune-only", "pretrain+finetune", KNOWLEDGE_SETTING or RECALL_SETTING
    recipe: str = "assignment"  # how its cells train (kgpt.training.recipe)
    variant: str | None = None  # its cells' attention variant; None: each of the study's variants
    pretrain_epochs: int | None = None  # None: the recipe's
    finetune_epochs: int | None = None  # from the pretrained model, or from scratch for finetune-only
    pretrain_lr: float | None = None
    finetune_lr: float | None = None
    pretrain_batch: int | None = None
    finetune_batch: int | None = None
    model: dict = field(default_factory=dict)  # GPTConfig overrides (layers, width, block, dropout)
    compile: bool = False  # torch.compile the training steps

    @property
    def pretrains(self) -> bool:
        return self.name != "finetune-only"


@dataclass(frozen=True)
class Preset:
    """One kind of study: the settings run beside the baseline, each with its own sizes."""

    name: str
    settings: tuple[Setting, ...]
    data: SyntheticConfig | None = None  # the demo's generated data


# The recall recipe's model on a laptop: a quarter of the assignment's parameters.
LAPTOP_MODEL = {"n_layer": 4, "n_head": 4, "n_embd": 128}

PRESETS = {
    "assignment": Preset("assignment", (Setting("finetune-only"), Setting("pretrain+finetune"))),
    # A few minutes on a GPU-less machine: shows the pipeline end to end, not the result.
    "quick": Preset("quick", (Setting("finetune-only", finetune_epochs=2),
                              Setting("pretrain+finetune", pretrain_epochs=2, finetune_epochs=2))),
    # About an hour on a 2-core CPU: London and the recall recipe (RoPE). Eager, not
    # compiled: length buckets skip the padding of short bios, which a compiled step's
    # static shape cannot. The assignment's recipe cut to fit beside it (4 + 4 epochs)
    # answered 0.0% for 5 minutes, and was dropped (docs/RESULTS.md).
    "laptop": Preset("laptop", (
        Setting(RECALL_SETTING, recipe="recall", variant="rope", model=LAPTOP_MODEL),
    )),
    # The knowledge and recall recipes at the assignment's model size, for one GPU.
    "gpu": Preset("gpu", (
        Setting(KNOWLEDGE_SETTING, recipe="knowledge", variant="rope", pretrain_epochs=300, pretrain_lr=2e-3),
        Setting(RECALL_SETTING, recipe="recall", variant="rope"),
    )),
}

# The demo's model: 2x128 RoPE with a 96-character block and no dropout.
_DEMO_MODEL = {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 96}
_DEMO = {"pretrain_epochs": 120, "pretrain_lr": 5e-3, "finetune_lr": 1e-3, "pretrain_batch": 32, "finetune_batch": 32,
         "model": {**_DEMO_MODEL, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}}
_TINY = {"pretrain_epochs": 1, "finetune_epochs": 1, "pretrain_batch": 16, "finetune_batch": 16,
         "model": {"n_layer": 1, "n_head": 2, "n_embd": 32}}
DEMO_PRESETS = {
    # Sized for a 2-core laptop CPU (about 7 minutes): 260 people, each written up in 4 short
    # bios (the same facts in varied words, so finetuning can get them out again, see
    # kgpt.data.synthetic), a small dropout-free RoPE model, 120 pretraining epochs (50
    # stored nothing: 5/50, docs/RESULTS.md). The fourth setting is the recall recipe (it
    # replaced the knowledge recipe's, so that the demo keeps its length), sized once,
    # before its first run, like the knowledge setting before it, and not tuned.
    "cpu": Preset("cpu", (
        Setting("finetune-only", **{**_DEMO, "finetune_epochs": 20}),
        Setting("pretrain+finetune", **{**_DEMO, "finetune_epochs": 10}),
        Setting(RECALL_SETTING, recipe="recall", pretrain_epochs=60, pretrain_lr=5e-3, pretrain_batch=32, finetune_batch=32,
                model=_DEMO_MODEL),
    ), data=SyntheticConfig(n_train=200, n_dev=50, n_test=10, n_extra=0, n_places=20, distractors=0, bios_per_person=4)),
    # Seconds: exercises every step (tests use it); the numbers mean nothing.
    "tiny": Preset("tiny", (
        Setting("finetune-only", **_TINY),
        Setting("pretrain+finetune", **_TINY),
        Setting(KNOWLEDGE_SETTING, recipe="knowledge", **{**_TINY, "finetune_epochs": None}),
        Setting(RECALL_SETTING, recipe="recall", **_TINY),
    ), data=SyntheticConfig(n_train=24, n_dev=8, n_test=4, n_extra=0, n_places=6, distractors=1)),
}


@dataclass
class Cell:
    setting: str
    variant: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.setting}-{self.variant}-s{self.seed}"


class Study:
    """One study directory: data paths, the cells' results, and what is already done."""

    def __init__(self, data_dir: Path, out: Path, preset: Preset, device: str, compile: bool = False, progress: bool = True,
                 checkpoint_every: float = 60.0):
        self.data_dir, self.out, self.preset = data_dir, out, preset
        self.device, self.compile, self.progress = device, compile, progress
        self.checkpoint_every = checkpoint_every  # seconds between a training's resumable checkpoints
        self.wiki = data_dir / "wiki.txt"
        self.train = data_dir / "birth_places_train.tsv"
        self.dev = data_dir / "birth_dev.tsv"
        for p in (self.wiki, self.train, self.dev):
            if not p.is_file():
                raise KgptError(f"{p} is missing; the data folder needs {', '.join(REAL_FILES)}")
        for sub in ("cells", "checkpoints", "predictions"):
            (out / sub).mkdir(parents=True, exist_ok=True)

    def _opts(self, s: Setting, seed: int, out_path: Path, batch: int | None) -> pipeline.RunOptions:
        return pipeline.RunOptions(
            seed=seed, device=self.device, compile=self.compile or s.compile, resume=pipeline.resume_path(out_path).exists(),
            progress=self.progress, batch_size=batch, model=s.model or None, checkpoint_every=self.checkpoint_every,
            recipe=s.recipe,
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
        """The row of a cell finished by an earlier run (which a rerun keeps), else None."""
        done = self._done_path(cell)
        return json.loads(done.read_text()) if done.exists() else None

    def record(self, cell: Cell, row: dict) -> None:
        """Mark the cell finished: written last, so a cell interrupted before it reruns."""
        atomic_write_bytes(self._done_path(cell), json.dumps(row, indent=1).encode())

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
        if pretrained is not None and not pretrained.exists():
            pipeline.pretrain(
                cell.variant, self.wiki, pretrained, lr=s.pretrain_lr, max_epochs=s.pretrain_epochs,
                opts=self._opts(s, cell.seed, pretrained, s.pretrain_batch),
                question_mix_path=self.train if get_recipe(s.recipe).mixes_questions else None,
            )
        return pretrained

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
        return self.out / "checkpoints" / f"pretrain-{recipe}{cell.variant}-s{cell.seed}.params"

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
        return {
            "setting": cell.setting, "variant": cell.variant, "seed": cell.seed,
            "recipe": None if cell.setting == "baseline" else self._setting(cell).recipe,
            "correct": correct, "total": total, "accuracy": round(100.0 * correct / total, 2), **extra,
        }

    def loss_curves(self) -> dict[str, list[dict]]:
        """Training histories kept in the checkpoints, by checkpoint name (a damaged one is
        left out: the cell that needed it has already failed, naming it)."""
        curves = {}
        for path in sorted((self.out / "checkpoints").glob("*.params")):
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


def _groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows by (setting, variant), in first-seen order: one group per table line and bar."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["variant"]), []).append(r)
    return groups


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± std of accuracy per (setting, variant) over seeds."""
    summary = []
    for (s, v), group in _groups(rows).items():
        acc = [r["accuracy"] for r in group]
        summary.append({
            "setting": s, "variant": v, "seeds": len(acc), "mean": statistics.fmean(acc),
            "std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "published": PUBLISHED.get((s, v), ""),
        })
    return summary


def results_table(summary: list[dict], with_published: bool) -> str:
    head = "| setting | variant | seeds | dev accuracy |" + (" published |" if with_published else "")
    rule = "|---|---|---|---|" + ("---|" if with_published else "")
    lines = [head, rule]
    for s in summary:
        acc = f"{s['mean']:.1f}%" + (f" ± {s['std']:.1f}" if s["seeds"] > 1 else "")
        lines.append(f"| {s['setting']} | {s['variant']} | {s['seeds']} | {acc} |" + (f" {s['published']} |" if with_published else ""))
    return "\n".join(lines)


def plot_results(rows: list[dict], curves: dict[str, list[dict]], path: Path, title: str) -> None:
    """Accuracy per cell (bars) beside the training loss curves."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    summary = summarize(rows)
    labels = [f"{s['setting']}\n{s['variant']}" if s["setting"] != "baseline" else "baseline" for s in summary]
    ax.bar(range(len(summary)), [s["mean"] for s in summary], yerr=[s["std"] for s in summary],
           color=[SETTING_COLORS.get(s["setting"], "C3") for s in summary])
    ax.set_xticks(range(len(summary)), labels, fontsize=8)
    # Storage beside access: the share of dev bios the pretrained model completes correctly.
    # The bars are summarize()'s groups in the same order, so bar i is group i.
    for probe, marker, label in (("cued", "_", "stored: cued completion\n(bio up to the place)"),
                                 ("free_recall", "x", "stored: free recall\n(from NAME. alone)")):
        stored = []
        for i, group in enumerate(_groups(rows).values()):
            probed = [r for r in group if r.get(f"{probe}_probed")]
            if probed:
                stored.append((i, statistics.fmean(100.0 * r[f"{probe}_stored"] / r[f"{probe}_probed"] for r in probed)))
        if stored:
            ax.scatter(*zip(*stored), marker=marker, s=900 if marker == "_" else 60, color="k", zorder=3, label=label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(f"{title}: birthplace accuracy on dev")
    for name, history in curves.items():
        ax2.plot([h["step"] for h in history], [h["loss"] for h in history], label=name)
    ax2.set_xlabel("optimiser step")
    ax2.set_ylabel("training loss (mean over log interval)")
    ax2.set_yscale("log")
    ax2.set_title("training loss")
    if curves:
        ax2.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def storage_lines(rows: list[dict]) -> list[str]:
    """Storage beside access: per pretrained cell, facts the probes find vs questions
    answered, and what each probe finds by chance (scored against another person's place)."""
    return [
        f"- {r['setting']}, {r['variant']} seed {r['seed']}: cued completion finds {r['cued_stored']} of "
        f"{r['cued_probed']} dev people's birthplaces (bio up to the place; by chance {r.get('cued_chance', '?')}), "
        f"free recall {r['free_recall_stored']} of {r['free_recall_probed']} (from NAME. alone; by chance "
        f"{r.get('free_recall_chance', '?')}); {r['correct']} of {r['total']} came out as answers"
        for r in rows
        if "cued_stored" in r
    ]


def _write_outputs(study: Study, rows: list[dict], title: str, with_published: bool, extra: dict | None = None,
                   analysis: Path | None = None, failed: dict[str, str] | None = None) -> str:
    summary = summarize(rows)
    link = [f"- confidence, calibration and errors of the best cell: {analysis.relative_to(study.out)}"] if analysis else []
    failures = [f"- FAILED {name}: {why}" for name, why in (failed or {}).items()]
    table = "\n".join([results_table(summary, with_published), "", *storage_lines(rows), *link, *failures]).rstrip()
    payload = {"rows": rows, "summary": summary, **(extra or {}), **({"failed": failed} if failed else {})}
    atomic_write_bytes(study.out / "results.json", json.dumps(payload, indent=1).encode())
    atomic_write_bytes(study.out / "results.md", f"# {title}\n\n{table}\n\n![results](results.png)\n".encode())
    plot_results(rows, study.loss_curves(), study.out / "results.png", title)
    return table


def run_demo(out: Path, seed: int = 0, device: str = "cpu", preset: str = "cpu", variant: str = "rope") -> list[dict]:
    """Generate the embedded data and run the four settings; print and save the results."""
    if preset not in DEMO_PRESETS:
        raise KgptError(f"unknown demo preset {preset!r}; choose one of {', '.join(DEMO_PRESETS)}")
    p = DEMO_PRESETS[preset]
    data = generate(replace(p.data, seed=seed))
    data_dir = out / "data"
    data.write(data_dir)
    print(f"kgpt demo: synthetic data in {data_dir} ({p.data.n_train} finetuning people, {p.data.n_dev} dev people); preset {preset}")
    t0 = time.perf_counter()
    study = Study(data_dir, out, p, device, progress=False)
    rows = study.run(study_cells([variant], [seed], p))
    table = _write_outputs(study, rows, "kgpt demo (synthetic data)", with_published=False,
                           extra={"preset": preset, "seconds": round(time.perf_counter() - t0, 1)},
                           analysis=study.analyze_best(rows))
    print(f"\n{table}\n\nwrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'} in {time.perf_counter() - t0:.0f}s")
    return rows


def run_reproduce(
    data_dir: Path, out: Path, variants: list[str], seeds: list[int], preset: str = "assignment",
    device: str = "auto", compile: bool = False, ray: str | None = None, cpus_per_cell: int | None = None,
    checkpoint_every: float = 60.0,
) -> list[dict]:
    """The study matrix on the real files; finished cells are skipped on a rerun.

    With ``ray`` (a cluster address: ``auto``, ``local``, ``ray://HOST:PORT``) the cells
    run at once as Ray tasks (:mod:`kgpt.cluster`), each with ``cpus_per_cell`` CPUs
    (default 1) or one GPU; otherwise one after another here, with ``cpus_per_cell``
    torch threads when given (the same count gives the same predictions as on Ray).
    """
    if preset not in PRESETS:
        raise KgptError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cells = study_cells(variants, seeds, PRESETS[preset])
    # On Ray the driver prints one line per cell; workers' progress bars would interleave.
    study = Study(data_dir, out, PRESETS[preset], device, compile, progress=ray is None, checkpoint_every=checkpoint_every)
    failed: dict[str, str] = {}
    if ray is None:
        if cpus_per_cell is not None:
            torch.set_num_threads(cpus_per_cell)
        rows = study.run(cells)
        analysis = study.analyze_best(rows)
    else:
        from kgpt.cluster import run_study

        rows, failed, analysis = run_study(study, cells, ray, cpus_per_cell)
    table = _write_outputs(study, rows, f"kgpt reproduce ({preset})", with_published=True, extra={"preset": preset},
                           analysis=analysis, failed=failed)
    print(f"\n{table}\n\nwrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    if failed:
        raise KgptError(f"{len(failed)} of the study's jobs failed ({', '.join(failed)}), each named above with why; "
                        "fix that and rerun the same command: finished cells are kept")
    return rows
