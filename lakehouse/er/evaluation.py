"""Evaluation of a linkage run against the generator's ground truth: pairwise and cluster-level figures.

Ground truth maps (partner, feed, record_key) to the true person_key. Each silver feed table carries the feed's
record_key column and the record_id of its person record, so every record gets the true person most of its
rows belong to. Pair counts come from group-by aggregations (a group of n records holds n(n-1)/2 pairs) over
predicted persons, true persons and their intersections; no pair is ever enumerated.
"""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass
from datetime import UTC, datetime

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import Settings
from lakehouse.er.schema import METRIC_COMMENTS
from lakehouse.tables import table_exists, with_column_comments, write_table

logger = logging.getLogger(__name__)

BASELINE_MODEL = "deterministic-baseline"
PROBABILISTIC_MODEL = "fellegi-sunter"
GROUND_TRUTH_SCHEMA = "partner string, feed string, record_key string, person_key string"
METRICS_SCHEMA = (
    "run_id string, model string, n_records long, n_persons long, n_pairs_predicted long, n_pairs_true long, "
    "n_pairs_true_positive long, precision double, recall double, f1 double, evaluated_at timestamp, "
    "n_true_persons long, n_true_persons_split long, n_persons_merged long"
)


@dataclass(frozen=True)
class LinkageMetrics:
    """One row of mpi.linkage_metrics: the figures of one linkage run against ground truth.

    Pairwise precision, recall and F1 are None when their denominator is zero. The last three fields are the
    cluster-level view: true persons, true persons split over several predicted persons (missed links), and
    predicted persons holding records of several true persons (false links).
    """

    run_id: str
    model: str
    n_records: int
    n_persons: int
    n_pairs_predicted: int
    n_pairs_true: int
    n_pairs_true_positive: int
    precision: float | None
    recall: float | None
    f1: float | None
    evaluated_at: datetime
    n_true_persons: int
    n_true_persons_split: int
    n_persons_merged: int

    def mlflow_figures(self) -> dict[str, float]:
        """The figures worth a chart in MLflow (pairwise and cluster-level), leaving out the undefined ones."""
        figures = {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "evaluated_records": self.n_records,
            "true_persons_split_rate": ratio(self.n_true_persons_split, self.n_true_persons),
            "persons_merged_rate": ratio(self.n_persons_merged, self.n_persons),
        }
        return {k: float(v) for k, v in figures.items() if v is not None}


def n_pairs(n: Column) -> Column:
    """Number of unordered pairs in a group of `n` records: n(n-1)/2, exact in long arithmetic."""
    size = n.cast("long")
    return F.shiftright(size * (size - F.lit(1)), 1)


