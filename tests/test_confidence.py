"""The confidence that covers the recall: its parts, the calibration, abstention, the CLI.

References are independent of the code under test: per-character probabilities against one
forward pass per prefix, the logistic fit against weights that generated the labels, the
recall part against a hand-made table of log-probabilities.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import assert_card_answers_as_kgpt, one_line_error
from kgpt import confidence as cf
from kgpt.analysis import render_markdown, threshold_row
from kgpt.answering import Context, RecallAnswerer, load_answerer
from kgpt.asking import Answer, format_answer
from kgpt.checkpoint import RECALLER, read_checkpoint, save_answering, save_checkpoint
from kgpt.cli import main
from kgpt.data.corpus import parse_questions, read_questions
from kgpt.data.reader import ReaderSettings
from kgpt.evaluate import score_line
from kgpt.inference import token_log_probs
from kgpt.model import GPT, GPTConfig
from kgpt import pipeline
from kgpt.vocab import CharVocab

TINY = ["--batch_size", "8", "--no_progress", "--device", "cpu"]
SIZE = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16"]


# --- the parts ---------------------------------------------------------------------------


def test_token_log_probs_match_one_forward_pass_per_prefix():
    torch.manual_seed(0)
    vocab = CharVocab.from_text("abcdef .")
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=16, n_layer=1, n_head=2, n_embd=16, variant="rope")).eval()
    rows = [vocab.encode("abc. fed"), vocab.encode("ca"), vocab.encode("f")]
    got = token_log_probs(model, rows, batch_size=2)
    with torch.no_grad():
        for row, lps in zip(rows, got):
            assert len(lps) == len(row) - 1
            for t in range(1, len(row)):
                logp = torch.log_softmax(model(torch.tensor([row[:t]]))[0][0, -1], -1)
                assert lps[t - 1] == pytest.approx(logp[row[t]].item(), abs=1e-5)


def test_recall_part_reads_the_answers_characters_where_they_stand_after_the_cue():
    recall = "Nice. Nice was born in Nice ."  # the answer is also the name: the cue's copy is not it
    cue = len("Nice.")
    lps = [-0.01 * (t + 1) for t in range(len(recall) - 1)]  # lps[t-1]: log p(recall[t])
    a = recall.index("Nice", cue)  # the first whole-word occurrence after the cue: "Nice was"
    signals = cf.recall_log_probs(lps, recall, cue, "Nice")
    assert signals["answer-min"] == pytest.approx(min(lps[a - 1 : a + 3]))
    assert signals["answer-mean"] == pytest.approx(sum(lps[a - 1 : a + 3]) / 4)
    assert signals["prefix-min"] == pytest.approx(min(lps[cue - 1 : a + 3]))
    cue_chars = [-0.01, -0.02, -0.03, -0.04]  # log p of "i", "c", "e", "." of the cue "Nice."
    assert signals["name-prefix"] == pytest.approx(sum(cue_chars) / 4 + min(lps[cue - 1 : a + 3]))
    lps[recall.rindex("Nice") - 1] = -9.0  # the later occurrence does not count
    assert cf.recall_log_probs(lps, recall, cue, "Nice")["answer-min"] > -1
    # Not a whole word of the recall ("bor" in "born"), or empty: the recall after the cue vouches for it.
    for answer in ("bor", ""):
        assert cf.recall_log_probs(lps, recall, cue, answer)["answer-min"] == min(lps[cue - 1 :])


def test_logit_is_clipped_and_exact_between():
    assert cf.logit(0.0) == cf.LOGIT_CLIP and cf.logit(-math.inf) == -cf.LOGIT_CLIP
    assert cf.logit(math.log(0.25)) == pytest.approx(math.log(1 / 3))
    assert cf.logit(-1e-12) == cf.LOGIT_CLIP and cf.logit(-100.0) == -cf.LOGIT_CLIP


def test_logistic_fit_recovers_the_weights_that_made_the_labels():
    true = (0.5, 1.5, -0.8)
    features, labels = [], []
    for x1 in range(-3, 4):
        for x2 in range(-3, 4):
            p = cf.sigmoid(true[0] + true[1] * x1 + true[2] * x2)
            k = round(400 * p)  # 400 copies of the point, k of them right: the expected labels exactly
            features += [(x1, x2)] * 400
            labels += [True] * k + [False] * (400 - k)
    got = cf.fit_logistic(features, labels, l2=0.0)
    assert got == pytest.approx(true, abs=0.02)
    separable = cf.fit_logistic([(0, 0), (1, 1), (5, 5), (6, 6)], [False, False, True, True])
    assert all(math.isfinite(w) for w in separable)  # the penalty keeps separable data finite


def _examples() -> list[cf.Scored]:
    """Real people whose recall is stored (right when the reading is sure) and made-up
    names whose recall hesitates but whose reading is sure."""
    readings = [0.6 + 0.399 * i / 39 for i in range(40)]  # distinct: no ties at the threshold
    real = [cf.Scored(math.log(0.99), math.log(p), p > 0.75 or i % 7 == 0) for i, p in enumerate(readings)]
    made = [cf.Scored(math.log(0.05), math.log(0.999), False, made_up=True)] * 20
    return real + made


def test_fit_abstains_on_made_up_recalls_that_the_reader_reads_with_certainty():
    ex = _examples()
    cal = cf.fit(ex, seed=3)
    real = [e for e in ex if not e.made_up]
    conf = lambda e: cal.combine(e.recall_log_p, e.reading_log_p)  # noqa: E731
    assert sum(conf(e) >= cal.threshold for e in real) == math.ceil(0.9 * len(real))  # keeps 90% of the real people
    point = cf.operating_point(ex, conf, cal.threshold)
    assert point["made_up_answered"] == 0 and point["answered"] == 36
    reading_alone = cf.operating_point(ex, lambda e: e.reading_log_p, cf.keep_threshold([e.reading_log_p for e in real]))
    assert reading_alone["made_up_answered"] == 20  # what the reader's probability alone does: answers them all
    assert cal.recall_threshold == pytest.approx(0.99)
    assert cal.fitted_on == {"people": 40, "made_up": 20, "made_up_seed": 3, "coverage": 0.9, "made_up_share": 0.1}
    assert cf.Calibration.from_spec(json.loads(json.dumps(cal.spec()))) == cal
    for bad in ({}, {**cal.spec(), "weights": [1, 2]}, {**cal.spec(), "signal": "vibes"}, {**cal.spec(), "weights": [1, "x", 2]}):
        with pytest.raises(ValueError):
            cf.Calibration.from_spec(bad)


def test_without_a_calibration_the_confidence_is_the_product_and_says_so():
    assert cf.combined(None, math.log(0.5), math.log(0.4)) == pytest.approx(0.2)
    assert "not a calibrated probability" in cf.describe(None, recalls=True)
    cal = cf.Calibration((0.0, 1.0, 1.0), 0.5, 0.5, fitted_on={"people": 400, "made_up": 200})
    assert cf.combined(cal, math.log(0.5), math.log(0.5)) == pytest.approx(0.5)
    assert "400 training people held out" in cf.describe(cal, recalls=True)


def _recall_reader(calibration=None, seed=0) -> tuple[RecallAnswerer, CharVocab]:
    torch.manual_seed(seed)
    vocab = CharVocab.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .Where born?")
    reader, recaller = (GPT(GPTConfig(vocab_size=len(vocab), block_size=48, n_layer=1, n_head=2, n_embd=16,
                                      variant="rope")) for _ in range(2))
    return RecallAnswerer(reader, recaller, ReaderSettings(chars=24), calibration=calibration), vocab


def test_recall_reader_parts_are_the_recallers_and_the_readers_probabilities():
    asker, vocab = _recall_reader()
    contexts = asker.contexts(vocab, parse_questions("Where was Ann Lee born?\nWhere was Bo Li born?\n"))
    answers = asker.answers(vocab, contexts)
    parts = asker.confidence_parts(vocab, contexts, answers)
    reading = super(RecallAnswerer, asker).confidences(vocab, contexts, answers)  # the reader's probability alone
    for c, a, p, r in zip(contexts, answers, parts, reading):
        lps = token_log_probs(asker.recaller, [vocab.encode(c.recall)])[0]
        assert p.reading == pytest.approx(r)
        assert p.recall == pytest.approx(math.exp(cf.recall_log_probs(lps, c.recall, c.cue_chars, a)["answer-min"]))
        assert p.combined == pytest.approx(p.recall * p.reading)  # no calibration: the product
    assert asker.confidences(vocab, contexts, answers) == [p.combined for p in parts]
    cal = cf.Calibration((0.3, 0.5, 2.0), 0.4, 0.1, "answer-mean")
    calibrated = RecallAnswerer(asker.reader, asker.recaller, asker.settings, asker.policy, cal)
    for c, a, p in zip(contexts, answers, calibrated.confidence_parts(vocab, contexts, answers)):
        lps = token_log_probs(asker.recaller, [vocab.encode(c.recall)])[0]
        mean = cf.recall_log_probs(lps, c.recall, c.cue_chars, a)["answer-mean"]
        assert p.combined == pytest.approx(cal.combine(mean, math.log(p.reading)))
    assert calibrated.recommended_threshold == 0.4 and asker.recommended_threshold is None


def test_a_calibration_travels_in_the_checkpoint_and_older_ones_load_without(tmp_path):
    asker, vocab = _recall_reader()
    path = tmp_path / "r.params"
    save_checkpoint(path, asker.model, vocab, {"stage": "finetune"},
                    {f"{RECALLER}.{k}": v for k, v in asker.recaller.state_dict().items()}, asker.spec())
    old = load_answerer(path, vocab)
    assert old.calibration is None and "no calibration" in old.confidence_kind
    cal = cf.Calibration((0.1, 0.2, 0.3), 0.7, 0.2, fitted_on={"people": 4, "made_up": 2})
    out = tmp_path / "c.params"
    save_answering(out, path, {**asker.spec(), "calibration": cal.spec()})
    new = load_answerer(out, vocab)
    assert new.calibration == cal and (new.settings, new.policy) == (old.settings, old.policy)
    before, after = read_checkpoint(path), read_checkpoint(out)
    assert before.progress == after.progress and before.tensors.keys() == after.tensors.keys()
    assert all(torch.equal(before.tensors[k], after.tensors[k]) for k in before.tensors)
    broken = tmp_path / "b.params"
    save_answering(broken, path, {**asker.spec(), "calibration": {"weights": "no"}})
    assert "answers in a way this kgpt does not know" in one_line_error(load_answerer, broken, vocab)


# --- what people read --------------------------------------------------------------------


def _answer(**kw) -> Answer:
    base = dict(question="Where was Zed Quux born?", answer="Glasgow", confidence=0.08, alternatives=[("Glasgow", 0.99)],
                name_in_corpus=True, recall="Zed Quux. Zed was born in Glasgow", recall_confidence=0.04,
                reading_confidence=0.99, trusted_recall=False, min_confidence=None)
    return Answer(**{**base, **kw})


def test_ask_prints_both_parts_marks_an_untrusted_recall_and_says_i_dont_know():
    text = format_answer(_answer())
    assert "answer  Glasgow  (p = 0.080; recall 0.040, reading 0.990)" in text
    assert "recall not trusted" in text and "I don't know" not in text
    text = format_answer(_answer(min_confidence=0.5))
    assert "answer  I don't know  (p = 0.080; recall 0.040, reading 0.990, below 0.500; best guess Glasgow)" in text
    trusted = format_answer(_answer(trusted_recall=True, confidence=0.9, min_confidence=0.5))
    assert "recall not trusted" not in trusted and "answer  Glasgow" in trusted
    assert "uncalibrated: recall × reading = 0.080" in format_answer(_answer(calibrated=False))


def test_score_line_counts_abstentions_apart_from_errors():
    assert score_line(3, 10) == "Correct: 3 out of 10: 30.0%"  # no threshold: the assignment's line, unchanged
    line = score_line(3, 10, 4, 0.5)
    assert line.startswith("Correct: 3 out of 10: 30.0%; ")
    assert "abstained on 4 (confidence below 0.5), wrong 3, accuracy on the 6 answered 50.0%" in line
    assert score_line(0, 2, 2, 1.0).endswith("accuracy on the 0 answered n/a")


def test_the_analysis_reports_the_recommended_threshold_and_what_the_confidence_is():
    from test_analysis import fixture_analysis

    a = fixture_analysis()
    assert "Confidence is the model's probability of its own answer" in render_markdown(a)  # files from before
    a.update(answering="recall-read", confidence_kind="Confidence is SOMETHING.", recommended_threshold=0.5,
             min_confidence=0.92)
    for r in a["questions"]:
        r.update(recall="x", reader_text="x", error=None)
    row = threshold_row(a, 0.5)
    assert (row["answered"], row["correct"], row["abstained"], row["unseen_answered"]) == (4, 3, 2, 2)
    md = render_markdown(a)
    assert "Confidence is SOMETHING." in md
    assert "recommended threshold" in md and "answers 4/6 = 66.7% (3 right, 1 wrong, accuracy 75.0%), abstains on 2" in md
    assert "(--min_confidence), confidence ≥ 0.920: answers 2/6" in md


# --- the command line, end to end on a tiny recall model ----------------------------------


@pytest.fixture(scope="module")
def calibrated_model(tiny_data_shared, tmp_path_factory):
    """A tiny recall model whose reader learnt from 10 training people, calibrated on the other 4."""
    d = tiny_data_shared
    folder = tmp_path_factory.mktemp("conf")
    lines = d.train.read_text(encoding="utf-8").splitlines(keepends=True)
    fit, held = folder / "fit.tsv", folder / "held.tsv"
    fit.write_text("".join(lines[:10]), encoding="utf-8")
    held.write_text("".join(lines[10:]), encoding="utf-8")
    pre, fin, cal = folder / "pre.params", folder / "fin.params", folder / "cal.params"
    assert main(["pretrain", "rope", str(d.wiki), "--recipe", "recall", "--writing_params_path", str(pre),
                 "--max_epochs", "2", *SIZE, *TINY]) == 0
    assert main(["finetune", "rope", str(d.wiki), "--recipe", "recall", "--reading_params_path", str(pre),
                 "--writing_params_path", str(fin), "--finetune_corpus_path", str(fit), "--max_epochs", "2", *TINY]) == 0
    assert main(["calibrate", "rope", str(d.wiki), "--reading_params_path", str(fin), "--calibration_corpus_path",
                 str(held), "--writing_params_path", str(cal), "--made_up", "6", "--device", "cpu"]) == 0
    return fin, cal, held


def test_calibrate_writes_the_map_and_thresholds_into_the_checkpoint(calibrated_model, tiny_data_shared, capsys):
    fin, cal, held = calibrated_model
    spec = read_checkpoint(cal).answering
    calibration = cf.Calibration.from_spec(spec["calibration"])
    assert calibration.fitted_on["people"] == 4 and 1 <= calibration.fitted_on["made_up"] <= 6
    assert calibration.fitted_on["made_up_seed"] == cf.MADE_UP_SEED
    assert {k: v for k, v in spec.items() if k != "calibration"} == read_checkpoint(fin).answering
    # The recommended threshold keeps 90% of the held-out people answered (ceil(0.9 * 4) = 4 of 4).
    vocab = read_checkpoint(cal).vocab
    asker = load_answerer(cal, vocab)
    questions = read_questions(held)
    contexts = asker.contexts(vocab, questions)
    confidences = asker.confidences(vocab, contexts, asker.answers(vocab, contexts))
    assert sum(c >= calibration.threshold for c in confidences) == 4


def test_evaluate_abstains_below_the_threshold_and_is_unchanged_without_one(calibrated_model, tiny_data_shared, tmp_path, capsys):
    fin, cal, _ = calibrated_model
    d = tiny_data_shared
    plain, none, some = tmp_path / "plain.txt", tmp_path / "none.txt", tmp_path / "some.txt"
    base = ["evaluate", "rope", str(d.wiki), "--eval_corpus_path", str(d.dev), "--device", "cpu", "--no_progress"]
    assert main([*base, "--reading_params_path", str(fin), "--outputs_path", str(plain)]) == 0
    assert main([*base, "--reading_params_path", str(cal), "--outputs_path", str(none)]) == 0
    first = capsys.readouterr().out.splitlines()
    assert plain.read_bytes() == none.read_bytes()  # a calibration changes confidences, never the answers
    assert first[1].startswith("Correct: ") and "abstained" not in first[1]
    vocab = read_checkpoint(cal).vocab
    asker = load_answerer(cal, vocab)
    questions = read_questions(d.dev)
    contexts = asker.contexts(vocab, questions)
    answers = asker.answers(vocab, contexts)
    confidences = asker.confidences(vocab, contexts, answers)
    threshold = sorted(confidences)[len(confidences) // 2]  # about half abstain
    assert main([*base, "--reading_params_path", str(cal), "--outputs_path", str(some),
                 "--min_confidence", repr(threshold), "--analysis_dir", str(tmp_path / "an")]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = some.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == len(questions)
    assert lines == [a if c >= threshold else "" for a, c in zip(answers, confidences)]
    abstained = sum(c < threshold for c in confidences)
    correct = sum(a == q.answer for a, c, q in zip(answers, confidences, questions) if c >= threshold)
    assert out[0] == score_line(correct, len(questions), abstained, threshold)
    analysis = json.loads((tmp_path / "an" / "analysis.json").read_text(encoding="utf-8"))
    assert analysis["min_confidence"] == threshold
    assert analysis["recommended_threshold"] == cf.Calibration.from_spec(read_checkpoint(cal).answering["calibration"]).threshold
    assert [r["prediction"] for r in analysis["questions"]] == answers  # the analysis studies every answer
    assert [r["confidence"] for r in analysis["questions"]] == pytest.approx(confidences)
    assert all(r["recall_confidence"] is not None for r in analysis["questions"] + analysis["unseen"]["people"])
    assert "logistic regression fit on 4 training people" in (tmp_path / "an" / "analysis.md").read_text(encoding="utf-8")
    from conftest import load_benchmark

    capsys.readouterr()
    load_benchmark("confidence_validation").summary(tmp_path / "an" / "analysis.json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["min_confidence"]["abstained"] == abstained and summary["min_confidence"]["correct"] == correct
    assert summary["questions"] == len(questions) and 0 <= summary["ece_equal_mass"] <= 1
    dumped = json.dumps(summary, ensure_ascii=False)
    assert not any(q.name in dumped or q.answer in dumped for q in questions)  # counts only: nothing per person


def test_ask_shows_the_parts_and_abstains(calibrated_model, tiny_data_shared, capsys):
    _, cal, _ = calibrated_model
    assert main(["ask", "rope", str(tiny_data_shared.wiki), "--reading_params_path", str(cal), "--device", "cpu",
                 "--min_confidence", "1", "Where was Amélie Durand born?"]) == 0
    out = capsys.readouterr().out
    assert "answer  I don't know  (p = " in out and "; recall " in out and ", reading " in out


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "often", "inf"])
def test_a_bad_threshold_is_one_line(calibrated_model, tiny_data_shared, tmp_path, capsys, value):
    _, cal, _ = calibrated_model
    d = tiny_data_shared
    for argv in (["evaluate", "rope", str(d.wiki), "--reading_params_path", str(cal), "--eval_corpus_path", str(d.dev),
                  "--outputs_path", str(tmp_path / "p.txt")],
                 ["ask", "rope", str(d.wiki), "--reading_params_path", str(cal), "Where was Amélie Durand born?"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--min_confidence", value])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "--min_confidence" in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "p.txt").exists()
    one_line_error(pipeline.check_min_confidence, float(value) if value not in ("often",) else value)


def test_recommended_needs_a_calibration_and_calibrate_needs_a_recall_model(calibrated_model, tiny_data_shared, tmp_path, capsys):
    fin, cal, held = calibrated_model
    d = tiny_data_shared
    assert main(["evaluate", "rope", str(d.wiki), "--reading_params_path", str(fin), "--eval_corpus_path", str(d.dev),
                 "--outputs_path", str(tmp_path / "p.txt"), "--min_confidence", "recommended", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no recommended threshold" in err[0] and "kgpt calibrate" in err[0]
    assert main(["evaluate", "rope", str(d.wiki), "--reading_params_path", str(cal), "--eval_corpus_path", str(d.dev),
                 "--outputs_path", str(tmp_path / "p.txt"), "--min_confidence", "recommended", "--device", "cpu",
                 "--no_progress"]) == 0
    assert "abstained on" in capsys.readouterr().out
    plain = tmp_path / "plain.params"
    save_checkpoint(plain, GPT(GPTConfig(vocab_size=len(read_checkpoint(fin).vocab), block_size=32, n_layer=1,
                                         n_head=1, n_embd=8)), read_checkpoint(fin).vocab)
    assert main(["calibrate", "vanilla", str(d.wiki), "--reading_params_path", str(plain), "--calibration_corpus_path",
                 str(held), "--writing_params_path", str(tmp_path / "x.params"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recall-then-read" in err[0]
    assert main(["calibrate", "rope", str(d.wiki), "--reading_params_path", str(fin), "--calibration_corpus_path",
                 str(held), "--writing_params_path", str(held), "--device", "cpu"]) == 1
    assert "input file" in capsys.readouterr().err


def test_the_exported_card_computes_the_same_confidence(calibrated_model, tiny_data_shared, tmp_path):
    pytest.importorskip("transformers")
    from kgpt.export import export

    _, cal, _ = calibrated_model
    vocab = read_checkpoint(cal).vocab
    out = export(cal, tmp_path / "hf")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "calibrated on held-out people" in card and "I don't know" in card
    assert_card_answers_as_kgpt(out, cal, vocab, ("Amélie Durand", "Karl Meyer"))


def test_the_validation_rule_picks_the_signal_that_answers_fewest_made_up_names():
    from conftest import load_benchmark

    bench = load_benchmark("confidence_validation")
    # answer-mean tells made-up names apart (their mean is low); answer-min does not (every min is -1).
    real = [({"answer-min": -1.0, "answer-mean": -0.01, "prefix-min": -1.0, "name-prefix": -1.0}, math.log(0.5 + i / 80), i % 5 != 0, False)
            for i in range(40)]
    made = [({"answer-min": -1.0, "answer-mean": -3.0, "prefix-min": -1.0, "name-prefix": -1.0}, math.log(0.5 + i / 40), False, True)
            for i in range(20)]  # read as surely as the real people: only the recall part can tell them apart
    results = {s: bench.cross_validate(*(lambda ex: ([e for e in ex if not e.made_up], [e for e in ex if e.made_up]))(
        cf.examples(real + made, s)), bench.calibrated(s)) for s in cf.SIGNALS}
    assert results["answer-mean"]["made_up_answered"] == 0 and results["answer-min"]["made_up_answered"] >= 15
    assert results["answer-mean"]["people"] == 40 and results["answer-mean"]["made_up"] == 20
    assert bench.choose(results) == "answer-mean"
    assert bench.choose({s: {"made_up_answered": 3, "correct": 10} for s in cf.SIGNALS}) == "answer-min"  # a tie
    # A candidate that answers no made-up name but is not calibrated is not chosen.
    assert bench.choose({"answer-min@0.1": {"made_up_answered": 9, "correct": 10, "ece_equal_mass": 0.03},
                         "answer-min@1.0": {"made_up_answered": 0, "correct": 10, "ece_equal_mass": 0.2}}) == "answer-min@0.1"


def test_calibrate_uses_the_signal_it_is_given(calibrated_model, tiny_data_shared, tmp_path):
    fin, _, held = calibrated_model
    out = tmp_path / "mean.params"
    assert main(["calibrate", "rope", str(tiny_data_shared.wiki), "--reading_params_path", str(fin),
                 "--calibration_corpus_path", str(held), "--writing_params_path", str(out), "--made_up", "4",
                 "--signal", "prefix-min", "--made_up_share", "1", "--device", "cpu"]) == 0
    calibration = cf.Calibration.from_spec(read_checkpoint(out).answering["calibration"])
    assert calibration.signal == "prefix-min" and calibration.fitted_on["made_up_share"] == 1.0


def test_made_up_names_that_look_real_do_not_pull_the_real_peoples_confidence_down():
    """Made-up names the recall part cannot tell apart weigh a tenth of the real people:
    the real people's mean confidence stays near their accuracy (at full weight it would
    fall to the accuracy of the mixed population, 0.5 * 40 / 80 = 0.25)."""
    real = [cf.Scored(math.log(0.9), math.log(0.9), i % 2 == 0) for i in range(40)]  # half right
    made = [cf.Scored(math.log(0.9), math.log(0.9), False, made_up=True)] * 40  # the same parts, all wrong
    weighted = cf.fit(real + made)
    assert weighted.combine(math.log(0.9), math.log(0.9)) == pytest.approx(20 / (40 + 0.1 * 40), abs=1e-3)
    full = cf.fit(real + made, made_up_share=1.0)
    assert full.combine(math.log(0.9), math.log(0.9)) == pytest.approx(0.25, abs=1e-3)
