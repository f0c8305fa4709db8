"""The Fellegi-Sunter model on the driver: EM and the prior on simulated comparison patterns, parameters, JSON."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lakehouse.er.model import (
    PROBABILITY_FLOOR,
    ComparisonModel,
    FellegiSunterModel,
    expectation_maximisation,
    posterior,
    prior_fixed_point,
    starting_m,
)

# Four comparisons with 2, 3, 4 and 3 levels (strongest first); m for matches, u for non-matches.
TRUE_M = [
    np.array([0.85, 0.15]),
    np.array([0.70, 0.20, 0.10]),
    np.array([0.60, 0.25, 0.10, 0.05]),
    np.array([0.80, 0.15, 0.05]),
]
TRUE_U = [
    np.array([0.10, 0.90]),
    np.array([0.05, 0.15, 0.80]),
    np.array([0.02, 0.08, 0.20, 0.70]),
    np.array([0.01, 0.09, 0.90]),
]
NULL_RATES = (0.0, 0.1, 0.2, 0.05)
"""Share of pairs with no evidence (-1) per comparison, the same for matches and non-matches."""


def simulate(
    rng: np.random.Generator, n_pairs: int, prior: float, m: list[np.ndarray], u: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(gammas, is_match) of `n_pairs` pairs drawn from the model: pairs x comparisons levels, -1 for nulls."""
    is_match = rng.random(n_pairs) < prior
    gammas = np.empty((n_pairs, len(m)), dtype=np.int64)
    for k, (m_k, u_k) in enumerate(zip(m, u, strict=True)):
        from_m = rng.choice(len(m_k), size=n_pairs, p=m_k)
        from_u = rng.choice(len(u_k), size=n_pairs, p=u_k)
        gammas[:, k] = np.where(is_match, from_m, from_u)
        gammas[rng.random(n_pairs) < NULL_RATES[k], k] = -1
    return gammas, is_match


