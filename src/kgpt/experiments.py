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
* ``recall-read``: a recall recipe (:data:`kgpt.training.recipe.RECALL` and its
  variants): pretraining on the bios alone, a reader finetuned on the training people's
  bios and places, and answers by recalling the dev person's bio and reading it
  (:mod:`kgpt.answering`).

Every pretrained cell also reports storage, probed two ways (:mod:`kgpt.probe`): cued
completion of the bio up to the place, and free recall from ``NAME.`` alone.

The studies are data (:mod:`kgpt.presets`); their cells run in a study folder
(:mod:`kgpt.study`), one after another here or, with ``ray``, as Ray tasks
(:mod:`kgpt.cluster`); this module runs a study and writes its results (``results.json``,
``results.md``, ``results.png``).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from kgpt.cluster import run_study
from kgpt.data.synthetic import generate
from kgpt.data.synthetic_facts import ATTRIBUTES, FactsConfig, generate_facts
from kgpt.data.task import BIRTHPLACE, Task, find_task, read_tasks
from kgpt.errors import KgptError
from kgpt.io import atomic_write_bytes
from kgpt.presets import DEMO_PRESETS, KNOWLEDGE_SETTING, PRESETS, RECALL_SETTING, RENAMED, Preset, for_facts
from kgpt.study import Study, study_cells

SETTING_COLORS = {"baseline": "0.6", "finetune-only": "C0", "pretrain+finetune": "C1", KNOWLEDGE_SETTING: "C2",
                  RECALL_SETTING: "C4"}
# Published dev-set reference points (DESIGN.md): shown beside measured results.
PUBLISHED = {
    ("baseline", "vanilla"): "5.0% (London)",
    ("finetune-only", "vanilla"): "about 2%",
    ("pretrain+finetune", "vanilla"): "10–25% (14.4% in one write-up)",
    ("pretrain+finetune", "synthesizer"): "about 17–24%",
}


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


def plot_results(rows: list[dict], curves: dict[str, list[dict]], path: Path, title: str, task: str = "birthplace") -> None:
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
    ax.set_title(f"{title}: {task} accuracy on dev")
    for name, history in curves.items():
        ax2.plot([h["step"] for h in history], [h["loss"] for h in history], label=name)
    ax2.set_xlabel("optimiser step")
    ax2.set_ylabel("training loss (mean over log interval)")
    ax2.set_yscale("log")
    ax2.set_title("training loss")
    if curves:
        ax2.legend(fontsize=7)
    fig.savefig(path, dpi=110)


def storage_lines(rows: list[dict], task: Task = BIRTHPLACE) -> list[str]:
    """Storage beside access: per pretrained cell, facts the probes find vs questions
    answered, and what each probe is expected to find by chance (scored against a random
    other person's place, :func:`kgpt.probe.chance_shares`)."""
    facts, fact = ("birthplaces", "place") if task.is_default else (f"{task.name} answers", "answer")
    return [
        f"- {r['setting']}, {r['variant']} seed {r['seed']}: cued completion finds {r['cued_stored']} of "
        f"{r['cued_probed']} dev people's {facts} (bio up to the {fact}; expected by chance "
        f"{_expected(r.get('cued_chance'))}), free recall {r['free_recall_stored']} of {r['free_recall_probed']} "
        f"(from NAME. alone; expected by chance {_expected(r.get('free_recall_chance'))}); {r['correct']} of "
        f"{r['total']} came out as answers"
        for r in rows
        if "cued_stored" in r
    ]


def _expected(count: float | None) -> str:
    return "?" if count is None else f"{count:.1f}"


def _write_outputs(study: Study, rows: list[dict], title: str, with_published: bool, extra: dict | None = None,
                   analysis: Path | None = None, failed: dict[str, str] | None = None) -> str:
    """results.json, results.md and results.png of one study; returns its table."""
    summary = summarize(rows)
    link = [f"- confidence, calibration and errors of the best cell: {analysis.relative_to(study.out)}"] if analysis else []
    failures = [f"- FAILED {name}: {why}" for name, why in (failed or {}).items()]
    table = "\n".join([results_table(summary, with_published), "", *storage_lines(rows, study.task), *link, *failures]).rstrip()
    payload = {"rows": rows, "summary": summary, **(extra or {}), **({"failed": failed} if failed else {})}
    atomic_write_bytes(study.out / "results.json", json.dumps(payload, indent=1).encode())
    atomic_write_bytes(study.out / "results.md", f"# {title}\n\n{table}\n\n![results](results.png)\n".encode())
    plot_results(rows, study.loss_curves(), study.out / "results.png", title, study.task.name)
    return table


