"""The GPT and its configuration; the variants are parts chosen by ``GPTConfig.variant``."""

from kgpt.model.config import VARIANTS, GPTConfig, dropout_rates
from kgpt.model.gpt import GPT

__all__ = ["GPT", "GPTConfig", "VARIANTS", "dropout_rates"]
