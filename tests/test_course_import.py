"""State dicts saved by the course's own code (``torch.save(model.state_dict())``) import.

Each test writes a state dict in the layout of one edition of the course's model, built
here from the course's layer names and shapes alone (never from kgpt's model), with
random values and the buffers the course saved (every attention's causal ``mask``, the
2024 edition's ``rope_cache``). It must load through :func:`kgpt.checkpoint.load_model`,
every course parameter must land in kgpt's model under the same name with the same
values, and the model must run.

The editions: vanilla (2021-24), synthesizer (2021), perceiver (2023), rope (2024).
"""

from __future__ import annotations

import pytest
import torch
from conftest import one_line_error

from kgpt.checkpoint import load_model
from kgpt.cli import main
from kgpt.model import VARIANTS
from kgpt.model.attention import apply_rotary
from kgpt.vocab import CharVocab

# The course's sizes, except a narrow width to keep the tests fast.
N_EMBD, N_HEAD, N_LAYER, BLOCK, BOTTLENECK = 32, 8, 4, 128, 8
HEAD = N_EMBD // N_HEAD


def _linear(name: str, n_in: int, n_out: int, bias: bool = True) -> dict[str, torch.Tensor]:
    out = {f"{name}.weight": torch.randn(n_out, n_in)}
    if bias:
        out[f"{name}.bias"] = torch.randn(n_out)
    return out


def _layer_norm(name: str) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": torch.randn(N_EMBD), f"{name}.bias": torch.randn(N_EMBD)}


def _mask(n: int) -> torch.Tensor:
    return torch.tril(torch.ones(n, n)).view(1, 1, n, n)