def run_demo(out: Path, seed: int = 0, device: str = "cpu", preset: str = "cpu", variant: str = "rope",
             task: str | None = None) -> list[dict]:
    """Generate the embedded data and run the preset's settings; print and save the results.
    With ``task``, on the embedded data of several attributes per person: that attribute's
    questions, or with ``all`` each attribute in turn and a table of them all."""
    if preset not in DEMO_PRESETS:
        raise KgptError(f"unknown demo preset {preset!r}; choose one of {', '.join(DEMO_PRESETS)}")
    p = DEMO_PRESETS[preset]
    if task is not None:
        if task not in (*ATTRIBUTES, "all"):
            raise KgptError(f"unknown --task {task!r}; the embedded data asks {', '.join(ATTRIBUTES)}, or all of them")
        return _run_task_demo(out, seed, device, for_facts(p), variant, task)
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


def _run_task_demo(out: Path, seed: int, device: str, p: Preset, variant: str, task: str) -> list[dict]:
    """The demo on :mod:`kgpt.data.synthetic_facts`: one study per attribute asked, each in
    ``out/TASK``, sharing the pretrained models that read no question (pretrained once)."""
    config = FactsConfig(**{**p.data.sizes(), "seed": seed})
    data_dir = out / "data"
    generate_facts(config).write(data_dir)
    tasks = read_tasks(data_dir)
    names = list(tasks) if task == "all" else [task]
    print(f"kgpt demo: synthetic data of {len(tasks)} attributes in {data_dir} ({config.n_train} finetuning people, "
          f"{config.n_dev} dev people); preset {p.name}; asking {', '.join(names)}")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        study = Study(data_dir, out / name, p, device, progress=False, task=tasks[name], shared_pretraining=out / "pretrained")
        t_task = time.perf_counter()
        task_rows = study.run(study_cells([variant], [seed], p))
        table = _write_outputs(study, task_rows, f"kgpt demo ({name})", with_published=False,
                               extra={"preset": p.name, "task": name, "seconds": round(time.perf_counter() - t_task, 1)},
                               analysis=study.analyze_best(task_rows))
        print(f"\n{name}: {tasks[name].form}\n{table}\n")
        rows += [{**r, "task": name} for r in task_rows]
    table = tasks_table(rows)
    payload = {"rows": rows, "preset": p.name, "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write_bytes(out / "results.json", json.dumps(payload, indent=1).encode())
    atomic_write_bytes(out / "results.md", f"# kgpt demo: every attribute (synthetic data)\n\n{table}\n".encode())
    print(f"{table}\n\nwrote {out / 'results.json'}, {out / 'results.md'} and each attribute's results under {out}/TASK "
          f"in {time.perf_counter() - t0:.0f}s")
    return rows


def tasks_table(rows: list[dict]) -> str:
    """Dev accuracy per attribute (rows) and setting (columns), mean over seeds."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    lines = ["| attribute | " + " | ".join(settings) + " |", "|---|" + "---|" * len(settings)]
    for t in tasks:
        cells = []
        for s in settings:
            acc = [r["accuracy"] for r in rows if r["task"] == t and r["setting"] == s]
            cells.append(f"{statistics.fmean(acc):.1f}%" if acc else "")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_reproduce(
    data_dir: Path, out: Path, variants: list[str], seeds: list[int], preset: str = "assignment",
    device: str = "auto", compile: bool = False, ray: str | None = None, cpus_per_cell: int | None = None,
    checkpoint_every: float = 60.0, task: str = BIRTHPLACE.name,
) -> list[dict]:
    """The study matrix on the real files; finished cells are skipped on a rerun.

    With ``ray`` (a cluster address: ``auto``, ``local``, ``ray://HOST:PORT``) the cells
    run at once as Ray tasks (:mod:`kgpt.cluster`), each with ``cpus_per_cell`` CPUs
    (default 1) or one GPU; otherwise one after another here, with ``cpus_per_cell``
    torch threads when given (the same count gives the same predictions as on Ray).
    ``task``: the question asked, from the folder's tasks file (default: the assignment's).
    """
    if preset in RENAMED:
        raise KgptError(f"preset {preset!r} is now called {RENAMED[preset]!r} (the same study); use --preset {RENAMED[preset]}")
    if preset not in PRESETS:
        raise KgptError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cells = study_cells(variants, seeds, PRESETS[preset])
    # On Ray the driver prints one line per cell; workers' progress bars would interleave.
    study = Study(data_dir, out, PRESETS[preset], device, compile, progress=ray is None, checkpoint_every=checkpoint_every,
                  task=find_task(data_dir, task))
    failed: dict[str, str] = {}
    if ray is None:
        if cpus_per_cell is not None:
            torch.set_num_threads(cpus_per_cell)
        rows = study.run(cells)
        analysis = study.analyze_best(rows)
    else:
        rows, failed, analysis = run_study(study, cells, ray, cpus_per_cell)
    table = _write_outputs(study, rows, f"kgpt reproduce ({preset})", with_published=True, extra={"preset": preset},
                           analysis=analysis, failed=failed)
    print(f"\n{table}\n\nwrote {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")
    if failed:
        raise KgptError(f"{len(failed)} of the study's jobs failed ({', '.join(failed)}), each named above with why; "
                        "fix that and rerun the same command: finished cells are kept")
    return rows
