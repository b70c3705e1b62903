"""Model hyperparameters: one dataclass, the assignment's defaults."""

from __future__ import annotations

from dataclasses import InitVar, asdict, dataclass, fields

from kgpt.errors import KgptError

VARIANTS = ("vanilla", "perceiver", "synthesizer", "rope")


def dropout_rates(rate: float) -> dict[str, float]:
    """Every dropout rate of a :class:`GPTConfig` (embedding, attention, residual) at ``rate``."""
    return {k: rate for k in ("embd_pdrop", "attn_pdrop", "resid_pdrop")}


@dataclass
class GPTConfig:
    """Size and variant of the GPT (about 3.3M parameters at these defaults).

    ``variant`` chooses the attention and position parts: ``vanilla`` (learned absolute
    positions, dot-product attention), ``perceiver`` (a learned bottleneck of
    ``bottleneck_dim`` positions), ``synthesizer`` (dense synthesized attention, no
    query·key product) or ``rope`` (rotary positions, no learned position table).
    The assignment spelled the variant as flags; ``rope=True``, ``perceiver=True`` and
    ``synthesizer=True`` are accepted here too.
    """

    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    embd_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    variant: str = "vanilla"
    bottleneck_dim: int = 32
    rope: InitVar[bool] = False
    perceiver: InitVar[bool] = False
    synthesizer: InitVar[bool] = False

    def __post_init__(self, rope: bool, perceiver: bool, synthesizer: bool) -> None:
        flags = [name for name, on in (("rope", rope), ("perceiver", perceiver), ("synthesizer", synthesizer)) if on]
        if len(flags) > 1:
            raise KgptError(f"choose one variant, not {' and '.join(flags)}")
        if flags:
            self.variant = flags[0]
        if self.variant not in VARIANTS:
            raise KgptError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.n_embd % self.n_head:
            raise KgptError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.variant == "rope" and (self.n_embd // self.n_head) % 2:
            raise KgptError("rope needs an even head size (n_embd / n_head)")
        if self.variant == "perceiver" and self.n_layer < 2:
            raise KgptError("perceiver needs n_layer >= 2 (a down- and an up-projection block)")
        if self.bottleneck_dim < 1:
            raise KgptError(f"--bottleneck_dim must be at least 1, got {self.bottleneck_dim}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
