"""Protection against chaining: clusters that hold incompatible records, or too many, are split by rule.

Connected components link A and C when A-B and B-C are links, even if A and C cannot be one person. Two records
*cannot link* when (documented in docs/linkage.md):

- both have an SSN, the tokens differ and their one-digit-deleted variant tokens share nothing (not a typo),
  unless the two records have the same first name, last name and birth date (a person who used another's
  SSN at one agency: the rest of the identity outweighs the number);
- both have an SSID, likewise;
- both have a birth date, the dates differ, are not a day/month swap, and agree in at most one of year, month
  and day (one mistyped part is a typo; two or three are another person).

Clusters are screened natively: a cluster is *suspicious* when it has more than one SSN token, SSID token or birth
date, or more records than clustering.max_cluster_size. The record pairs inside suspicious clusters are checked
with the rule above (a self-join per cluster, natively), and only clusters with a cannot-link pair or above the
size bound are rebuilt, in a vectorized grouped function, by constrained greedy merging: the cluster's links in
descending match weight, each merging two groups unless a record of one cannot link with a record of the other.
An oversized cluster is rebuilt from its strong links only (model.strong_threshold). Every record of a rebuilt
cluster gets the smallest record_id of its new group as its cluster_id, and the split is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

CONFLICT_COLUMNS = (
    "record_id",
    "ssn_token",
    "ssn_variant_tokens",
    "ssid_token",
    "ssid_variant_tokens",
    "birth_date",
    "first_name",
    "last_name",
)
REBUILT_SCHEMA = "record_id string, cluster_id string, reason string"


def cannot_link(l: str = "l_", r: str = "r_") -> Column:  # noqa: E741 - l and r name the two sides of a pair
    """True when the two records (columns <l>x and <r>x) cannot be one person (see the module docstring)."""

    def different_id(token: str, variants: str) -> Column:
        left, right = F.col(f"{l}{token}"), F.col(f"{r}{token}")
        overlap = F.coalesce(F.arrays_overlap(F.col(f"{l}{variants}"), F.col(f"{r}{variants}")), F.lit(False))
        return left.isNotNull() & right.isNotNull() & (left != right) & ~overlap

    left_date, right_date = F.col(f"{l}birth_date"), F.col(f"{r}birth_date")
    same = [
        (F.year(left_date) == F.year(right_date)).cast("int"),
        (F.month(left_date) == F.month(right_date)).cast("int"),
        (F.dayofmonth(left_date) == F.dayofmonth(right_date)).cast("int"),
    ]
    swapped = (
        (F.year(left_date) == F.year(right_date))
        & (F.month(left_date) == F.dayofmonth(right_date))
        & (F.dayofmonth(left_date) == F.month(right_date))
    )
    different_date = (
        left_date.isNotNull()
        & right_date.isNotNull()
        & (left_date != right_date)
        & ~swapped
        & (same[0] + same[1] + same[2] <= 1)
    )
    same_identity = (
        (F.col(f"{l}first_name") == F.col(f"{r}first_name"))
        & (F.col(f"{l}last_name") == F.col(f"{r}last_name"))
        & (left_date == right_date)
    )
    different_ids = different_id("ssn_token", "ssn_variant_tokens") | different_id("ssid_token", "ssid_variant_tokens")
    return (different_ids & ~F.coalesce(same_identity, F.lit(False))) | different_date


@dataclass(frozen=True)
class RecordIdentity:
    """The identifiers of one record that the cannot-link rule reads (Python side of `cannot_link`)."""

    ssn: str | None
    ssn_variants: frozenset[str]
    ssid: str | None
    ssid_variants: frozenset[str]
    birth_date: date | None
    first_name: str | None = None
    last_name: str | None = None


def records_cannot_link(a: RecordIdentity, b: RecordIdentity) -> bool:
    """The rule of `cannot_link`, for two records in Python (used inside the grouped rebuild)."""
    same_identity = (
        a.first_name is not None
        and a.last_name is not None
        and a.birth_date is not None
        and (a.first_name, a.last_name, a.birth_date) == (b.first_name, b.last_name, b.birth_date)
    )
    if not same_identity:
        if a.ssn and b.ssn and a.ssn != b.ssn and not a.ssn_variants & b.ssn_variants:
            return True
        if a.ssid and b.ssid and a.ssid != b.ssid and not a.ssid_variants & b.ssid_variants:
            return True
    if a.birth_date and b.birth_date and a.birth_date != b.birth_date:
        x, y = a.birth_date, b.birth_date
        swapped = x.year == y.year and x.month == y.day and x.day == y.month
        same = (x.year == y.year) + (x.month == y.month) + (x.day == y.day)
        if not swapped and same <= 1:
            return True
    return False


def _identity(row: pd.Series) -> RecordIdentity:
    def variants(value: object) -> frozenset[str]:
        return (
            frozenset(str(v) for v in value)
            if isinstance(value, Iterable) and not isinstance(value, str)
            else frozenset()
        )

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    birth = row["birth_date"]
    return RecordIdentity(
        ssn=text(row["ssn_token"]),
        ssn_variants=variants(row["ssn_variant_tokens"]),
        ssid=text(row["ssid_token"]),
        ssid_variants=variants(row["ssid_variant_tokens"]),
        birth_date=birth if isinstance(birth, date) else None,
        first_name=text(row["first_name"]),
        last_name=text(row["last_name"]),
    )


def constrained_groups(
    records: Sequence[tuple[str, RecordIdentity]], links: Sequence[tuple[str, str, float]]
) -> dict[str, str]:
    """record_id -> smallest record_id of its group, merging along `links` (a, b, weight) by descending weight,
    refusing any merge that would join two records that cannot link."""
    members = {record_id: [record_id] for record_id, _ in records}
    group = {record_id: record_id for record_id, _ in records}
    identity = dict(records)
    for a, b, _weight in sorted(links, key=lambda link: (-link[2], link[0], link[1])):
        if a not in group or b not in group:
            continue
        ga, gb = group[a], group[b]
        if ga == gb:
            continue
        if any(records_cannot_link(identity[x], identity[y]) for x in members[ga] for y in members[gb]):
            continue
        keep, gone = (ga, gb) if len(members[ga]) >= len(members[gb]) else (gb, ga)
        for record_id in members[gone]:
            group[record_id] = keep
        members[keep].extend(members.pop(gone))
    return {record_id: min(members[group[record_id]]) for record_id in group}


def rebuild_cluster(records: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """One cluster's records re-grouped by `constrained_groups`: record_id, cluster_id, reason."""
    if records.empty:
        return pd.DataFrame({"record_id": [], "cluster_id": [], "reason": []})
    pairs = [(str(r["record_id"]), _identity(r)) for _, r in records.iterrows()]
    edges = [(str(e["record_id_l"]), str(e["record_id_r"]), float(e["match_weight"])) for _, e in links.iterrows()]
    groups = constrained_groups(pairs, edges)
    reason = str(records["reason"].iloc[0])
    ids = sorted(groups)
    return pd.DataFrame({"record_id": ids, "cluster_id": [groups[i] for i in ids], "reason": [reason] * len(ids)})


