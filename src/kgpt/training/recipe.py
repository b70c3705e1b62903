"""Training recipes: the course's trainer, exactly, and named alternatives beside it.

The assignment fixes the hyperparameters (epochs, batch, peak learning rate, warmup and
final tokens); its trainer fixes everything else, and these choices decide whether the
model learns to store facts at all. :data:`ASSIGNMENT` is that trainer, read from the
course's ``src/trainer.py``:

(a) AdamW, betas (0.9, 0.95), weight decay 0.1 on every parameter whose name does not
    contain "bias" (embeddings, position table, LayerNorm gains and the head included);
(b) no shuffle: every epoch visits the examples in file order, each freshly corrupted;
(c) a cosine that is not clamped: past ``final_tokens`` it rises again;
(d) tokens counted as every label position, and the learning rate for the next step set
    after each optimiser step, so the first step runs at the peak;
float32 parameters and activations, no autocast. The steps are the course's; how they are
computed is kgpt's: on a GPU, matrix products in TF32, a fused AdamW and the whole step
as one CUDA graph (the numbers differ from the course's code in the last bits, as they
do between two GPUs).

Any other choice is a recipe of its own, chosen by name (``--recipe``), never a silent
change to this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from torch import nn

from kgpt.data.knowledge import QuestionMix
from kgpt.data.reader import WORD_TAIL, ReaderSettings
from kgpt.errors import KgptError

WARMUP_TOKENS = 512 * 20


def final_tokens_for(n_pretrain_documents: int, block_size: int) -> int:
    """The assignment's end of the cosine: 200 passes over the pretraining corpus."""
    return 200 * n_pretrain_documents * block_size


RUN_WARMUP = 0.03  # with schedule "run": the share of the run's tokens spent warming up


WEIGHT_DECAY = 0.1  # the course's AdamW weight decay

COURSE_LR_FLOOR = 0.1  # the course's cosine never falls below 10% of its peak

Optimizer = Literal["adamw", "muon"]
OPTIMIZERS: tuple[Optimizer, ...] = ("adamw", "muon")


def run_schedule(total_tokens: int) -> tuple[int, int]:
    """(warmup, final) tokens of a cosine that spans a whole run of ``total_tokens``."""
    return int(RUN_WARMUP * total_tokens), total_tokens


@dataclass(frozen=True)
class StageDefaults:
    """A stage's epochs, peak learning rate, batch, optimiser, weight decay (on the
    parameters :attr:`Recipe.decay` names) and the floor of its cosine (a share of the
    peak). The optimiser is AdamW, or Muon for the blocks' matrices and AdamW for the rest
    (:mod:`kgpt.training.muon`). For finetuning, ``epochs`` start from a pretrained model and
    ``epochs_from_scratch`` from fresh weights, and ``dropout``, where set, is every
    dropout rate of the finetuned copy of a pretrained model (None: the pretrained
    model's own)."""

    epochs: int
    lr: float
    batch: int
    epochs_from_scratch: int | None = None
    weight_decay: float = WEIGHT_DECAY
    dropout: float | None = None
    lr_floor: float = COURSE_LR_FLOOR
    optimizer: Optimizer = "adamw"


