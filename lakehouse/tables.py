"""Delta table I/O: every layer writes through these helpers so options and comments stay uniform."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from delta.exceptions import DeltaConcurrentModificationException
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


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


def sync_table(
    rows: DataFrame,
    table: str,
    keys: Sequence[str],
    *,
    comment: str | None = None,
    column_comments: Mapping[str, str] | None = None,
) -> None:
    """Make Delta `table` hold exactly `rows` (unique on `keys`) with one MERGE that touches only what changed.

    Rows whose key is new are inserted, rows whose key is gone are deleted, and rows whose values changed are
    updated; equal rows are left alone, so the table's Change Data Feed shows just the difference between the
    two versions (a re-run of an unchanged input commits no change). A missing table, or one whose columns
    differ from `rows`', is written whole instead (`write_table`, overwrite).
    """
    spark = rows.sparkSession
    if column_comments:
        rows = with_column_comments(rows, column_comments)
    if not table_exists(spark, table) or spark.read.table(table).schema.simpleString() != rows.schema.simpleString():
        write_table(rows, table, comment=comment)
        return
    # The MERGE plans its source several times over (the join that finds the touched files, the rewrite, the
    # change feed). Silver's sources are long plans (validation, standardization, a window, a join), and planning
    # them cost 10 to 20 s a table on a few hundred rows, three to five times the merge itself. Computed once here,
    # the source is a short plan over materialized rows. Delta materializes a source that is not a Delta scan
    # itself (a local checkpoint too), so it is told not to: the rows would be held twice.
    rows = rows.localCheckpoint(eager=True)
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in rows.columns if c not in keys)
    merge = DeltaTable.forName(spark, table).alias("t").merge(rows.alias("s"), on)
    if changed:
        merge = merge.whenMatchedUpdateAll(condition=changed)
    with session_setting(spark, MERGE_MATERIALIZE_SOURCE, "none"):
        merge.whenNotMatchedInsertAll().whenNotMatchedBySourceDelete().execute()
    if comment is not None and table_comment(spark, table) != comment:
        spark.sql(f"COMMENT ON TABLE {table} IS {_sql_string(comment)}")
    logger.info("wrote %s (merge)", table)


def insert_new(
    spark: SparkSession,
    rows: DataFrame,
    table: str,
    keys: Sequence[str],
    *,
    comment: str | None = None,
    among: str | None = None,
) -> int:
    """Append the rows of `rows` whose `keys` the table does not hold yet (a MERGE that only inserts); returns
    how many it appended. `among` (SQL on the table's columns, as `t.<column>`) limits the rows compared with.

    Idempotent: appending the same rows again (a re-run after a crash) adds nothing. Two jobs inserting the same
    key at once both read the table and Delta commits only the first; the second fails with a conflict and,
    tried again, inserts nothing. Creates the table (with `comment`) when it does not exist; columns of `rows`
    the table lacks are added first.
    """
    if not table_exists(spark, table):
        write_table(rows, table, mode="append", comment=comment)
        return rows.count()
    have = set(spark.read.table(table).columns)
    missing = [f for f in rows.schema.fields if f.name not in have]
    if missing:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
    on = " AND ".join([f"t.`{k}` <=> s.`{k}`" for k in keys] + ([f"({among})"] if among else []))
    metrics = DeltaTable.forName(spark, table).alias("t").merge(rows.alias("s"), on).whenNotMatchedInsertAll().execute()
    first = metrics.first()
    inserted = int(first["num_inserted_rows"]) if first else 0
    logger.info("wrote %s (%d new rows inserted)", table, inserted)
    return inserted


COMMIT_ATTEMPTS = 5
"""How often a write is tried when another job's commits conflict with it."""


CONFLICTS = tuple(
    f"io.delta.exceptions.{name}"
    for name in (
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
        "ConcurrentWriteException",
        "MetadataChangedException",
        "ProtocolChangedException",
    )
)
"""Delta's conflict exceptions. Some calls (DataFrameWriterV2's) raise them as a Py4JJavaError, not as
delta.exceptions' Python classes, so they are also recognized by their Java name."""


def is_conflict(exc: Exception) -> bool:
    """A conflict with another job's commit (Delta's optimistic concurrency: a concurrent append, delete, protocol
    or metadata change, two jobs creating one table) or a table another job created first."""
    if isinstance(exc, DeltaConcurrentModificationException):
        return True
    text = str(exc)
    return any(name in text for name in CONFLICTS) or (isinstance(exc, AnalysisException) and "already exists" in text)


def with_retries(
    write: Callable[[], T],
    what: str,
    attempts: int = COMMIT_ATTEMPTS,
    *,
    give_up: Callable[[], bool] | None = None,
) -> T | None:
    """`write()`, tried again (up to `attempts` times, after a short pause) while it conflicts with another job's
    commit; for writes that may simply be repeated (appends of a run's own rows, replacements of a scope).
    Between attempts `give_up()`, when given, may end the tries: then the result is None (the other job did
    the work)."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as exc:
            if not is_conflict(exc) or attempt == attempts:
                raise
            logger.warning("%s: a concurrent commit conflicted (attempt %d of %d): %s", what, attempt, attempts, exc)
            if give_up is not None and give_up():
                return None
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


MERGE_MATERIALIZE_SOURCE = "spark.databricks.delta.merge.materializeSource"
"""Session setting: whether a MERGE first materializes its source (auto: when it is not a deterministic Delta scan)."""
COMMIT_TAG = "spark.databricks.delta.commitInfo.userMetadata"
"""Session setting whose value Delta stores in every commit's userMetadata (DESCRIBE HISTORY shows it)."""


@contextmanager
def session_setting(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Session setting `key` is `value` inside the block, and what it was before after it."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def tagged_commits(spark: SparkSession, tag: str) -> AbstractContextManager[None]:
    """Every Delta commit made inside the block carries `tag` as its userMetadata (e.g. "run R stage S")."""
    return session_setting(spark, COMMIT_TAG, tag)


NON_DATA_OPERATIONS = frozenset(
    {
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "CHANGE COLUMN",
        "ADD COLUMNS",
        "UPGRADE PROTOCOL",
    }
)
"""Delta operations that change no rows (maintenance, properties, comments)."""


def last_write_tag(spark: SparkSession, table: str, depth: int = 50) -> str | None:
    """The userMetadata of the table's latest commit that wrote rows (maintenance and property commits are
    passed over); None when it has none or no such commit is among the latest `depth`."""
    for row in spark.sql(f"DESCRIBE HISTORY {table} LIMIT {int(depth)}").select("operation", "userMetadata").collect():
        if row["operation"] not in NON_DATA_OPERATIONS:
            tag = row["userMetadata"]
            return str(tag) if tag is not None else None
    return None


def latest_commit_version(spark: SparkSession, table: str) -> int:
    """The version of the table's latest commit."""
    return int(DeltaTable.forName(spark, table).history(1).select("version").first()[0])  # type: ignore[index]


def run_tag(run_id: str, stage: str) -> str:
    """The commit tag of a stage of a run: `run <run_id> stage <stage>`."""
    return f"run {run_id} stage {stage}"


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
        tag = f"  [{row['userMetadata']}]" if row["userMetadata"] else ""
        lines.append(f"{table} v{row['version']:<4} {row['timestamp']}  {row['operation']:<24} {figures}{tag}")
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
