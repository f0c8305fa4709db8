"""The Fellegi-Sunter model: m and u probabilities per comparison level and the prior, trained without labels.

- u (the chance a level occurs for two records of different people): for an exact level, exactly, from the value
  frequencies (sum of squared shares: the chance two random records share a value); for the other levels, from a
  large random sample of record pairs, scaled to the share left by the exact level.
- m (the chance a level occurs for two records of the same person): expectation maximisation over the candidate
  pairs, u held fixed, in one session per training blocking rule; a session leaves out the comparisons that read
  the rule's columns (every pair of a same-SSN block agrees on SSN, so it says nothing about SSN's m), and a
  comparison's m is the mean over the sessions that estimated it (the method Splink documents).
- prior (the chance two random records match): the fixed point at which the expected matches among the candidate
  pairs, scored with the trained m and u, equal prior x all record pairs.

EM runs on the driver over the distinct comparison patterns of the candidate pairs and their counts (thousands of
rows, whatever the number of pairs), so an iteration costs microseconds, not a Spark job.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

PROBABILITY_FLOOR = 1e-9
"""No m or u is taken as smaller: a level never seen in training must not give an infinite weight."""


@dataclass(frozen=True)
class ComparisonModel:
    """One comparison's parameters: level names (strongest first), m and u per level, and the term-frequency
    column of each level (None when the level is not adjusted)."""

    name: str
    levels: tuple[str, ...]
    m: tuple[float, ...]
    u: tuple[float, ...]
    tf_columns: tuple[str | None, ...]

    def __post_init__(self) -> None:
        n = len(self.levels)
        if not (len(self.m) == len(self.u) == len(self.tf_columns) == n) or n < 2:
            raise ValueError(f"comparison {self.name}: levels, m, u and tf_columns must have the same length >= 2")

    def log2_bayes_factors(self) -> tuple[float, ...]:
        """log2(m/u) per level: the weight of evidence the level adds to a pair's match weight."""
        return tuple(
            math.log2(max(m, PROBABILITY_FLOOR) / max(u, PROBABILITY_FLOOR))
            for m, u in zip(self.m, self.u, strict=True)
        )

    def log2_bayes_factor(self, gamma: Column) -> Column:
        """The weight of the level `gamma` (0 for -1: no evidence), as a float column."""
        weights = F.array(*[F.lit(w) for w in self.log2_bayes_factors()])
        return F.when(gamma < 0, F.lit(0.0)).otherwise(F.element_at(weights, gamma.cast("int") + 1)).cast("float")


@dataclass(frozen=True)
class FellegiSunterModel:
    """A trained model: the prior, one ComparisonModel per comparison, the term-frequency cap and training figures."""

    prior: float
    comparisons: tuple[ComparisonModel, ...]
    max_tf_adjustment: float = 8.0
    training: Mapping[str, object] = field(default_factory=dict)

    @property
    def prior_log2_odds(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def comparison(self, name: str) -> ComparisonModel:
        for comparison in self.comparisons:
            if comparison.name == name:
                return comparison
        raise KeyError(name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> FellegiSunterModel:
        data = json.loads(text)
        comparisons = tuple(
            ComparisonModel(
                name=c["name"],
                levels=tuple(c["levels"]),
                m=tuple(float(x) for x in c["m"]),
                u=tuple(float(x) for x in c["u"]),
                tf_columns=tuple(c["tf_columns"]),
            )
            for c in data["comparisons"]
        )
        return cls(
            prior=float(data["prior"]),
            comparisons=comparisons,
            max_tf_adjustment=float(data["max_tf_adjustment"]),
            training=dict(data.get("training", {})),
        )


# --------------------------------------------------------------------------------------------------
# expectation maximisation over comparison patterns


@dataclass(frozen=True)
class Patterns:
    """Distinct comparison patterns of a set of pairs: gammas (patterns x comparisons, -1 = null), counts, and
    per training session a boolean mask of the patterns whose pairs satisfy that session's rule."""

    gammas: np.ndarray
    counts: np.ndarray
    sessions: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class EmResult:
    m: dict[int, np.ndarray]
    """comparison index -> m per level, for the comparisons the session estimated"""
    prior: float
    iterations: int
    converged: bool


def _log_likelihoods(gammas: np.ndarray, probabilities: Sequence[np.ndarray], active: Sequence[int]) -> np.ndarray:
    """Per pattern, the sum over active comparisons of log(p[level]) (0 where the level is -1)."""
    total = np.zeros(gammas.shape[0])
    for k in active:
        levels = gammas[:, k]
        table = np.log(np.maximum(probabilities[k], PROBABILITY_FLOOR))
        total += np.where(levels >= 0, table[np.maximum(levels, 0)], 0.0)
    return total


def posterior(
    gammas: np.ndarray, m: Sequence[np.ndarray], u: Sequence[np.ndarray], prior: float, active: Sequence[int]
) -> np.ndarray:
    """Match probability of each pattern under the model restricted to the `active` comparisons."""
    log_odds = math.log(prior / (1 - prior)) + _log_likelihoods(gammas, m, active) - _log_likelihoods(gammas, u, active)
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))
    return result