@dataclass(frozen=True)
class Recipe:
    """How a model trains: the optimiser's groups, the order and schedule of its steps,
    what pretraining reads, and the hyperparameters a command uses when none are given."""

    name: str
    summary: str
    shuffle: bool  # a fresh permutation of the examples every epoch, else file order
    decay: Literal["all-but-bias", "matmul"]  # which parameters get weight decay
    # The learning rate's course: "course", warmup over 10,240 tokens, then a cosine over
    # 200 passes of the pretraining corpus that rises again past them; "course-floor",
    # the same held at its 10% floor; "run", a 3% warmup and one cosine over this run.
    schedule: Literal["course", "course-floor", "run"]
    bf16_on_cuda: bool  # bf16 autocast on a GPU
    bf16_on_cpu: bool = False  # bf16 autocast on a CPU (float32 otherwise)
    # The knowledge and recall recipes' departures (None/False: the assignment's choices).
    mix: QuestionMix | None = None  # pretrain on bios (plus questions) as in kgpt.data.knowledge, else span corruption
    # Finetune a reader of what the pretrained model recalls and answer by recall-then-read
    # (kgpt.answering, kgpt.data.reader), else finetune on the questions and answer them directly.
    reader_settings: ReaderSettings | None = None
    recall_beams: int = 1  # how its reader's checkpoint recalls a bio: greedily, or by a beam this wide
    dropout: float | None = None  # every dropout rate of a fresh model, else the model's default (0.1)
    block_size: int | None = None  # a fresh model's block, else the assignment's 128
    # Shuffled batches of examples of about one length (kgpt.training.trainer.grouped_by_length),
    # where the batcher knows its examples' lengths: small batches then compute little PAD.
    group_lengths: bool = False
    pretrain: StageDefaults = StageDefaults(650, 6e-3, 128)  # the assignment's hyperparameters
    finetune: StageDefaults = StageDefaults(10, 6e-4, 256, epochs_from_scratch=75)

    @property
    def clamps(self) -> bool:
        """Whether the cosine stays at its floor past final_tokens (a run's cosine never passes it)."""
        return self.schedule != "course"

    def schedule_tokens(self, epochs: int, rows_per_epoch: int, width: int, n_documents: int, block_size: int) -> tuple[int, int]:
        """(warmup, final) tokens of this recipe's cosine for a run of ``epochs`` passes over
        ``rows_per_epoch`` rows of ``width`` label positions, on a corpus of ``n_documents``."""
        if self.schedule == "run":
            return run_schedule(epochs * rows_per_epoch * width)
        return WARMUP_TOKENS, final_tokens_for(n_documents, block_size)  # finetuning too counts corpus passes

    @property
    def mixes_questions(self) -> bool:
        """Whether pretraining reads the training questions too (it then needs their file)."""
        return self.mix is not None and self.mix.qa_repeats > 0


ASSIGNMENT = Recipe(
    "assignment",
    "the course's trainer: file order, decay on all but biases, unclamped cosine, float32 (TF32 matmuls on a GPU)",
    shuffle=False,
    decay="all-but-bias",
    schedule="course",
    bf16_on_cuda=False,
)

# What kgpt 0.1 trained with (minGPT's later optimiser groups, a cosine held at its
# floor, shuffled epochs, bf16 on a GPU): vanilla stalled on a loss plateau with it.
# Kept so the difference can be rerun, not as a recommendation.
KGPT_0_1 = Recipe(
    "kgpt-0.1",
    "kgpt 0.1's departures: shuffled, decay on matmul weights only, cosine held at 10%, bf16 on CUDA",
    shuffle=True,
    decay="matmul",
    schedule="course-floor",
    bf16_on_cuda=True,
)

# Built to get stored facts out (issue #12; docs/RESULTS.md, "The knowledge recipe"): the
# training questions mixed into pretraining, bios as next-character prediction after the
# full name, no dropout, a cosine over the run. Its settings were chosen on a validation
# split of the training questions, never on dev.
KNOWLEDGE = Recipe(
    "knowledge",
    "bios plus the training questions in pretraining, next-character loss, no dropout, shuffled, cosine over the run",
    shuffle=True,
    decay="matmul",
    schedule="run",
    bf16_on_cuda=True,
    mix=QuestionMix(qa_repeats=2, windows=False, bio_chars=80),
    dropout=0.0,
    pretrain=StageDefaults(epochs=100, lr=5e-3, batch=64),
    finetune=StageDefaults(epochs=0, lr=1e-3, batch=64),
)