def suspicious_clusters(clustered: DataFrame, max_cluster_size: int) -> DataFrame:
    """cluster_id, cluster_size, is_oversized of clusters worth checking (several ids or dates, or oversized)."""
    return (
        clustered.groupBy("cluster_id")
        .agg(
            F.count(F.lit(1)).alias("cluster_size"),
            F.count_distinct("ssn_token").alias("n_ssn"),
            F.count_distinct("ssid_token").alias("n_ssid"),
            F.count_distinct("birth_date").alias("n_birth_dates"),
        )
        .where(
            (F.col("n_ssn") > 1)
            | (F.col("n_ssid") > 1)
            | (F.col("n_birth_dates") > 1)
            | (F.col("cluster_size") > F.lit(max_cluster_size))
        )
        .select("cluster_id", "cluster_size", (F.col("cluster_size") > F.lit(max_cluster_size)).alias("is_oversized"))
    )


def conflicted_clusters(clustered: DataFrame, suspicious: DataFrame, max_cluster_size: int) -> DataFrame:
    """cluster_id, reason of the suspicious clusters that must be rebuilt: oversized, or with a cannot-link pair."""
    members = clustered.join(
        suspicious.where(~F.col("is_oversized")).select("cluster_id"), on="cluster_id", how="inner"
    )
    left = members.select("cluster_id", *[F.col(c).alias(f"l_{c}") for c in CONFLICT_COLUMNS])
    right = members.select("cluster_id", *[F.col(c).alias(f"r_{c}") for c in CONFLICT_COLUMNS])
    with_conflict = (
        left.join(right, on="cluster_id", how="inner")
        .where((F.col("l_record_id") < F.col("r_record_id")) & cannot_link())
        .select("cluster_id")
        .distinct()
        .withColumns(
            {
                "reason": F.lit("incompatible records (different SSN, SSID or birth date)"),
                "is_oversized": F.lit(False),
            }
        )
    )
    oversized = suspicious.where(F.col("is_oversized")).select(
        "cluster_id",
        F.format_string(
            f"more than the maximum cluster size (%d records > {max_cluster_size}): rebuilt from strong links",
            "cluster_size",
        ).alias("reason"),
        F.lit(True).alias("is_oversized"),
    )
    return with_conflict.unionByName(oversized)


