"""The step runner's other paths take the same steps as the plain eager one.

The compile fallback runs anywhere; the CUDA-graph and fused-AdamW path needs a GPU and
is skipped without one.
"""

from __future__ import annotations

import pytest
import torch

from kgpt.data.corpus import parse_questions
from kgpt.data.questions import QuestionBatcher, encode_questions
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.model import GPT, GPTConfig
from kgpt.training import Trainer, TrainerConfig
from kgpt.vocab import CharVocab


def _setup(device: str):
    data = generate(SyntheticConfig(n_train=48, n_dev=4, n_test=2, n_extra=0, n_places=6, seed=5))
    vocab = CharVocab.from_text(data.wiki + data.train + data.dev)
    x, y = encode_questions(parse_questions(data.train), vocab, 48)
    return vocab, QuestionBatcher(x, y, device)


def _train(vocab, batcher, device: str, epochs: int = 6, **kw) -> tuple[GPT, list[dict]]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=48, n_layer=2, n_head=2, n_embd=32,
                          embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    # warmup and final tokens chosen so the LR changes at every step, rising and falling
    cfg = TrainerConfig(max_epochs=epochs, batch_size=16, learning_rate=3e-3, final_tokens=12 * 16 * 47,
                        warmup_tokens=3 * 16 * 47, log_every=1, progress=False, **kw)
    trainer = Trainer(model, batcher, cfg, vocab, torch.device(device))
    return model, trainer.train().history


def test_a_failing_compile_falls_back_to_eager_and_takes_the_same_steps(monkeypatch):
    vocab, batcher = _setup("cpu")
    eager, eager_history = _train(vocab, batcher, "cpu", epochs=2)

    def broken_compile(model, *a, **kw):
        def forward(*args, **kwargs):
            raise RuntimeError("no compiler toolchain")
        return forward

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(UserWarning, match="torch.compile failed .*no compiler toolchain.*training eagerly"):
        fallen_back, history = _train(vocab, batcher, "cpu", epochs=2, compile=True)
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in eager_history], rel=1e-6)
    for (name, p), q in zip(eager.named_parameters(), fallen_back.parameters()):
        torch.testing.assert_close(q, p, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_replay_equals_eager_with_a_changing_lr():
    """Fused AdamW with the LR as a device tensor, captured and replayed, against eager steps."""
    vocab, batcher = _setup("cuda")
    eager, eager_history = _train(vocab, batcher, "cuda", cuda_graphs=False, amp=False)
    graphed, graph_history = _train(vocab, batcher, "cuda", cuda_graphs=True, amp=False)
    assert len({h["lr"] for h in graph_history}) >= 8  # the captured step reads a changing LR
    assert [h["loss"] for h in graph_history] == pytest.approx([h["loss"] for h in eager_history], rel=1e-4)
    for (name, p), q in zip(eager.named_parameters(), graphed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=name)
