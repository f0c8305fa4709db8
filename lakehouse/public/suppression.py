"""Small-cell suppression of a mart, as distributed DataFrame transforms.

A mart row is identified by its table keys (e.g. cohort_year), a geography (counties plus one statewide
row, and optionally districts within each county) and a student group (a dimension and a value; the
all-students row has its own dimension). Each count column of a row is one cell. Cells sum in two kinds
of sets, each with a total cell:

- group sets: the cells of one dimension in one table and geography sum to the all-students cell there;
- geography sets: the county cells of one table and group sum to the statewide cell of that group, and
  the district cells of a county sum to that county's cell.

Primary suppression hides every count under the threshold (zeros too unless `suppress_zeros` is off).
Complementary suppression then repeats until stable: in every set with exactly one hidden cell (a member
or the total), the smallest visible nonzero member is hidden too (the total if no member is left), so no
hidden cell equals a visible total minus visible cells. Each pass is one DataFrame job whose result is
checkpointed; the loop is bounded and fails rather than publish an unstable table. Rates are hidden when
their numerator or denominator is, and statistics (medians, quartiles) when the count of the people they
summarize is. Suppressed values are null and every count, rate and statistic has a
`suppression_<column>` column ('primary' | 'complementary' | null); no row is ever dropped.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

PRIMARY = "primary"
COMPLEMENTARY = "complementary"
SUPPRESSION_PREFIX = "suppression_"
"""Prefix of the column giving why a value is null (`suppression_<column>`), so count columns (n_*) stay numeric."""

_MEMBERSHIP_TYPE = "array<struct<set_id:string,is_total:boolean>>"


class SuppressionError(RuntimeError):
    """Complementary suppression did not become stable within the allowed passes."""


@dataclass(frozen=True)
class SuppressionSpec:
    """How one mart is suppressed: its count and rate columns, the columns that define its sets, the threshold.

    Attributes:
        counts: additive count columns (one cell each per row).
        rates: rate column -> (numerator count, denominator count).
        statistics: statistic column (median, quartile) -> the count of the people it summarizes.
        table_keys: columns of independent tables (nothing sums across them), e.g. ("cohort_year",).
        geography_column: column of the geography; `statewide_value` marks the statewide rows.
        subgeography_column: optional column of a geography within `geography_column` (districts within
            counties): null on state and county rows, set on rows whose cells sum to their county's.
        dimension_column / value_column: the student group of a row; `all_dimension` marks all-students rows.
        dimensions: every group dimension whose groups sum to the all-students row.
        min_cell_size: counts under this are hidden.
        suppress_zeros: hide zero counts as well (they are never chosen as complementary cells otherwise).
        max_iterations: bound on complementary passes.
    """

    counts: tuple[str, ...]
    rates: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    table_keys: tuple[str, ...] = ("cohort_year",)
    statistics: Mapping[str, str] = field(default_factory=dict)
    geography_column: str = "county_code"
    statewide_value: str = "00"
    subgeography_column: str | None = None
    dimension_column: str = "group_dimension"
    value_column: str = "group_value"
    all_dimension: str = "all"
    dimensions: tuple[str, ...] = ()
    min_cell_size: int = 11
    suppress_zeros: bool = True
    max_iterations: int = 25

    def __post_init__(self) -> None:
        if not self.counts:
            raise ValueError("SuppressionSpec needs at least one count column")
        if self.min_cell_size < 1:
            raise ValueError(f"min_cell_size must be at least 1, got {self.min_cell_size}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {self.max_iterations}")
        for rate, (numerator, denominator) in self.rates.items():
            if numerator not in self.counts or denominator not in self.counts:
                raise ValueError(f"rate {rate} must divide two count columns, got {numerator} / {denominator}")
        for statistic, count in self.statistics.items():
            if count not in self.counts:
                raise ValueError(f"statistic {statistic} must summarize a count column, got {count}")

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns that identify one row of the mart."""
        geography = (
            (self.geography_column,)
            if self.subgeography_column is None
            else (
                self.geography_column,
                self.subgeography_column,
            )
        )
        return (*self.table_keys, *geography, self.dimension_column, self.value_column)


def _json(*columns: Column) -> Column:
    return F.to_json(F.struct(*columns))


def with_row_id(mart: DataFrame, spec: SuppressionSpec) -> DataFrame:
    """Add _row_id: the row's key columns as one null-safe string."""
    return mart.withColumn("_row_id", _json(*(F.col(c) for c in spec.key_columns)))


