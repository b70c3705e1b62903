"""No dev label reaches training, by a check that is shown to be able to fail.

The laptop-style study (the London baseline, pretrain+finetune, recall-then-read) runs
twice on the same synthetic people: once with the dev places, once with every dev place
replaced by another. Nothing that trains may read them, so every checkpoint must be the
same bytes and every dev question must get the same answer. Equal answers prove nothing
from models that write one answer for everyone, so each trained model's answers must
also vary. A control study lets the dev lines into the reader's finetuning file on
purpose, and the same check must report it: the check is kept honest by its own test.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from kgpt import pipeline
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.presets import Preset, Setting
from kgpt.study import Study, study_cells

DATA = SyntheticConfig(n_train=16, n_dev=8, n_test=2, n_extra=0, n_places=5, distractors=1)
_SIZES = {"pretrain_batch": 8, "finetune_batch": 8, "model": {"n_layer": 1, "n_head": 2, "n_embd": 32}}
# Epochs chosen so that each trained model answers the 8 dev people in several ways (the
# recall model gets most of them right; the vanilla one, asked directly, mostly guesses).
RECALL_READ = Setting("recall-read", recipe="recall", variant="rope", pretrain_epochs=120, finetune_epochs=30,
                                  **_SIZES)
STUDY = Preset("leak", (
    Setting("pretrain+finetune", variant="vanilla", pretrain_epochs=20, finetune_epochs=80, **_SIZES),
    RECALL_READ,
))
LEAKY = Preset("leak-control", (RECALL_READ,))  # the reader is what the control leaks into
MIN_DISTINCT_ANSWERS = 3  # of a trained model's 8 dev answers; fewer and equal answers would prove nothing


@dataclass(frozen=True)
class StudyRun:
    """What one study produced: each cell's dev answers and each checkpoint's bytes, by file name."""

    predictions: dict[str, list[str]]
    checkpoints: dict[str, bytes]


def leak_findings(plain: StudyRun, scrambled: StudyRun) -> list[str]:
    """Everything that shows a dev label reached training, or that this comparison could
    not have shown it (a trained model answering almost everyone alike); empty when clean."""
    findings = []
    for name, answers in plain.predictions.items():
        distinct = len(set(answers))
        if not name.startswith("baseline") and distinct < MIN_DISTINCT_ANSWERS:
            findings.append(f"{name}: only {distinct} distinct answers, so equal answers would prove nothing")
        if scrambled.predictions.get(name) != answers:
            findings.append(f"{name}: the answers change with the dev labels")
    findings += [f"checkpoint {name}: its bytes change with the dev labels"
                 for name, raw in plain.checkpoints.items() if scrambled.checkpoints.get(name) != raw]
    return findings


def _scramble_dev_places(dev: Path) -> None:
    """Every dev place replaced by another (the next of the dev file's places in sorted
    order), so that no label keeps its value."""
    rows = [line.split("\t") for line in dev.read_text(encoding="utf-8").splitlines()]
    places = sorted({place for _, place in rows})
    other = {p: places[(i + 1) % len(places)] for i, p in enumerate(places)}
    dev.write_text("".join(f"{q}\t{other[p]}\n" for q, p in rows), encoding="utf-8")


def run_study(folder: Path, preset: Preset, scramble: bool, leak: bool = False,
              pretrained_from: Path | None = None) -> StudyRun:
    """The study on the synthetic people; ``leak`` appends the dev lines to the finetuning
    file. Pretrained checkpoints found in ``pretrained_from`` are reused (pretraining reads
    no question file, which the honest runs check byte for byte)."""
    data, out = folder / "data", folder / "out"
    generate(DATA).write(data)
    if scramble:
        _scramble_dev_places(data / "birth_dev.tsv")
    if leak:
        with (data / "birth_places_train.tsv").open("a", encoding="utf-8") as train:
            train.write((data / "birth_dev.tsv").read_text(encoding="utf-8"))
    if pretrained_from is not None:
        (out / "checkpoints").mkdir(parents=True)
        for p in pretrained_from.glob("pretrain-*.params"):
            shutil.copy(p, out / "checkpoints" / p.name)
    Study(data, out, preset, "cpu", progress=False).run(study_cells(["vanilla"], [0], preset))
    # The reader also answers by writing: an extracting reader can only give words of its
    # recall, so a label leaked into its finetuning may not show in its answers at all.
    for ckpt in (out / "checkpoints").glob("recall-read-*.params"):
        pipeline.evaluate(None, data / "wiki.txt", ckpt, data / "birth_dev.tsv", out / "predictions" / f"{ckpt.stem}.write.txt",
                          device="cpu", answer_by="write")
    return StudyRun(
        {p.name: p.read_text(encoding="utf-8").splitlines() for p in sorted((out / "predictions").glob("*.txt"))},
        {p.name: p.read_bytes() for p in sorted((out / "checkpoints").glob("*.params"))},
    )


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> tuple[StudyRun, StudyRun, Path]:
    """The study with the dev places and with them scrambled; and where its checkpoints are."""
    folder = tmp_path_factory.mktemp("honest")
    plain = run_study(folder / "plain", STUDY, scramble=False)
    return plain, run_study(folder / "scrambled", STUDY, scramble=True), folder / "plain" / "out" / "checkpoints"


def test_scrambled_dev_labels_change_no_answer_and_no_checkpoint_byte(honest):
    plain, scrambled, _ = honest
    assert set(plain.predictions) == {"baseline-vanilla-s0.txt", "pretrain+finetune-vanilla-s0.txt", "recall-read-rope-s0.txt",
                                      "recall-read-rope-s0.write.txt"}
    assert len(plain.checkpoints) == 4  # two pretrained models, two finetuned ones
    assert all(len(answers) == DATA.n_dev for answers in plain.predictions.values())
    assert leak_findings(plain, scrambled) == []


def test_the_check_reports_dev_labels_let_into_the_readers_finetuning(honest, tmp_path):
    """The control: the same check on a study that leaks must fail, on the answers
    themselves (the reader's written ones), not only on the checkpoint bytes."""
    pretrained = honest[2]
    plain = run_study(tmp_path / "plain", LEAKY, scramble=False, leak=True, pretrained_from=pretrained)
    scrambled = run_study(tmp_path / "scrambled", LEAKY, scramble=True, leak=True, pretrained_from=pretrained)
    findings = leak_findings(plain, scrambled)
    assert "recall-read-rope-s0.write.txt: the answers change with the dev labels" in findings, findings
    assert "checkpoint recall-read-rope-s0.params: its bytes change with the dev labels" in findings, findings
    assert not any("pretrain-" in f for f in findings)  # pretraining never reads a question file


def test_the_check_reports_answers_too_alike_to_prove_anything():
    same = StudyRun({"baseline-vanilla-s0.txt": ["London"] * 8, "recall-read-rope-s0.txt": ["Paris"] * 7 + ["Rome"]}, {})
    assert leak_findings(same, same) == ["recall-read-rope-s0.txt: only 2 distinct answers, so equal answers would prove nothing"]


def test_scrambling_changes_every_dev_label(tmp_path):
    generate(DATA).write(tmp_path)
    before = (tmp_path / "birth_dev.tsv").read_text(encoding="utf-8").splitlines()
    _scramble_dev_places(tmp_path / "birth_dev.tsv")
    after = (tmp_path / "birth_dev.tsv").read_text(encoding="utf-8").splitlines()
    assert [a.split("\t")[0] for a in after] == [b.split("\t")[0] for b in before]
    assert all(a.split("\t")[1] != b.split("\t")[1] for a, b in zip(after, before))