def split_conflicts(
    clustered: DataFrame, links: DataFrame, max_cluster_size: int, strong_threshold: float
) -> tuple[DataFrame, DataFrame]:
    """Rebuild the conflicted clusters of `clustered`; returns (labels, rebuilt).

    Args:
        clustered: one row per record: cluster_id and the CONFLICT_COLUMNS.
        links: the links clustered (record_id_l, record_id_r, match_weight, match_probability).
    Returns:
        labels: record_id, cluster_id for every record of `clustered`, conflicts split;
        rebuilt: record_id, cluster_id (new), old_cluster_id, reason for the records of rebuilt clusters.
    """
    suspicious = suspicious_clusters(clustered, max_cluster_size).localCheckpoint(eager=True)
    conflicted = conflicted_clusters(clustered, suspicious, max_cluster_size).localCheckpoint(eager=True)
    members = (
        clustered.join(conflicted, on="cluster_id", how="inner")
        .select("cluster_id", *CONFLICT_COLUMNS, "reason", "is_oversized")
        .localCheckpoint(eager=True)
    )  # own lineage: the cogroup below reads it twice
    cluster_of = members.select("record_id", "cluster_id", "is_oversized")
    inner_links = (
        links.join(cluster_of.withColumnRenamed("record_id", "record_id_l"), on="record_id_l", how="inner")
        .join(
            cluster_of.select(F.col("record_id").alias("record_id_r"), F.col("cluster_id").alias("cluster_id_r")),
            on="record_id_r",
            how="inner",
        )
        .where(F.col("cluster_id") == F.col("cluster_id_r"))
        .where(~F.col("is_oversized") | (F.col("match_probability") >= F.lit(strong_threshold)))
        .select("cluster_id", "record_id_l", "record_id_r", "match_weight")
        .localCheckpoint(eager=True)  # fresh lineage: both cogroup sides derive from `members`
    )
    rebuilt = (
        members.drop("is_oversized")
        .groupBy("cluster_id")
        .cogroup(inner_links.groupBy("cluster_id"))
        .applyInPandas(rebuild_cluster, REBUILT_SCHEMA)
        .join(cluster_of.select("record_id", F.col("cluster_id").alias("old_cluster_id")), on="record_id", how="inner")
    ).localCheckpoint(eager=True)
    labels = (
        clustered.select("record_id", "cluster_id")
        .join(rebuilt.select("record_id", F.col("cluster_id").alias("new_cluster_id")), on="record_id", how="left")
        .select("record_id", F.coalesce(F.col("new_cluster_id"), F.col("cluster_id")).alias("cluster_id"))
    )
    return labels, rebuilt
