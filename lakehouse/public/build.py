"""build_public: gold marts -> public tables with small-cell suppression (the only public I/O)."""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from lakehouse.config import Settings
from lakehouse.gold.build import write_gold_table
from lakehouse.gold.config import GoldConfig, load_gold_config
from lakehouse.gold.marts import (
    HS_COLLEGE_ENROLLMENT_COLUMNS,
    HS_COLLEGE_ENROLLMENT_COMMENT,
    HS_COLLEGE_ENROLLMENT_COUNTS,
    HS_COLLEGE_ENROLLMENT_RATES,
    MART_HS_COLLEGE_ENROLLMENT,
    MART_KEYS,
)
from lakehouse.public.suppression import SUPPRESSION_PREFIX, SuppressionSpec, suppress
from lakehouse.tables import table_exists

logger = logging.getLogger(__name__)

HS_COLLEGE_ENROLLMENT = "hs_college_enrollment"

PUBLIC_TABLES: tuple[str, ...] = (HS_COLLEGE_ENROLLMENT,)
"""Every table build_public writes, without the database (settings.table("public", name) qualifies it)."""


def public_tables(settings: Settings) -> list[str]:
    """Qualified names of every public table."""
    return [settings.table("public", name) for name in PUBLIC_TABLES]


def hs_college_enrollment_spec(settings: Settings, config: GoldConfig) -> SuppressionSpec:
    """Suppression of mart_hs_college_enrollment: threshold from settings, everything else from conf/gold.yaml."""
    groups = config.student_groups
    return SuppressionSpec(
        counts=HS_COLLEGE_ENROLLMENT_COUNTS,
        rates=HS_COLLEGE_ENROLLMENT_RATES,
        table_keys=("cohort_year",),
        geography_column="county_code",
        statewide_value=groups.statewide_county_code,
        dimension_column="group_dimension",
        value_column="group_value",
        all_dimension=groups.all_dimension,
        dimensions=groups.dimension_names(),
        min_cell_size=settings.public.min_cell_size,
        suppress_zeros=config.suppression.suppress_zeros,
        max_iterations=config.suppression.max_iterations,
    )


def suppressed_column_comments(columns: dict[str, str], spec: SuppressionSpec) -> dict[str, str]:
    """Comments of a suppressed mart: the mart's, with what suppression does to each value."""
    comments = dict(columns)
    for column in (*spec.counts, *spec.rates):
        comments[column] = f"{columns.get(column, column)}; null when suppressed"
        comments[f"{SUPPRESSION_PREFIX}{column}"] = (
            f"Why {column} is null: primary (a count under {spec.min_cell_size}), complementary (hidden so a "
            "suppressed count cannot be recovered by subtraction); null when shown"
        )
    comments["is_suppressed"] = "True when any count or rate of the row is suppressed"
    comments["suppression_reason"] = "primary if any value of the row is primary-suppressed, else complementary"
    return comments


def build_public(spark: SparkSession, settings: Settings, *, config: GoldConfig | None = None) -> dict[str, int]:
    """Build every public table from the gold marts; returns qualified table name -> row count."""
    config = config or load_gold_config(settings=settings)
    source = settings.table("gold", MART_HS_COLLEGE_ENROLLMENT)
    if not table_exists(spark, source):
        raise ValueError(f"public needs {source}; run the gold stage first")
    spec = hs_college_enrollment_spec(settings, config)
    public = suppress(spark.read.table(source), spec)
    table = settings.table("public", HS_COLLEGE_ENROLLMENT)
    rows = write_gold_table(
        public.repartition("cohort_year").sortWithinPartitions(*MART_KEYS),
        table,
        partition_by=("cohort_year",),
        comment=(
            f"{HS_COLLEGE_ENROLLMENT_COMMENT} Public: counts under {spec.min_cell_size} are suppressed (primary), "
            "and further counts are suppressed (complementary) so that no suppressed count is a visible total "
            "minus visible counts across groups or across counties; rates are suppressed with their counts."
        ),
        column_comments=suppressed_column_comments(HS_COLLEGE_ENROLLMENT_COLUMNS, spec),
    ).rows
    return {table: rows}