def feed_records(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """One row per silver feed row: partner, feed, record_key (string), record_id; None when no feed table exists.

    Feeds whose silver table does not exist (never delivered) are skipped.
    """
    parts: list[DataFrame] = []
    for feed in settings.feeds():
        table = settings.table("silver", feed.key)
        if not table_exists(spark, table):
            logger.info("evaluation: %s does not exist, feed skipped", table)
            continue
        parts.append(
            spark.read.table(table).select(
                F.lit(feed.partner).alias("partner"),
                F.lit(feed.name).alias("feed"),
                F.col(feed.record_key).cast("string").alias("record_key"),
                "record_id",
            )
        )
    if not parts:
        return None
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


def record_truth(feed_rows: DataFrame, truth: DataFrame) -> DataFrame:
    """One row per record_id with a known true person: record_id, person_key.

    The record's person_key is the one most of its feed rows belong to (ties: the smallest key). `feed_rows` is
    partner, feed, record_key, record_id; `truth` is partner, feed, record_key, person_key.
    """
    labelled = feed_rows.where(F.col("record_id").isNotNull()).join(
        truth.where(F.col("person_key").isNotNull()), on=["partner", "feed", "record_key"], how="inner"
    )
    votes = labelled.groupBy("record_id", "person_key").agg(F.count(F.lit(1)).alias("n_rows"))
    best = F.min(F.struct((-F.col("n_rows")).alias("minus_n_rows"), F.col("person_key").alias("person_key")))
    return votes.groupBy("record_id").agg(best.getField("person_key").alias("person_key"))


def pair_counts(assignments: DataFrame) -> DataFrame:
    """One row: n_records, n_persons, n_pairs_predicted, n_persons_merged, n_true_persons, n_pairs_true,
    n_true_persons_split, n_pairs_true_positive.

    `assignments` has one row per evaluated record: record_id, person_id (predicted), person_key (true).
    """
    cells = assignments.groupBy("person_id", "person_key").agg(F.count(F.lit(1)).alias("n"))
    predicted = (
        cells.groupBy("person_id")
        .agg(F.sum("n").alias("n"), F.count(F.lit(1)).alias("n_true_persons_in"))
        .agg(
            F.coalesce(F.sum("n"), F.lit(0)).cast("long").alias("n_records"),
            F.count(F.lit(1)).alias("n_persons"),
            F.coalesce(F.sum(n_pairs(F.col("n"))), F.lit(0)).cast("long").alias("n_pairs_predicted"),
            F.count_if(F.col("n_true_persons_in") > 1).alias("n_persons_merged"),
        )
    )
    true = (
        cells.groupBy("person_key")
        .agg(F.sum("n").alias("n"), F.count(F.lit(1)).alias("n_persons_in"))
        .agg(
            F.count(F.lit(1)).alias("n_true_persons"),
            F.coalesce(F.sum(n_pairs(F.col("n"))), F.lit(0)).cast("long").alias("n_pairs_true"),
            F.count_if(F.col("n_persons_in") > 1).alias("n_true_persons_split"),
        )
    )
    both = cells.agg(F.coalesce(F.sum(n_pairs(F.col("n"))), F.lit(0)).cast("long").alias("n_pairs_true_positive"))
    return predicted.crossJoin(true).crossJoin(both)


def _pairs_by_partner(counts: DataFrame, group: str, name: str) -> DataFrame:
    """partner_l, partner_r (partner_l <= partner_r), <name>: record pairs inside the groups of `group`.

    `counts` has one row per group and partner with n records; a group's pairs between two partners are
    n_l * n_r, within one partner n(n-1)/2. One small self-join per group (at most one row per partner).
    """
    left = counts.select(F.col(group), F.col("partner").alias("partner_l"), F.col("n").alias("n_l"))
    right = counts.select(F.col(group), F.col("partner").alias("partner_r"), F.col("n").alias("n_r"))
    pairs = F.when(F.col("partner_l") == F.col("partner_r"), n_pairs(F.col("n_l"))).otherwise(
        F.col("n_l").cast("long") * F.col("n_r").cast("long")
    )
    return (
        left.join(right, on=group, how="inner")
        .where(F.col("partner_l") <= F.col("partner_r"))
        .groupBy("partner_l", "partner_r")
        .agg(F.sum(pairs).cast("long").alias(name))
    )


def partner_pair_counts(assignments: DataFrame) -> DataFrame:
    """One row per partner pair: partner_l, partner_r, n_pairs_predicted, n_pairs_true, n_pairs_true_positive.

    `assignments` has one row per evaluated record: record_id, partner, person_id (predicted), person_key (true).
    Pairs are counted from group sizes per partner, never enumerated.
    """
    predicted = assignments.groupBy("person_id", "partner").agg(F.count(F.lit(1)).alias("n"))
    true = assignments.groupBy("person_key", "partner").agg(F.count(F.lit(1)).alias("n"))
    both = (
        assignments.withColumn("cell", F.concat_ws("|", "person_id", "person_key"))
        .groupBy("cell", "partner")
        .agg(F.count(F.lit(1)).alias("n"))
    )
    keys = ["partner_l", "partner_r"]
    return (
        _pairs_by_partner(true, "person_key", "n_pairs_true")
        .join(_pairs_by_partner(predicted, "person_id", "n_pairs_predicted"), on=keys, how="full")
        .join(_pairs_by_partner(both, "cell", "n_pairs_true_positive"), on=keys, how="full")
        .select(
            *keys,
            *[
                F.coalesce(F.col(c), F.lit(0)).cast("long").alias(c)
                for c in ("n_pairs_predicted", "n_pairs_true", "n_pairs_true_positive")
            ],
        )
    )


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, None when the denominator is zero."""
    return numerator / denominator if denominator else None


def f1_score(precision: float | None, recall: float | None) -> float | None:
    """Harmonic mean of precision and recall; None when either is None, 0.0 when both are zero."""
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def read_ground_truth(spark: SparkSession, path: str) -> DataFrame | None:
    """The ground truth Parquet dataset at `path` (partner, feed, record_key, person_key); None when absent."""
    try:
        return spark.read.schema(GROUND_TRUTH_SCHEMA).parquet(path)
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            return None
        raise


def evaluate(spark: SparkSession, settings: Settings, run_id: str) -> LinkageMetrics | None:
    """Pairwise precision, recall and F1 of mpi.crosswalk against ground truth, appended to mpi.linkage_metrics.

    Returns None (and writes nothing) when matching.evaluate is false, when there is no ground truth at
    settings.storage.path("ground_truth") or when no silver feed table exists. Records without a known true
    person are left out of every figure. Raises ValueError when mpi.crosswalk does not exist.
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    if settings.matching is not None and not settings.matching.evaluate:
        logger.info("evaluation: matching.evaluate is false, skipped")
        return None
    crosswalk_table = settings.table("mpi", "crosswalk")
    if not table_exists(spark, crosswalk_table):
        raise ValueError(f"{crosswalk_table} does not exist: run link before evaluate")
    truth_path = settings.storage.path("ground_truth")
    truth = read_ground_truth(spark, truth_path)
    if truth is None:
        logger.info("evaluation: no ground truth at %s, skipped", truth_path)
        return None
    feed_rows = feed_records(spark, settings)
    if feed_rows is None:
        logger.warning("evaluation: ground truth exists but no silver feed table does, skipped")
        return None

    crosswalk = spark.read.table(crosswalk_table).select("record_id", "person_id", "partner", "run_id")
    labelled = crosswalk.join(record_truth(feed_rows, truth), on="record_id", how="left")
    coverage = labelled.agg(
        F.count_if(F.col("person_key").isNull()).alias("n_records_without_truth"),
        F.count_if(F.col("run_id") != F.lit(run_id)).alias("n_records_of_other_runs"),
    )
    assignments = (
        labelled.where(F.col("person_key").isNotNull())
        .select("record_id", "person_id", "person_key", "partner")
        .localCheckpoint(eager=True)
    )
    row = pair_counts(assignments).crossJoin(coverage).first()
    if row is None:
        raise RuntimeError("evaluation: the aggregate query returned no row")
    if row["n_records_without_truth"]:
        logger.warning("evaluation: %d crosswalk records have no ground truth", row["n_records_without_truth"])
    if row["n_records_of_other_runs"]:
        logger.warning(
            "evaluation: %d crosswalk records were linked by another run than %s",
            row["n_records_of_other_runs"],
            run_id,
        )

    tp, predicted, true = int(row["n_pairs_true_positive"]), int(row["n_pairs_predicted"]), int(row["n_pairs_true"])
    precision, recall = ratio(tp, predicted), ratio(tp, true)
    metrics = LinkageMetrics(
        run_id=run_id,
        model=PROBABILISTIC_MODEL
        if settings.matching is not None and settings.matching.engine == "probabilistic"
        else BASELINE_MODEL,
        n_records=int(row["n_records"]),
        n_persons=int(row["n_persons"]),
        n_pairs_predicted=predicted,
        n_pairs_true=true,
        n_pairs_true_positive=tp,
        precision=precision,
        recall=recall,
        f1=f1_score(precision, recall),
        evaluated_at=datetime.now(UTC),
        n_true_persons=int(row["n_true_persons"]),
        n_true_persons_split=int(row["n_true_persons_split"]),
        n_persons_merged=int(row["n_persons_merged"]),
    )
    write_metrics(spark, settings, metrics)
    write_partner_metrics(spark, settings, partner_pair_counts(assignments), run_id)
    logger.info(
        "evaluation of run %s: %d records, precision %s, recall %s, f1 %s (%d true persons split, %d persons merged)",
        run_id,
        metrics.n_records,
        metrics.precision,
        metrics.recall,
        metrics.f1,
        metrics.n_true_persons_split,
        metrics.n_persons_merged,
    )
    return metrics


def write_metrics(spark: SparkSession, settings: Settings, metrics: LinkageMetrics) -> None:
    """Append one row to mpi.linkage_metrics (created with its comments on first use)."""
    table = settings.table("mpi", "linkage_metrics")
    frame = spark.createDataFrame([astuple(metrics)], METRICS_SCHEMA).transform(with_column_comments, METRIC_COMMENTS)
    comment = "one row per linkage run evaluated against ground truth (pairwise and cluster-level figures)"
    write_table(frame, table, mode="append", comment=None if table_exists(spark, table) else comment)


PARTNER_METRICS_COMMENTS = {
    "partner_l": "partner of one record of the pair (partner_l <= partner_r)",
    "partner_r": "partner of the other record",
    "n_pairs_predicted": "record pairs between the two partners in the same predicted person",
    "n_pairs_true": "record pairs between the two partners of the same true person",
    "n_pairs_true_positive": "pairs in the same predicted and the same true person",
    "precision": "n_pairs_true_positive / n_pairs_predicted",
    "recall": "n_pairs_true_positive / n_pairs_true",
}


def write_partner_metrics(spark: SparkSession, settings: Settings, counts: DataFrame, run_id: str) -> None:
    """Append this run's figures per partner pair to mpi.linkage_metrics_by_partner and log each pair."""
    rows = counts.orderBy("partner_l", "partner_r").collect()
    figures = []
    for r in rows:
        tp, predicted, true = int(r["n_pairs_true_positive"]), int(r["n_pairs_predicted"]), int(r["n_pairs_true"])
        precision, recall = ratio(tp, predicted), ratio(tp, true)
        figures.append(
            (
                run_id,
                r["partner_l"],
                r["partner_r"],
                predicted,
                true,
                tp,
                precision,
                recall,
                f1_score(precision, recall),
            )
        )
        logger.info(
            "evaluation %s-%s: %d true pairs, %d predicted, precision %s, recall %s",
            r["partner_l"],
            r["partner_r"],
            true,
            predicted,
            f"{precision:.4f}" if precision is not None else "-",
            f"{recall:.4f}" if recall is not None else "-",
        )
    schema = (
        "run_id string, partner_l string, partner_r string, n_pairs_predicted long, n_pairs_true long, "
        "n_pairs_true_positive long, precision double, recall double, f1 double"
    )
    table = settings.table("mpi", "linkage_metrics_by_partner")
    write_table(
        spark.createDataFrame(figures, schema).transform(with_column_comments, PARTNER_METRICS_COMMENTS),
        table,
        mode="append",
        comment=None
        if table_exists(spark, table)
        else "one row per linkage run and partner pair: pairwise figures against ground truth (K-12 to college, ...)",
    )
