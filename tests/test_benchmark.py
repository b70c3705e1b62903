"""The benchmarks: the CLI's JSON lines, and the reference implementation being the same model.

The speed comparison in ``benchmarks/compare.py`` only means something if the reference
computes what kgpt computes; these tests check that with copied weights it gives the
same logits and the same greedy answers, and that the scripts run end to end.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import BENCHMARKS, load_benchmark

from kgpt import benchmark
from kgpt.cli import main
from kgpt.data.corpus import parse_questions
from kgpt.data.questions import QuestionBatcher, encode_questions
from kgpt.data.synthetic import SyntheticConfig, generate
from kgpt.inference import greedy_decode
from kgpt.model import GPT, GPTConfig
from kgpt.training import ASSIGNMENT, Trainer, TrainerConfig, decay_groups
from kgpt.vocab import MASK_CHAR, CharVocab

reference = load_benchmark("reference")


def _json_line(capsys) -> dict:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def test_bench_train_prints_one_json_line(capsys):
    assert main(["bench", "train", "--device", "cpu", "--steps", "2", "--batch_size", "4", "--json"]) == 0
    r = _json_line(capsys)
    expected = {"variant", "device", "batch_size", "steps", "tokens_per_s", "ms_per_step", "params", "compile", "amp", "torch"}
    assert expected <= r.keys()
    assert (r["variant"], r["device"], r["batch_size"], r["steps"]) == ("vanilla", "cpu", 4, 2)
    assert r["tokens_per_s"] > 0 and r["ms_per_step"] > 0 and r["params"] > 3_000_000
    assert r["compile"] is False and r["amp"] == "float32"
    assert r["length_buckets"] == 1  # batch 4 is below one 16-row bucket: one, its trailing PAD cut
    assert "mfu" not in r  # only measured on CUDA
    assert r["threads"] == torch.get_num_threads() and r["matmul_flops"] > 1e8
    assert r["of_matmul"] == pytest.approx(r["achieved_flops"] / r["matmul_flops"])
    # 2 timed steps of 4 rows, each step cut to its longest row
    model = benchmark.build_model("vanilla", len(benchmark.synthetic_data().vocab))
    work = r["achieved_flops"] * r["steps"] * r["ms_per_step"] / 1000
    assert benchmark.training_flops(model, 2 * 4 * 2, 2 * 4 * 2**2) < work <= benchmark.training_flops(model, 2 * 4 * 127, 2 * 4 * 127**2) * (1 + 1e-6)


def test_bench_eval_prints_one_json_line(capsys):
    assert main(["bench", "eval", "--device", "cpu", "--questions", "8", "--json"]) == 0
    r = _json_line(capsys)
    assert {"variant", "device", "questions", "seconds", "questions_per_s", "torch"} <= r.keys()
    assert r["questions"] == 8 and r["device"] == "cpu" and r["decode_batch"] == 128
    assert r["seconds"] > 0 and r["questions_per_s"] > 0 and r["peak_rss_mib"] > 0
    assert main(["bench", "eval", "--device", "cpu", "--questions", "8", "--batch_size", "3", "--json"]) == 0
    assert _json_line(capsys)["decode_batch"] == 3


def test_describe_is_one_human_line():
    train = {"variant": "vanilla", "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "batch_size": 128,
             "steps": 20, "tokens_per_s": 1.5e6, "ms_per_step": 10.8, "params": 3_227_136, "compile": True,
             "amp": "bf16", "torch": "2.x", "mfu": 0.1234, "threads": 2, "achieved_flops": 39e9,
             "matmul_flops": 130e9, "of_matmul": 0.3}
    line = benchmark.describe(train)
    assert "\n" not in line and "1,500,000 tokens/s" in line and "MFU 12.3%" in line and "H100" in line
    assert "39.0 GFLOP/s computed, 30% of a 130.0 GFLOP/s matrix product on 2 threads" in line
    ev = {"variant": "rope", "device": "cpu", "questions": 500, "seconds": 2.0, "questions_per_s": 250.0,
          "mean_answer_chars": 32.0, "weights": "random-init", "torch": "2.x", "decode_batch": 128, "peak_rss_mib": 400.0}
    assert "250.0 questions/s" in benchmark.describe(ev)


def test_flops_formula_and_peak():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=4))
    # attention 4*(16+4) + MLP (4*16+16 + 16*4+4) + 3 LayerNorms 3*8 + head 4*10; no embeddings
    assert benchmark.matmul_parameters(model) == 80 + 148 + 24 + 40
    assert benchmark.training_flops_per_token(model, 7) == 6 * 292 + 12 * 1 * 7 * 4
    assert benchmark.peak_flops(torch.device("cpu")) == (None, None)


def test_work_counts_what_length_buckets_compute():
    """With buckets, a step computes each bucket up to its longest row, not the block:
    the count is read off the batch itself (where each row's last target is)."""
    from kgpt.training.steps import length_buckets

    data = benchmark.synthetic_data()
    model = GPT(GPTConfig(vocab_size=len(data.vocab), block_size=benchmark.BLOCK_SIZE, n_layer=1, n_head=2, n_embd=16))
    trainer = benchmark.make_trainer(model, data, torch.device("cpu"), batch_size=32)
    assert trainer.runner.buckets == 2
    x, y = trainer.batcher.sample(torch.arange(32), torch.Generator().manual_seed(1))
    expected = [(int(xs.shape[0]), int((ys != 0).nonzero()[:, 1].max()) + 1) for xs, ys, _ in length_buckets(x, y, 2)]
    trainer.runner(x, y, 1e-3)
    assert trainer.runner.positions == sum(r * t for r, t in expected) < 32 * 127
    assert trainer.runner.positions_squared == sum(r * t * t for r, t in expected)


def test_matmul_flops_is_a_rate():
    assert 1e8 < benchmark.matmul_flops(torch.device("cpu"), side=256, repeats=2) < 1e14


def test_cuda_warmup_covers_graph_capture():
    """On CUDA the Trainer captures its step as a graph after some eager steps: not timed."""
    from kgpt.training import GRAPH_WARMUP_STEPS

    assert benchmark.default_warmup(torch.device("cuda")) >= GRAPH_WARMUP_STEPS + 2
    assert benchmark.default_warmup(torch.device("cpu")) >= 1


def test_steps_batcher_runs_exactly_the_asked_steps():
    data = benchmark.synthetic_data()
    model = GPT(GPTConfig(vocab_size=len(data.vocab), block_size=benchmark.BLOCK_SIZE, n_layer=1, n_head=2, n_embd=16))
    seconds, trainer = benchmark.time_training(model, data, torch.device("cpu"), batch_size=3, steps=4, warmup=2)
    assert seconds > 0 and trainer.progress.step == 6


def _tiny_pair(seed: int = 0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=23, block_size=32, n_layer=2, n_head=4, n_embd=32))
    return model, reference.ReferenceGPT.like(model)


