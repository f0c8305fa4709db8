"""Scoring candidate pairs with a trained model: a weight per comparison, the match weight and probability.

A pair's match weight is the prior's log2-odds plus, per comparison, log2(m/u) of its level; an exact match on a
term-frequency column is adjusted by log2(u_exact / share of the shared value), so sharing GARCIA says less than
sharing a rare surname. Every comparison's weight is kept (weight_<comparison>), so any link can be explained.
"""

from __future__ import annotations

from functools import reduce
from operator import add

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.er.comparisons import gamma_column
from lakehouse.er.model import PROBABILITY_FLOOR, ComparisonModel, FellegiSunterModel


def weight_column(comparison: str) -> str:
    return f"weight_{comparison}"


def comparison_weight(comparison: ComparisonModel, cap: float) -> Column:
    """log2 Bayes factor of the pair's level, with the term-frequency adjustment of adjusted levels."""
    gamma = F.col(gamma_column(comparison.name))
    weight = comparison.log2_bayes_factor(gamma)
    for level, tf_column in enumerate(comparison.tf_columns):
        if tf_column is None:
            continue
        share = F.greatest(F.col(f"l_{tf_column}"), F.col(f"r_{tf_column}"), F.lit(PROBABILITY_FLOOR))
        adjustment = F.log2(F.lit(max(comparison.u[level], PROBABILITY_FLOOR)) / share)
        bounded = F.least(F.greatest(adjustment, F.lit(-cap)), F.lit(cap))
        weight = weight + F.when(gamma == F.lit(level), F.coalesce(bounded, F.lit(0.0))).otherwise(F.lit(0.0))
    return weight.cast("float")


def with_match_weight(pairs: DataFrame, model: FellegiSunterModel) -> DataFrame:
    """Add weight_<comparison> per comparison, match_weight (prior log2-odds + their sum) and match_probability."""
    weights = {weight_column(c.name): comparison_weight(c, model.max_tf_adjustment) for c in model.comparisons}
    scored = pairs.withColumns(weights)
    total = reduce(add, [F.col(name) for name in weights], F.lit(model.prior_log2_odds))
    return scored.withColumn("match_weight", total.cast("double")).withColumn(
        "match_probability", F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -F.col("match_weight")))
    )
