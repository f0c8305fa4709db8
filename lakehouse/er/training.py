"""Training the Fellegi-Sunter model on Spark: the few aggregations the estimation needs, then EM on the driver.

Three Spark jobs, whatever the data size: value frequencies of the exact-match features (exact u), the level
counts of a random sample of record pairs (the other u), and the distinct comparison patterns of the candidate
pairs with their counts and training-rule flags (EM and the prior). See `model` for the method.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import BlockingRule, ModelSettings
from lakehouse.er.blocking import all_of
from lakehouse.er.comparisons import Comparison, gamma_column, with_gammas, with_similarities
from lakehouse.er.model import (
    ComparisonModel,
    FellegiSunterModel,
    Patterns,
    expectation_maximisation,
    prior_fixed_point,
    starting_m,
)

logger = logging.getLogger(__name__)

MIN_LEVEL_COUNT = 0.5
"""A level no sampled pair showed counts as half a pair, so its u is small but not zero."""


def session_flag(rule: str) -> str:
    return f"is_training_{rule}"


def exact_u(features: DataFrame, comparisons: Sequence[Comparison]) -> dict[str, float]:
    """Comparison name -> the chance two random records (both with a value) share the exact-match feature's value.

    One job: sum of squared value counts over squared total, per feature.
    """
    exact = [c for c in comparisons if c.exact_feature]
    if not exact:
        return {}
    values = None
    for comparison in exact:
        part = features.where(F.col(str(comparison.exact_feature)).isNotNull()).select(
            F.lit(comparison.name).alias("comparison"), F.col(str(comparison.exact_feature)).cast("string").alias("v")
        )
        values = part if values is None else values.unionByName(part)
    assert values is not None
    rows = (
        values.groupBy("comparison", "v")
        .agg(F.count(F.lit(1)).cast("double").alias("n"))
        .groupBy("comparison")
        .agg(F.sum(F.col("n") * F.col("n")).alias("n2"), F.sum("n").alias("n"))
        .collect()
    )
    result = {}
    for row in rows:
        n = float(row["n"])
        # pairs of distinct records: (sum n_v^2 - n) / (n^2 - n)
        result[str(row["comparison"])] = (float(row["n2"]) - n) / (n * n - n) if n > 1 else 0.0
    return result


def random_pairs(features: DataFrame, columns: Sequence[str], n_pairs: int, seed: int) -> DataFrame:
    """About `n_pairs` pairs of distinct records drawn at random: record_id_l, record_id_r, l_<c>, r_<c>.

    The sample is the k records with the smallest seeded hash of their record_id, k(k-1)/2 >= n_pairs, crossed
    with itself: deterministic for a seed and the same records.
    """
    k = math.ceil((1 + math.sqrt(1 + 8 * n_pairs)) / 2)
    sample = (
        features.select("record_id", *columns)
        .orderBy(F.xxhash64(F.col("record_id"), F.lit(seed)))
        .limit(k)
        .localCheckpoint(eager=True)
    )
    # The sample is one partition (a limit); the crossing is spread over every core, the broadcast side whole.
    parallelism = features.sparkSession.sparkContext.defaultParallelism
    left, right = sample.repartition(max(parallelism, 1)).alias("l"), sample.alias("r")
    return left.join(F.broadcast(right), on=F.col("l.record_id") < F.col("r.record_id"), how="inner").select(
        F.col("l.record_id").alias("record_id_l"),
        F.col("r.record_id").alias("record_id_r"),
        *[F.col(f"{side}.{c}").alias(f"{side}_{c}") for c in columns for side in ("l", "r")],
    )


def level_counts(pairs: DataFrame, comparisons: Sequence[Comparison]) -> dict[str, np.ndarray]:
    """Comparison name -> count of pairs per level (nulls left out), in one job over pairs that carry gammas."""
    aggregates = [
        F.count_if(F.col(gamma_column(c.name)) == F.lit(level)).alias(f"{c.name}__{level}")
        for c in comparisons
        for level in range(len(c.levels))
    ]
    row = pairs.agg(*aggregates).first()
    if row is None:
        raise RuntimeError("level counts returned no row")
    return {c.name: np.array([float(row[f"{c.name}__{level}"]) for level in range(len(c.levels))]) for c in comparisons}


def u_probabilities(
    exact: dict[str, float], sampled: dict[str, np.ndarray], comparisons: Sequence[Comparison]
) -> dict[str, np.ndarray]:
    """u per comparison: the exact level from value frequencies, the others from the sample, scaled to the rest."""
    result = {}
    for comparison in comparisons:
        counts = np.maximum(sampled[comparison.name], MIN_LEVEL_COUNT)
        if comparison.name in exact:
            first = min(max(exact[comparison.name], 1e-9), 1 - 1e-6)
            rest = counts[1:] / counts[1:].sum()
            result[comparison.name] = np.concatenate([[first], (1 - first) * rest])
        else:
            result[comparison.name] = counts / counts.sum()
    return result


def rule_condition(rule: BlockingRule) -> Column:
    """True for a pair (l_<c>, r_<c> columns) whose records share every column of `rule`, none null."""
    return all_of([F.col(f"l_{c}").isNotNull() & (F.col(f"l_{c}") == F.col(f"r_{c}")) for c in rule.columns])


def with_session_flags(pairs: DataFrame, rules: Sequence[BlockingRule]) -> DataFrame:
    """Add is_training_<rule> per training rule: the pair satisfies the rule (whichever rule produced it)."""
    return pairs.withColumns({session_flag(rule.name): rule_condition(rule) for rule in rules})


def collect_patterns(pairs: DataFrame, comparisons: Sequence[Comparison], rules: Sequence[BlockingRule]) -> Patterns:
    """The distinct (gammas, session flags) of `pairs` with their counts, collected (a small result)."""
    gammas = [gamma_column(c.name) for c in comparisons]
    flags = [session_flag(r.name) for r in rules]
    rows = pairs.groupBy(*gammas, *flags).agg(F.count(F.lit(1)).alias("n")).collect()
    matrix = np.array([[int(r[g]) for g in gammas] for r in rows], dtype=np.int64).reshape(len(rows), len(gammas))
    counts = np.array([int(r["n"]) for r in rows], dtype=np.float64)
    sessions = {rule.name: np.array([bool(r[session_flag(rule.name)]) for r in rows], dtype=bool) for rule in rules}
    return Patterns(gammas=matrix, counts=counts, sessions=sessions)


def session_comparisons(comparisons: Sequence[Comparison], rule: BlockingRule) -> list[int]:
    """Indexes of the comparisons a rule's EM session estimates: those reading none of the rule's columns."""
    used = set(rule.columns)
    return [i for i, c in enumerate(comparisons) if not used & set(c.features)]


def train_model(
    features: DataFrame,
    candidate_pairs: DataFrame,
    comparisons: Sequence[Comparison],
    training_rules: Sequence[BlockingRule],
    *,
    settings: ModelSettings,
    n_records: int,
    fallback_rules: Sequence[BlockingRule] = (),
) -> FellegiSunterModel:
    """Train m, u and the prior (see `model`).

    Args:
        features: one row per record with the comparison features.
        candidate_pairs: the blocked pairs with gammas and is_training_<rule> flags (`with_session_flags`).
        training_rules: the blocking rules that define the EM sessions.
        fallback_rules: rules whose sessions train, in order, the comparisons the training rules left untrained
            (their is_training_<rule> flags must be on `candidate_pairs` too).
    """
    if not training_rules:
        raise ValueError("model.training_rules is empty: EM needs at least one training blocking rule")
    columns = sorted({f for c in comparisons for f in c.features})
    exact = exact_u(features, comparisons)
    sample = random_pairs(features, columns, settings.u_sample_pairs, settings.seed)
    sampled = level_counts(sample.transform(with_similarities).transform(with_gammas, comparisons), comparisons)
    u = u_probabilities(exact, sampled, comparisons)
    u_list = [u[c.name] for c in comparisons]

    patterns = collect_patterns(candidate_pairs, comparisons, [*training_rules, *fallback_rules])
    logger.info(
        "training: %d candidate pairs in %d distinct patterns", int(patterns.counts.sum()), len(patterns.counts)
    )
    m_sum = [np.zeros(len(c.levels)) for c in comparisons]
    m_sessions = [0] * len(comparisons)
    sessions: dict[str, object] = {}

    def run_session(rule: BlockingRule, only_untrained: bool) -> None:
        mask = patterns.sessions[rule.name]
        active = session_comparisons(comparisons, rule)
        kept = [k for k in active if m_sessions[k] == 0] if only_untrained else active
        if not mask.any() or not kept:
            if not only_untrained:
                logger.warning("training: session %s has no pairs or no comparison to train; skipped", rule.name)
            return
        result = expectation_maximisation(
            patterns.gammas[mask],
            patterns.counts[mask],
            [starting_m(len(c.levels)) for c in comparisons],
            u_list,
            active,
            max_iterations=settings.em_max_iterations,
            tolerance=settings.em_tolerance,
        )
        for k in kept:
            m_sum[k] += result.m[k]
            m_sessions[k] += 1
        sessions[rule.name] = {
            "pairs": int(patterns.counts[mask].sum()),
            "iterations": result.iterations,
            "converged": result.converged,
            "match_share": result.prior,
            "trained": [comparisons[k].name for k in kept],
        }
        logger.info(
            "training session %s: %d pairs, %d iterations (%s), match share %.4f, trains %s",
            rule.name,
            int(patterns.counts[mask].sum()),
            result.iterations,
            "converged" if result.converged else "not converged",
            result.prior,
            ", ".join(comparisons[k].name for k in kept),
        )

    for rule in training_rules:
        run_session(rule, only_untrained=False)
    # A source without SSNs (an outside file, say) leaves some comparisons untrained by the configured sessions:
    # the other blocking rules, in order, train just those.
    for rule in fallback_rules:
        if all(m_sessions):
            break
        run_session(rule, only_untrained=True)
    untrained = [comparisons[k].name for k, n in enumerate(m_sessions) if n == 0]
    if untrained:
        raise ValueError(
            f"no training session estimates m for {', '.join(untrained)}: add a training rule that does not use them"
        )
    m = [m_sum[k] / m_sessions[k] for k in range(len(comparisons))]
    n_record_pairs = n_records * (n_records - 1) / 2
    prior = prior_fixed_point(patterns.gammas, patterns.counts, m, u_list, n_record_pairs)
    logger.info("training: prior %.3g (about %.0f matching pairs)", prior, prior * n_record_pairs)
    return FellegiSunterModel(
        prior=prior,
        comparisons=tuple(
            ComparisonModel(
                name=c.name,
                levels=c.level_names,
                m=tuple(float(x) for x in m[k]),
                u=tuple(float(x) for x in u_list[k]),
                tf_columns=tuple(level.tf_column for level in c.levels),
            )
            for k, c in enumerate(comparisons)
        ),
        max_tf_adjustment=settings.max_tf_adjustment,
        training={
            "n_records": n_records,
            "n_candidate_pairs": int(patterns.counts.sum()),
            "n_patterns": len(patterns.counts),
            "u_sample_pairs": settings.u_sample_pairs,
            "sessions": sessions,
        },
    )