def test_reference_has_kgpts_parameter_names():
    model, ref = _tiny_pair()
    assert list(ref.state_dict()) == list(model.state_dict())
    model.load_state_dict(ref.state_dict())  # and back


def test_reference_gives_the_same_logits_and_loss():
    model, ref = _tiny_pair()
    model.eval(), ref.eval()
    idx = torch.randint(0, 23, (3, 31))
    targets = torch.randint(0, 23, (3, 31))
    with torch.no_grad():
        logits, loss = model(idx, targets)
        ref_logits, ref_loss = ref(idx, targets)
    torch.testing.assert_close(ref_logits, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref_loss, loss, atol=1e-5, rtol=1e-5)


def test_reference_optimizer_groups_match_the_assignment_recipe():
    model, ref = _tiny_pair()
    names = {id(p): n for n, p in model.named_parameters()}
    ref_names = {id(p): n for n, p in ref.named_parameters()}
    ours = [sorted(names[id(p)] for p in g["params"]) for g in decay_groups(model, 0.1, ASSIGNMENT.decay)]
    ref_trainer = reference.ReferenceTrainer(ref, [], torch.device("cpu"), batch_size=1)
    theirs = [sorted(ref_names[id(p)] for p in g["params"]) for g in ref_trainer.optimizer.param_groups]
    assert ours == theirs


