"""The deterministic linkage run: silver.person_records -> mpi.matched_pairs, crosswalk, history, capped_blocks.

Blocking rules come from conf/matching.yaml; in this baseline every candidate pair is a match. The matched pairs
are clustered by connected components and every cluster (a singleton included) gets a person id derived from
its smallest record_id. Tables written: mpi.capped_blocks, mpi.matched_pairs and mpi.crosswalk are replaced
(the state of this run); mpi.person_id_history is appended to. The history is written before the crosswalk is
replaced, because it compares the previous crosswalk with the new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import MatchingSettings, Settings
from lakehouse.er.blocking import block
from lakehouse.er.components import connected_components
from lakehouse.er.ids import crosswalk, person_id_history
from lakehouse.er.schema import (
    CAPPED_COMMENTS,
    CROSSWALK_COMMENTS,
    HISTORY_COMMENTS,
    PAIR_COMMENTS,
    with_column_comments,
)
from lakehouse.tables import table_exists, write_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkResult:
    """Figures of one linkage run."""

    n_records: int
    n_pairs: int
    n_persons: int
    n_capped_blocks: int
    iterations: int
    largest_cluster: int


def matching_settings(settings: Settings) -> MatchingSettings:
    """settings.matching, or ValueError when conf/matching.yaml was not loaded."""
    if settings.matching is None:
        raise ValueError("settings.matching is not set: load the settings with conf/matching.yaml")
    return settings.matching


def count_records(records: DataFrame) -> int:
    """Number of person records; ValueError when a record_id is null or not unique."""
    row = records.agg(
        F.count(F.lit(1)).alias("n_records"),
        F.count("record_id").alias("n_ids"),
        F.count_distinct("record_id").alias("n_distinct_ids"),
    ).first()
    if row is None:
        raise RuntimeError("counting person records returned no row")
    n_records, n_ids, n_distinct = int(row["n_records"]), int(row["n_ids"]), int(row["n_distinct_ids"])
    if n_ids != n_records:
        raise ValueError(f"person_records: {n_records - n_ids} records have a null record_id")
    if n_distinct != n_records:
        raise ValueError(f"person_records: record_id is not unique ({n_records - n_distinct} duplicates)")
    return n_records


def crosswalk_figures(crosswalk_df: DataFrame) -> tuple[int, int]:
    """(number of persons, size of the largest); RuntimeError when two clusters got the same person id."""
    row = (
        crosswalk_df.groupBy("person_id")
        .agg(F.count(F.lit(1)).alias("n_records"), F.max("cluster_size").alias("cluster_size"))
        .agg(
            F.count(F.lit(1)).alias("n_persons"),
            F.coalesce(F.max("n_records"), F.lit(0)).alias("largest_cluster"),
            F.count_if(F.col("n_records") != F.col("cluster_size")).alias("n_collisions"),
        )
        .first()
    )
    if row is None:
        raise RuntimeError("crosswalk figures returned no row")
    if row["n_collisions"]:
        raise RuntimeError(f"{row['n_collisions']} person ids are shared by two clusters (hash collision)")
    return int(row["n_persons"]), int(row["largest_cluster"])


def link(spark: SparkSession, settings: Settings, run_id: str) -> LinkResult:
    """Link silver.person_records with the deterministic rules of conf/matching.yaml and write the mpi tables.

    Raises ValueError on a missing input table, empty run_id or malformed rules, and
    ComponentsNotConvergedError when clustering needs more than matching.max_iterations iterations.
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    matching = matching_settings(settings)
    source = settings.table("silver", "person_records")
    if not table_exists(spark, source):
        raise ValueError(f"{source} does not exist: build silver before linking")
    records = spark.read.table(source)
    if "partner" not in records.columns:
        raise ValueError(f"{source} has no partner column")
    n_records = count_records(records)
    logger.info("link run %s: %d person records, %d rules", run_id, n_records, len(matching.rules))

    blocking = block(records, matching.rules)
    capped_table = settings.table("mpi", "capped_blocks")
    write_table(
        blocking.capped.withColumn("run_id", F.lit(run_id)).transform(with_column_comments, CAPPED_COMMENTS),
        capped_table,
        comment="one row per block left out of a blocking rule because it was larger than max_block_size",
    )
    n_capped = spark.read.table(capped_table).count()
    if n_capped:
        logger.warning(
            "link run %s: %d blocks above max_block_size were capped (see %s)", run_id, n_capped, capped_table
        )

    pairs_table = settings.table("mpi", "matched_pairs")
    write_table(
        blocking.pairs.withColumn("run_id", F.lit(run_id)).transform(with_column_comments, PAIR_COMMENTS),
        pairs_table,
        comment="one row per matched record pair (record_id_l < record_id_r) with the first rule that matched it",
    )
    pairs = spark.read.table(pairs_table)  # reading the written table cuts the blocking lineage
    n_pairs = pairs.count()
    logger.info("link run %s: %d matched pairs", run_id, n_pairs)

    components = connected_components(pairs, matching.max_iterations)
    linked_at = datetime.now(UTC)
    new_crosswalk = crosswalk(records, components.labels, run_id, linked_at).localCheckpoint(eager=True)

    crosswalk_table = settings.table("mpi", "crosswalk")
    previous = spark.read.table(crosswalk_table) if table_exists(spark, crosswalk_table) else None
    history_table = settings.table("mpi", "person_id_history")
    write_table(
        person_id_history(previous, new_crosswalk, run_id, linked_at).transform(with_column_comments, HISTORY_COMMENTS),
        history_table,
        mode="append",
        comment=None if table_exists(spark, history_table) else "one row per person id event per linkage run",
    )
    write_table(
        new_crosswalk.transform(with_column_comments, CROSSWALK_COMMENTS),
        crosswalk_table,
        comment="one row per person record: the person id it belongs to in the latest linkage run",
    )
    n_persons, largest = crosswalk_figures(new_crosswalk)
    result = LinkResult(
        n_records=n_records,
        n_pairs=n_pairs,
        n_persons=n_persons,
        n_capped_blocks=n_capped,
        iterations=components.iterations,
        largest_cluster=largest,
    )
    logger.info(
        "link run %s: %d records -> %d persons (largest %d records), %d pairs, %d capped blocks, %d iterations",
        run_id,
        result.n_records,
        result.n_persons,
        result.largest_cluster,
        result.n_pairs,
        result.n_capped_blocks,
        result.iterations,
    )
    return result
