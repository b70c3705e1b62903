"""The GPT and its four variants: shapes, strict causality, learning, checkpoints, init.

Causality is checked in float64 with weights scaled up so that any leak from the future
would move the logits by many orders of magnitude more than the tolerance, and a
positive control checks that the same perturbation does move later positions.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kgpt.checkpoint import load_model, save_checkpoint
from kgpt.data import CorruptionBatcher
from kgpt.errors import KgptError
from kgpt.model import GPT, VARIANTS, GPTConfig
from kgpt.model.attention import SynthesizerAttention
from kgpt.training import decay_groups
from kgpt.vocab import CharVocab

V = 40


def tiny_config(variant: str, block_size: int = 32, **kw) -> GPTConfig:
    kw.setdefault("bottleneck_dim", 4)
    return GPTConfig(vocab_size=V, block_size=block_size, n_layer=2 if variant != "perceiver" else 3,
                     n_head=2, n_embd=32, variant=variant, **kw)


def sharpened(model: GPT) -> GPT:
    """float64, eval mode, weights large enough that every input visibly matters."""
    torch.manual_seed(123)
    model = model.double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name:
                continue
            p.normal_(0.0, 0.3 if p.dim() > 1 else 0.1)
    return model


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shapes_and_loss(variant):
    torch.manual_seed(0)
    model = GPT(tiny_config(variant))
    idx = torch.randint(0, V, (3, 20))
    logits, loss = model(idx)
    assert logits.shape == (3, 20, V)
    assert loss is None
    logits, loss = model(idx, idx)
    assert loss.shape == () and torch.isfinite(loss)
    # near-uniform predictions at init: loss close to log(V)
    assert abs(loss.item() - math.log(V)) < 0.5
    full = model(torch.randint(0, V, (2, model.max_length)))[0]
    assert full.shape == (2, model.max_length, V)
    with pytest.raises(ValueError):
        model(torch.randint(0, V, (1, model.max_length + 1)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_strict_causality(variant):
    torch.manual_seed(1)
    model = sharpened(GPT(tiny_config(variant, bottleneck_dim=4)))
    T = 20
    idx = torch.randint(0, V, (2, T))
    with torch.no_grad():
        base = model(idx)[0]
        for t in (0, 1, 3, 4, 7, 12, 18):  # several beyond the perceiver's bottleneck of 4
            for trial in range(3):
                changed = idx.clone()
                changed[:, t + 1 :] = torch.randint(0, V, (2, T - t - 1))
                # make sure every later position really differs
                same = changed[:, t + 1 :] == idx[:, t + 1 :]
                changed[:, t + 1 :][same] = (idx[:, t + 1 :][same] + 1) % V
                out = model(changed)[0]
                diff = (out[:, : t + 1] - base[:, : t + 1]).abs().max().item()
                assert diff < 1e-9, f"{variant}: logits at positions <= {t} moved by {diff} when later inputs changed"
                # positive control: the changed positions themselves do change
                assert (out[:, t + 1 :] - base[:, t + 1 :]).abs().max().item() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_depends_on_past(variant):
    torch.manual_seed(2)
    model = sharpened(GPT(tiny_config(variant, bottleneck_dim=4)))
    T = 20
    idx = torch.randint(0, V, (1, T))
    with torch.no_grad():
        base = model(idx)[0]
        for pos in (0, 2):
            changed = idx.clone()
            changed[0, pos] = (idx[0, pos] + 1) % V
            out = model(changed)[0]
            assert torch.allclose(out[:, :pos], base[:, :pos], atol=1e-9, rtol=0)
            for t in (pos + 1, 10, T - 1):
                moved = (out[0, t] - base[0, t]).abs().max().item()
                assert moved > 1e-3, f"{variant}: logits at {t} ignore the input at {pos}"
        if variant != "perceiver":  # the perceiver only sees the first bottleneck_dim inputs and itself
            changed = idx.clone()
            changed[0, T - 2] = (idx[0, T - 2] + 1) % V
            assert (model(changed)[0][0, T - 1] - base[0, T - 1]).abs().max().item() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_lowers_loss(variant, tiny_data_shared):
    torch.manual_seed(3)
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    config = GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=3, n_head=2, n_embd=32, variant=variant,
                       bottleneck_dim=16)
    model = GPT(config)
    batcher = CorruptionBatcher(tiny_data_shared.wiki_text.splitlines(), vocab, 64)
    g = torch.Generator().manual_seed(3)
    x, y = batcher.sample(torch.arange(len(batcher)), g)
    opt = torch.optim.AdamW(decay_groups(model, 0.1, "matmul"), lr=1e-2, betas=(0.9, 0.95))
    model.train()
    losses = []
    for _ in range(40):
        _, loss = model(x, y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        final = model(x, y)[1].item()
    assert final < 0.75 * losses[0], f"{variant}: loss {losses[0]:.3f} -> {final:.3f}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_round_trip(variant, tmp_path):
    torch.manual_seed(4)
    vocab = CharVocab("abcdefghijklmnopqrstuvwxyzé .,?ABCDEFG")
    assert len(vocab) == V
    model = GPT(tiny_config(variant))
    with torch.no_grad():  # move away from init so a silent re-init would show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "model.params"
    save_checkpoint(path, model, vocab)
    loaded, ckpt = load_model(path, vocab)
    assert loaded.config == model.config
    assert ckpt.config.variant == variant
    idx = torch.randint(0, V, (2, 17))
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(idx)[0], loaded(idx)[0])
    # the wrong variant or vocabulary is refused with a clear error
    other = next(v for v in VARIANTS if v != variant)
    with pytest.raises(KgptError, match=variant):
        load_model(path, vocab, variant=other)
    with pytest.raises(KgptError, match="vocabulary"):
        load_model(path, CharVocab("abcdefghijklmnopqrstuvwxyzè .,?ABCDEFG"))


def test_loss_ignores_pad():
    torch.manual_seed(5)
    model = GPT(tiny_config("vanilla")).eval()
    idx = torch.randint(2, V, (2, 16))
    targets = torch.zeros(2, 16, dtype=torch.long)
    positions = [(0, 3), (0, 4), (1, 0), (1, 15)]
    for b, t in positions:
        targets[b, t] = torch.randint(1, V, ()).item()
    with torch.no_grad():
        logits, loss = model(idx, targets)
        picked = torch.stack([logits[b, t] for b, t in positions])
        expected = F.cross_entropy(picked, torch.tensor([targets[b, t].item() for b, t in positions]))
        assert torch.allclose(loss, expected, atol=1e-6)
        # control: counting the PAD positions would give a different number
        everything = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        assert not torch.allclose(everything, expected)


def test_init_statistics():
    torch.manual_seed(6)
    model = GPT(GPTConfig(vocab_size=256, block_size=128))
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            std = m.weight.std().item()
            assert abs(std - 0.02) < 0.002, f"{name}.weight std {std}"
            assert abs(m.weight.mean().item()) < 0.002
            if getattr(m, "bias", None) is not None:
                assert torch.count_nonzero(m.bias) == 0, f"{name}.bias is not zero"
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_default_parameter_count():
    model = GPT(GPTConfig(vocab_size=256, block_size=128))
    c = model.config
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.variant) == (4, 8, 256, 128, "vanilla")
    assert (c.embd_pdrop, c.resid_pdrop, c.attn_pdrop) == (0.1, 0.1, 0.1)
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def test_exact_parameter_counts_at_the_assignment_size():
    """Counted by hand from the layer shapes (vocabulary 256, as the README's wiki.txt)."""
    V, T, L, h, d, m = 256, 128, 4, 8, 256, 32  # vocab, block, layers, heads, width, bottleneck

    def linear(n_in: int, n_out: int) -> int:  # weight + bias
        return n_in * n_out + n_out

    layer_norm = 2 * d
    mlp = linear(d, 4 * d) + linear(4 * d, d)
    dot_attention = 4 * linear(d, d)  # key, query, value, proj
    synthesizer_attention = linear(d, d) + (d // h) * (T - 1) + (T - 1) + 2 * linear(d, d)  # w1, w2, b2, value, proj
    dot_block = 2 * layer_norm + dot_attention + mlp
    synthesizer_block = 2 * layer_norm + synthesizer_attention + mlp
    tok_emb, pos_emb, ln_f, head = V * d, T * d, layer_norm, d * V  # the head has no bias
    expected = {
        "vanilla": tok_emb + pos_emb + L * dot_block + ln_f + head,
        "rope": tok_emb + L * dot_block + ln_f + head,  # no position table
        "synthesizer": tok_emb + pos_emb + L * synthesizer_block + ln_f + head,
        # basis C (1, m, d) in the down block; down block + (L - 2) blocks + up block
        "perceiver": tok_emb + pos_emb + m * d + (1 + (L - 2) + 1) * dot_block + ln_f + head,
    }
    assert expected == {"vanilla": 3_323_392, "rope": 3_290_624, "synthesizer": 3_076_988, "perceiver": 3_331_584}
    for variant, n in expected.items():
        config = GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=h, n_embd=d, variant=variant, bottleneck_dim=m)
        assert GPT(config).num_parameters() == n, variant


def test_perceiver_has_the_course_layout():
    torch.manual_seed(7)
    d, m = 256, 32
    model = GPT(GPTConfig(vocab_size=V, block_size=128, variant="perceiver", bottleneck_dim=m))
    names = {name for name, _ in model.named_parameters()}
    assert "down_block.C" in names and "C" not in names
    assert not any("ln_kv" in name for name in names)
    for block in ("down_block", "up_block"):
        for part in ("ln1.weight", "ln2.bias", "attn.key.weight", "attn.query.weight", "attn.value.weight",
                     "attn.proj.weight", "mlp.0.weight", "mlp.2.bias"):
            assert f"{block}.{part}" in names
    # xavier-uniform on (1, m, d): fan_in = m·d, fan_out = d, bound sqrt(6 / (fan_in + fan_out)),
    # and GPT's own init (normal 0.02 on Linear/Embedding) must not have replaced it
    C = model.down_block.C.detach()
    assert C.shape == (1, m, d)
    bound = math.sqrt(6 / (m * d + d))
    assert C.abs().max().item() <= bound
    assert abs(C.std().item() - bound / math.sqrt(3)) < 0.03 * bound
    assert abs(C.mean().item()) < 0.02 * bound


def test_variant_structure():
    rope = GPT(GPTConfig(vocab_size=V, block_size=32, variant="rope"))
    assert rope.pos_emb is None
    assert not any("pos_emb" in name for name, _ in rope.named_parameters())
    vanilla = GPT(GPTConfig(vocab_size=V, block_size=32))
    assert vanilla.pos_emb.shape == (1, 32, 256)
    for n_layer in (2, 4, 6):
        perceiver = GPT(GPTConfig(vocab_size=V, block_size=32, variant="perceiver", n_layer=n_layer, bottleneck_dim=8))
        assert len(perceiver.blocks) == n_layer - 2
        assert perceiver.down_block.C.shape == (1, 8, 256)
    synth = GPT(GPTConfig(vocab_size=V, block_size=32, variant="synthesizer"))
    attns = [b.attn for b in synth.blocks]
    assert len(attns) == 4 and all(isinstance(a, SynthesizerAttention) for a in attns)
    assert attns[0].w2.shape == (256 // 8, 31)
    assert not any(name.endswith(("query.weight", "key.weight")) for name, _ in synth.named_parameters())


def test_config_legacy_flags_and_errors():
    assert GPTConfig(vocab_size=V, block_size=32, rope=True).variant == "rope"
    assert GPTConfig(vocab_size=V, block_size=32, perceiver=True).variant == "perceiver"
    assert GPTConfig(vocab_size=V, block_size=32, synthesizer=True).variant == "synthesizer"
    assert GPTConfig(vocab_size=V, block_size=32).variant == "vanilla"
    assert GPT(GPTConfig(vocab_size=V, block_size=32, rope=True)).pos_emb is None
    with pytest.raises(KgptError, match="unknown variant"):
        GPTConfig(vocab_size=V, block_size=32, variant="linformer")
    with pytest.raises(KgptError):
        GPTConfig(vocab_size=V, block_size=32, rope=True, perceiver=True)
    with pytest.raises(KgptError):
        GPTConfig(vocab_size=V, block_size=32, n_embd=30, n_head=4)
    d = GPTConfig(vocab_size=V, block_size=32, variant="perceiver", bottleneck_dim=7).to_dict()
    assert GPTConfig.from_dict(d) == GPTConfig(vocab_size=V, block_size=32, variant="perceiver", bottleneck_dim=7)
