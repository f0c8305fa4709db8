"""Person ids, the crosswalk and the person id history.

Person ids are stable across runs. A cluster inherits an id of the previous crosswalk when it holds records of
that id: each previous id goes to the new cluster holding most of its records (ties: the smallest cluster_id),
and a cluster offered several keeps the one with most of its records (ties: the smallest id). So a person whose
records did not change keeps its id whatever joins it, a merge keeps the id of the larger side, and after a
split the id stays with the larger part. A cluster that inherits nothing gets a new id derived from its smallest
record_id: 'P' followed by the first 15 hex digits of SHA-256('person|' + that record_id), salted with the run id
in the rare case that id is still in use by another person. The same input, run again, gives the same ids.

The history compares the previous crosswalk with the new one: 'created' (a new id), 'merged' (an id whose records
all went into another person), 'split' (an id whose records now belong to several persons) and 'retired' (an id
none of whose records is in the input any more), each with its reason.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

PERSON_ID_PREFIX = "P"
PERSON_ID_HEX_DIGITS = 15
MAX_IDS_IN_REASON = 10
"""A history reason lists at most this many person ids, then says how many more there are."""


def person_id(anchor_record_id: Column) -> Column:
    """Person id of the cluster whose smallest record_id is `anchor_record_id`. Null in, null out."""
    digest = F.sha2(F.concat(F.lit("person|"), anchor_record_id), 256)
    return F.concat(F.lit(PERSON_ID_PREFIX), F.substring(digest, 1, PERSON_ID_HEX_DIGITS))


def with_cluster_id(records: DataFrame, labels: DataFrame) -> DataFrame:
    """Add cluster_id (smallest record_id of the record's component; its own record_id for a singleton).

    `labels` has one row per linked record: record_id, cluster_id.
    """
    return records.join(labels.select("record_id", "cluster_id"), on="record_id", how="left").withColumn(
        "cluster_id", F.coalesce(F.col("cluster_id"), F.col("record_id"))
    )


def with_cluster_size(records: DataFrame) -> DataFrame:
    """Add cluster_size int: the number of records sharing the record's cluster_id."""
    sizes = records.groupBy("cluster_id").agg(F.count(F.lit(1)).cast("int").alias("cluster_size"))
    return records.join(sizes, on="cluster_id", how="inner")


def cluster_person_ids(assignments: DataFrame, previous: DataFrame | None, run_id: str) -> DataFrame:
    """One row per cluster: cluster_id, person_id (inherited from `previous` or new; see the module docstring).

    `assignments` is record_id, cluster_id for every record; `previous` the previous crosswalk (record_id,
    person_id) or None.
    """
    clusters = assignments.select("cluster_id").distinct()
    if previous is None:
        return clusters.withColumn("person_id", person_id(F.col("cluster_id")))
    old = previous.where(F.col("person_id").isNotNull()).select("record_id", F.col("person_id").alias("old_person_id"))
    overlap = (
        assignments.join(old, on="record_id", how="inner")
        .groupBy("cluster_id", "old_person_id")
        .agg(F.count(F.lit(1)).alias("n"))
    )
    by_old_id = Window.partitionBy("old_person_id").orderBy(F.desc("n"), F.asc("cluster_id"))
    by_cluster = Window.partitionBy("cluster_id").orderBy(F.desc("n"), F.asc("old_person_id"))
    inherited = (
        overlap.withColumn("rank", F.row_number().over(by_old_id))
        .where(F.col("rank") == 1)
        .withColumn("rank", F.row_number().over(by_cluster))
        .where(F.col("rank") == 1)
        .select("cluster_id", F.col("old_person_id").alias("person_id"))
    )
    in_use = old.select(F.col("old_person_id").alias("candidate")).distinct()
    fresh = (
        clusters.join(inherited, on="cluster_id", how="left_anti")
        .withColumn("candidate", person_id(F.col("cluster_id")))
        .join(in_use.withColumn("is_in_use", F.lit(True)), on="candidate", how="left")
        .select(
            "cluster_id",
            F.when(F.col("is_in_use"), person_id(F.concat(F.col("cluster_id"), F.lit("|"), F.lit(run_id))))
            .otherwise(F.col("candidate"))
            .alias("person_id"),
        )
    )
    return inherited.unionByName(fresh)


def crosswalk(
    records: DataFrame,
    labels: DataFrame,
    run_id: str,
    linked_at: datetime,
    *,
    confidence: DataFrame | None = None,
    previous: DataFrame | None = None,
) -> DataFrame:
    """One row per record: record_id, person_id, partner, cluster_size, match_confidence, run_id, linked_at.

    `records` is person_records (record_id, partner); `labels` the clusters of the linked records (record_id,
    cluster_id); `confidence` (record_id, match_confidence) the probability of each linked record's best link.
    A record without one (a single-record person, or any record of the deterministic baseline) has 1.0.
    `previous` is the previous crosswalk, whose ids the clusters inherit (`cluster_person_ids`).
    """
    with_confidence = records.select("record_id", "partner")
    if confidence is not None:
        with_confidence = with_confidence.join(confidence, on="record_id", how="left")
    else:
        with_confidence = with_confidence.withColumn("match_confidence", F.lit(None).cast("double"))
    assigned = with_confidence.transform(with_cluster_id, labels)
    ids = cluster_person_ids(assigned.select("record_id", "cluster_id"), previous, run_id)
    return (
        assigned.transform(with_cluster_size)
        .join(ids, on="cluster_id", how="inner")
        .select(
            "record_id",
            "person_id",
            "partner",
            "cluster_size",
            F.coalesce(F.col("match_confidence"), F.lit(1.0)).cast("double").alias("match_confidence"),
            F.lit(run_id).alias("run_id"),
            F.lit(linked_at).cast("timestamp").alias("linked_at"),
        )
    )


def _id_list(ids: Column) -> Column:
    """The sorted ids of an array as 'P1, P2, ...', cut after MAX_IDS_IN_REASON with the number left out."""
    shown = F.array_join(F.slice(ids, 1, MAX_IDS_IN_REASON), ", ")
    hidden = F.size(ids) - F.lit(MAX_IDS_IN_REASON)
    return F.when(hidden > 0, F.concat(shown, F.lit(" and "), hidden.cast("string"), F.lit(" more"))).otherwise(shown)


def new_person_summary(new: DataFrame, old: DataFrame) -> DataFrame:
    """One row per person id of the new crosswalk: person_id, new_anchor, n_records, n_previous, old_ids.

    `new` is record_id, new_person_id; `old` is record_id, old_person_id (not null).
    """
    return (
        new.join(old, on="record_id", how="left")
        .groupBy(F.col("new_person_id").alias("person_id"))
        .agg(
            F.min("record_id").alias("new_anchor"),
            F.count(F.lit(1)).alias("n_records"),
            F.count("old_person_id").alias("n_previous"),
            F.array_sort(F.collect_set("old_person_id")).alias("old_ids"),
        )
    )


def old_person_summary(new: DataFrame, old: DataFrame) -> DataFrame:
    """One row per person id of the old crosswalk: person_id, old_anchor, n_old_records, n_remaining, new_ids.

    `new` is record_id, new_person_id; `old` is record_id, old_person_id (not null).
    """
    return (
        old.join(new, on="record_id", how="left")
        .groupBy(F.col("old_person_id").alias("person_id"))
        .agg(
            F.min("record_id").alias("old_anchor"),
            F.count(F.lit(1)).alias("n_old_records"),
            F.count("new_person_id").alias("n_remaining"),
            F.array_sort(F.collect_set("new_person_id")).alias("new_ids"),
        )
    )


def _text(*parts: Column | str) -> Column:
    """Concatenation of literal strings and columns (numbers cast to string)."""
    return F.concat(*[F.lit(p) if isinstance(p, str) else p.cast("string") for p in parts])


def person_event(summary: DataFrame) -> DataFrame:
    """Add event, record_id and reason to the full join of the new and old person summaries (null: no event).

    A person id has at most one event per run: created when it is only in the new crosswalk; split when its old
    records now lie under several ids; otherwise, when it is gone, merged (its remaining records all under one
    other id) or retired (none of its records left).
    """
    in_new, in_old = F.col("n_records").isNotNull(), F.col("n_old_records").isNotNull()
    n_new_ids = F.size("new_ids")
    created_reason = F.when(
        F.col("n_previous") == 0, _text("new person: ", F.col("n_records"), " record(s) not linked before")
    ).otherwise(
        _text(
            "new person id for ",
            F.col("n_records"),
            " record(s), ",
            F.col("n_previous"),
            " of them previously under ",
            _id_list(F.col("old_ids")),
        )
    )
    event = (
        F.when(~in_old, F.lit("created"))
        .when(n_new_ids > 1, F.lit("split"))
        .when(in_new, F.lit(None).cast("string"))
        .when(n_new_ids == 1, F.lit("merged"))
        .otherwise(F.lit("retired"))
    )
    reason = (
        F.when(F.col("event") == "created", created_reason)
        .when(F.col("event") == "split", _text("split into ", n_new_ids, " persons: ", _id_list(F.col("new_ids"))))
        .when(
            F.col("event") == "merged",
            _text(
                "merged into ",
                F.element_at("new_ids", 1),
                ": ",
                F.col("n_remaining"),
                " of its ",
                F.col("n_old_records"),
                " record(s) now under that person",
            ),
        )
        .otherwise(_text("retired: none of its ", F.col("n_old_records"), " record(s) is in this run"))
    )
    return summary.withColumn("event", event).withColumns(
        {
            "record_id": F.when(F.col("event") == "created", F.col("new_anchor")).otherwise(F.col("old_anchor")),
            "reason": F.when(F.col("event").isNotNull(), reason),
        }
    )


def person_id_history(previous: DataFrame | None, current: DataFrame, run_id: str, recorded_at: datetime) -> DataFrame:
    """One row per person id event of this run: person_id, event, record_id, reason, run_id, recorded_at.

    `previous` and `current` are crosswalks (record_id, person_id); `previous` is None on the first run. Events:
    created (id not in `previous`; record_id is its new anchor), and for ids of `previous` (record_id is the old
    anchor): split (records now under several ids), merged (id gone, its remaining records all under one other
    id), retired (id gone, none of its records left). Re-running on the same input gives no event.
    """
    if previous is None:
        previous = current.sparkSession.createDataFrame([], "record_id string, person_id string")
    old = previous.where(F.col("person_id").isNotNull()).select("record_id", F.col("person_id").alias("old_person_id"))
    new = current.select("record_id", F.col("person_id").alias("new_person_id"))
    # Both summaries are keyed by person_id, so their full join needs no further shuffle.
    summary = new_person_summary(new, old).join(old_person_summary(new, old), on="person_id", how="full")
    return (
        summary.transform(person_event)
        .where(F.col("event").isNotNull())
        .select(
            "person_id",
            "event",
            "record_id",
            "reason",
            F.lit(run_id).alias("run_id"),
            F.lit(recorded_at).cast("timestamp").alias("recorded_at"),
        )
    )
