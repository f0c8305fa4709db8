"""build_public: gold marts -> public tables with small-cell suppression (the only public I/O).

Every gold mart has a public version of the same name without the `mart_` prefix, with the same rows and
columns, its counts, rates and statistics suppressed (null, with the reason in `suppression_<column>`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import SparkSession

from lakehouse.config import Settings
from lakehouse.gold.build import write_gold_table
from lakehouse.gold.config import GoldConfig, load_gold_config
from lakehouse.gold.marts import (
    MART_KEYS,
    MART_PARTITION_BY,
    MART_STUDENT_PATHWAYS,
    STUDENT_PATHWAYS_COMMENT,
    PathwaysMeasures,
)
from lakehouse.public.suppression import SUPPRESSION_PREFIX, SuppressionSpec, suppress
from lakehouse.tables import table_exists

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublicMart:
    """A public table: the gold mart it suppresses, that mart's comments, and how its cells are suppressed."""

    name: str
    mart: str
    comment: str
    columns: Callable[[GoldConfig], Mapping[str, str]]
    spec: Callable[[Settings, GoldConfig], SuppressionSpec]


def student_pathways_spec(settings: Settings, config: GoldConfig) -> SuppressionSpec:
    """Suppression of mart_student_pathways: threshold from settings, everything else from conf/gold.yaml."""
    groups = config.student_groups
    measures = PathwaysMeasures.from_config(config)
    return SuppressionSpec(
        counts=measures.counts,
        rates=measures.rates,
        statistics=measures.statistics,
        table_keys=("cohort_year",),
        geography_column="county_code",
        statewide_value=groups.statewide_county_code,
        subgeography_column="district_code",
        dimension_column="group_dimension",
        value_column="group_value",
        all_dimension=groups.all_dimension,
        dimensions=groups.dimension_names(),
        min_cell_size=settings.public.min_cell_size,
        suppress_zeros=config.suppression.suppress_zeros,
        max_iterations=config.suppression.max_iterations,
    )


PUBLIC_MARTS: tuple[PublicMart, ...] = (
    PublicMart(
        name="student_pathways",
        mart=MART_STUDENT_PATHWAYS,
        comment=STUDENT_PATHWAYS_COMMENT,
        columns=lambda config: PathwaysMeasures.from_config(config).comments,
        spec=student_pathways_spec,
    ),
)

PUBLIC_TABLES: tuple[str, ...] = tuple(p.name for p in PUBLIC_MARTS)
"""Every table build_public writes, without the database (settings.table("public", name) qualifies it)."""


def public_tables(settings: Settings) -> list[str]:
    """Qualified names of every public table."""
    return [settings.table("public", name) for name in PUBLIC_TABLES]


def public_comment(mart_comment: str, spec: SuppressionSpec) -> str:
    """Table comment of a public table: the mart's, and what suppression did."""
    return (
        f"{mart_comment} Public: counts under {spec.min_cell_size} are suppressed (primary), and further counts "
        "are suppressed (complementary) so that no suppressed count is a visible total minus visible counts "
        "across groups or across geographies; rates and statistics are suppressed with their counts."
    )


def suppressed_column_comments(columns: Mapping[str, str], spec: SuppressionSpec) -> dict[str, str]:
    """Comments of a suppressed mart: the mart's, with what suppression does to each value."""
    comments = dict(columns)
    for column in (*spec.counts, *spec.rates, *spec.statistics):
        comments[column] = f"{columns.get(column, column)}; null when suppressed"
        comments[f"{SUPPRESSION_PREFIX}{column}"] = (
            f"Why {column} is null: primary (a count under {spec.min_cell_size}), complementary (hidden so a "
            "suppressed count cannot be recovered by subtraction); null when shown"
        )
    comments["is_suppressed"] = "True when any count, rate or statistic of the row is suppressed"
    comments["suppression_reason"] = "primary if any value of the row is primary-suppressed, else complementary"
    return comments


def build_public(spark: SparkSession, settings: Settings, *, config: GoldConfig | None = None) -> dict[str, int]:
    """Build every public table from the gold marts; returns qualified table name -> row count."""
    config = config or load_gold_config(settings=settings)
    counts: dict[str, int] = {}
    for public in PUBLIC_MARTS:
        source = settings.table("gold", public.mart)
        if not table_exists(spark, source):
            raise ValueError(f"public needs {source}; run the gold stage first")
        spec = public.spec(settings, config)
        table = settings.table("public", public.name)
        counts[table] = write_gold_table(
            suppress(spark.read.table(source), spec),
            table,
            partition_by=MART_PARTITION_BY,
            sort_by=MART_KEYS,
            comment=public_comment(public.comment, spec),
            column_comments=suppressed_column_comments(public.columns(config), spec),
        ).rows
    return counts