def expectation_maximisation(
    gammas: np.ndarray,
    counts: np.ndarray,
    m_start: Sequence[np.ndarray],
    u: Sequence[np.ndarray],
    active: Sequence[int],
    *,
    prior_start: float = 0.1,
    max_iterations: int = 40,
    tolerance: float = 1e-5,
) -> EmResult:
    """Estimate m of the `active` comparisons and the share of matches among the pairs, u held fixed.

    Args:
        gammas: patterns x comparisons levels (-1: null); counts: pairs per pattern.
        m_start: starting m per comparison (all comparisons; only active ones change); u: fixed u per comparison.
        active: indexes of the comparisons this session estimates.
    """
    if gammas.shape[0] != counts.shape[0]:
        raise ValueError("gammas and counts must have one row per pattern")
    m = [np.array(x, dtype=float) for x in m_start]
    prior = prior_start
    weights = counts.astype(float)
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        matched = posterior(gammas, m, u, prior, active) * weights
        total_matched = matched.sum()
        new_prior = float(np.clip(total_matched / weights.sum(), 1e-6, 1 - 1e-6))
        change = abs(new_prior - prior)
        for k in active:
            levels = gammas[:, k]
            sums = np.bincount(levels[levels >= 0], weights=matched[levels >= 0], minlength=len(m[k]))
            new_m = sums / sums.sum() if sums.sum() > 0 else m[k]
            change = max(change, float(np.max(np.abs(new_m - m[k]))))
            m[k] = new_m
        prior = new_prior
        if change < tolerance:
            converged = True
            break
    return EmResult(m={k: m[k] for k in active}, prior=prior, iterations=iterations, converged=converged)


def starting_m(n_levels: int) -> np.ndarray:
    """A neutral start for EM: most matches agree exactly, the rest spread over the lower levels."""
    if n_levels == 2:
        return np.array([0.9, 0.1])
    rest = np.full(n_levels - 1, 0.1 / (n_levels - 1))
    return np.concatenate([[0.9], rest])


def prior_fixed_point(
    gammas: np.ndarray,
    counts: np.ndarray,
    m: Sequence[np.ndarray],
    u: Sequence[np.ndarray],
    n_record_pairs: float,
    *,
    max_iterations: int = 200,
    tolerance: float = 1e-12,
) -> float:
    """The prior at which the expected matches among the candidate pairs equal prior x all record pairs.

    Starts from the candidate share (an upper bound: every candidate a match) and iterates down; the candidates
    are assumed to hold (nearly) every true match, which is what blocking is for.
    """
    if n_record_pairs <= 0:
        raise ValueError("n_record_pairs must be positive")
    active = list(range(gammas.shape[1]))
    prior = float(min(counts.sum() / n_record_pairs, 0.5))
    for _ in range(max_iterations):
        expected = float((posterior(gammas, m, u, prior, active) * counts).sum())
        new_prior = float(np.clip(expected / n_record_pairs, 1e-12, 0.5))
        if abs(new_prior - prior) <= tolerance * max(prior, 1e-12):
            return new_prior
        prior = new_prior
    return prior