def _course_rope_cache(head_size: int, max_positions: int) -> torch.Tensor:
    """The 2024 skeleton's cache: (max_positions, head_size/2, 2) of cos, sin of t·θ_i,
    θ_i = 10000^(-2(i-1)/head_size) for i = 1 … head_size/2."""
    i = torch.arange(1, head_size // 2 + 1, dtype=torch.float64)
    theta = 10000.0 ** (-2 * (i - 1) / head_size)
    angles = torch.arange(max_positions, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.stack((angles.cos(), angles.sin()), dim=-1).float()


def _attention(prefix: str, kind: str, mask_size: int) -> dict[str, torch.Tensor]:
    """CausalSelfAttention / CausalCrossAttention ("dot"), SynthesizerAttention (2021),
    or the 2024 CausalSelfAttention with RoPE ("rope")."""
    out: dict[str, torch.Tensor] = {}
    if kind == "synthesizer":
        out |= _linear(f"{prefix}.w1", N_EMBD, N_EMBD)
        out[f"{prefix}.w2"] = torch.randn(HEAD, BLOCK - 1)
        out[f"{prefix}.b2"] = torch.randn(BLOCK - 1)
    else:
        out |= _linear(f"{prefix}.key", N_EMBD, N_EMBD) | _linear(f"{prefix}.query", N_EMBD, N_EMBD)
    out |= _linear(f"{prefix}.value", N_EMBD, N_EMBD)
    if kind == "rope":
        out[f"{prefix}.rope_cache"] = _course_rope_cache(HEAD, BLOCK)
    out |= _linear(f"{prefix}.proj", N_EMBD, N_EMBD)
    out[f"{prefix}.mask"] = _mask(mask_size)
    return out


def _block(prefix: str, kind: str, mask_size: int = BLOCK) -> dict[str, torch.Tensor]:
    """Block, DownProjectBlock or UpProjectBlock: ln1, ln2, attn, mlp (Linear, GELU, Linear, Dropout)."""
    return (
        _layer_norm(f"{prefix}.ln1")
        | _layer_norm(f"{prefix}.ln2")
        | _attention(f"{prefix}.attn", kind, mask_size)
        | _linear(f"{prefix}.mlp.0", N_EMBD, 4 * N_EMBD)
        | _linear(f"{prefix}.mlp.2", 4 * N_EMBD, N_EMBD)
    )


def course_state_dict(variant: str, vocab_size: int) -> dict[str, torch.Tensor]:
    """A state dict in the layout the course's GPT of that edition saves."""
    torch.manual_seed(VARIANTS.index(variant))
    state = {"tok_emb.weight": torch.randn(vocab_size, N_EMBD)}
    if variant != "rope":  # the 2024 GPT has no position table when rope is on
        state["pos_emb"] = torch.randn(1, BLOCK, N_EMBD)
    if variant == "perceiver":
        state |= _block("down_block", "dot")
        state["down_block.C"] = torch.randn(1, BOTTLENECK, N_EMBD)
        # the course builds the inner blocks with block_size set to bottleneck_dim
        for i in range(N_LAYER - 2):
            state |= _block(f"blocks.{i}", "dot", mask_size=BOTTLENECK)
        state |= _block("up_block", "dot")
    else:
        kind = {"vanilla": "dot", "synthesizer": "synthesizer", "rope": "rope"}[variant]
        for i in range(N_LAYER):
            state |= _block(f"blocks.{i}", kind)
    state |= _layer_norm("ln_f") | _linear("head", N_EMBD, vocab_size, bias=False)
    return state


BUFFERS = (".mask", ".rope_cache")


@pytest.fixture
def vocab(tiny_data) -> CharVocab:
    return CharVocab.from_text(tiny_data.wiki_text)


def saved(variant: str, vocab: CharVocab, folder, edit=None):
    state = course_state_dict(variant, len(vocab))
    if edit:
        state = edit(state)
    path = folder / f"course-{variant}.pt"
    torch.save(state, path)
    return path, state


def check_imported(variant: str, vocab: CharVocab, tmp_path, **load_kw):
    path, course = saved(variant, vocab, tmp_path)
    model, ckpt = load_model(path, vocab, variant, block_size=BLOCK, **load_kw)  # (1) it loads
    c = model.config
    assert (c.variant, c.n_embd, c.n_head, c.n_layer, c.block_size) == (variant, N_EMBD, N_HEAD, N_LAYER, BLOCK)
    assert ckpt.imported and ckpt.config == c
    # (2) every course parameter is in kgpt's model under its name, with its values; nothing else is
    params = {k: v for k, v in course.items() if not k.endswith(BUFFERS)}
    ours = model.state_dict()
    assert set(ours) == set(params)
    for name, value in params.items():
        assert ours[name].shape == value.shape, name
        assert torch.equal(ours[name], value), name
    # (3) it runs, on the longest input it takes
    model.eval()
    idx = torch.randint(0, len(vocab), (2, model.max_length))
    with torch.no_grad():
        logits, loss = model(idx, idx)
    assert logits.shape == (2, model.max_length, len(vocab))
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    return model, course


def test_vanilla_imports(vocab, tmp_path):
    check_imported("vanilla", vocab, tmp_path)


def test_synthesizer_imports(vocab, tmp_path):
    model, _ = check_imported("synthesizer", vocab, tmp_path)
    assert model.blocks[0].attn.w2.shape == (HEAD, BLOCK - 1)  # n_head read off w2's rows
    assert model.max_length == BLOCK - 1


def test_rope_imports(vocab, tmp_path):
    model, course = check_imported("rope", vocab, tmp_path)
    assert model.pos_emb is None
    # kgpt recomputes the dropped rope_cache: same angles, and the same rotation of
    # adjacent pairs as the course's complex multiplication by cos + i·sin
    cache = course["blocks.0.attn.rope_cache"]
    attn = model.blocks[0].attn
    assert torch.allclose(attn.rope_cos, cache[..., 0], atol=1e-6)
    assert torch.allclose(attn.rope_sin, cache[..., 1], atol=1e-6)
    x = torch.randn(2, N_HEAD, 10, HEAD)
    course_rotated = torch.view_as_real(
        torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous()) * torch.view_as_complex(cache[:10].contiguous())
    ).flatten(-2)
    assert torch.allclose(apply_rotary(x, attn.rope_cos[:10], attn.rope_sin[:10]), course_rotated, atol=1e-5)


def test_rope_block_size_comes_from_the_command_line(vocab, tmp_path):
    path, _ = saved("rope", vocab, tmp_path)
    model, _ = load_model(path, vocab, "rope", block_size=64)
    assert model.config.block_size == 64 and model.max_length == 64


def test_perceiver_imports_with_the_bottleneck_read_off_C(vocab, tmp_path):
    model, course = check_imported("perceiver", vocab, tmp_path)  # no --bottleneck_dim given
    assert model.config.bottleneck_dim == BOTTLENECK
    assert len(model.blocks) == N_LAYER - 2
    assert torch.equal(model.down_block.C, course["down_block.C"])
    same, _ = load_model(tmp_path / "course-perceiver.pt", vocab, "perceiver", bottleneck_dim=BOTTLENECK, block_size=BLOCK)
    assert same.config.bottleneck_dim == BOTTLENECK


def test_perceiver_with_another_bottleneck_flag_is_refused(vocab, tmp_path):
    path, _ = saved("perceiver", vocab, tmp_path)
    message = one_line_error(load_model, path, vocab, "perceiver", bottleneck_dim=32, block_size=BLOCK)
    assert f"bottleneck_dim {BOTTLENECK}" in message and f"--bottleneck_dim {BOTTLENECK}" in message


@pytest.mark.parametrize("course_variant", VARIANTS)
def test_wrong_variant_is_refused_in_one_line(course_variant, vocab, tmp_path):
    path, _ = saved(course_variant, vocab, tmp_path)
    for wrong in VARIANTS:
        if wrong == course_variant:
            continue
        message = one_line_error(load_model, path, vocab, wrong, block_size=BLOCK)
        assert f"{course_variant} model" in message and f"not {wrong}" in message
        assert f"run with variant {course_variant}" in message


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda s: {k: v for k, v in s.items() if k != "down_block.C"}, "down_block.C is missing"),
        (lambda s: {**s, "down_block.C": s["down_block.C"][0]}, "down_block.C is of shape"),
        (lambda s: {k: v for k, v in s.items() if not k.startswith("up_block.mlp")}, "missing up_block.mlp"),
    ],
    ids=["no-basis", "flat-basis", "no-up-mlp"],
)
def test_damaged_perceiver_layout_is_named(edit, says, vocab, tmp_path):
    path, _ = saved("perceiver", vocab, tmp_path, edit)
    assert says in one_line_error(load_model, path, vocab, "perceiver", block_size=BLOCK)


@pytest.mark.parametrize("variant", VARIANTS)
def test_course_state_dicts_evaluate_from_the_command_line(variant, vocab, tiny_data, tmp_path, capsys):
    path, _ = saved(variant, vocab, tmp_path)
    preds = tmp_path / "preds.txt"
    rc = main(["evaluate", variant, str(tiny_data.wiki), "--reading_params_path", str(path),
               "--eval_corpus_path", str(tiny_data.dev), "--outputs_path", str(preds), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    assert len(preds.read_text(encoding="utf-8").splitlines()) == len(tiny_data.dev_pairs)
