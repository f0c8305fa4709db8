"""build_gold: silver feeds + mpi.crosswalk -> gold facts, dim_person and outcome marts (the only gold I/O)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.gold.config import GoldConfig, load_gold_config
from lakehouse.gold.dimensions import (
    DIM_GEOGRAPHY,
    DIM_GEOGRAPHY_COLUMNS,
    DIM_GEOGRAPHY_COMMENT,
    DIM_INSTITUTION,
    DIM_INSTITUTION_COLUMNS,
    DIM_INSTITUTION_COMMENT,
    DIM_PROGRAM,
    DIM_PROGRAM_COLUMNS,
    DIM_PROGRAM_COMMENT,
    dim_geography,
    dim_institution,
    dim_program,
)
from lakehouse.gold.facts import FACTS, build_fact
from lakehouse.gold.linking import check_all_linked
from lakehouse.gold.marts import (
    MART_KEYS,
    MART_PARTITION_BY,
    MART_STUDENT_PATHWAYS,
    STUDENT_PATHWAYS_COMMENT,
    PathwaysMeasures,
    missing_cpi_years,
    student_pathways,
)
from lakehouse.gold.person import (
    DIM_PERSON_COLUMNS,
    DIM_PERSON_COMMENT,
    dim_person,
    record_last_seen,
    sed_persons,
    with_person_records,
)
from lakehouse.tables import table_exists, write_table

logger = logging.getLogger(__name__)

DIM_PERSON = "dim_person"

DIMENSIONS: tuple[str, ...] = (DIM_PERSON, DIM_INSTITUTION, DIM_PROGRAM, DIM_GEOGRAPHY)
MARTS: tuple[str, ...] = (MART_STUDENT_PATHWAYS,)
GOLD_TABLES: tuple[str, ...] = (*DIMENSIONS, *(spec.name for spec in FACTS), *MARTS)
"""Every table build_gold writes, without the database (settings.table("gold", name) qualifies it)."""

GOLD_FEEDS: tuple[str, ...] = tuple(sorted({feed for spec in FACTS for feed in spec.feeds}))
"""Silver feed tables (feed keys) gold reads."""


def gold_tables(settings: Settings) -> list[str]:
    """Qualified names of every gold table."""
    return [settings.table("gold", name) for name in GOLD_TABLES]


def read_silver_feeds(spark: SparkSession, settings: Settings) -> dict[str, DataFrame]:
    """Every silver feed table gold reads, by feed key; raises if one does not exist."""
    tables = {feed: settings.table("silver", feed) for feed in GOLD_FEEDS}
    missing = [table for table in tables.values() if not table_exists(spark, table)]
    if missing:
        raise ValueError(f"gold needs silver tables that do not exist: {', '.join(missing)}")
    return {feed: spark.read.table(table) for feed, table in tables.items()}


@dataclass(frozen=True)
class WriteMetrics:
    """What one table write observed: its rows, and the null count of each column asked about."""

    rows: int
    nulls: dict[str, int] = field(default_factory=dict)


def write_gold_table(
    df: DataFrame,
    table: str,
    *,
    comment: str,
    column_comments: Mapping[str, str],
    partition_by: Sequence[str] = (),
    sort_by: Sequence[str] = (),
    count_nulls: Sequence[str] = (),
) -> WriteMetrics:
    """Overwrite `table` with `df`, its table and column comments in place, laid out for BI readers: one file
    per value of the partition columns (no small files from every task writing to every partition) and rows
    sorted by `sort_by` within it, so a filter on those columns reads a contiguous range (Parquet min/max
    statistics skip the rest).

    Rows, and nulls of the `count_nulls` columns, are counted by an observation during the write itself
    (no second job over the data).
    """
    started = time.perf_counter()
    observed = Observation(f"metrics of {table}")
    metrics = [F.count(F.lit(1)).alias("rows")]
    metrics += [F.count_if(F.col(c).isNull()).alias(f"null:{c}") for c in count_nulls]
    if partition_by:
        df = df.repartition(*partition_by)
    if partition_by or sort_by:
        df = df.sortWithinPartitions(*partition_by, *sort_by)
    write_table(
        df.observe(observed, *metrics),
        table,
        mode="overwrite",
        column_comments=column_comments,
        partition_by=partition_by,
        comment=comment,
    )
    values = observed.get
    result = WriteMetrics(int(values["rows"]), {c: int(values[f"null:{c}"]) for c in count_nulls})
    logger.info("wrote %s: %d rows in %.1f s", table, result.rows, time.perf_counter() - started)
    return result


def build_gold(spark: SparkSession, settings: Settings, *, config: GoldConfig | None = None) -> dict[str, int]:
    """Build every gold table from silver and mpi; returns qualified table name -> row count.

    Fails before writing anything when a source row has no person_id in mpi.crosswalk.

    Args:
        spark: the session.
        settings: loaded settings (databases, partners).
        config: gold definitions; conf/gold.yaml, checked against the feed contracts, when not given.
    """
    config = config or load_gold_config(settings=settings)
    silver = read_silver_feeds(spark, settings)
    person_records = spark.read.table(settings.table("silver", "person_records"))
    crosswalk = spark.read.table(settings.table("mpi", "crosswalk"))
    check_all_linked({"person_records": person_records, **silver}, crosswalk)

    counts: dict[str, int] = {}
    for spec in FACTS:
        fact = build_fact(spec, silver, crosswalk, config)
        table = settings.table("gold", spec.name)
        written = write_gold_table(
            fact,
            table,
            comment=spec.comment(),
            column_comments=spec.column_comments(),
            partition_by=spec.partition_by,
            sort_by=spec.sort_by,
            count_nulls=spec.expect_not_null,
        )
        counts[table] = written.rows
        for column, nulls in written.nulls.items():
            if nulls:
                logger.warning(
                    "gold: %s has %d rows with a null %s (a source value conf/gold.yaml cannot interpret)",
                    table,
                    nulls,
                    column,
                )

    def gold(name: str) -> DataFrame:
        return spark.read.table(settings.table("gold", name))

    records = with_person_records(person_records, crosswalk, record_last_seen(silver))
    sed = sed_persons(gold("fact_k12_enrollment"), gold("fact_program_participation"), config.person.sed_programs)
    table = settings.table("gold", DIM_PERSON)
    counts[table] = write_gold_table(
        dim_person(records, sed, config.person), table, comment=DIM_PERSON_COMMENT, column_comments=DIM_PERSON_COLUMNS
    ).rows

    def write_dimension(df: DataFrame, name: str, comment: str, columns: Mapping[str, str]) -> None:
        table = settings.table("gold", name)
        counts[table] = write_gold_table(df.coalesce(1), table, comment=comment, column_comments=columns).rows

    institutions = dim_institution(
        spark,
        k12_enrollment=gold("fact_k12_enrollment"),
        k12_graduation=gold("fact_k12_graduation"),
        k12_assessment=gold("fact_k12_assessment"),
        postsecondary_enrollment=gold("fact_postsecondary_enrollment"),
        postsecondary_awards=gold("fact_postsecondary_award"),
    )
    write_dimension(institutions, DIM_INSTITUTION, DIM_INSTITUTION_COMMENT, DIM_INSTITUTION_COLUMNS)
    programs = dim_program(spark, gold("fact_postsecondary_award"))
    write_dimension(programs, DIM_PROGRAM, DIM_PROGRAM_COMMENT, DIM_PROGRAM_COLUMNS)
    geography = dim_geography(spark, gold(DIM_INSTITUTION), config.student_groups)
    write_dimension(geography, DIM_GEOGRAPHY, DIM_GEOGRAPHY_COMMENT, DIM_GEOGRAPHY_COLUMNS)

    wages = gold("fact_quarterly_wages")
    missing = missing_cpi_years(wages, config)
    if missing:
        raise ValueError(
            f"fact_quarterly_wages has wages of {', '.join(map(str, missing))}, which conf/gold.yaml earnings.cpi "
            "does not list; add the CPI of those years"
        )
    mart = student_pathways(
        graduation=gold("fact_k12_graduation"),
        persons=gold(DIM_PERSON),
        k12_enrollment=gold("fact_k12_enrollment"),
        program_participation=gold("fact_program_participation"),
        postsecondary_enrollment=gold("fact_postsecondary_enrollment"),
        postsecondary_awards=gold("fact_postsecondary_award"),
        wages=wages,
        config=config,
    )
    table = settings.table("gold", MART_STUDENT_PATHWAYS)
    counts[table] = write_gold_table(
        mart,
        table,
        comment=STUDENT_PATHWAYS_COMMENT,
        column_comments=PathwaysMeasures.from_config(config).comments,
        partition_by=MART_PARTITION_BY,
        sort_by=MART_KEYS,
    ).rows
    return counts