# Built to get stored facts out on a laptop (issue #22; docs/RESULTS.md, "Recall, then
# read"): pretraining teaches free recall of each bio from its opening, finetuning teaches
# a copy of the model to read a place off a bio, and a question is answered by recalling
# the person's bio and reading it. The reader reads 150 characters (then to the end of the
# word): the shortest cut past which the training people's places stop appearing
# (docs/RESULTS.md, "Reading the whole bio"); pretraining shows exactly what a recall
# must reproduce, and the block holds that text and the answer after it. The bios need
# about 120 passes at batch 64 to be recalled: 25, 40 and 50 passes stored too little, and
# the half-hour recipe below less (docs/RESULTS.md). Batches are not grouped by length:
# 9% faster a pass, but the demo's recall cell read 34/50 right with it against 42/50 without.
# float32 on the CPU: bf16 autocast ended a 10-epoch proxy 0.035 higher in loss for a step
# a few percent faster. The reader learns each example once more with its place swapped
# for another name (ReaderSettings.swap_places), in 6 epochs: the steps of 12 without it.
# A reader of the true examples alone learnt which places it was told, and misread places
# it was not (docs/RESULTS.md, "A reader that copies"). A true bio shorter than the text
# read goes on with another training person's words (ReaderSettings.continue_bios), as a
# recall writes on past a bio's end: a reader of whole bios alone took places from there
# (docs/RESULTS.md, "A reader of what a recall writes past a bio"). A bio is recalled by a beam search
# of 4: greedy recall lost the place where one early slip sent the text astray
# (docs/RESULTS.md, "Beam recall and the end of a bio"). The reader finetunes with dropout
# 0.1, the recaller's weights pretrained without: a reader without it fit its examples to a
# loss of 0.02-0.03 and read fewer held-out people right (docs/RESULTS.md, "The reader's dropout").
RECALL_READER_SETTINGS = ReaderSettings(chars=150, swap_places=1, continue_bios=True)
RECALL = Recipe(
    "recall",
    "bios as next-character prediction; a reader finetuned on training bios; answers by recalling the bio (a beam of 4), then reading it",
    shuffle=True,
    decay="matmul",
    schedule="run",
    bf16_on_cuda=True,
    mix=QuestionMix(qa_repeats=0, windows=False, bio_chars=RECALL_READER_SETTINGS.chars + WORD_TAIL),
    reader_settings=RECALL_READER_SETTINGS,
    recall_beams=4,
    dropout=0.0,
    block_size=192,
    pretrain=StageDefaults(epochs=120, lr=4e-3, batch=64),
    finetune=StageDefaults(epochs=6, lr=1e-3, batch=64, dropout=0.1),
)

# The recall recipe cut to half an hour of a 2-core CPU (issue #32; docs/RESULTS.md, "Half
# an hour" and "Muon stores the bios in 40 passes"). Pretraining stores bios and need not
# generalise, so it drops the weight decay (at 0.1, on a proxy of every 5th bio, the decay
# undid what the passes stored: 45 of 588 bios recalled whole against 207 without), and
# takes batches of 32 grouped by length (twice the steps of 64 for a cheaper pass;
# ungrouped recalled 194), at lr 3e-3 (4e-3, set for batches of 64 with decay, left a
# quarter of the corpus's bios unstored where 3e-3 left a twentieth). It steps the blocks'
# matrices by Muon (kgpt.training.muon), which in 40 passes stored 2,924 of 2,937 bios
# whole and answered 371 of 400 validation people: AdamW needed 60 passes for 2,789 and 375,
# and in 40 stored 297, its recall losing the place for 247 of the 400; Muon's 20 passes
# stored 828 and answered 222, its recall losing the place for 154 (at lr 1.2e-2: 328 bios).
# Its reader keeps the recall recipe's 6 epochs: 3 answered 368 of 400 against 375. Its
# input is the true bio: redrawing 30% of the digits, which helped one recaller, lost 25 of
# 400 validation people on average over four (docs/RESULTS.md, "Digit noise on four seeds").
RECALL_HALF_HOUR = replace(
    RECALL,
    name="recall-half-hour",
    summary="the recall recipe in half an hour of a 2-core CPU: 40 passes of Muon at batch 32 grouped by length, lr 3e-3, no weight decay",
    group_lengths=True,
    pretrain=StageDefaults(epochs=40, lr=3e-3, batch=32, weight_decay=0.0, optimizer="muon"),
)

