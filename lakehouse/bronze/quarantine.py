"""`quarantine.rejected_rows` (shared by bronze and silver) and the replace-rows Delta write both use.

Rows are replaced, never blindly appended: a stage re-run (after a crash, or a silver rebuild) first
removes what the same stage wrote for the same scope, in the same commit, so a re-run gives the same
table. Delta's overwrite-by-condition (replaceWhere, here through DataFrameWriterV2 `overwrite`) does
exactly that: one commit deletes the rows matching the condition and adds the new ones, and it refuses
new rows that do not match the condition. (`saveAsTable` with the replaceWhere option does the same but
also tries to alter the Hive metastore schema, which fails noisily for Delta tables.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import Settings
from lakehouse.tables import table_exists, write_table

logger = logging.getLogger(__name__)

QUARANTINE_TABLE = "rejected_rows"
QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("stage", T.StringType()),
        T.StructField("partner", T.StringType()),
        T.StructField("feed", T.StringType()),
        T.StructField("delivery_id", T.StringType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("line_number", T.LongType()),
        T.StructField("rule", T.StringType()),
        T.StructField("column", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("raw", T.StringType()),
        T.StructField("rejected_at", T.TimestampType()),
    ]
)
QUARANTINE_COMMENT = (
    "One row per rejected line (stage bronze: the raw line) or rejected bronze row (stage silver: its raw "
    "values as JSON), with the rule it broke and a reason naming file, line and column. Restricted."
)
QUARANTINE_COLUMN_COMMENTS = {
    "stage": "bronze (line could not be parsed) or silver (row failed a type, required or allowed-values check)",
    "line_number": "1-based physical line in source_file",
    "rule": "short machine name of the broken rule, e.g. column_count, json, line_length, type, required",
}


def problem_text(column: Column, rule: Column, detail: Column) -> Column:
    """ "column C: rule R: detail", or "rule R: detail" when the problem has no column: how every quarantine
    reason (bronze and silver) names a problem, after its "file F line L: " place."""
    return F.when(column.isNull(), F.format_string("rule %s: %s", rule, detail)).otherwise(
        F.format_string("column %s: rule %s: %s", column, rule, detail)
    )


def replace_rows(
    df: DataFrame,
    table: str,
    condition: Column,
    *,
    partition_by: Sequence[str] = (),
    comment: str | None = None,
    column_comments: Mapping[str, str] | None = None,
) -> None:
    """Replace the rows of Delta `table` that match `condition` by `df`, in one commit.

    The first write creates the table (through `write_table`, with its comments); later writes use
    Delta's replaceWhere, which also checks that every row of `df` matches `condition`.
    """
    if not table_exists(df.sparkSession, table):
        write_table(
            df,
            table,
            mode="overwrite",
            partition_by=partition_by,
            comment=comment,
            column_comments=column_comments,
        )
        return
    df.writeTo(table).overwrite(condition)
    logger.info("wrote %s (replaced the rows where %s)", table, condition)


def quarantine_table(settings: Settings) -> str:
    return settings.table("quarantine", QUARANTINE_TABLE)


def to_quarantine_schema(rows: DataFrame) -> DataFrame:
    """`rows` with exactly the quarantine columns, in order and with their types."""
    return rows.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in QUARANTINE_SCHEMA.fields])


def replace_quarantine(settings: Settings, rows: DataFrame, condition: Column) -> None:
    """Replace the quarantine rows matching `condition` (one stage and scope) by `rows`."""
    replace_rows(
        to_quarantine_schema(rows),
        quarantine_table(settings),
        condition,
        partition_by=("stage",),
        comment=QUARANTINE_COMMENT,
        column_comments=QUARANTINE_COLUMN_COMMENTS,
    )


def empty_quarantine(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], QUARANTINE_SCHEMA)
