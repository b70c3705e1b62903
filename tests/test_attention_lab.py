"""Tests for kgpt.attention_lab: each claim holds in numbers, and the checks can fail."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from kgpt import attention_lab as lab

EXPERIMENTS = [
    "categorical",
    "copying",
    "subspace",
    "average",
    "noisy_one_head",
    "noisy_two_heads",
    "kqv_projections",
]


@pytest.fixture(scope="module")
def results() -> dict:
    return lab.run(seed=0)


def test_every_experiment_has_the_promised_fields(results):
    assert list(results) == EXPERIMENTS
    for entry in results.values():
        assert isinstance(entry["claim"], str) and entry["claim"]
        assert isinstance(entry["setting"], str) and entry["setting"]
        assert isinstance(entry["measured"], dict) and entry["measured"]
        assert isinstance(entry["tolerance"], (int, float, dict))
        assert entry["passed"] is True
    json.dumps(results, allow_nan=False)  # plain, strict JSON


def test_categorical_stable_softmax_is_valid_where_naive_breaks(results):
    m = results["categorical"]["measured"]
    assert m["naive_nonfinite_weights_at_1e4"] > 0
    assert m["naive_nonfinite_weights_at_1e30"] > 0
    assert m["stable_all_finite"] and m["stable_min_weight"] >= 0
    assert m["stable_max_abs_sum_minus_1"] <= 1e-12
    assert m["stable_max_error_vs_exact"] <= 1e-12
    assert m["naive_vs_stable_max_diff_moderate_scores"] <= 1e-12


def test_softmax_helpers_directly():
    scores = np.array([1e30, 0.0, -1e30])
    assert np.isnan(lab.naive_softmax(scores)).any()
    np.testing.assert_array_equal(lab.stable_softmax(scores), [1.0, 0.0, 0.0])
    small = np.array([0.0, math.log(3.0)])
    np.testing.assert_allclose(lab.stable_softmax(small), [0.25, 0.75], rtol=1e-15)


def test_copying_converges_to_v_j_within_the_bound(results):
    m = results["copying"]["measured"]
    assert m["smallest_score_margin"] > 0
    assert m["error_at_beta_0.01"] > 1.0  # small beta: c is near the mean value, not v_j
    assert m["error_at_beta_0.01"] == pytest.approx(m["distance_mean_value_to_v_j"], rel=0.01)
    assert m["error_at_beta_100"] <= 1e-10
    assert m["bound_violations"] == 0
    assert 1.0 < m["first_beta_with_error_below_1e-6"] < 100.0


def test_subspace_constructions_are_exact_and_the_wrong_one_is_not(results):
    m = results["subspace"]["measured"]
    assert m["max_relative_error_basis_completion"] <= 1e-10
    assert m["max_relative_error_orthonormal_projector"] <= 1e-10
    assert m["max_relative_error_unnormalised_projector_wrong"] > 1e-2
    # The two valid constructions differ off span{a} + span{b}: A is not unique.
    assert m["frobenius_gap_between_the_two_constructions"] > 1e-3


def test_basis_completion_keeping_the_wrong_block_fails():
    rng = np.random.default_rng(7)
    directions = lab.orthonormal_columns(rng, 6, 4).T
    a, b, completion = directions[:2] * 2.0, directions[2:4], rng.standard_normal((2, 6))
    v_a, v_b = np.array([1.0, -2.0]) @ a, np.array([0.5, 3.0]) @ b
    right = lab.basis_completion_extractor(a, b, completion)
    swapped = lab.basis_completion_extractor(b, a, completion)  # keeps span{b} instead
    assert lab.relative_error(right @ (v_a + v_b), v_a) < 1e-12
    assert lab.relative_error(swapped @ (v_a + v_b), v_a) > 0.5


def test_average_measured_beta_matches_the_derivation(results):
    m = results["average"]["measured"]
    assert m["n"] == [4, 16, 64, 256]
    for measured, bound, exact in zip(m["beta_measured"], m["beta_bound"], m["beta_exact"]):
        assert measured <= bound + 1e-9
        assert measured == pytest.approx(exact, abs=1e-6)
    assert m["max_abs_measured_minus_exact"] <= 1e-6
    errors = m["error_at_beta_5"]
    assert errors == sorted(errors)  # more distractor keys, larger error at fixed beta


def test_smallest_beta_bisection():
    assert lab.smallest_beta(lambda beta: math.exp(-beta), 1e-3) == pytest.approx(math.log(1e3), abs=1e-9)
    with pytest.raises(ValueError):
        lab.smallest_beta(lambda beta: 1.0, 1e-3)


def test_noisy_one_head_is_stable_for_tiny_noise_and_bimodal_otherwise(results):
    m = results["noisy_one_head"]["measured"]
    assert m["tiny_noise_max_relative_error"] <= 0.01
    assert m["tiny_noise_max_abs_weight_minus_half"] <= 0.005
    assert m["fraction_in_tails"] == pytest.approx(m["predicted_fraction_in_tails"], abs=0.03)
    assert m["fraction_weight_below_0.1"] >= 0.3 and m["fraction_weight_above_0.9"] >= 0.3
    assert m["weight_variance"] > 0.15  # a fixed weight of 1/2 would give 0


def test_two_heads_stay_near_the_average(results):
    m = results["noisy_two_heads"]["measured"]
    predicted = m["predicted_fraction_within_0.05"]
    assert m["two_heads_fraction_within_0.05_of_half"] == pytest.approx(predicted, abs=0.03)
    assert m["one_head_fraction_within_0.05_of_half"] < 0.05
    assert m["two_heads_median_abs_weight_minus_half"] <= 0.01
    assert m["two_heads_mean_abs_weight_minus_half"] <= 0.1 < 0.3 <= m["one_head_mean_abs_weight_minus_half"]
    assert m["fraction_key_a_scale_nonpositive"] == pytest.approx(math.erfc(1) / 2, abs=0.02)


def test_kqv_projections(results):
    m = results["kqv_projections"]["measured"]
    assert m["plain_c2_relative_error_to_u_a"] <= 1e-6
    assert m["sweep_min_relative_error_to_u_b"] == pytest.approx(math.sqrt(2), rel=1e-6)
    predicted = m["tuned_shift_predicted_error"]
    assert m["tuned_shift_c2_relative_error_to_u_b"] == pytest.approx(predicted, abs=1e-9)
    assert m["kqv_c2_relative_error_to_u_b"] <= 1e-6
    assert m["kqv_c1_relative_error_to_u_b_minus_u_c"] <= 1e-6


def test_a_wrong_kqv_construction_fails_the_check():
    u_a, u_b, u_c, u_d = 10.0 * lab.orthonormal_columns(np.random.default_rng(3), 8, 4).T
    inputs = np.stack([u_d + u_b, u_a, u_c + u_b])
    key, query, value = lab.kqv_construction(u_a, u_b, u_c, u_d)
    good = lab.kqv_attention(inputs, key, query, value)
    wrong = lab.kqv_attention(inputs, key, query.T, value)  # queries read the wrong directions
    assert lab.relative_error(good[1], u_b) < 1e-6
    assert lab.relative_error(wrong[1], u_b) > 0.3
    assert lab.relative_error(wrong[0], u_b - u_c) > 0.3


def test_determinism_and_seed_dependence():
    assert lab.run(seed=3) == lab.run(seed=3)
    assert lab.run(seed=3)["copying"]["measured"] != lab.run(seed=4)["copying"]["measured"]


@pytest.mark.parametrize("seed", [1, 2])
def test_other_seeds_pass(seed):
    assert all(entry["passed"] for entry in lab.run(seed=seed).values())


def test_summary():
    fake = {"x": {"passed": True}, "y": {"passed": False}}
    assert lab.summary(fake) == "1/2 experiments passed (failed: y)"
    assert lab.summary({"x": {"passed": True}}) == "1/1 experiments passed"


def test_write_report(tmp_path):
    out = tmp_path / "nested" / "lab"
    report = lab.write_report(out, seed=0)
    assert report == out / "report.md"
    text = report.read_text()
    assert text.count("**Verdict.** PASS") == len(EXPERIMENTS)
    assert "7/7 experiments passed" in text
    images = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    assert sorted(images) == sorted(f"{name}.png" for name in EXPERIMENTS)
    for image in images:
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "results.json").read_text()) == lab.run(seed=0)
