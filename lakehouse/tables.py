"""Delta table I/O: every layer writes through these helpers so options and comments stay uniform."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings

logger = logging.getLogger(__name__)


def table_exists(spark: SparkSession, table: str) -> bool:
    return bool(spark.catalog.tableExists(table))


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def with_column_comments(df: DataFrame, comments: Mapping[str, str]) -> DataFrame:
    """The same columns, each named in `comments` carrying its comment in the schema metadata.

    Delta keeps the metadata with the schema, so the catalog shows the comments without one ALTER TABLE
    commit per column, and an overwrite does not lose them. Raises ValueError for a comment on a column
    `df` does not have.
    """
    unknown = set(comments) - set(df.columns)
    if unknown:
        raise ValueError(f"comments name columns that do not exist: {', '.join(sorted(unknown))}")
    return df.select(
        *[F.col(c).alias(c, metadata={"comment": comments[c]}) if c in comments else F.col(c) for c in df.columns]
    )


CHANGE_DATA_FEED = "delta.enableChangeDataFeed"


def write_table(
    df: DataFrame,
    table: str,
    *,
    mode: str = "overwrite",
    partition_by: Sequence[str] = (),
    comment: str | None = None,
    column_comments: Mapping[str, str] | None = None,
    properties: Mapping[str, str] | None = None,
    merge_schema: bool = False,
) -> None:
    """Write `df` to Delta table `table` (catalog name) in one commit, then set its comments.

    `mode="overwrite"` replaces data and schema atomically (readers see the old or the new version,
    never a mix); `mode="append"` adds one commit, and with `merge_schema` adds the columns the table lacks
    (an append-only log whose rows gained fields; older rows read them as null).
    """
    if mode not in ("overwrite", "append"):
        raise ValueError(f"mode must be 'overwrite' or 'append', got {mode!r}")
    if column_comments:
        df = with_column_comments(df, column_comments)  # in the schema: the same commit as the data
    writer = df.write.format("delta").mode(mode)
    if mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    elif merge_schema:
        writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.saveAsTable(table)
    spark = df.sparkSession
    if comment is not None:
        spark.sql(f"COMMENT ON TABLE {table} IS {_sql_string(comment)}")
    if properties:
        props = ", ".join(f"{_sql_string(k)} = {_sql_string(v)}" for k, v in properties.items())
        spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({props})")
    logger.info("wrote %s (%s)", table, mode)


def merge_into(spark: SparkSession, updates: DataFrame, table: str, keys: Sequence[str]) -> None:
    """Upsert `updates` into Delta `table` on `keys`: update matches, insert the rest."""
    if not keys:
        raise ValueError("merge_into needs at least one key column")
    on = " AND ".join(f"t.{k} <=> s.{k}" for k in keys)
    (
        DeltaTable.forName(spark, table)
        .alias("t")
        .merge(updates.alias("s"), on)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def table_location(spark: SparkSession, table: str) -> str:
    """Storage location of a catalog table (where another Delta reader can open it)."""
    row = spark.sql(f"DESCRIBE DETAIL {table}").select("location").first()
    return str(row["location"]) if row else ""


def table_comment(spark: SparkSession, table: str) -> str:
    row = spark.sql(f"DESCRIBE DETAIL {table}").select("description").first()
    return str(row["description"] or "") if row else ""


def table_history(spark: SparkSession, table: str, limit: int = 20) -> list[str]:
    """One line per Delta version of `table`, newest first: version, time, operation and row figures."""
    lines = []
    for row in spark.sql(f"DESCRIBE HISTORY {table} LIMIT {int(limit)}").collect():
        metrics = row["operationMetrics"] or {}
        figures = ", ".join(
            f"{k}={v}" for k, v in sorted(metrics.items()) if k.startswith("num") and k.endswith(("Rows", "Files"))
        )
        lines.append(f"{table} v{row['version']:<4} {row['timestamp']}  {row['operation']:<24} {figures}")
    return lines


def enable_change_data_feed(spark: SparkSession, database: str) -> list[str]:
    """Turn on Delta's Change Data Feed for every table of `database` that does not have it; the tables changed."""
    changed = []
    for item in spark.catalog.listTables(database):
        table = f"{database}.{item.name}"
        properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}
        if properties.get(CHANGE_DATA_FEED) != "true":
            spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('{CHANGE_DATA_FEED}' = 'true')")
            changed.append(table)
    return changed


def maintain_tables(spark: SparkSession, databases: Sequence[str], retain_hours: int) -> list[str]:
    """OPTIMIZE then VACUUM (RETAIN `retain_hours` HOURS) every Delta table of `databases`; one line per table."""
    lines = []
    for database in databases:
        for item in spark.catalog.listTables(database):
            table = f"{database}.{item.name}"
            optimized = spark.sql(f"OPTIMIZE {table}").select("metrics.numFilesAdded", "metrics.numFilesRemoved")
            added, removed = optimized.first() or (0, 0)
            spark.sql(f"VACUUM {table} RETAIN {int(retain_hours)} HOURS")
            lines.append(f"{table}: compacted {removed} files into {added}; vacuumed, keeping {retain_hours} h")
            logger.info("%s", lines[-1])
    return lines


def table_versions(spark: SparkSession, settings: Settings, layers: Sequence[str]) -> dict[str, int]:
    """`database.table` -> latest Delta version of every table of `layers`, from the tables' commit files.

    One glob per layer over `<warehouse>/<database>.db/*/_delta_log/*.json` through Hadoop's FileSystem (a
    listing, no Spark job): cheap enough to take before and after every stage, on local disk or S3.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    versions: dict[str, int] = {}
    warehouse = settings.storage.path("warehouse").rstrip("/")
    for layer in layers:
        database = getattr(settings.databases, layer)
        pattern = jvm.org.apache.hadoop.fs.Path(f"{warehouse}/{database}.db/*/_delta_log/*.json")
        for status in pattern.getFileSystem(conf).globStatus(pattern) or []:
            path = status.getPath()
            table = path.getParent().getParent().getName()
            stem = path.getName().removesuffix(".json")
            if stem.isdigit():
                key = f"{database}.{table}"
                versions[key] = max(versions.get(key, -1), int(stem))
    return versions
