"""The written self-attention questions of CS224N, turned into numerical experiments.

The assignment asks for pencil-and-paper arguments about softmax attention: that its
weights form a distribution, that a query can copy one value or average two, what noise
in the keys does to one head versus two, and why key/query/value projections help. Each
function below sets up the situation with concrete random vectors, measures the quantity
the argument is about, and compares it with a tolerance chosen so that wrong maths (a
broken softmax, a wrong projector, a wrong construction) would fail. ``run`` returns the
numbers, ``write_report`` turns them into ``report.md`` with one figure per experiment.

Conventions: everything is float64 numpy; a set of vectors is stored as the rows of a
matrix; attention over keys ``k_i`` and values ``v_i`` with query ``q`` is
``c = sum_i softmax(k_i . q) v_i`` (no 1/sqrt(d) scaling, as in the assignment).
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


def naive_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis exactly as written on paper: exp(s_i) / sum_j exp(s_j).

    Kept only to show how it breaks: exp overflows to inf above ~709.78, and inf / inf
    is NaN. Overflow warnings are silenced because the NaNs are the point.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        exps = np.exp(scores)
        return exps / exps.sum(axis=-1, keepdims=True)


def stable_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed as exp(s_i - max s) / sum_j exp(s_j - max s).

    Subtracting the maximum changes nothing mathematically (the factor exp(-max s)
    cancels), but every exponent is then <= 0, so exp cannot overflow, and the largest
    term is exactly 1, so the denominator lies in [1, n] and is never 0 or inf.
    """
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1, keepdims=True)


