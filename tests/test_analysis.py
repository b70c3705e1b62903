"""Confidence, top-k answers, the analysis report and ``kgpt ask``.

The references here are written independently of the code under test: a confidence is
checked against one full forward pass per prefix (no batching, no padding, no cache);
the top-k search against enumerating every possible answer; the report's figures
against values worked out by hand for a six-question fixture.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from kgpt import analysis as an
from kgpt.checkpoint import load_model
from kgpt.cli import main
from kgpt.data.corpus import parse_questions, read_questions, unseen_names
from kgpt.data.questions import encode_questions
from kgpt.inference import answer_log_probs, greedy_decode, top_answers
from kgpt.model import GPT, VARIANTS, GPTConfig
from kgpt.vocab import MASK_CHAR, MASK_ID, CharVocab

BLOCK = 64


@torch.no_grad()
def naive_prob(model: GPT, prompt: list[int], answer: list[int]) -> float:
    """Π p(id | prefix) over the answer and the closing ⁇, one full forward pass per prefix."""
    model.eval()
    p = 1.0
    for i, target in enumerate(answer + [MASK_ID]):
        logits = model(torch.tensor([prompt + answer[:i]]))[0][0, -1]
        p *= torch.softmax(logits.double(), dim=-1)[target].item()
    return p


@torch.no_grad()
def naive_greedy(model: GPT, prompt: list[int], steps: int, stop: int | None = MASK_ID) -> list[int]:
    """Argmax of a full forward pass per step, up to ``stop`` (excluded) or ``steps`` ids."""
    model.eval()
    x = list(prompt)
    for _ in range(steps):
        x.append(int(model(torch.tensor([x]))[0][0, -1].argmax()))
        if x[-1] == stop:
            return x[len(prompt) : -1]
    return x[len(prompt) :]


# --- confidence and top-k against independent references --------------------------------


@pytest.fixture(scope="module")
def question_models(tiny_data_shared):
    """One small model per variant, trained 40 steps on question ⁇ place ⁇, dropout on."""
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    pairs = tiny_data_shared.train_pairs + tiny_data_shared.dev_pairs
    x, y = encode_questions(parse_questions("".join(f"{q}\t{a}\n" for q, a in pairs)), vocab, BLOCK)
    models = {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=len(vocab), block_size=BLOCK, n_layer=3, n_head=2, n_embd=32,
                              variant=variant, bottleneck_dim=16))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(40):
            model(x, y)[1].backward()
            opt.step()
            opt.zero_grad()
        models[variant] = model
    return vocab, pairs, models


@pytest.mark.parametrize("variant", VARIANTS)
def test_answer_probability_matches_a_full_recomputation_per_prefix(question_models, variant):
    vocab, pairs, models = question_models
    model = models[variant]
    prompts = [vocab.encode(q + MASK_CHAR) for q, _ in pairs] + [vocab.encode("Why?" + MASK_CHAR)]
    greedy = greedy_decode(model, prompts, max_new_tokens=20)
    # greedy answers, gold answers (not what the model would say) and an empty answer
    answers = greedy + [vocab.encode(a) for _, a in pairs] + [[]]
    prompts = prompts + prompts[: len(pairs)] + [prompts[0]]
    model.train()  # must score in eval mode (dropout off) and give the mode back
    got = answer_log_probs(model, prompts, answers, batch_size=5)  # batches of mixed lengths
    assert model.training
    expected = [naive_prob(model, p, a) for p, a in zip(prompts, answers)]
    assert [math.exp(g) for g in got] == pytest.approx(expected, rel=1e-4, abs=1e-12)
    assert 0 < min(expected) and max(expected) < 1


@pytest.fixture(scope="module")
def sharp_models():
    """Untrained models over a four-character vocabulary with sharp, untied distributions."""
    vocab = CharVocab("abc")
    models = {}
    for variant in VARIANTS:
        torch.manual_seed(1)
        model = GPT(GPTConfig(vocab_size=len(vocab), block_size=12, n_layer=3, n_head=2, n_embd=16,
                              variant=variant, bottleneck_dim=4))
        with torch.no_grad():
            model.head.weight.normal_(0.0, 1.5)
        models[variant] = model
    return vocab, models


@pytest.mark.parametrize("variant", VARIANTS)
def test_top_answers_are_the_most_probable_of_all_possible_answers(sharp_models, variant):
    vocab, models = sharp_models
    model = models[variant]
    prompt = vocab.encode("ab" + MASK_CHAR)
    chars = [i for i in range(len(vocab)) if i != MASK_ID]  # PAD included: the decoder may write it
    everything = [list(a) for n in range(4) for a in itertools.product(chars, repeat=n)]  # 85 answers, ≤ 3 chars
    ranked = sorted(((naive_prob(model, prompt, a), a) for a in everything), key=lambda pa: -pa[0])
    assert ranked[4][0] > ranked[5][0] * 1.01, "the fixture needs a clear 5th answer"
    found = top_answers(model, prompt, k=5, max_new_tokens=3, batch_size=4)
    assert [ids for ids, _ in found] == [a for _, a in ranked[:5]]
    assert [math.exp(lp) for _, lp in found] == pytest.approx([p for p, _ in ranked[:5]], rel=1e-4)
    # a search cut short returns fewer answers, never other ones
    short = top_answers(model, prompt, k=5, max_new_tokens=3, batch_size=1, max_expansions=2)
    assert len(short) < 5 and [ids for ids, _ in short] == [a for _, a in ranked[: len(short)]]


# --- the report's numbers, worked out by hand ------------------------------------------


def fixture_analysis() -> dict:
    rows = [  # confidence, correct, prediction, in_bio, in_training_answers, cued_completion
        (0.95, True, "Paris", True, True, True),
        (0.91, False, "London", True, False, True),
        (0.55, True, "Rome", False, True, False),
        (0.42, False, "London", None, False, None),
        (0.05, False, "Paris|x", True, None, False),
        (1.00, True, "Oslo", False, False, True),
    ]
    questions = [
        {"line": i, "question": f"Where was P{i} born?", "name": f"P{i}", "prediction": pred,
         "gold": pred if ok else "Lima", "correct": ok, "confidence": c, "in_bio": bio,
         "in_training_answers": train, "cued_completion": rec}
        for i, (c, ok, pred, bio, train, rec) in enumerate(rows, start=1)
    ]
    unseen = [{"name": f"U{i}", "question": f"Where was U{i} born?", "prediction": p, "confidence": c}
              for i, (p, c) in enumerate([("London", 0.6), ("London", 0.3), ("Rome", 0.95)])]
    return {"format": an.FORMAT, "n_bins": 10, "coverages": [1.0, 0.5, 0.25], "training_answers_known": True,
            "pretrained_probe": True, "questions": questions, "unseen": {"seed": 7, "people": unseen}}


def test_figure_data_worked_out_by_hand():
    a = fixture_analysis()
    records = a["questions"]
    bins = an.reliability_bins(records, 10)
    full = {round(b["low"], 1): (b["count"], b["confidence"], b["accuracy"]) for b in bins if b["count"]}
    assert full == {0.9: (3, pytest.approx(2.86 / 3), pytest.approx(2 / 3)), 0.5: (1, 0.55, 1.0),
                    0.4: (1, 0.42, 0.0), 0.0: (1, 0.05, 0.0)}
    assert sum(b["count"] for b in bins) == 6 and len(bins) == 10
    # 3/6·|2/3 − 2.86/3| + 1/6·(0.45 + 0.42 + 0.05)
    assert an.calibration_error(bins) == pytest.approx(0.5 * 0.86 / 3 + 0.92 / 6)
    # six answers in ten equal-mass bins: one answer a bin, from the least confident up
    mass = an.equal_mass_bins(records, 10)
    assert [(b["low"], b["high"], b["count"], b["accuracy"]) for b in mass] == [
        (0.05, 0.05, 1, 0.0), (0.42, 0.42, 1, 0.0), (0.55, 0.55, 1, 1.0), (0.91, 0.91, 1, 0.0),
        (0.95, 0.95, 1, 1.0), (1.0, 1.0, 1, 1.0)]
    assert an.calibration_error(mass) == pytest.approx((0.05 + 0.42 + 0.45 + 0.91 + 0.05 + 0.0) / 6)
    assert [b["count"] for b in an.equal_mass_bins(records * 4, 5)] == [4, 5, 5, 5, 5]
    curve = an.coverage_curve(records)
    assert [p["threshold"] for p in curve] == [1.0, 0.95, 0.91, 0.55, 0.42, 0.05]
    assert [p["coverage"] for p in curve] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0])
    assert [p["accuracy"] for p in curve] == pytest.approx([1.0, 1.0, 2 / 3, 3 / 4, 3 / 5, 0.5])
    # keep the most confident 100%, 50%, 25%: thresholds 0.05, 0.91 (3rd answer), 0.95 (⌈1.5⌉ = 2nd)
    assert [(r["threshold"], r["answered"], r["correct"], r["unseen_answered"]) for r in an.abstention_rows(a)] == [
        (0.05, 6, 3, 3), (0.91, 3, 2, 1), (0.95, 2, 2, 1)]
    assert an.wrong_answers(records) == [("London", 2), ("Paris|x", 1)]
    assert an.accuracy_by(records, "in_bio") == {True: (1, 3), False: (2, 2), None: (0, 1)}
    assert an.accuracy_by(records, "in_training_answers") == {True: (2, 2), False: (1, 3), None: (0, 1)}
    assert an.storage_access(records) == {(True, True): 2, (True, False): 1, (False, True): 1, (False, False): 1,
                                          (None, False): 1}


def test_markdown_numbers_come_from_the_json():
    a = fixture_analysis()
    md = an.render_markdown(json.loads(json.dumps(a)))
    expected_lines = [
        "- questions: 6; accuracy 3/6 = 50.0%",
        "- mean confidence 0.647 (median 0.730); expected calibration error 0.297 (10 equal-width bins), "
        "0.313 over 6 equal-mass bins",
        "| 0.9–1.0 | 3 | 0.953 | 66.7% |",
        "| 0.910–0.910 | 1 | 0.910 | 0.0% |",
        "| 100% | 0.050 | 6/6 = 100.0% | 50.0% | 3/3 = 100.0% |",
        "| 50% | 0.910 | 3/6 = 50.0% | 66.7% | 1/3 = 33.3% |",
        "| 25% | 0.950 | 2/6 = 33.3% | 100.0% | 1/3 = 33.3% |",
        "| London | 2 | 66.7% |",
        "| Paris\\|x | 1 | 33.3% |",  # a | inside an answer does not break the table
        "| occurs in what the model could learn of the person's bio | 1/3 = 33.3% | 2/2 = 100.0% | 0/1 = 0.0% |",
        "| is among the finetuning answers | 2/2 = 100.0% | 1/3 = 33.3% | 0/1 = 0.0% |",
        "| cued completion gives the place (stored) | 2 | 1 |",
        "| cued completion does not give it | 1 | 1 |",
        "| not probed (no bio names the place within the block) | 0 | 1 |",
        "3 generated names (seed 7) that occur nowhere in the corpus, asked the same question. Every answer is "
        "made up; the model has no way to say so but its confidence.",
        "- mean confidence 0.617 (median 0.600), against 0.647 (median 0.730) for the people in the question file",
        "- most frequent answers: London (2), Rome (1)",
        "| U2 | Rome | 0.950 |",
    ]
    lines = md.splitlines()
    for line in expected_lines:
        assert line in lines, line
    for figure in an.FIGURES:
        assert f"({figure})" in md
    # the numbers move with the json: a different confidence, a different report
    a["questions"][0]["confidence"] = 0.15
    assert "| 0.9–1.0 | 2 | 0.955 | 50.0% |" in an.render_markdown(a).splitlines()


def test_report_says_what_it_was_not_given():
    a = fixture_analysis()
    a.update(training_answers_known=False, pretrained_probe=False)
    for r in a["questions"]:
        r.update(in_training_answers=None, cued_completion=None)
    md = an.render_markdown(a)
    assert "| is among the finetuning answers | — | — | 3/6 = 50.0% |" in md
    assert "whether a gold place is among its answers is unknown" in md
    assert "storage was not probed" in md and "cued completion gives the place" not in md


def test_figures_are_pngs_from_the_json_alone(tmp_path):
    a = fixture_analysis()
    md = an.write_analysis(tmp_path / "new" / "dir", a)
    assert md.read_text(encoding="utf-8") == an.render_markdown(json.loads((md.parent / "analysis.json").read_text()))
    for figure in an.FIGURES:
        assert (md.parent / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unseen_names_are_new_deterministic_and_from_known_parts():
    names = ["Amélie Durand", "Jonas Brück", "Ernst Florian Winter", "Sy Landy", "Madonna"]
    corpus = "Amélie Durand. Jonas Brück. Ernst Florian Winter met Sy Landy and Jonas Durand."
    got = unseen_names(names, corpus, n=10, seed=3)
    assert got == unseen_names(names, corpus, n=10, seed=3)
    assert got != unseen_names(names, corpus, n=10, seed=4)
    firsts, lasts = {"Amélie", "Jonas", "Ernst Florian", "Sy"}, {"Durand", "Brück", "Winter", "Landy"}
    assert 0 < len(got) <= 10 and len(set(got)) == len(got)
    for name in got:
        first, last = name.rsplit(" ", 1)
        assert first in firsts and last in lasts and name not in corpus
    assert len(unseen_names(names, corpus, n=100, seed=0)) == 4 * 4 - 5  # every new pair, then no more
    assert unseen_names(["Madonna", "Cher"], corpus, n=5) == []


# --- through the command line on the tiny data -----------------------------------------

FAST = ["--max_epochs", "1", "--batch_size", "8", "--no_progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoints(tiny_data_shared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ask")
    pre, fine = folder / "pre.params", folder / "fine.params"
    assert main(["pretrain", "vanilla", str(tiny_data_shared.wiki), "--writing_params_path", str(pre), *FAST]) == 0
    assert main(["finetune", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(pre),
                 "--writing_params_path", str(fine), "--finetune_corpus_path", str(tiny_data_shared.train), *FAST]) == 0
    return pre, fine


def test_ask_answers_with_confidence_and_alternatives(checkpoints, tiny_data_shared, capsys):
    from kgpt import pipeline

    _, fine = checkpoints
    questions = ["Where was Karl Meyer born?", "Where was Karl Lind born?"]
    answers = list(pipeline.ask("vanilla", tiny_data_shared.wiki, fine, questions, top_k=3, device="cpu"))
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    model, _ = load_model(fine, vocab)
    for q, a in zip(questions, answers):
        prompt = vocab.encode(q + MASK_CHAR)
        assert a.answer == vocab.decode(naive_greedy(model, prompt, 32)).split("\n")[0]  # an answer is one line
        assert a.confidence == pytest.approx(naive_prob(model, prompt, vocab.encode(a.answer)), rel=1e-4)
        probs = [p for _, p in a.alternatives]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        for text, p in a.alternatives:
            assert p == pytest.approx(naive_prob(model, prompt, vocab.encode(text)), rel=1e-4)
        # exact top 3: the greedy answer is among them unless three answers are more probable
        assert a.answer in [t for t, _ in a.alternatives] or a.confidence <= probs[-1] * (1 + 1e-6)
    assert [a.name_in_corpus for a in answers] == [True, False]

    capsys.readouterr()
    assert main(["ask", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(fine), *questions]) == 0
    out = capsys.readouterr().out
    assert out.count("  answer  ") == 2 and out.count("  top 3   ") == 2
    assert '"Karl Lind" occurs nowhere in the corpus' in out and '"Karl Meyer" occurs' not in out


def test_ask_one_bad_question_is_one_line_and_the_others_are_answered(checkpoints, tiny_data_shared, capsys):
    _, fine = checkpoints
    rc = main(["ask", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(fine), "--top_k", "0",
               "Where was Karl Meyer born?", "Where was Жанна born?", "x" * 200, "Where was Zoë Carter born?"])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.out.count("  answer  ") == 2 and "top" not in captured.out
    assert "Where was Karl Meyer born?" in captured.out and "Where was Zoë Carter born?" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in captured.err
    assert err[0].startswith("kgpt ask: error: question 2: character 'Ж'")
    assert err[1].startswith("kgpt ask: error: question 3: the question is 200 characters, too long")
    assert err[2] == "kgpt ask: error: 2 of 4 questions could not be answered (see above)"


def test_ask_reads_questions_from_stdin(checkpoints, tiny_data_shared, monkeypatch, capsys):
    _, fine = checkpoints
    argv = ["ask", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(fine), "--top_k", "1"]
    stdin = "Where was Karl Meyer born?\r\n\nWhere was Léa Moreau born?\n".encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Where was Karl Meyer born?\n") and "\nWhere was Léa Moreau born?\n" in out
    assert out.count("  top 1   ") == 2
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n  \n")))
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no questions" in err[0]


@pytest.fixture
def dev_mix(tiny_data_shared, tmp_path) -> Path:
    """Dev lines whose gold place is in the bio or not, among the training answers or not, or with no bio."""
    path = tmp_path / "mix.tsv"
    path.write_text(
        "Where was Karl Meyer born?\tKassel\n"  # in bio, not a training answer
        "Where was Sofía Ramos born?\tLyon\n"  # not in her bio, a training answer (Amélie's)
        "Where was Nemo Nadie born?\tLyon\n"  # nobody of that name in the corpus
        "Where was Emil Vogt born?\tGraz\n",
        encoding="utf-8",
    )
    return path


def test_evaluate_writes_the_analysis_beside_unchanged_predictions(checkpoints, tiny_data_shared, dev_mix, tmp_path, capsys):
    pre, fine = checkpoints
    base = ["evaluate", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(fine),
            "--eval_corpus_path", str(dev_mix), "--device", "cpu"]
    assert main([*base, "--outputs_path", str(tmp_path / "plain.txt")]) == 0
    plain_out = capsys.readouterr().out
    out_dir = tmp_path / "analysis"
    assert main([*base, "--outputs_path", str(tmp_path / "p.txt"), "--analysis_dir", str(out_dir),
                 "--finetune_corpus_path", str(tiny_data_shared.train), "--pretrained_params_path", str(pre)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [plain_out.strip(), f"Analysis written to {out_dir / 'analysis.md'}"]
    assert (tmp_path / "p.txt").read_bytes() == (tmp_path / "plain.txt").read_bytes()

    a = json.loads((out_dir / "analysis.json").read_text(encoding="utf-8"))
    assert (out_dir / "analysis.md").read_text(encoding="utf-8") == an.render_markdown(a)
    predictions = (tmp_path / "p.txt").read_text(encoding="utf-8").splitlines()
    records = a["questions"]
    assert [r["prediction"] for r in records] == predictions
    assert [r["gold"] for r in records] == ["Kassel", "Lyon", "Lyon", "Graz"]
    assert [r["in_bio"] for r in records] == [True, False, None, True]
    assert [r["in_training_answers"] for r in records] == [False, True, True, False]
    vocab = CharVocab.from_text(tiny_data_shared.wiki_text)
    model, _ = load_model(fine, vocab)
    for r in records:
        prompt = vocab.encode(r["question"] + MASK_CHAR)
        assert r["confidence"] == pytest.approx(naive_prob(model, prompt, vocab.encode(r["prediction"])), rel=1e-4)
        assert r["correct"] == (r["prediction"] == r["gold"])
    # storage: the pretrained model reads the bio up to the place and recites it, or not
    pretrained, _ = load_model(pre, vocab)
    bios = {line.split(".")[0]: line for line in tiny_data_shared.wiki_text.splitlines()}
    for r in records:
        bio = bios.get(r["name"])
        if bio is None or r["gold"] not in bio:
            assert r["cued_completion"] is None
        else:
            prefix = vocab.encode(bio[: bio.index(r["gold"])])
            recited = vocab.decode(naive_greedy(pretrained, prefix, len(r["gold"]), stop=None))
            assert r["cued_completion"] == recited.startswith(r["gold"])
    people = a["unseen"]["people"]
    assert people and all(p["name"] not in tiny_data_shared.wiki_text for p in people)
    assert {"training_answers_known": True, "pretrained_probe": True}.items() <= a.items()


def test_evaluate_analysis_bad_inputs_are_one_line(checkpoints, tiny_data_shared, tmp_path, capsys):
    _, fine = checkpoints
    preds = tmp_path / "p.txt"
    base = ["evaluate", "vanilla", str(tiny_data_shared.wiki), "--reading_params_path", str(fine),
            "--outputs_path", str(preds), "--device", "cpu"]
    dev = ["--eval_corpus_path", str(tiny_data_shared.dev)]
    a_file = tmp_path / "taken"
    a_file.write_text("keep me")
    cases = [
        ([*dev, "--finetune_corpus_path", str(tiny_data_shared.train)], "only feed the analysis; add --analysis_dir"),
        (["--eval_corpus_path", str(tiny_data_shared.test_inputs), "--analysis_dir", str(tmp_path / "a")],
         "has none; give a file of QUESTION<TAB>PLACE lines"),
        ([*dev, "--analysis_dir", str(a_file)], "is a file, not a folder"),
        ([*dev, "--analysis_dir", str(tmp_path / "a"), "--pretrained_params_path", str(tmp_path / "nope")],
         "--pretrained_params_path"),
        ([*dev, "--analysis_dir", str(tmp_path / "a"), "--finetune_corpus_path", str(tiny_data_shared.test_inputs)],
         "no tab and place"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 1, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
        assert not preds.exists(), "nothing decoded or written before the inputs are checked"
    assert a_file.read_text() == "keep me"
    assert not (tmp_path / "a").exists()


def test_demo_analyses_its_best_cell(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--preset", "tiny"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    trained = [r for r in rows if r["setting"] != "baseline"]
    best = max(trained, key=lambda r: (r["accuracy"], r["setting"] == "pretrain+finetune"))
    key = f"{best['setting']}-{best['variant']}-s{best['seed']}"
    report = out / "analysis" / key / "analysis.md"
    a = json.loads((report.parent / "analysis.json").read_text(encoding="utf-8"))
    assert len(a["questions"]) == best["total"] and sum(r["correct"] for r in a["questions"]) == best["correct"]
    assert a["pretrained_probe"] == (best["setting"] == "pretrain+finetune") and a["training_answers_known"]
    assert f"analysis/{key}/analysis.md" in (out / "results.md").read_text()
    assert len(read_questions(out / "data" / "birth_dev.tsv")) == best["total"]
