"""The studies kgpt runs, as data: which settings each compares, at what sizes.

A :class:`Preset` is one kind of study (``kgpt reproduce --preset``, ``kgpt demo
--preset``); each of its :class:`Setting` rows trains its cells with a recipe
(:mod:`kgpt.training.recipe`). The baseline (one answer for everybody) is in every study
and needs no row. :mod:`kgpt.study` runs the cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from kgpt.data.synthetic import SyntheticConfig

KNOWLEDGE_SETTING = "knowledge-recipe"
RECALL_SETTING = "recall-read"


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
    pretrain_optimizer: str | None = None  # None: the recipe's (kgpt.training.recipe.OPTIMIZERS)
    model: dict = field(default_factory=dict)  # GPTConfig overrides (layers, width, block, dropout)
    compile: bool = False  # torch.compile the training steps
    processes: int = 1  # on a CPU, processes sharing each step, at most one per core (kgpt.training.parallel)

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
    # London and the recall recipe cut to half an hour (RoPE; 40 passes of Muon: about 0.79
    # of the work of the 60 AdamW passes it ran until 2026-12-05, which took 70 minutes a seed
    # on an AVX2-only Zen 1 and about 35 on an AVX-512 EPYC; docs/RESULTS.md), each step shared by two
    # processes, one a core (about 6% faster than two threads). Eager, not compiled:
    # length buckets skip the padding of short bios, which a compiled step's static shape
    # cannot. The assignment's recipe cut to fit beside it (4 + 4 epochs) answered 0.0%
    # for 5 minutes, and was dropped; until 2026-12-04 this preset ran the 120-pass recall
    # recipe, about 1.7 times as long (docs/RESULTS.md).
    "laptop": Preset("laptop", (
        Setting(RECALL_SETTING, recipe="recall-half-hour", variant="rope", model=LAPTOP_MODEL, processes=2),
    )),
    # The knowledge and recall recipes at the assignment's model size, for one GPU.
    "gpu": Preset("gpu", (
        Setting(KNOWLEDGE_SETTING, recipe="knowledge", variant="rope", pretrain_epochs=300, pretrain_lr=2e-3),
        Setting(RECALL_SETTING, recipe="recall", variant="rope"),
    )),
}

# Presets renamed, by their old name: a study asked for by it is told the new one.
RENAMED = {"half-hour": "laptop"}

# The demo's model: 2x128 RoPE with a 96-character block and no dropout.
_DEMO_MODEL = {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 96}
_DEMO = {"pretrain_epochs": 120, "pretrain_lr": 5e-3, "finetune_lr": 1e-3, "pretrain_batch": 32, "finetune_batch": 32,
         "model": {**_DEMO_MODEL, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}}
_TINY = {"pretrain_epochs": 1, "finetune_epochs": 1, "pretrain_batch": 16, "finetune_batch": 16,
         "model": {"n_layer": 1, "n_head": 2, "n_embd": 32}}
DEMO_PRESETS = {
    # Sized for a 2-core laptop CPU: 260 people, each in 4 short bios (the same facts in
    # varied words, so finetuning can get them out again, see kgpt.data.synthetic), a small
    # dropout-free RoPE model. Its pretrain+finetune cell pretrains 30 passes with Muon: on a
    # held-out fifth of the training people it read 24 of 40 (40 passes: 24; 20: 11), where
    # the course's AdamW needed 120 passes for 18 (80 read 4 to 8). Its fourth
    # setting is the recall recipe with each bio's end marked, pretrained 10 passes with Muon
    # (38 of 40; 20 passes: 40; AdamW's 40 passes: 33). docs/RESULTS.md has the rounds.
    "cpu": Preset("cpu", (
        Setting("finetune-only", **{**_DEMO, "finetune_epochs": 20}),
        Setting("pretrain+finetune", **{**_DEMO, "pretrain_epochs": 30, "finetune_epochs": 10},
                pretrain_optimizer="muon"),
        Setting(RECALL_SETTING, recipe="recall-end-marked", pretrain_epochs=10, pretrain_lr=5e-3, pretrain_batch=32,
                finetune_batch=32, pretrain_optimizer="muon", model=_DEMO_MODEL),
    ), data=SyntheticConfig(n_train=200, n_dev=50, n_test=10, n_extra=0, n_places=20, distractors=0, bios_per_person=4)),
    # Seconds: exercises every step (tests use it); the numbers mean nothing.
    "tiny": Preset("tiny", (
        Setting("finetune-only", **_TINY),
        Setting("pretrain+finetune", pretrain_optimizer="muon", **_TINY),
        Setting(KNOWLEDGE_SETTING, recipe="knowledge", **{**_TINY, "finetune_epochs": None}),
        Setting(RECALL_SETTING, recipe="recall-end-marked", pretrain_optimizer="muon", **_TINY),
    ), data=SyntheticConfig(n_train=24, n_dev=8, n_test=4, n_extra=0, n_places=6, distractors=1)),
}


# The demo of several attributes per person (kgpt demo --task): its bios hold three facts
# in up to 112 characters (kgpt.data.synthetic_facts), so a model whose block is smaller
# reads them in a block this long instead; sizes and training stay the preset's.
FACTS_BLOCK = 128

# ... except the cells the birthplace demo's took Muon and fewer passes for, which keep,
# per demo preset, what they had before: those were chosen on one-sentence bios, and the
# facts' bios have two or three sentences (on the real bios, end marks lost places to
# recalls that ended early); they were not chosen for these bios (docs/RESULTS.md).
FACTS_CELLS = {
    "cpu": {"pretrain+finetune": {"pretrain_epochs": 120, "pretrain_optimizer": None},
            RECALL_SETTING: {"recipe": "recall", "pretrain_epochs": 60, "pretrain_optimizer": None}},
    "tiny": {"pretrain+finetune": {"pretrain_optimizer": None},
             RECALL_SETTING: {"recipe": "recall", "pretrain_optimizer": None}},
}


def for_facts(preset: Preset) -> Preset:
    """``preset`` for the facts' bios: every model block shorter than :data:`FACTS_BLOCK`
    lengthened to it, and its cells as :data:`FACTS_CELLS` says."""
    def adapted(s: Setting) -> Setting:
        s = replace(s, **FACTS_CELLS.get(preset.name, {}).get(s.name, {}))
        block = s.model.get("block_size")
        return s if block is None or block >= FACTS_BLOCK else replace(s, model={**s.model, "block_size": FACTS_BLOCK})
    return replace(preset, settings=tuple(adapted(s) for s in preset.settings))
