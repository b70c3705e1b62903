"""kgpt: how a transformer stores world knowledge in pretraining, and how finetuning gets it out."""

__version__ = "0.1.0"
