"""dim_person: one row per person_id with attributes resolved across the person's source records.

Resolution rule (per attribute: birth_year, gender, race_ethnicity): the value most frequent across the
person's silver.person_records rows (one vote per record, nulls ignored); ties go to the partner ranked
first in conf/gold.yaml person.source_priority.<attribute> (unlisted partners rank after every listed
one), then to the record whose source rows were ingested most recently, then to the smallest value.
A person with no non-null value keeps a null.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.gold.columns import lookup
from lakehouse.gold.config import RESOLVED_ATTRIBUTES, PersonRules

logger = logging.getLogger(__name__)

DIM_PERSON_COMMENT = (
    "Grain: one row per person_id. De-identified person dimension: birth year, gender and race/ethnicity "
    "resolved across the person's source records (most frequent non-null value; ties by source priority of "
    "conf/gold.yaml, then the most recently ingested record, then the smallest value), the partners that "
    "know the person and whether the person was ever socioeconomically disadvantaged."
)
DIM_PERSON_COLUMNS: dict[str, str] = {
    "person_id": "Person key from mpi.crosswalk",
    "birth_year": "Birth year resolved across source records",
    "gender": "Gender (M, F, X) resolved across source records; null when no source gives one",
    "race_ethnicity": "CALPADS race/ethnicity code resolved across source records; null when no source gives one",
    "n_source_records": "Number of silver.person_records rows linked to the person",
    "partners": "Sorted partner codes that hold a record of the person",
    "is_sed_ever": "K-12 is_sed in any school year, or any span of a program of conf/gold.yaml person.sed_programs",
}


def source_rank(partner: Column, priority: Sequence[str]) -> Column:
    """0 for the first partner of `priority`, 1 for the second, ...; len(priority) for any other partner."""
    return lookup(partner, {p: i for i, p in enumerate(priority)}, F.lit(len(priority)))


def record_last_seen(feeds: Mapping[str, DataFrame]) -> DataFrame:
    """One row per record_id found in the silver feed tables: record_id, last_seen_at (latest ingested_at)."""
    if not feeds:
        raise ValueError("record_last_seen needs at least one feed table")
    rows = reduce(DataFrame.unionByName, [df.select("record_id", "ingested_at") for df in feeds.values()])
    return rows.groupBy("record_id").agg(F.max("ingested_at").alias("last_seen_at"))


def with_person_records(records: DataFrame, crosswalk: DataFrame, last_seen: DataFrame) -> DataFrame:
    """Add person_id (from the crosswalk) and last_seen_at (null for a record no feed row carries)."""
    return records.join(crosswalk.select("record_id", "person_id"), on="record_id", how="inner").join(
        last_seen, on="record_id", how="left"
    )


def resolve_attributes(records: DataFrame, priorities: Mapping[str, Sequence[str]]) -> DataFrame:
    """One row per person_id with a non-null attribute: the resolved value of each attribute of `priorities`.

    `records` holds person_id, partner, last_seen_at and the attribute columns, one row per source record;
    `priorities` gives each attribute its partners in tie-break order. All attributes are resolved in one
    pass: the records are unpivoted to (person_id, attribute, value) votes and ranked per person and
    attribute.
    """
    attributes = list(priorities)
    if not attributes:
        raise ValueError("resolve_attributes needs at least one attribute")
    votes = F.explode(
        F.array(*(F.struct(F.lit(a).alias("attribute"), F.col(a).cast("string").alias("value")) for a in attributes))
    )
    rank = F.lit(None).cast("int")
    for attribute in reversed(attributes):
        rank = F.when(F.col("attribute") == attribute, source_rank(F.col("partner"), priorities[attribute])).otherwise(
            rank
        )
    tallies = (
        records.select("person_id", "partner", "last_seen_at", votes.alias("_vote"))
        .select("person_id", "partner", "last_seen_at", "_vote.attribute", "_vote.value")
        .where(F.col("value").isNotNull())
        .groupBy("person_id", "attribute", "value")
        .agg(
            F.count(F.lit(1)).alias("n_votes"),
            F.min(rank).alias("best_rank"),
            F.max("last_seen_at").alias("last_seen_at"),
        )
    )
    best_first = Window.partitionBy("person_id", "attribute").orderBy(
        F.col("n_votes").desc(),
        F.col("best_rank").asc(),
        F.col("last_seen_at").desc_nulls_last(),
        F.col("value").asc(),
    )
    winners = tallies.withColumn("_rank", F.row_number().over(best_first)).where(F.col("_rank") == 1)
    types = dict(records.dtypes)
    return winners.groupBy("person_id").agg(
        *(F.max(F.when(F.col("attribute") == a, F.col("value"))).cast(types[a]).alias(a) for a in attributes)
    )


def sed_persons(k12_enrollment: DataFrame, program_participation: DataFrame, programs: Sequence[str]) -> DataFrame:
    """One row per person_id ever socioeconomically disadvantaged (K-12 is_sed or a span of `programs`)."""
    from_k12 = k12_enrollment.where(F.col("is_sed")).select("person_id")
    from_programs = program_participation.where(F.col("program").isin(list(programs))).select("person_id")
    return from_k12.unionByName(from_programs).distinct()  # a set of persons: many rows per person expected


def dim_person(records: DataFrame, sed: DataFrame, rules: PersonRules) -> DataFrame:
    """One row per person_id: resolved birth_year, gender, race_ethnicity, n_source_records, partners, is_sed_ever.

    Args:
        records: one row per source record with person_id, partner, last_seen_at and the resolved attributes
            (`with_person_records` of silver.person_records).
        sed: one row per person_id that was ever socioeconomically disadvantaged (`sed_persons`).
        rules: person rules of conf/gold.yaml.
    """
    persons = records.groupBy("person_id").agg(
        F.count(F.lit(1)).alias("n_source_records"),
        F.array_sort(F.collect_set("partner")).alias("partners"),
    )
    resolved = resolve_attributes(records, {a: rules.priority(a) for a in RESOLVED_ATTRIBUTES})
    persons = persons.join(resolved, on="person_id", how="left")
    flagged = sed.select("person_id", F.lit(True).alias("_is_sed"))
    return persons.join(flagged, on="person_id", how="left").select(
        "person_id",
        F.col("birth_year").cast("int").alias("birth_year"),
        "gender",
        "race_ethnicity",
        "n_source_records",
        "partners",
        F.coalesce(F.col("_is_sed"), F.lit(False)).alias("is_sed_ever"),
    )