def cell_values(mart: DataFrame, spec: SuppressionSpec) -> DataFrame:
    """One row per mart row per count column: the key columns, _row_id, measure, value (long) and cell_id."""
    longs = mart.select(*spec.key_columns, "_row_id", *(F.col(c).cast("long").alias(c) for c in spec.counts))
    cells = longs.unpivot(
        [*spec.key_columns, "_row_id"], list(spec.counts), variableColumnName="measure", valueColumnName="value"
    )
    return cells.withColumn("cell_id", F.concat_ws("#", F.col("measure"), F.col("_row_id")))


def with_primary_suppression(cells: DataFrame, spec: SuppressionSpec) -> DataFrame:
    """Add is_hidden and reason ('primary' for a count under the threshold, else null)."""
    small = F.col("value") < F.lit(spec.min_cell_size)
    if not spec.suppress_zeros:
        small = small & (F.col("value") != F.lit(0))
    is_hidden = F.coalesce(small, F.lit(False))
    return cells.withColumns({"is_hidden": is_hidden, "reason": F.when(is_hidden, F.lit(PRIMARY))})


def set_memberships(cells: DataFrame, spec: SuppressionSpec) -> DataFrame:
    """One row per cell per set it belongs to: set_id, cell_id, is_total, value, is_candidate.

    A set is identified by the measure and what its cells share; is_candidate marks cells that may be
    hidden to protect another (a known, nonzero value).
    """
    measure = F.col("measure")
    table = [F.col(c) for c in spec.table_keys]
    dimension, geography = F.col(spec.dimension_column), F.col(spec.geography_column)

    place = [F.col(c) for c in spec.key_columns if c not in (spec.dimension_column, spec.value_column)]

    def group_set(name: Column) -> Column:
        return F.concat_ws("#", measure, _json(F.lit("group").alias("kind"), *place, name.alias("dim")))

    def geography_set(parent: Column) -> Column:
        group = [dimension, F.col(spec.value_column)]
        return F.concat_ws("#", measure, _json(F.lit("geography").alias("kind"), *table, *group, parent.alias("in")))

    as_total = [
        F.struct(group_set(F.lit(name)).alias("set_id"), F.lit(True).alias("is_total")) for name in spec.dimensions
    ]
    total_of_groups = F.array(*as_total).cast(_MEMBERSHIP_TYPE) if as_total else F.array().cast(_MEMBERSHIP_TYPE)
    member_of_group = F.array(F.struct(group_set(dimension).alias("set_id"), F.lit(False).alias("is_total")))
    groups = F.when(dimension == F.lit(spec.all_dimension), total_of_groups).otherwise(
        member_of_group.cast(_MEMBERSHIP_TYPE)
    )
    # A row is a member of the set of its parent geography (a county's parent is the state, a district's its
    # county) and the total of the set of its own geography (the state of the counties, a county of its
    # districts); the statewide row is no member, a district row no total.
    is_state = geography == F.lit(spec.statewide_value)
    sub = F.col(spec.subgeography_column) if spec.subgeography_column else F.lit(None).cast("string")
    member_of = F.when(sub.isNotNull(), geography).when(~is_state, F.lit(spec.statewide_value))
    total_of = F.when(sub.isNull(), geography)
    geographies = F.filter(
        F.array(
            F.struct(geography_set(member_of).alias("set_id"), F.lit(False).alias("is_total"), member_of.alias("_p")),
            F.struct(geography_set(total_of).alias("set_id"), F.lit(True).alias("is_total"), total_of.alias("_p")),
        ),
        lambda s: s["_p"].isNotNull(),
    )
    geographies = F.transform(geographies, lambda s: F.struct(s["set_id"], s["is_total"])).cast(_MEMBERSHIP_TYPE)
    return cells.select(
        "cell_id",
        "value",
        F.coalesce(F.col("value") > 0, F.lit(False)).alias("is_candidate"),
        F.explode(F.concat(groups, geographies)).alias("_set"),
    ).select(
        F.col("_set.set_id").alias("set_id"),
        "cell_id",
        F.col("_set.is_total").alias("is_total"),
        "value",
        "is_candidate",
    )


