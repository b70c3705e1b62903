"""The assignment recipe is the course's trainer: schedule, decay groups, order, LR timing.

Expected values here come from the course's published trainer (CS224N ``src/trainer.py``)
and a public log of it, written out by hand, not from kgpt's code. The step-for-step
agreement with ``benchmarks/reference.py`` (written from the same source) closes the loop.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import load_benchmark

from kgpt.data.corpus import parse_questions
from kgpt.data.questions import QuestionBatcher, encode_questions
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.errors import KgptError
from kgpt.model import GPT, VARIANTS, GPTConfig
from kgpt.training import ASSIGNMENT, RECIPES, Trainer, TrainerConfig, decay_groups, get_recipe, lr_multiplier
from kgpt.vocab import CharVocab

# -- (c) the schedule --------------------------------------------------------------------------

# warmup 100 tokens, final 1100: progress = (tokens - 100) / 1000.
@pytest.mark.parametrize(
    "tokens, unclamped, clamped",
    [
        (0, 0.0, 0.0),
        (50, 0.5, 0.5),
        (100, 1.0, 1.0),  # progress 0
        (350, 0.5 * (1 + math.cos(math.pi / 4)), 0.5 * (1 + math.cos(math.pi / 4))),
        (600, 0.5, 0.5),  # progress 0.5
        (1000, 0.1, 0.1),  # 0.5 * (1 + cos(0.9 pi)) = 0.0245 < the 10% floor
        (1100, 0.1, 0.1),  # progress 1
        (1600, 0.5, 0.1),  # progress 1.5: the course's cosine climbs again
        (1850, 0.5 * (1 + math.cos(1.75 * math.pi)), 0.1),
        (2100, 1.0, 0.1),  # progress 2: back at the peak
        (2600, 0.5, 0.1),
    ],
)
def test_lr_multiplier_table(tokens, unclamped, clamped):
    assert lr_multiplier(tokens, 100, 1100) == pytest.approx(unclamped, abs=1e-12)
    assert lr_multiplier(tokens, 100, 1100, clamp=True) == pytest.approx(clamped, abs=1e-12)


@pytest.mark.parametrize("tokens, floored", [(600, 0.5), (1000, 0.5 * (1 + math.cos(0.9 * math.pi))), (1100, 0.0), (1600, 0.0)])
def test_a_cosine_with_a_lower_floor_follows_it_down(tokens, floored):
    """0.5 * (1 + cos(pi * progress)) all the way to 0 at progress 1, held there when clamped."""
    assert lr_multiplier(tokens, 100, 1100, clamp=True, floor=0.0) == pytest.approx(floored, abs=1e-12)
    assert lr_multiplier(tokens, 100, 1100, clamp=True, floor=0.3) == pytest.approx(max(0.3, floored), abs=1e-12)


def test_assignment_schedule_matches_the_course_log_on_wiki_txt_sizes():
    """A public log of the course code: lr 7.18e-4 at epoch 650; the peak returns near epoch 400."""
    docs, block, batch = 2936, 128, 128
    steps_per_epoch = math.ceil(docs / batch)
    final = 200 * docs * block

    def lr_after_epochs(epochs: int) -> float:
        return 6e-3 * lr_multiplier(epochs * docs * (block - 1), 512 * 20, final)

    assert lr_after_epochs(650) == pytest.approx(7.18e-4, rel=2e-3)
    best = max(range(300, 500), key=lr_after_epochs)
    assert 395 <= best <= 410 and lr_after_epochs(best) > 0.999 * 6e-3
    assert min(lr_after_epochs(e) for e in range(150, 250)) == pytest.approx(6e-4)  # the floor is reached
    assert steps_per_epoch * 650 == 14950


# -- (a) decay groups by name ----------------------------------------------------------------------


def _names(model, groups) -> tuple[set[str], set[str]]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    decayed = {by_id[id(p)] for p in groups[0]["params"]}
    kept = {by_id[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decayed | kept == set(by_id.values()) and not decayed & kept
    return decayed, kept


@pytest.mark.parametrize("variant", VARIANTS)
def test_assignment_decays_everything_but_biases(variant):
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=3, n_head=2, n_embd=8, variant=variant, bottleneck_dim=4))
    decayed, kept = _names(model, decay_groups(model, 0.1, ASSIGNMENT.decay))
    assert all(n.endswith(".bias") for n in kept) and kept  # only biases are exempt
    must_decay = {"tok_emb.weight", "head.weight", "ln_f.weight", "blocks.0.ln1.weight", "blocks.0.ln2.weight",
                  "blocks.0.mlp.0.weight"}
    must_decay |= {"pos_emb"} if variant != "rope" else set()
    must_decay |= {"blocks.0.attn.w1.weight", "blocks.0.attn.w2", "blocks.0.attn.b2"} if variant == "synthesizer" else set()
    assert must_decay <= decayed


def test_kgpt_0_1_decays_matmul_weights_only():
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8, variant="synthesizer"))
    decayed, _ = _names(model, decay_groups(model, 0.1, get_recipe("kgpt-0.1").decay))
    assert decayed == {"blocks.0.attn.w1.weight", "blocks.0.attn.w2", "blocks.0.attn.value.weight",
                       "blocks.0.attn.proj.weight", "blocks.0.mlp.0.weight", "blocks.0.mlp.2.weight", "head.weight"}


def test_unknown_recipe_is_one_line():
    with pytest.raises(KgptError, match="unknown recipe 'fast'; choose one of assignment, kgpt-0.1"):
        get_recipe("fast")


# -- (b) order and (d) the LR each step used -----------------------------------------------------


class RecordingBatcher:
    """Examples 0..n-1 as constant rows; records which indices each batch asked for."""

    def __init__(self, n: int, block: int = 8):
        self.n, self.block, self.seen = n, block, []

    def __len__(self) -> int:
        return self.n

    def sample(self, index, generator=None):
        self.seen.append(index.tolist())
        x = (index.unsqueeze(1) % 5 + 2).expand(-1, self.block - 1).contiguous()
        return x, x.roll(-1, 1)


def _tiny_trainer(batcher, recipe="assignment", epochs=3, batch=4, **kw) -> Trainer:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=1, n_embd=8))
    cfg = TrainerConfig(max_epochs=epochs, batch_size=batch, learning_rate=1e-2, final_tokens=400,
                        warmup_tokens=60, recipe=get_recipe(recipe), progress=False, log_every=1, **kw)
    return Trainer(model, batcher, cfg, CharVocab.from_text("abcdef"), torch.device("cpu"))


def test_assignment_visits_every_document_once_per_epoch_in_file_order():
    batcher = RecordingBatcher(10)
    _tiny_trainer(batcher).train()
    epoch = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batcher.seen == epoch * 3


def test_shuffling_recipe_visits_every_document_once_per_epoch_in_new_orders():
    batcher = RecordingBatcher(10)
    _tiny_trainer(batcher, recipe="kgpt-0.1").train()
    epochs = [sum(batcher.seen[i : i + 3], []) for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != list(range(10)) and len({tuple(e) for e in epochs}) == 3


def test_lr_used_by_each_step_is_set_after_the_previous_step():
    """Read from the optimiser as it steps: the first at the peak, then the schedule of the tokens so far."""
    trainer = _tiny_trainer(RecordingBatcher(8), epochs=4)
    used = []
    trainer.optimizer.register_step_pre_hook(lambda opt, args, kw: used.append([g["lr"] for g in opt.param_groups]))
    trainer.train()
    per_step = 4 * 7  # batch x (block - 1) label positions
    # warmup 60, final 400: tokens 28 → 28/60; 56 → 56/60; 84 → progress 24/340 …
    expected = [1e-2] + [1e-2 * lr_multiplier(k * per_step, 60, 400) for k in range(1, 8)]
    assert [lrs[0] for lrs in used] == pytest.approx(expected, rel=1e-12)
    assert all(len(set(lrs)) == 1 for lrs in used)  # every group
    assert expected[1] == pytest.approx(1e-2 * 28 / 60) and expected[-1] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 136 / 340)))


@pytest.mark.parametrize("floor", [0.1, 0.0])
def test_a_runs_last_steps_take_the_stages_floor(floor):
    """A whole-run cosine (the recall recipe's) ends at its floor: 16 steps of 28 tokens pass final_tokens 400."""
    kw = {} if floor == 0.1 else {"lr_floor": floor}  # 0.1: the default, the course's
    trainer = _tiny_trainer(RecordingBatcher(8), recipe="recall", epochs=8, **kw)
    used = []
    trainer.optimizer.register_step_pre_hook(lambda opt, args, kw: used.append(opt.param_groups[0]["lr"]))
    trainer.train()
    assert len(used) == 16 and used[-1] == pytest.approx(1e-2 * floor, abs=1e-15)
    assert min(used) == pytest.approx(1e-2 * floor, abs=1e-15)


def test_loss_is_logged_every_log_every_steps_whatever_the_saves(tmp_path):
    trainer = _tiny_trainer(RecordingBatcher(10), checkpoint_path=tmp_path / "r.resume", checkpoint_every=0.0)
    trainer.config.log_every = 2
    history = trainer.train().history
    assert [h["step"] for h in history] == [2, 4, 6, 8, 9]  # saves at 3, 6 and 9 add no entries
    assert [h["epoch"] for h in history] == [1, 2, 2, 3, 3]
    assert (tmp_path / "r.resume").exists()


def test_recipes_are_named_and_the_assignment_is_the_default():
    assert TrainerConfig(max_epochs=1, batch_size=1, learning_rate=1e-3, final_tokens=1).recipe is ASSIGNMENT
    assert ASSIGNMENT == RECIPES["assignment"]
    assert (ASSIGNMENT.shuffle, ASSIGNMENT.decay, ASSIGNMENT.schedule, ASSIGNMENT.bf16_on_cuda, ASSIGNMENT.bf16_on_cpu) == (
        False, "all-but-bias", "course", False, False)
    assert not ASSIGNMENT.clamps and RECIPES["kgpt-0.1"].clamps


# -- kgpt against the reference trainer, step for step ------------------------------------------


@pytest.mark.parametrize("buckets", [0, 1, 3])
def test_assignment_recipe_matches_the_reference_trainer_step_for_step(buckets):
    """Same init, same batches (file order), dropout off, float64: 72 steps over warmup, cosine and its rise."""
    reference = load_benchmark("reference")
    data = generate(SyntheticConfig(n_train=48, n_dev=4, n_test=2, n_extra=0, n_places=6, seed=3))
    vocab = CharVocab.from_text(data.wiki + data.train + data.dev)
    x, y = encode_questions(parse_questions(data.train), vocab, 48)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=len(vocab), block_size=48, n_layer=2, n_head=2, n_embd=32,
                       embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    model = GPT(config).double()
    ref = reference.ReferenceGPT.like(model).double()
    batch, steps = 16, 72  # 3 steps an epoch, 24 epochs
    per_step = batch * 47
    warmup, final = 5 * per_step, 30 * per_step  # progress passes 1 at step 30 and 1.5 near step 44

    cfg = TrainerConfig(max_epochs=steps // 3, batch_size=batch, learning_rate=3e-3, final_tokens=final,
                        warmup_tokens=warmup, length_buckets=buckets, log_every=1, progress=False)
    trainer = Trainer(model, QuestionBatcher(x, y), cfg, vocab, torch.device("cpu"))
    ours_lr, theirs_lr = [], []
    trainer.optimizer.register_step_pre_hook(lambda opt, a, k: ours_lr.append(opt.param_groups[0]["lr"]))
    history = trainer.train().history

    rows = torch.utils.data.TensorDataset(x, y)
    ref_trainer = reference.ReferenceTrainer(ref, rows, torch.device("cpu"), batch, learning_rate=3e-3,
                                             final_tokens=final, warmup_tokens=warmup)
    ref_trainer.optimizer.register_step_pre_hook(lambda opt, a, k: theirs_lr.append(opt.param_groups[0]["lr"]))
    ref_trainer.run_steps(steps)

    assert len(history) == len(ref_trainer.losses) == steps
    assert ours_lr == pytest.approx(theirs_lr, rel=1e-12)
    assert max(theirs_lr[40:]) > 2 * min(theirs_lr[25:40])  # the unclamped rise is inside the window
    assert [h["loss"] for h in history] == pytest.approx(ref_trainer.losses, abs=1e-5)
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]  # it learned: the agreement is not trivial
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_pretraining_takes_its_recipes_weight_decay_and_floor(tiny_data, tmp_path, monkeypatch):
    """The half-hour recall recipe pretrains without decay; the others keep the course's 0.1.
    A recipe's cosine floor reaches the trainer likewise (every recipe's is the course's 10%)."""
    from kgpt import pipeline

    class Stop(Exception):
        pass

    seen = {}

    def capture(model, batcher, cfg, vocab, device):
        seen[cfg.recipe.name] = (cfg.weight_decay, cfg.lr_floor)
        raise Stop

    monkeypatch.setattr(pipeline, "Trainer", capture)
    floored = replace(RECIPES["recall"], name="floored", pretrain=replace(RECIPES["recall"].pretrain, lr_floor=0.0))
    for recipe in ("assignment", "recall", "recall-half-hour", floored):
        with pytest.raises(Stop):
            pipeline.pretrain("rope", tiny_data.wiki, tmp_path / f"{get_recipe(recipe).name}.params",
                              opts=pipeline.RunOptions(recipe=recipe, device="cpu", progress=False))
    assert seen == {"assignment": (0.1, 0.1), "recall": (0.1, 0.1), "recall-half-hour": (0.0, 0.1), "floored": (0.1, 0.0)}
