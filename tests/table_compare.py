"""Two lakehouses built from the same delivery hold the same rows: what the fault and cluster tests compare.

Columns that name a run or a time are left out, and floating-point figures are compared to 9 decimals: Spark
sums them in an order that varies from run to run (and with the partitioning), so a model trained twice differs
in the last bits.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tests.conftest import CliLakehouse

VOLATILE = {"run_id", "mlflow_run_id"}
"""Columns that name a run; timestamps are left out of the comparison too."""
RUN_LOGS = {"ops.pipeline_runs", "ops.expectation_results"}
"""Tables that log every attempt of a run."""
MODEL_LOGS = {"mpi.linkage_models", "mpi.linkage_metrics", "mpi.linkage_metrics_by_partner"}
"""Tables that log every link run's model and figures."""
MODEL_LOG_ONLY = {"trained", "model_json"}
"""Columns of the model log that differ between two trainings of one model (time, unrounded figures)."""


def read_tables(spark: SparkSession, lakehouse: CliLakehouse) -> dict[str, DataFrame]:
    """`layer.table` -> the table read from its Delta folder (each lakehouse has its own metastore)."""
    return {name: spark.read.format("delta").load(str(path)) for name, path in lakehouse.table_paths().items()}


def comparable(frame: DataFrame, drop: set[str] = VOLATILE) -> DataFrame:
    """The frame without columns that name a run or a time, doubles rounded to 9 decimals."""
    columns = []
    for f in frame.schema.fields:
        if f.name in drop or isinstance(f.dataType, (T.TimestampType, T.TimestampNTZType)):
            continue
        is_float = isinstance(f.dataType, (T.DoubleType, T.FloatType))
        columns.append(F.round(F.col(f"`{f.name}`"), 9).alias(f.name) if is_float else F.col(f"`{f.name}`"))
    return frame.select(*columns)


def assert_same_rows(table: str, got: DataFrame, want: DataFrame, drop: set[str] = VOLATILE) -> None:
    """`got` holds exactly `want`'s rows (as multisets), compared as `comparable` frames."""
    got, want = comparable(got, drop), comparable(want, drop)
    assert got.columns == want.columns, table
    extra, missing = got.exceptAll(want), want.exceptAll(got)
    n_extra, n_missing = extra.count(), missing.count()
    assert (n_extra, n_missing) == (0, 0), (
        f"{table}: {n_extra} rows only in the tested lakehouse, {n_missing} only in the reference; "
        f"e.g. {extra.limit(2).collect()} / {missing.limit(2).collect()}"
    )