def attend(query: np.ndarray, keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single-query attention; returns (output c, weights alpha).

    ``keys`` may carry leading batch axes, shape (..., n, d), so one call handles many
    sampled key sets at once; ``values`` has shape (n, d_v).
    """
    weights = stable_softmax(keys @ query)
    return weights @ values, weights


def kqv_attention(inputs: np.ndarray, key: np.ndarray, query: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Self-attention with projections: c_i = sum_j softmax_j((K x_j) . (Q x_i)) V x_j.

    ``inputs`` holds x_1..x_n as rows; returns c_1..c_n as rows.
    """
    keys, queries, values = inputs @ key.T, inputs @ query.T, inputs @ value.T
    return stable_softmax(queries @ keys.T) @ values


def plain_self_attention(inputs: np.ndarray) -> np.ndarray:
    """Self-attention without projections: each x_i is its own key, query and value."""
    identity = np.eye(inputs.shape[1])
    return kqv_attention(inputs, identity, identity, identity)


def orthonormal_columns(rng: np.random.Generator, dim: int, count: int) -> np.ndarray:
    """A (dim, count) matrix with orthonormal columns (QR of a Gaussian matrix)."""
    basis, _ = np.linalg.qr(rng.standard_normal((dim, count)))
    return basis


def relative_error(approx: np.ndarray, target: np.ndarray) -> float:
    """||approx - target|| / ||target||, the scale-free distance used by the checks."""
    return float(np.linalg.norm(approx - target) / np.linalg.norm(target))


def _plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to built-ins so json.dumps accepts them."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj


def _result(
    title: str,
    claim: str,
    setting: str,
    measured: dict[str, Any],
    tolerance: dict[str, Any],
    passed: bool,
    series: dict[str, Any],
) -> dict[str, Any]:
    """Package one experiment's outcome as a JSON-ready dict."""
    return _plain(
        {
            "title": title,
            "claim": claim,
            "setting": setting,
            "measured": measured,
            "tolerance": tolerance,
            "passed": passed,
            "series": series,
        }
    )


# ---------------------------------------------------------------------------
# 1. Attention weights are a categorical distribution
# ---------------------------------------------------------------------------


def categorical(rng: np.random.Generator) -> dict[str, Any]:
    """Softmax weights are non-negative and sum to 1 -- if computed stably."""
    huge_1e4 = np.array([1e4, 1e4 - 1, 1e4 - 2, -1e4])
    # Shift-invariance gives the exact answer: the weights of scores (0, -1, -2, -2e4).
    exact_1e4 = np.array([1.0, math.exp(-1), math.exp(-2), 0.0]) / (1 + math.exp(-1) + math.exp(-2))
    huge_1e30 = 1e30 * np.array([1.0, 0.5, 0.0, -1.0])
    exact_1e30 = np.array([1.0, 0.0, 0.0, 0.0])  # gaps of 5e29 make it one-hot
    random_huge = 1e30 * rng.standard_normal((100, 10))
    moderate = 3.0 * rng.standard_normal((100, 10))

    stable = [stable_softmax(s) for s in (huge_1e4, huge_1e30, random_huge)]
    flat = np.concatenate([w.ravel() for w in stable])
    sum_error = max(float(np.abs(w.sum(axis=-1) - 1).max()) for w in stable)
    exact_error = max(
        float(np.abs(stable[0] - exact_1e4).max()), float(np.abs(stable[1] - exact_1e30).max())
    )
    agreement = float(np.abs(naive_softmax(moderate) - stable_softmax(moderate)).max())
    measured = {
        "naive_nonfinite_weights_at_1e4": int((~np.isfinite(naive_softmax(huge_1e4))).sum()),
        "naive_nonfinite_weights_at_1e30": int((~np.isfinite(naive_softmax(huge_1e30))).sum()),
        "stable_all_finite": bool(np.isfinite(flat).all()),
        "stable_min_weight": float(flat.min()),
        "stable_max_abs_sum_minus_1": sum_error,
        "stable_max_error_vs_exact": exact_error,
        "naive_vs_stable_max_diff_moderate_scores": agreement,
    }
    tol = 1e-12
    passed = (
        measured["naive_nonfinite_weights_at_1e4"] > 0
        and measured["naive_nonfinite_weights_at_1e30"] > 0
        and measured["stable_all_finite"]
        and measured["stable_min_weight"] >= 0
        and sum_error <= tol
        and exact_error <= tol
        and agreement <= tol
    )

    scales = 10.0 ** np.arange(0, 301, 5)
    pattern = np.array([1.0, 0.5, 0.0, -1.0])
    series = {
        "scales": scales,
        "naive_sums": [naive_softmax(s * pattern).sum() for s in scales],
        "stable_sums": [stable_softmax(s * pattern).sum() for s in scales],
        "stable_weights_1e4": stable[0],
        "exact_weights_1e4": exact_1e4,
    }
    return _result(
        "Attention weights form a categorical distribution",
        "softmax(s)_i = exp(s_i) / sum_j exp(s_j) is non-negative and sums to 1 for any real "
        "scores. Computed naively it returns NaN once a score exceeds ~709 (exp overflows); "
        "subtracting the maximum score first gives valid, exact weights at any magnitude.",
        "Scores (1e4, 1e4-1, 1e4-2, -1e4) with exact answer softmax(0, -1, -2, -2e4); scores "
        "1e30*(1, 0.5, 0, -1) with exact answer one-hot; 100 random rows of 10 scores of size "
        "~1e30; and 100 rows of moderate N(0, 9) scores on which naive and stable must agree.",
        measured,
        {"sum_to_one_and_exact_match": tol, "naive_vs_stable_on_moderate": tol, "naive_must_break": True},
        passed,
        series,
    )


# ---------------------------------------------------------------------------
# 2. Copying one value
# ---------------------------------------------------------------------------


def copying(rng: np.random.Generator) -> dict[str, Any]:
    """A query beta*k_j copies v_j as beta grows, at a rate set by the score margins."""
    n, d, d_v, j = 8, 64, 16, 0
    keys = rng.standard_normal((n, d)) / math.sqrt(d)  # norms ~1, overlaps ~N(0, 1/d)
    values = rng.standard_normal((n, d_v))
    betas = np.logspace(-2, 2, 41)
    errors = np.array([np.linalg.norm(attend(b * keys[j], keys, values)[0] - values[j]) for b in betas])

    # c - v_j = sum_{i != j} alpha_i (v_i - v_j) and 1 - alpha_j <= sum_{i != j} exp(-beta g_i),
    # g_i = k_j.k_j - k_i.k_j, so ||c - v_j|| <= max_i ||v_i - v_j|| * sum_i exp(-beta g_i).
    margins = np.delete(keys[j] @ keys[j] - keys @ keys[j], j)
    spread = np.delete(np.linalg.norm(values - values[j], axis=1), j).max()
    bounds = spread * np.exp(-np.outer(betas, margins)).sum(axis=1)
    violations = int((errors > bounds * (1 + 1e-9) + 1e-15).sum())
    below = betas[errors <= 1e-6]
    measured = {
        "smallest_score_margin": float(margins.min()),
        "error_at_beta_0.01": float(errors[0]),
        "distance_mean_value_to_v_j": float(np.linalg.norm(values.mean(axis=0) - values[j])),
        "error_at_beta_100": float(errors[-1]),
        "first_beta_with_error_below_1e-6": float(below[0]) if below.size else None,
        "bound_violations": violations,
    }
    tol = 1e-10
    passed = margins.min() > 0 and errors[-1] <= tol and violations == 0
    return _result(
        "Copying: a query aligned with one key copies its value",
        "With q = beta*k_j and k_j.k_j > k_i.k_j for i != j, c = sum_i softmax(k_i.q) v_i "
        "tends to v_j as beta grows, and ||c - v_j|| <= max_i ||v_i - v_j|| * "
        "sum_{i != j} exp(-beta (k_j.k_j - k_i.k_j)).",
        f"n={n} keys k_i ~ N(0, I/{d}) in R^{d}, values v_i ~ N(0, I) in R^{d_v}, j={j}, "
        f"{betas.size} values of beta log-spaced in [0.01, 100].",
        measured,
        {"error_at_beta_100": tol, "bound_violations": 0},
        passed,
        {"betas": betas, "errors": errors, "bounds": bounds},
    )


# ---------------------------------------------------------------------------
# 3. Extracting one subspace
# ---------------------------------------------------------------------------


def basis_completion_extractor(a: np.ndarray, b: np.ndarray, completion: np.ndarray) -> np.ndarray:
    """A = S D S^-1 with S = [a's | b's | completion] as columns, D = diag(1 on the a's, 0 else).

    S^-1 gives coordinates in the basis S; D keeps only the a-coordinates; S maps them back.
    Works for any completion that makes S invertible, orthogonal or not.
    """
    basis = np.concatenate([a, b, completion])  # rows
    keep = np.concatenate([np.ones(len(a)), np.zeros(len(b) + len(completion))])
    return basis.T @ np.diag(keep) @ np.linalg.inv(basis.T)


def projector(vectors: np.ndarray) -> np.ndarray:
    """A = sum_i a_i a_i^T, the orthogonal projector onto span{a_i} when the a_i are orthonormal."""
    return vectors.T @ vectors


def subspace(rng: np.random.Generator) -> dict[str, Any]:
    """A(v_a + v_b) = v_a, by basis completion and (for unit vectors) by a projector."""
    d, m_a, m_b, trials = 10, 3, 4, 200
    directions = orthonormal_columns(rng, d, m_a + m_b).T
    scaled = directions * rng.uniform(0.3, 3.0, size=(m_a + m_b, 1))  # orthogonal, not unit
    a, b = scaled[:m_a], scaled[m_a:]
    completion = rng.standard_normal((d - m_a - m_b, d))
    candidates = {
        "basis_completion": basis_completion_extractor(a, b, completion),
        "orthonormal_projector": projector(directions[:m_a]),
        "unnormalised_projector_wrong": projector(a),
    }
    v_a = rng.standard_normal((trials, m_a)) @ a
    v_b = rng.standard_normal((trials, m_b)) @ b
    errors = {
        name: np.linalg.norm((v_a + v_b) @ A.T - v_a, axis=1) / np.linalg.norm(v_a, axis=1)
        for name, A in candidates.items()
    }
    measured = {f"max_relative_error_{name}": float(e.max()) for name, e in errors.items()}
    measured["frobenius_gap_between_the_two_constructions"] = float(
        np.linalg.norm(candidates["basis_completion"] - candidates["orthonormal_projector"])
    )
    tol, wrong_floor = 1e-10, 1e-2
    passed = (
        errors["basis_completion"].max() <= tol
        and errors["orthonormal_projector"].max() <= tol
        and errors["unnormalised_projector_wrong"].max() >= wrong_floor
    )
    return _result(
        "Extracting one subspace with a linear map",
        "For orthogonal sets {a_i}, {b_j}, A = S D S^-1 (S: a's, b's and a completion as "
        "columns; D: 1 on the a's, 0 elsewhere) satisfies A(v_a + v_b) = v_a; when the a_i "
        "are orthonormal, A = sum_i a_i a_i^T does too. The projector needs unit vectors: "
        "with un-normalised a_i it scales v_a and fails.",
        f"d={d}; {m_a} a's and {m_b} b's, mutually orthogonal with norms drawn from U(0.3, 3); "
        f"a random (non-orthogonal) completion of {d - m_a - m_b} vectors; {trials} random "
        "pairs v_a in span{a}, v_b in span{b}; relative error ||A(v_a+v_b) - v_a|| / ||v_a||.",
        measured,
        {"max_relative_error": tol, "wrong_construction_must_exceed": wrong_floor},
        passed,
        {name: np.log10(np.maximum(e, 1e-300)) for name, e in errors.items()},
    )


# ---------------------------------------------------------------------------
# 4. An average of two values
# ---------------------------------------------------------------------------


def smallest_beta(error: Callable[[float], float], target: float, high: float = 60.0) -> float:
    """Bisection for the smallest beta with error(beta) <= target; error must decrease in beta."""
    low = 0.0
    if error(high) > target:
        raise ValueError(f"error({high}) > {target}: raise `high`")
    while high - low > 1e-12:
        middle = (low + high) / 2
        low, high = (low, middle) if error(middle) <= target else (middle, high)
    return high


def _average_error(beta: float, keys: np.ndarray, values: np.ndarray, a: int, b: int) -> float:
    """||c - (v_a + v_b)/2|| for the query beta (k_a + k_b)."""
    output = attend(beta * (keys[a] + keys[b]), keys, values)[0]
    return float(np.linalg.norm(output - (values[a] + values[b]) / 2))


def average(rng: np.random.Generator) -> dict[str, Any]:
    """q = beta (k_a + k_b) over orthonormal keys averages v_a and v_b; derive the beta needed."""
    ns, d_v, a, b, eps, beta_fixed = (4, 16, 64, 256), 8, 0, 1, 1e-3, 5.0
    betas = np.linspace(0.0, 20.0, 81)
    names = ("beta_bound", "beta_exact", "beta_measured", "error_at_beta_5")
    rows: dict[str, list[float]] = {name: [] for name in names}
    curves = []
    for n in ns:
        keys = orthonormal_columns(rng, n, n)  # a square orthogonal matrix: rows orthonormal
        values = rng.standard_normal((n, d_v))
        target = (values[a] + values[b]) / 2
        others = np.delete(values, [a, b], axis=0)

        error = functools.partial(_average_error, keys=keys, values=values, a=a, b=b)
        # Scores are beta on a and b and 0 elsewhere, so the others share weight
        # W = (n-2) / (2 e^beta + n - 2) equally and c - target = W (mean(others) - target).
        # Requiring W * R <= eps gives e^beta >= (n-2)(R/eps - 1)/2.
        radius = np.linalg.norm(others - target, axis=1).max()  # bound: any mix of others
        centroid = np.linalg.norm(others.mean(axis=0) - target)  # exact: equal weights
        rows["beta_bound"].append(math.log((n - 2) * (radius / eps - 1) / 2))
        rows["beta_exact"].append(math.log((n - 2) * (centroid / eps - 1) / 2))
        rows["beta_measured"].append(smallest_beta(error, eps))
        rows["error_at_beta_5"].append(error(beta_fixed))
        curves.append([error(beta) for beta in betas])

    bound_holds = all(m <= bd + 1e-9 for m, bd in zip(rows["beta_measured"], rows["beta_bound"]))
    exact_gap = max(abs(m - e) for m, e in zip(rows["beta_measured"], rows["beta_exact"]))
    measured = {"n": list(ns), **rows, "max_abs_measured_minus_exact": exact_gap}
    return _result(
        "Averaging two values",
        "With orthonormal keys and q = beta (k_a + k_b), the weights are e^beta/(2e^beta + n-2) "
        "on a and b and 1/(2e^beta + n-2) on each of the n-2 others, so ||c - (v_a+v_b)/2|| "
        "<= W * R with W = (n-2)/(2e^beta + n-2) and R = max over the others of "
        "||v_i - (v_a+v_b)/2||. Error <= eps is then guaranteed by "
        "beta* = ln((n-2)(R/eps - 1)/2); since the others share W equally the error is exactly W * ||mean(others) - (v_a+v_b)/2||, which gives the exact beta.",
        f"n in {list(ns)} orthonormal keys in R^n, values v_i ~ N(0, I) in R^{d_v}, eps={eps}; "
        "measured beta = smallest beta with error <= eps, by bisection on the measured error.",
        measured,
        {"eps": eps, "measured_beta_at_most_bound": True, "measured_vs_exact_beta": 1e-6},
        bound_holds and exact_gap <= 1e-6,
        {"betas": betas, "n": list(ns), "errors": curves, "eps": eps, "beta_bound": rows["beta_bound"]},
    )


# ---------------------------------------------------------------------------
# 5 and 6. Noisy keys: one head versus two
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoisyKeys:
    """Sampled key sets shared by experiments 5 and 6, so both see the same noise.

    ``tiny``: k_i ~ N(mu_i, alpha I). ``fluctuating``: the same draws, but key a also gets
    a random multiple of mu_a, so its covariance is alpha I + 1/2 mu_a mu_a^T and key a is
    k_a ~= scale_a * mu_a with scale_a ~ N(1, 1/2).
    """

    means: np.ndarray  # (n, d) orthonormal rows mu_i
    values: np.ndarray  # (n, n) orthonormal rows, so c . v_a is the weight on v_a
    tiny: np.ndarray  # (samples, n, d)
    fluctuating: np.ndarray  # (samples, n, d)
    scale_a: np.ndarray  # (samples,) the factor 1 + g multiplying mu_a in key a
    alpha: float
    beta: float
    a: int
    b: int


def sample_noisy_keys(
    rng: np.random.Generator,
    n: int = 8,
    d: int = 32,
    samples: int = 4000,
    alpha: float = 1e-8,
    beta: float = 20.0,
) -> NoisyKeys:
    """Draw the key sets, with a = 0 and b = 1.

    Covariance alpha I + 1/2 mu_a mu_a^T is sampled as isotropic noise plus an independent
    N(0, 1/2) multiple of mu_a (covariances of independent terms add; ||mu_a|| = 1).
    alpha is tiny relative to ||mu||^2 = 1: the a-b score gap is then ~ 2 beta sqrt(alpha) N(0, 1),
    so alpha = 1e-8 keeps the weights within ~0.5% of 1/2 at beta = 20.
    """
    a, b = 0, 1
    means = orthonormal_columns(rng, d, n).T
    values = orthonormal_columns(rng, n, n)
    tiny = means + math.sqrt(alpha) * rng.standard_normal((samples, n, d))
    g = math.sqrt(0.5) * rng.standard_normal(samples)
    fluctuating = tiny.copy()
    fluctuating[:, a] += g[:, None] * means[a]
    return NoisyKeys(means, values, tiny, fluctuating, 1 + g, alpha, beta, a, b)


HISTOGRAM_EDGES = np.linspace(0.0, 1.0, 41)


def _histogram(weights: np.ndarray) -> list[int]:
    """Counts of weights in 40 equal bins over [0, 1] (the bins figures 5 and 6 use)."""
    return np.histogram(weights, bins=HISTOGRAM_EDGES)[0].tolist()


def _one_head(noisy: NoisyKeys, keys: np.ndarray) -> np.ndarray:
    """Outputs of the single head q = beta (mu_a + mu_b), one row per sampled key set."""
    query = noisy.beta * (noisy.means[noisy.a] + noisy.means[noisy.b])
    return attend(query, keys, noisy.values)[0]


def _two_heads(noisy: NoisyKeys, keys: np.ndarray) -> np.ndarray:
    """Outputs c = (c_1 + c_2)/2 of the heads q_1 = beta mu_a and q_2 = beta mu_b."""
    heads = [attend(noisy.beta * noisy.means[i], keys, noisy.values)[0] for i in (noisy.a, noisy.b)]
    return (heads[0] + heads[1]) / 2


def _weight_on_a(noisy: NoisyKeys, outputs: np.ndarray) -> np.ndarray:
    """c . v_a: the weight on v_a, since the values are orthonormal."""
    return outputs @ noisy.values[noisy.a]


def noisy_one_head(noisy: NoisyKeys) -> dict[str, Any]:
    """Tiny isotropic noise keeps c ~ (v_a+v_b)/2; a fluctuating norm of k_a makes c swing."""
    n = len(noisy.means)
    target = (noisy.values[noisy.a] + noisy.values[noisy.b]) / 2
    tiny_outputs = _one_head(noisy, noisy.tiny)
    tiny_errors = np.linalg.norm(tiny_outputs - target, axis=1) / np.linalg.norm(target)
    tiny_weights = _weight_on_a(noisy, tiny_outputs)
    weights = _weight_on_a(noisy, _one_head(noisy, noisy.fluctuating))

    # Scores on a and b differ by beta*(scale_a - 1) ~ N(0, beta^2/2) and the weight on a is
    # ~ sigmoid of that, so P(weight < 0.1 or > 0.9) = P(|N(0, 1/2)| > ln 9 / beta) = erfc(ln 9 / beta).
    predicted_tails = math.erfc(math.log(9) / noisy.beta)
    near_0, near_1 = float((weights < 0.1).mean()), float((weights > 0.9).mean())
    measured = {
        "tiny_noise_max_relative_error": float(tiny_errors.max()),
        "tiny_noise_max_abs_weight_minus_half": float(np.abs(tiny_weights - 0.5).max()),
        "fraction_weight_below_0.1": near_0,
        "fraction_weight_above_0.9": near_1,
        "fraction_in_tails": near_0 + near_1,
        "predicted_fraction_in_tails": predicted_tails,
        "weight_variance": float(weights.var()),
    }
    tol = {"tiny_noise_relative_error": 0.01, "tails_vs_prediction": 0.03, "each_mode_at_least": 0.3}
    passed = (
        tiny_errors.max() <= tol["tiny_noise_relative_error"]
        and abs(near_0 + near_1 - predicted_tails) <= tol["tails_vs_prediction"]
        and min(near_0, near_1) >= tol["each_mode_at_least"]
    )
    return _result(
        "Noisy keys, one head",
        "With q = beta (mu_a + mu_b), tiny isotropic key noise (alpha I) leaves c ~ (v_a+v_b)/2. "
        "If instead key a's norm fluctuates (covariance alpha I + 1/2 mu_a mu_a^T), c swings "
        "between ~v_a and ~v_b from sample to sample: the weight on v_a is bimodal, with "
        "a fraction erfc(ln 9 / beta) of samples below 0.1 or above 0.9.",
        f"n={n} orthonormal means mu_i in R^{noisy.means.shape[1]}, orthonormal values, "
        f"alpha={noisy.alpha:g}, beta={noisy.beta:g}, {len(weights)} sampled key sets.",
        measured,
        tol,
        passed,
        {
            "edges": HISTOGRAM_EDGES,
            "tiny_counts": _histogram(tiny_weights),
            "fluctuating_counts": _histogram(weights),
        },
    )


def noisy_two_heads(noisy: NoisyKeys) -> dict[str, Any]:
    """Two heads, one per key, are robust to the fluctuating norm of k_a (unless it flips sign)."""
    n = len(noisy.means)
    one = _weight_on_a(noisy, _one_head(noisy, noisy.fluctuating))
    two = _weight_on_a(noisy, _two_heads(noisy, noisy.fluctuating))
    # Head 1 scores are beta*scale_a on a and ~0 on the n-1 others, head 2 puts ~all weight on
    # v_b, so weight on v_a = sigmoid(beta*scale_a - ln(n-1)) / 2. It is within 0.05 of 1/2
    # iff beta*scale_a >= ln(9(n-1)); with scale_a ~ N(1, 1/2) that has probability
    # erfc(ln(9(n-1))/beta - 1) / 2. Failures are the samples where scale_a <~ 0.
    predicted = math.erfc(math.log(9 * (n - 1)) / noisy.beta - 1) / 2
    within_one = float((np.abs(one - 0.5) <= 0.05).mean())
    within_two = float((np.abs(two - 0.5) <= 0.05).mean())
    measured = {
        "two_heads_fraction_within_0.05_of_half": within_two,
        "predicted_fraction_within_0.05": predicted,
        "one_head_fraction_within_0.05_of_half": within_one,
        "two_heads_median_abs_weight_minus_half": float(np.median(np.abs(two - 0.5))),
        "two_heads_mean_abs_weight_minus_half": float(np.abs(two - 0.5).mean()),
        "one_head_mean_abs_weight_minus_half": float(np.abs(one - 0.5).mean()),
        "fraction_key_a_scale_nonpositive": float((noisy.scale_a <= 0).mean()),
    }
    tol = {
        "within_vs_prediction": 0.03,
        "two_heads_median": 0.01,
        "two_heads_mean": 0.1,
        "one_head_mean_at_least": 0.3,
    }
    passed = (
        abs(within_two - predicted) <= tol["within_vs_prediction"]
        and measured["two_heads_median_abs_weight_minus_half"] <= tol["two_heads_median"]
        and measured["two_heads_mean_abs_weight_minus_half"] <= tol["two_heads_mean"]
        and measured["one_head_mean_abs_weight_minus_half"] >= tol["one_head_mean_at_least"]
    )
    return _result(
        "Noisy keys, two heads",
        "Splitting the query into two heads, q_1 = beta mu_a and q_2 = beta mu_b, with "
        "c = (c_1 + c_2)/2, keeps c ~ (v_a+v_b)/2 on the same fluctuating keys: head 1 "
        "copies v_a whatever the (positive) size of k_a. It still fails when the random "
        "scale of k_a is near or below 0 (probability ~ erfc(1)/2 ~ 7.9%).",
        f"The key sets of experiment 5 (n={n}, alpha={noisy.alpha:g}, beta={noisy.beta:g}, "
        f"covariance of key a: alpha I + 1/2 mu_a mu_a^T), {len(two)} samples.",
        measured,
        tol,
        passed,
        {"edges": HISTOGRAM_EDGES, "one_head_counts": _histogram(one), "two_heads_counts": _histogram(two)},
    )


# ---------------------------------------------------------------------------
# 7. Why key, query and value projections
# ---------------------------------------------------------------------------


def kqv_construction(
    u_a: np.ndarray, u_b: np.ndarray, u_c: np.ndarray, u_d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K, Q, V with c_2 ~ u_b and c_1 ~ u_b - u_c for x1 = u_d+u_b, x2 = u_a, x3 = u_c+u_b.

    With unit vectors e = u/||u||: V = e_b e_b^T - e_c e_c^T gives values (u_b, 0, u_b - u_c);
    K = e_c e_c^T + e_d e_d^T gives keys (u_d, 0, u_c); Q = e_d e_a^T + e_c e_d^T gives
    queries q_1 = u_c, q_2 = u_d. So x2 scores (||u||^2, 0, 0) and copies value 1 = u_b,
    and x1 scores (0, 0, ||u||^2) and copies value 3 = u_b - u_c.
    """
    e_a, e_b, e_c, e_d = (u / np.linalg.norm(u) for u in (u_a, u_b, u_c, u_d))
    key = np.outer(e_c, e_c) + np.outer(e_d, e_d)
    query = np.outer(e_d, e_a) + np.outer(e_c, e_d)
    value = np.outer(e_b, e_b) - np.outer(e_c, e_c)
    return key, query, value


def kqv_projections(rng: np.random.Generator) -> dict[str, Any]:
    """Without projections c_2 ~ u_a; adding u_c, u_d to x2 cannot fix that; projections can."""
    d, size = 8, 10.0
    units = orthonormal_columns(rng, d, 4).T
    u_a, u_b, u_c, u_d = size * units
    inputs = np.stack([u_d + u_b, u_a, u_c + u_b])
    plain = plain_self_attention(inputs)

    # The assignment's move: add any combination of u_c and u_d to x2. Its self-score
    # (1 + s_c^2 + s_d^2) beats its scores with x1 (s_d) and x3 (s_c), so c2 ~ x2 stays
    # ~u_a + s_c u_c + s_d u_d, at relative distance sqrt(2 + s_c^2 + s_d^2) >= sqrt 2 from u_b.
    grid = np.linspace(-3.0, 3.0, 31)

    def c2_error(s_c: float, s_d: float) -> float:
        moved = inputs.copy()
        moved[1] += s_c * u_c + s_d * u_d
        return relative_error(plain_self_attention(moved)[1], u_b)

    sweep = np.array([[c2_error(s_c, s_d) for s_c in grid] for s_d in grid])

    # Caveat: an unconstrained vector is more powerful. With z below added to every x_i, the
    # three scores of x2 are equal except that its self-score is larger by exactly ln 3, so
    # the weights are (1, 3, 1)/5, and that mix of the shifted inputs is u_b + t u_a with
    # t = ln 3 / size^2. It works only with z tuned to the norm of the u's.
    t = math.log(3) / size**2
    shift = 0.6 * u_b - (0.6 - t) * u_a - 0.2 * (u_c + u_d)
    tuned = plain_self_attention(inputs + shift)

    outputs = kqv_attention(inputs, *kqv_construction(u_a, u_b, u_c, u_d))
    measured = {
        "plain_c2_relative_error_to_u_a": relative_error(plain[1], u_a),
        "plain_c2_relative_error_to_u_b": relative_error(plain[1], u_b),
        "sweep_min_relative_error_to_u_b": float(sweep.min()),
        "tuned_shift_c2_relative_error_to_u_b": relative_error(tuned[1], u_b),
        "tuned_shift_predicted_error": t,
        "kqv_c2_relative_error_to_u_b": relative_error(outputs[1], u_b),
        "kqv_c1_relative_error_to_u_b_minus_u_c": relative_error(outputs[0], u_b - u_c),
    }
    tol = {"attention_targets": 1e-6, "sweep_must_stay_above": 1.0, "tuned_shift_vs_prediction": 1e-9}
    passed = (
        measured["plain_c2_relative_error_to_u_a"] <= tol["attention_targets"]
        and measured["sweep_min_relative_error_to_u_b"] >= tol["sweep_must_stay_above"]
        and abs(measured["tuned_shift_c2_relative_error_to_u_b"] - t) <= tol["tuned_shift_vs_prediction"]
        and measured["kqv_c2_relative_error_to_u_b"] <= tol["attention_targets"]
        and measured["kqv_c1_relative_error_to_u_b_minus_u_c"] <= tol["attention_targets"]
    )

    def coordinates(vector: np.ndarray) -> list[float]:
        return (units @ vector / size).tolist()

    return _result(
        "Why key, query and value projections",
        "Plain self-attention on x1 = u_d+u_b, x2 = u_a, x3 = u_c+u_b (||u|| large) gives "
        "c2 ~ u_a, and adding any combination of u_c and u_d to x2 leaves c2 far from u_b "
        "(x2 always attends to itself). Projections fix it: with K = e_c e_c^T + e_d e_d^T, "
        "Q = e_d e_a^T + e_c e_d^T, V = e_b e_b^T - e_c e_c^T (e = u/||u||), c2 ~ u_b and "
        "c1 ~ u_b - u_c. Caveat, measured too: the impossibility is about that family; a shift "
        "z = 0.6 u_b - (0.6 - t) u_a - 0.2 (u_c + u_d) added to every input, t = ln 3/||u||^2, "
        "does give c2 = u_b + t u_a, but only when tuned to ||u||.",
        f"u_a..u_d orthonormal directions in R^{d} scaled to norm {size:g}; sweep of "
        f"x2 + s_c u_c + s_d u_d over a {grid.size}x{grid.size} grid of (s_c, s_d) in [-3, 3]^2; "
        "errors are relative, ||c - target|| / ||target||. Keys are K x_j, queries Q x_i, "
        "values V x_j, scores q_i . k_j without scaling.",
        measured,
        tol,
        passed,
        {
            "grid": grid,
            "sweep": sweep,
            "coordinates": {
                "plain c2": coordinates(plain[1]),
                "tuned-shift c2": coordinates(tuned[1]),
                "KQV c2": coordinates(outputs[1]),
                "KQV c1": coordinates(outputs[0]),
            },
        },
    )


# ---------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------


def run(seed: int = 0) -> dict[str, dict[str, Any]]:
    """Run all experiments; each gets its own child generator so they are independent of order."""
    rngs = np.random.default_rng(seed).spawn(6)
    noisy = sample_noisy_keys(rngs[4])
    return {
        "categorical": categorical(rngs[0]),
        "copying": copying(rngs[1]),
        "subspace": subspace(rngs[2]),
        "average": average(rngs[3]),
        "noisy_one_head": noisy_one_head(noisy),
        "noisy_two_heads": noisy_two_heads(noisy),
        "kqv_projections": kqv_projections(rngs[5]),
    }


def summary(results: dict[str, dict[str, Any]]) -> str:
    """One line for the CLI, e.g. '7/7 experiments passed'."""
    failed = [name for name, r in results.items() if not r["passed"]]
    line = f"{len(results) - len(failed)}/{len(results)} experiments passed"
    return line + (f" (failed: {', '.join(failed)})" if failed else "")


def _plot_categorical(fig: Figure, r: dict[str, Any]) -> None:
    s = r["series"]
    left, right = fig.subplots(1, 2)
    exponents = np.log10(s["scales"])  # a log x-axis up to 1e300 overflows matplotlib's margins
    naive = np.array([np.nan if v is None else v for v in s["naive_sums"]])
    left.plot(exponents, s["stable_sums"], "-", label="stable softmax")
    left.plot(exponents, naive, "o", label="naive softmax")
    broken = np.isnan(naive)
    left.plot(exponents[broken], np.zeros(broken.sum()), "rx", label="naive: NaN (drawn at 0)")
    left.set(
        xlabel="log10 s (scores = s * (1, 0.5, 0, -1))",
        ylabel="sum of weights",
        title="Sum of weights vs score magnitude",
    )
    left.legend()
    positions = np.arange(len(s["exact_weights_1e4"]))
    right.bar(positions - 0.2, s["exact_weights_1e4"], 0.4, label="exact")
    right.bar(positions + 0.2, s["stable_weights_1e4"], 0.4, label="stable softmax")
    right.set_xticks(positions, ["1e4", "1e4-1", "1e4-2", "-1e4"])
    right.set(xlabel="score", ylabel="attention weight", title="Weights for scores near 1e4 (naive: all NaN)")
    right.legend()


def _plot_copying(fig: Figure, r: dict[str, Any]) -> None:
    s = r["series"]
    ax = fig.subplots()
    errors = np.array(s["errors"])
    ax.loglog(s["betas"], np.where(errors > 0, errors, np.nan), "o-", label="measured ||c - v_j||")
    ax.loglog(s["betas"], s["bounds"], "--", label="bound max||v_i - v_j|| * sum exp(-beta g_i)")
    ax.set(
        xlabel="beta (query = beta * k_j)",
        ylabel="||c - v_j||",
        title="Copying: error vs beta (exact zeros not drawn)",
    )
    ax.set_ylim(1e-17, None)
    ax.legend()


def _plot_subspace(fig: Figure, r: dict[str, Any]) -> None:
    ax = fig.subplots()
    for position, (name, log_errors) in enumerate(r["series"].items()):
        jitter = np.linspace(-0.2, 0.2, len(log_errors))
        ax.plot(position + jitter, log_errors, ".", alpha=0.5)
    tolerance = r["tolerance"]["max_relative_error"]
    ax.axhline(math.log10(tolerance), color="red", ls="--", label=f"tolerance {tolerance:g}")
    ax.set_xticks(range(len(r["series"])), [name.replace("_", " ") for name in r["series"]])
    ax.set(
        xlabel="construction of A",
        ylabel="log10 ||A(v_a+v_b) - v_a|| / ||v_a||",
        title="Extracting span{a}: relative error per random pair",
    )
    ax.legend()


def _plot_average(fig: Figure, r: dict[str, Any]) -> None:
    s = r["series"]
    ax = fig.subplots()
    for n, errors, beta_star in zip(s["n"], s["errors"], s["beta_bound"]):
        (line,) = ax.semilogy(s["betas"], errors, label=f"n = {n}")
        ax.axvline(beta_star, color=line.get_color(), ls=":")
    ax.axhline(s["eps"], color="black", ls="--", label=f"eps = {s['eps']:g} (dotted: derived beta*)")
    ax.set(
        xlabel="beta (query = beta (k_a + k_b))",
        ylabel="||c - (v_a + v_b)/2||",
        title="Averaging two values: error vs beta",
    )
    ax.legend()


def _histogram_panel(ax: Any, edges: list[float], counts: list[int], title: str) -> None:
    ax.stairs(counts, edges, fill=True)
    ax.set(xlabel="weight of c on v_a (c . v_a)", ylabel="number of samples", title=title)


def _plot_noisy_one_head(fig: Figure, r: dict[str, Any]) -> None:
    s = r["series"]
    left, right = fig.subplots(1, 2)
    _histogram_panel(left, s["edges"], s["tiny_counts"], "One head, key noise alpha I")
    _histogram_panel(right, s["edges"], s["fluctuating_counts"], "One head, key a: alpha I + 1/2 mu_a mu_a^T")


def _plot_noisy_two_heads(fig: Figure, r: dict[str, Any]) -> None:
    s = r["series"]
    left, right = fig.subplots(1, 2, sharey=True)
    _histogram_panel(left, s["edges"], s["one_head_counts"], "One head (experiment 5)")
    _histogram_panel(right, s["edges"], s["two_heads_counts"], "Two heads, c = (c1 + c2)/2")
    right.set_yscale("log")
    left.set_yscale("log")


def _plot_kqv(fig: Figure, r: dict[str, Any]) -> None:
    s = r["series"]
    left, right = fig.subplots(1, 2)
    grid = s["grid"]
    extent = (grid[0], grid[-1], grid[0], grid[-1])
    image = left.imshow(s["sweep"], origin="lower", extent=extent, aspect="auto")
    fig.colorbar(image, ax=left, label="||c2 - u_b|| / ||u_b||")
    left.set(
        xlabel="s_c (x2 += s_c u_c)",
        ylabel="s_d (x2 += s_d u_d)",
        title="Plain attention, x2 + s_c u_c + s_d u_d: c2 stays far from u_b",
    )
    positions = np.arange(4)
    width = 0.8 / len(s["coordinates"])
    for k, (name, coords) in enumerate(s["coordinates"].items()):
        right.bar(positions + (k - 1.5) * width, coords, width, label=name)
    right.set_xticks(positions, ["u_a", "u_b", "u_c", "u_d"])
    right.set(
        xlabel="direction",
        ylabel="coordinate of output (in units of ||u||)",
        title="Outputs in the u basis",
    )
    right.legend()


_PLOTS: dict[str, Callable[[Figure, dict[str, Any]], None]] = {
    "categorical": _plot_categorical,
    "copying": _plot_copying,
    "subspace": _plot_subspace,
    "average": _plot_average,
    "noisy_one_head": _plot_noisy_one_head,
    "noisy_two_heads": _plot_noisy_two_heads,
    "kqv_projections": _plot_kqv,
}


def _format(value: Any) -> str:
    """Render a measured value or tolerance for the markdown tables."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_format(v) for v in value)
    return "n/a" if value is None else str(value)


def _section(number: int, name: str, r: dict[str, Any]) -> str:
    verdict = "PASS" if r["passed"] else "FAIL"
    measured = "\n".join(f"| `{key}` | {_format(value)} |" for key, value in r["measured"].items())
    tolerance = "; ".join(f"`{key}`: {_format(value)}" for key, value in r["tolerance"].items())
    return (
        f"## {number}. {r['title']} — {verdict}\n\n"
        f"**Claim.** {r['claim']}\n\n"
        f"**Setting.** {r['setting']}\n\n"
        f"**Measured.**\n\n| quantity | value |\n|---|---|\n{measured}\n\n"
        f"**Tolerance.** {tolerance}\n\n"
        f"**Verdict.** {verdict}\n\n"
        f"![{r['title']}]({name}.png)\n"
    )


def write_report(out_dir: str | pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Run the experiments and write report.md, results.json and one PNG per experiment."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = run(seed)
    for name, r in results.items():
        wide = name not in ("copying", "subspace", "average")
        fig = Figure(figsize=(12 if wide else 7, 4.5), layout="constrained")
        _PLOTS[name](fig, r)
        fig.savefig(out / f"{name}.png", dpi=100)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    sections = [_section(i, name, r) for i, (name, r) in enumerate(results.items(), start=1)]
    header = (
        "# Self-attention lab\n\n"
        "The written self-attention questions of CS224N as numerical experiments: each "
        "section states a claim, measures it on random vectors and checks the measurement "
        f"against a tolerance that wrong maths would fail.\n\nSeed {seed}: {summary(results)}. "
        "Raw numbers: [results.json](results.json).\n"
    )
    report = out / "report.md"
    report.write_text("\n".join([header, *sections]))
    return report