def test_reference_greedy_answers_match_kgpts_batched_decode():
    """A briefly finetuned tiny model answers with varied places and stops; both decoders agree."""
    data = generate(SyntheticConfig(n_train=200, n_dev=20, n_test=5, n_extra=0, n_places=10))
    vocab = CharVocab.from_text(data.wiki + data.train + data.dev)
    x, y = encode_questions(parse_questions(data.train), vocab, 64)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=64, n_layer=2, n_head=4, n_embd=64))
    config = TrainerConfig(max_epochs=5, batch_size=32, learning_rate=3e-3, final_tokens=10**9, warmup_tokens=1, progress=False)
    Trainer(model, QuestionBatcher(x, y), config, vocab, torch.device("cpu")).train()

    questions = [q.text for q in parse_questions(data.dev)]
    ours = [vocab.decode(ids) for ids in greedy_decode(model, [vocab.encode(q + MASK_CHAR) for q in questions], 32)]
    ref = reference.ReferenceGPT.like(model).eval()
    theirs = reference.predict(ref, vocab, questions, torch.device("cpu"))
    assert ours == theirs
    assert len(set(ours)) > 1 and any(len(p) < 32 for p in ours)  # a real comparison, not a degenerate one


def test_reference_dataset_and_training_steps():
    docs = ["Alpha Beta was born in Paris.", "Gamma Delta was born in Rome."]
    vocab = CharVocab.from_text("".join(docs))
    ds = reference.CorruptionDataset(docs, vocab, 32)
    x, y = ds[0]
    assert x.shape == y.shape == (31,) and torch.equal(x[1:], y[:-1])
    assert (torch.cat([x, y[-1:]]) == 1).sum() == 2  # exactly two ⁇
    torch.manual_seed(0)
    ref = reference.ReferenceGPT(len(vocab), 32, n_layer=1, n_head=2, n_embd=16)
    trainer = reference.ReferenceTrainer(ref, ds, torch.device("cpu"), batch_size=2)
    assert trainer.run_steps(3) > 0 and len(trainer.losses) == 3  # crosses an epoch boundary


def test_compare_script_runs_end_to_end(capsys):
    compare = load_benchmark("compare")
    code = compare.main(["--device", "cpu", "--steps", "1", "--warmup", "0", "--batch_size", "2", "--questions", "2", "--json"])
    out = capsys.readouterr().out.splitlines()
    r = json.loads(out[-1])
    assert code == 0 and r["predictions_identical"] == 2
    assert r["kgpt_tokens_per_s"] > 0 and r["ref_tokens_per_s"] > 0 and r["eval_speedup"] > 0
    assert any("kgpt/ref" in line for line in out)


@pytest.mark.parametrize("variant", ["rope"])
def test_reference_refuses_other_variants(variant):
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, variant=variant))
    with pytest.raises(ValueError, match="vanilla"):
        reference.ReferenceGPT.like(model)


def test_curves_window_means_weight_entries_by_the_steps_they_cover():
    curves = load_benchmark("curves")
    # entries: steps 1-20 at 4.0, 21-23 at 1.0 (a save), 24-40 at 2.0
    history = [{"step": 20, "loss": 4.0}, {"step": 23, "loss": 1.0}, {"step": 40, "loss": 2.0}]
    assert curves.window_means(history, 10) == pytest.approx({10: 4.0, 20: 4.0, 30: (3 * 1.0 + 7 * 2.0) / 10, 40: 2.0})
    assert curves.window_means(history, 40) == pytest.approx({40: (80 + 3 + 34) / 40})
    assert curves.window_means(history, 30) == pytest.approx({30: (80 + 3 + 14) / 30})  # 31-60 is incomplete


@pytest.mark.parametrize("script", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_script_imports(script):
    """A script that no test runs must at least still import against the package."""
    if script == "export_check":
        pytest.importorskip("transformers")
    load_benchmark(script)