def patterns(gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `gammas` and their counts (float), as training collects them."""
    distinct, counts = np.unique(gammas, axis=0, return_counts=True)
    return distinct, counts.astype(np.float64)


def test_expectation_maximisation_recovers_m_and_the_match_share() -> None:
    """200,000 simulated pairs, 12 % matches: EM with the true u finds the true m and match share."""
    rng = np.random.default_rng(20240601)
    prior = 0.12
    gammas, is_match = simulate(rng, 200_000, prior, TRUE_M, TRUE_U)
    distinct, counts = patterns(gammas)
    assert len(distinct) < 200  # EM runs over patterns, not pairs
    assert counts.sum() == 200_000

    result = expectation_maximisation(
        distinct,
        counts,
        [starting_m(len(m)) for m in TRUE_M],
        TRUE_U,
        active=[0, 1, 2, 3],
        max_iterations=1000,
        tolerance=1e-9,
    )
    assert result.converged
    assert 1 < result.iterations < 1000
    assert result.prior == pytest.approx(is_match.mean(), abs=0.01)
    assert result.prior == pytest.approx(prior, abs=0.01)
    assert sorted(result.m) == [0, 1, 2, 3]
    for k, m_k in result.m.items():
        assert m_k.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(m_k, TRUE_M[k], atol=0.02, err_msg=f"comparison {k}")


def test_expectation_maximisation_session_estimates_only_its_active_comparisons() -> None:
    """A session leaving comparison 0 out returns m for the others only, still close to the truth."""
    rng = np.random.default_rng(7)
    gammas, _ = simulate(rng, 100_000, 0.2, TRUE_M, TRUE_U)
    distinct, counts = patterns(gammas)
    m_start = [starting_m(len(m)) for m in TRUE_M]
    result = expectation_maximisation(
        distinct, counts, m_start, TRUE_U, active=[1, 2, 3], max_iterations=1000, tolerance=1e-9
    )
    assert sorted(result.m) == [1, 2, 3]
    assert result.prior == pytest.approx(0.2, abs=0.01)
    for k in (1, 2, 3):
        np.testing.assert_allclose(result.m[k], TRUE_M[k], atol=0.02, err_msg=f"comparison {k}")
    np.testing.assert_array_equal(m_start[1], starting_m(3))  # the caller's starting values are not mutated


def test_expectation_maximisation_stops_at_max_iterations_and_checks_shapes() -> None:
    """One iteration is not convergence; gammas and counts of different lengths are refused."""
    rng = np.random.default_rng(3)
    gammas, _ = simulate(rng, 10_000, 0.3, TRUE_M, TRUE_U)
    distinct, counts = patterns(gammas)
    m_start = [starting_m(len(m)) for m in TRUE_M]
    result = expectation_maximisation(distinct, counts, m_start, TRUE_U, active=[0, 1, 2, 3], max_iterations=1)
    assert result.iterations == 1
    assert not result.converged
    with pytest.raises(ValueError, match="one row per pattern"):
        expectation_maximisation(distinct, counts[:-1], m_start, TRUE_U, active=[0])


# Strongly discriminating comparisons, as SSN, birth date and names are: a non-match that looks like a match agrees
# exactly on something, so blocking makes it a candidate, and the candidates' posteriors then count the matches.
SHARP_M = [np.array([0.95, 0.03, 0.02]), np.array([0.93, 0.07]), np.array([0.9, 0.06, 0.04]), np.array([0.92, 0.08])]
SHARP_U = [
    np.array([0.001, 0.01, 0.989]),
    np.array([0.002, 0.998]),
    np.array([0.003, 0.05, 0.947]),
    np.array([0.01, 0.99]),
]


def pattern_probabilities(probabilities: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every comparison pattern (nulls included, at NULL_RATES) and its probability under `probabilities`."""
    levels = [[-1, *range(len(p))] for p in probabilities]
    gammas = np.array(list(itertools.product(*levels)), dtype=np.int64)
    result = np.ones(len(gammas))
    for k, p in enumerate(probabilities):
        table = np.concatenate([[NULL_RATES[k]], (1 - NULL_RATES[k]) * p])
        result *= table[gammas[:, k] + 1]
    return gammas, result


def test_prior_fixed_point_recovers_the_prior_of_all_record_pairs() -> None:
    """50 million record pairs, 5,000 of them matches (prior 1e-4); the candidates are every match and the
    non-matches that a blocking rule would catch (exact agreement on at least one comparison), 1.5 % of them."""
    rng = np.random.default_rng(11)
    n_record_pairs, n_matches = 50_000_000, 5_000
    true_prior = n_matches / n_record_pairs
    gammas, m_probabilities = pattern_probabilities(SHARP_M)
    _, u_probabilities = pattern_probabilities(SHARP_U)
    matches = rng.multinomial(n_matches, m_probabilities)
    non_matches = rng.multinomial(n_record_pairs - n_matches, u_probabilities)
    blocked = (gammas == 0).any(axis=1)
    counts = (matches + np.where(blocked, non_matches, 0)).astype(np.float64)
    seen = counts > 0
    distinct, counts = gammas[seen], counts[seen]
    n_candidates = counts.sum()
    assert 500_000 < n_candidates - n_matches < 1_000_000

    prior = prior_fixed_point(distinct, counts, SHARP_M, SHARP_U, n_record_pairs)
    assert prior == pytest.approx(true_prior, rel=0.02)
    # the start (every candidate a match) is over a hundred times too high: the iteration did come down
    assert n_candidates / n_record_pairs > 100 * prior
    # it is a fixed point: the expected matches among the candidates at that prior are prior x all pairs
    expected = (posterior(distinct, SHARP_M, SHARP_U, prior, [0, 1, 2, 3]) * counts).sum()
    assert expected == pytest.approx(prior * n_record_pairs, rel=1e-6)


def test_prior_fixed_point_refuses_no_record_pairs() -> None:
    gammas = np.array([[0, 0, 0, 0]])
    with pytest.raises(ValueError, match="positive"):
        prior_fixed_point(gammas, np.array([1.0]), SHARP_M, SHARP_U, 0)


def test_posterior_is_the_prior_without_evidence_and_grows_with_it() -> None:
    """Prior 0.5 and m == u: 0.5 for every pattern; nulls (-1) and inactive comparisons add nothing."""
    gammas = np.array([[0, 0], [1, 2], [-1, -1], [1, -1]])
    same = [np.array([0.6, 0.4]), np.array([0.2, 0.3, 0.5])]
    np.testing.assert_allclose(posterior(gammas, same, same, 0.5, [0, 1]), [0.5, 0.5, 0.5, 0.5])

    m = [np.array([0.9, 0.1]), np.array([0.8, 0.15, 0.05])]
    u = [np.array([0.1, 0.9]), np.array([0.1, 0.2, 0.7])]
    odds = 0.2 / 0.8
    expected = [
        1 / (1 + 1 / (odds * 9 * 8)),  # both agree: Bayes factors 9 and 8
        1 / (1 + 1 / (odds * (0.1 / 0.9) * (0.05 / 0.7))),
        0.2,  # no evidence: the prior
        1 / (1 + 1 / (odds * (0.1 / 0.9))),
    ]
    np.testing.assert_allclose(posterior(gammas, m, u, 0.2, [0, 1]), expected)
    # comparison 1 inactive: only comparison 0 counts
    np.testing.assert_allclose(
        posterior(gammas, m, u, 0.2, [0]), [0.2 * 9 / (0.2 * 9 + 0.8), 0.2 / (0.2 + 7.2), 0.2, 0.2 / 7.4]
    )


def test_log2_bayes_factors_and_the_probability_floor() -> None:
    model = ComparisonModel(
        name="ssn",
        levels=("exact", "one_typo", "different"),
        m=(0.8, 0.2, 0.0),
        u=(0.01, 0.04, 0.95),
        tf_columns=(None,) * 3,
    )
    factors = model.log2_bayes_factors()
    assert factors[0] == pytest.approx(math.log2(80))
    assert factors[1] == pytest.approx(math.log2(5))
    # m = 0 never gives -inf: it is taken as PROBABILITY_FLOOR
    assert factors[2] == pytest.approx(math.log2(PROBABILITY_FLOOR / 0.95))
    assert math.isfinite(factors[2])


@pytest.mark.parametrize(
    ("levels", "m", "u", "tf_columns"),
    [
        (("exact", "different"), (0.9, 0.1), (0.1, 0.9), (None,)),
        (("exact", "different"), (0.9,), (0.1, 0.9), (None, None)),
        (("exact", "different"), (0.9, 0.1), (0.1, 0.8, 0.1), (None, None)),
        (("exact",), (1.0,), (1.0,), (None,)),
    ],
    ids=["tf_columns", "m", "u", "one_level"],
)
def test_comparison_model_refuses_mismatched_lengths(
    levels: tuple[str, ...], m: tuple[float, ...], u: tuple[float, ...], tf_columns: tuple[str | None, ...]
) -> None:
    with pytest.raises(ValueError, match="same length >= 2"):
        ComparisonModel(name="bad", levels=levels, m=m, u=u, tf_columns=tf_columns)


def test_model_json_round_trip() -> None:
    """to_json then from_json gives an equal model (tuples, None term-frequency columns and training figures)."""
    model = FellegiSunterModel(
        prior=1.25e-5,
        comparisons=(
            ComparisonModel(
                name="first_name",
                levels=("exact", "nickname", "different"),
                m=(0.9, 0.07, 0.03),
                u=(0.004, 0.001, 0.995),
                tf_columns=("tf_first_name", None, None),
            ),
            ComparisonModel(
                name="gender", levels=("exact", "different"), m=(0.99, 0.01), u=(0.5, 0.5), tf_columns=(None, None)
            ),
        ),
        max_tf_adjustment=6.0,
        training={"n_records": 1000, "sessions": {"same_ssn": {"pairs": 10, "converged": True, "trained": ["gender"]}}},
    )
    text = model.to_json()
    restored = FellegiSunterModel.from_json(text)
    assert restored == model
    assert restored.comparison("first_name").tf_columns == ("tf_first_name", None, None)
    assert restored.prior_log2_odds == pytest.approx(math.log2(1.25e-5 / (1 - 1.25e-5)))
    assert FellegiSunterModel.from_json(restored.to_json()) == model
    with pytest.raises(KeyError):
        model.comparison("ssn")
