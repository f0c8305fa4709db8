"""Data-quality expectations of a feed (conf/partners/<partner>.yaml, `expectations:`), checked in silver.

As Delta Live Tables' expectations work: each has a name, a check and an action on violation.

- Checks, on the rows that passed the contract (types, required, allowed values), with non-identity columns
  typed (a date column is a date) and identity columns as delivered (strings):
  - `expect`: a SQL boolean expression; a row violates it when it is false (null, unknown, passes, as in a
    SQL CHECK constraint: write `x IS NOT NULL AND ...` to require a value);
  - `unique`: these columns together identify one row among the feed's rows;
  - `reference`: the column's value is a key of a reference table in lakehouse/data (optionally only its
    rows matching `where`), or null.
- Actions: `warn` counts and reports the rows; `drop` sends them to quarantine (rule `expectation`, the
  expectation's name in the reason) so they never reach silver; `fail` stops the silver stage before it
  writes anything, naming the expectation and a violating line.

Every expectation's result (rows checked, rows violating, outcome, an example line) is appended per run to
ops.expectation_results and summarized at the end of the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.config import ExpectationConfig, FeedConfig, Settings
from lakehouse.pipeline import PipelineError
from lakehouse.reference import read_table
from lakehouse.silver.validate import failure, typed_value
from lakehouse.tables import table_exists, write_table

logger = logging.getLogger(__name__)

RESULTS_TABLE = "expectation_results"
RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("partner", T.StringType()),
        T.StructField("feed", T.StringType()),
        T.StructField("expectation", T.StringType()),
        T.StructField("check", T.StringType()),
        T.StructField("on_violation", T.StringType()),
        T.StructField("rows_checked", T.LongType()),
        T.StructField("rows_violating", T.LongType()),
        T.StructField("outcome", T.StringType()),
        T.StructField("example", T.StringType()),
        T.StructField("checked_at", T.TimestampType()),
    ]
)
RESULTS_COMMENT = (
    "One row per expectation of a feed per pipeline run: rows checked (the rows that passed the feed contract), "
    "rows violating, and the outcome: passed, warned (counted only), dropped (quarantined) or failed (the run "
    "stopped before silver was written). example: the first violating line."
)
RAW_PREFIX = "_raw_"
FLAG_PREFIX = "_expect_"
VALID = "_valid_before_expectations"


class ExpectationFailedError(PipelineError):
    """A `fail` expectation has violating rows; the message names the feed, expectation and a line."""


@dataclass(frozen=True)
class ExpectationResult:
    partner: str
    feed: str
    expectation: ExpectationConfig
    rows_checked: int
    rows_violating: int
    example: str | None

    @property
    def outcome(self) -> str:
        if self.rows_violating == 0:
            return "passed"
        return {"warn": "warned", "drop": "dropped", "fail": "failed"}[self.expectation.on_violation]

    def describe(self) -> str:
        where = f"; first: {self.example}" if self.example else ""
        return (
            f"{self.partner}/{self.feed} expectation {self.expectation.name} ({self.expectation.describe()}): "
            f"{self.rows_violating} of {self.rows_checked} rows violate it, {self.outcome}{where}"
        )


def flag_column(index: int) -> str:
    return f"{FLAG_PREFIX}{index}"


def _reference_keys(spark: SparkSession, expectation: ExpectationConfig) -> DataFrame:
    reference = expectation.reference
    assert reference is not None
    rows = [r for r in read_table(reference.table) if all(r.get(k) == v for k, v in reference.where.items())]
    keys = sorted({r[reference.key] for r in rows})
    return spark.createDataFrame([(k, True) for k in keys], "key string, known boolean")


def with_expectations(checked: DataFrame, feed: FeedConfig) -> DataFrame:
    """Add one boolean flag column per expectation (true: the row passed the contract and violates it), and
    a failure (rule `expectation`) to `failures` for each violated `drop` expectation.

    `checked` has `failures` (from `validate.with_failures`) and the feed's columns as bronze strings; the
    checks see the non-identity columns typed (the raw strings wait under a prefixed name meanwhile). The
    result has the same columns as `checked` plus the flags.
    """
    if not feed.expectations:
        return checked
    spark = checked.sparkSession
    typed = [c for c in feed.columns if not c.identity]
    raw_names = [c.name for c in typed]
    frame = checked.withColumnsRenamed({name: f"{RAW_PREFIX}{name}" for name in raw_names})
    frame = frame.withColumns({c.name: typed_value(c, F.col(f"{RAW_PREFIX}{c.name}")) for c in typed}).withColumn(
        VALID, F.size("failures") == F.lit(0)
    )
    for index, expectation in enumerate(feed.expectations):
        name = flag_column(index)
        if expectation.expect is not None:
            violates = ~F.coalesce(F.expr(expectation.expect), F.lit(True))
        elif expectation.unique:
            window = Window.partitionBy(*[F.col(c) for c in expectation.unique])
            violates = F.count(F.when(F.col(VALID), F.lit(1))).over(window) > F.lit(1)
        else:
            reference = expectation.reference
            assert reference is not None
            keys = _reference_keys(spark, expectation).withColumnRenamed("known", f"{name}_known")
            frame = frame.join(F.broadcast(keys), F.col(reference.column).cast("string") == F.col("key"), "left").drop(
                "key"
            )
            violates = F.col(reference.column).isNotNull() & F.col(f"{name}_known").isNull()
        frame = frame.withColumn(name, F.col(VALID) & violates)
    dropped = [
        F.when(
            F.col(flag_column(i)),
            failure("expectation", e.column(), F.lit(f"violates expectation {e.name} ({e.describe()})")),
        )
        for i, e in enumerate(feed.expectations)
        if e.on_violation == "drop"
    ]
    if dropped:
        frame = frame.withColumn("failures", F.concat(F.col("failures"), F.array_compact(F.array(*dropped))))
    helpers = [f"{flag_column(i)}_known" for i in range(len(feed.expectations))]
    frame = frame.drop(*raw_names, VALID, *[h for h in helpers if h in frame.columns])
    return frame.withColumnsRenamed({f"{RAW_PREFIX}{name}": name for name in raw_names})


def expectation_counts(feed: FeedConfig) -> list[Column]:
    """Aggregate columns (for one pass with the feed's other counts): violating rows and the first violating
    line of each expectation, named `_expect_<i>` and `_expect_<i>_example`."""
    columns: list[Column] = []
    for index in range(len(feed.expectations)):
        flag = F.col(flag_column(index))
        example = F.min(F.when(flag, F.struct("source_file", "line_number")))
        columns += [F.count_if(flag).alias(flag_column(index)), example.alias(f"{flag_column(index)}_example")]
    return columns


def results_from_counts(feed: FeedConfig, counts: dict[str, object], rows_checked: int) -> list[ExpectationResult]:
    results = []
    for index, expectation in enumerate(feed.expectations):
        example = counts.get(f"{flag_column(index)}_example")
        place = None
        if example is not None:
            place = f"file {example['source_file']} line {example['line_number']}"  # type: ignore[index]
        violating = counts.get(flag_column(index))
        results.append(
            ExpectationResult(
                partner=feed.partner,
                feed=feed.name,
                expectation=expectation,
                rows_checked=rows_checked,
                rows_violating=int(violating) if isinstance(violating, int) else 0,
                example=place,
            )
        )
    return results


def record_results(spark: SparkSession, settings: Settings, run_id: str, results: list[ExpectationResult]) -> None:
    """Append this run's results to ops.expectation_results and log each that did not pass."""
    if not results:
        return
    checked_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    rows = [
        (
            run_id,
            r.partner,
            r.feed,
            r.expectation.name,
            r.expectation.describe(),
            r.expectation.on_violation,
            r.rows_checked,
            r.rows_violating,
            r.outcome,
            r.example,
            checked_at,
        )
        for r in results
    ]
    table = settings.table("ops", RESULTS_TABLE)
    is_new = not table_exists(spark, table)
    write_table(
        spark.createDataFrame(rows, RESULTS_SCHEMA), table, mode="append", comment=RESULTS_COMMENT if is_new else None
    )
    for result in results:
        if result.outcome != "passed":
            log = logger.error if result.outcome == "failed" else logger.warning
            log("%s", result.describe())


def raise_on_failures(results: list[ExpectationResult]) -> None:
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        raise ExpectationFailedError(
            "; ".join(r.describe() for r in failed) + ". Silver was not written: fix the delivery "
            "(or the expectation) and run again."
        )