def complementary_pass(status: DataFrame, memberships: DataFrame) -> DataFrame:
    """One pass: in each set with exactly one hidden cell, hide its smallest visible candidate member, or its
    total when no member qualifies. Returns status (cell_id, is_hidden, reason) plus is_changed."""
    state = memberships.join(status.select("cell_id", "is_hidden"), on="cell_id", how="inner")
    hidden, total = F.col("is_hidden"), F.col("is_total")
    sets = state.groupBy("set_id").agg(
        F.sum(hidden.cast("int")).alias("n_hidden"),
        F.min(F.when(~hidden & ~total & F.col("is_candidate"), F.struct("value", "cell_id"))).alias("_smallest"),
        F.max(F.when(~hidden & total, F.col("cell_id"))).alias("_visible_total"),
    )
    targets = (
        sets.where(F.col("n_hidden") == 1)
        .select(F.coalesce(F.col("_smallest.cell_id"), F.col("_visible_total")).alias("cell_id"))
        .where(F.col("cell_id").isNotNull())
        .distinct()
        .withColumn("_is_target", F.lit(True))
    )
    is_new = F.coalesce(F.col("_is_target"), F.lit(False)) & ~hidden
    return status.join(targets, on="cell_id", how="left").select(
        "cell_id",
        (hidden | is_new).alias("is_hidden"),
        F.when(is_new, F.lit(COMPLEMENTARY)).otherwise(F.col("reason")).alias("reason"),
        is_new.alias("is_changed"),
    )


def complementary_suppression(status: DataFrame, memberships: DataFrame, max_iterations: int) -> DataFrame:
    """Repeat `complementary_pass` until no cell changes: cell_id, is_hidden, reason per cell.

    Raises:
        SuppressionError: still changing after `max_iterations` passes.
    """
    memberships = memberships.localCheckpoint()
    status = status.select("cell_id", "is_hidden", "reason").localCheckpoint()
    for iteration in range(1, max_iterations + 1):
        status = complementary_pass(status, memberships).localCheckpoint()  # cut lineage each pass
        changed = status.where(F.col("is_changed")).count()
        logger.info("suppression: pass %d hid %d complementary cells", iteration, changed)
        if changed == 0:
            return status.drop("is_changed")
    raise SuppressionError(
        f"complementary suppression still changed cells after {max_iterations} passes; "
        "raise suppression.max_iterations in conf/gold.yaml"
    )


def _stronger(reasons: list[Column]) -> Column:
    """'primary' if any of `reasons` is primary, else 'complementary' if any is set, else null."""
    any_primary = reduce(operator.or_, (F.coalesce(r == F.lit(PRIMARY), F.lit(False)) for r in reasons))
    any_set = reduce(operator.or_, (r.isNotNull() for r in reasons))
    return F.when(any_primary, F.lit(PRIMARY)).when(any_set, F.lit(COMPLEMENTARY))


def suppress(mart: DataFrame, spec: SuppressionSpec) -> DataFrame:
    """The mart with suppressed counts, rates and statistics set to null; grain unchanged (one row per mart row).

    Adds `suppression_<column>` ('primary' | 'complementary' | null) for every count, rate and statistic,
    is_suppressed
    (any value of the row hidden) and suppression_reason (the row's strongest reason).
    """
    missing = [c for c in (*spec.key_columns, *spec.counts, *spec.rates, *spec.statistics) if c not in mart.columns]
    if missing:
        raise ValueError(f"mart lacks columns the suppression spec names: {', '.join(missing)}")
    keyed = with_row_id(mart, spec)
    cells = cell_values(keyed, spec)
    primary = with_primary_suppression(cells, spec)
    final = complementary_suppression(primary, set_memberships(cells, spec), spec.max_iterations)
    shown = cells.join(final, on="cell_id", how="inner").select(
        "_row_id",
        "measure",
        F.when(~F.col("is_hidden"), F.col("value")).alias("shown"),
        F.col("reason"),
    )
    by_row = (
        shown.groupBy("_row_id")
        .pivot("measure", list(spec.counts))
        .agg(F.first("shown").alias("shown"), F.first("reason").alias("reason"))
    )
    public = keyed.drop(*spec.counts).join(by_row, on="_row_id", how="left")
    columns: dict[str, Column] = {}
    reasons: dict[str, Column] = {}
    for count in spec.counts:
        columns[count] = F.col(f"{count}_shown")
        reasons[count] = F.col(f"{count}_reason")
    for rate, (numerator, denominator) in spec.rates.items():
        reasons[rate] = _stronger([reasons[numerator], reasons[denominator]])
        columns[rate] = F.when(reasons[rate].isNull(), F.col(rate))
    for statistic, count in spec.statistics.items():
        reasons[statistic] = reasons[count]
        columns[statistic] = F.when(reasons[statistic].isNull(), F.col(statistic))
    row_reason = _stronger(list(reasons.values()))
    return public.select(
        *(columns[c].alias(c) if c in columns else F.col(c) for c in mart.columns),
        row_reason.isNotNull().alias("is_suppressed"),
        row_reason.alias("suppression_reason"),
        *(reasons[c].alias(f"{SUPPRESSION_PREFIX}{c}") for c in mart.columns if c in reasons),
    )
