"""Training: recipes (schedule, decay, order), the step runner, resumable state, the loop."""

from kgpt.training.recipe import (
    ASSIGNMENT,
    RECIPES,
    WARMUP_TOKENS,
    Recipe,
    decay_groups,
    final_tokens_for,
    get_recipe,
    lr_multiplier,
    run_schedule,
    scheduled_lr,
)
from kgpt.training.steps import GRAPH_WARMUP_STEPS, StepRunner, length_buckets
from kgpt.training.trainer import Interrupted, Trainer, TrainerConfig, TrainResult, resolve_device

__all__ = [
    "ASSIGNMENT",
    "GRAPH_WARMUP_STEPS",
    "RECIPES",
    "WARMUP_TOKENS",
    "Interrupted",
    "Recipe",
    "StepRunner",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "decay_groups",
    "final_tokens_for",
    "get_recipe",
    "length_buckets",
    "lr_multiplier",
    "run_schedule",
    "resolve_device",
    "scheduled_lr",
]