# The recall recipe for bios shorter than the text read, each one sentence (the demo's):
# each bio is followed by an end mark in pretraining (QuestionMix.end_mark) and a recall
# stops there, so the reader never reads words written past the bio. On the demo's held-out
# training people it read as well in 40 passes as the recall recipe in 60. Not the real
# bios': there the beam, ranking whole texts, preferred generic recalls that end early to
# the longer bio the model stored (docs/RESULTS.md, "Two processes a step, end marks").
RECALL_END_MARKED = replace(
    RECALL,
    name="recall-end-marked",
    summary="the recall recipe with each bio's end marked and every recall stopping there: for short one-sentence bios",
    mix=replace(RECALL.mix, end_mark=True),
)

RECIPES = {r.name: r for r in (ASSIGNMENT, KGPT_0_1, KNOWLEDGE, RECALL, RECALL_HALF_HOUR, RECALL_END_MARKED)}


def get_recipe(name: str | Recipe) -> Recipe:
    """The recipe of that name (a Recipe is its own: benchmarks vary recipes by value)."""
    if isinstance(name, Recipe):
        return name
    try:
        return RECIPES[name]
    except KeyError:
        raise KgptError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}") from None


def lr_multiplier(tokens: int, warmup_tokens: int, final_tokens: int, clamp: bool = False,
                  floor: float = COURSE_LR_FLOOR) -> float:
    """Linear warmup, then a cosine that never falls below ``floor`` (the course: 10% of the peak).

    Unclamped (the course), progress keeps growing past ``final_tokens`` and the cosine
    rises again: over 650 pretraining epochs (3.25 periods of 200) the multiplier falls
    to its floor, is back at 1 near epoch 400 and ends near 0.12.
    """
    if tokens < warmup_tokens:
        return tokens / max(1, warmup_tokens)
    progress = (tokens - warmup_tokens) / max(1, final_tokens - warmup_tokens)
    if clamp:
        progress = min(1.0, progress)
    return max(floor, 0.5 * (1.0 + math.cos(math.pi * progress)))


def scheduled_lr(peak: float, tokens: int, warmup_tokens: int, final_tokens: int, clamp: bool = False,
                 floor: float = COURSE_LR_FLOOR) -> float:
    """The learning rate of the step taken after ``tokens`` label positions were trained on.

    The course's optimiser is created at the peak and the schedule only ever runs after a
    step, so the very first step (no tokens yet) is at the peak, not at warmup's zero.
    """
    if tokens == 0:
        return peak
    return peak * lr_multiplier(tokens, warmup_tokens, final_tokens, clamp, floor)


def decay_groups(model: nn.Module, weight_decay: float, rule: Literal["all-but-bias", "matmul"]) -> list[dict]:
    """AdamW parameter groups: with ``weight_decay`` and without.

    ``all-but-bias`` is the course's rule, by name: no decay for names containing "bias"
    or "LayerNorm.weight". The second never matches (the norms are called ln1, ln2, ln_f),
    so only biases are exempt. ``matmul`` decays the weights that multiply activations:
    Linear weights and the synthesizer's B matrices.
    """
    named = list(model.named_parameters())
    if rule == "all-but-bias":
        decayed = {n for n, _ in named if not any(s in n for s in ("bias", "LayerNorm.weight"))}
    elif rule == "matmul":
        decayed = {f"{mn}.weight" if mn else "weight" for mn, m in model.named_modules() if isinstance(m, nn.Linear)}
        decayed |= {n for n, _ in named if n.endswith("attn.w2")}
    else:
        raise ValueError(f"unknown decay rule {rule!r}")
    return [
        {"params": [p for n, p in named if n in decayed], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decayed], "weight_decay": 0.0},
    ]
