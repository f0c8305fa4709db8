"""Source rows to person_id through mpi.crosswalk, and the checks that no source row is lost on the way."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)


class UnlinkedRecordsError(ValueError):
    """Source rows whose record_id has no crosswalk row (or a crosswalk that maps one record twice)."""


def with_person_id(rows: DataFrame, crosswalk: DataFrame) -> DataFrame:
    """Add person_id to every row by its record_id (null when the crosswalk has no such record)."""
    return rows.join(crosswalk.select("record_id", "person_id"), on="record_id", how="left")


def unlinked_source_rows(sources: Mapping[str, DataFrame], crosswalk: DataFrame) -> DataFrame:
    """One row per source holding rows whose record_id is null or missing from the crosswalk: source, n_rows."""
    if not sources:
        raise ValueError("unlinked_source_rows needs at least one source")
    labelled = [df.select(F.lit(name).alias("source"), F.col("record_id")) for name, df in sources.items()]
    rows = reduce(DataFrame.unionByName, labelled)
    linked = crosswalk.select("record_id")
    return rows.join(linked, on="record_id", how="left_anti").groupBy("source").agg(F.count(F.lit(1)).alias("n_rows"))


def duplicated_crosswalk_records(crosswalk: DataFrame) -> DataFrame:
    """One row per record_id the crosswalk maps more than once: record_id, n_rows."""
    return crosswalk.groupBy("record_id").agg(F.count(F.lit(1)).alias("n_rows")).where(F.col("n_rows") > 1)


def check_all_linked(sources: Mapping[str, DataFrame], crosswalk: DataFrame) -> None:
    """Raise `UnlinkedRecordsError` unless every source row's record_id maps to exactly one person_id.

    Every silver.person_records row gets a person_id from entity resolution, so a row that does not link
    means the crosswalk is stale or incomplete; gold refuses to build rather than drop it silently.
    """
    duplicates = duplicated_crosswalk_records(crosswalk).limit(5).collect()
    if duplicates:
        examples = ", ".join(f"{row['record_id']} ({row['n_rows']} rows)" for row in duplicates)
        raise UnlinkedRecordsError(f"mpi.crosswalk maps a record_id to more than one row, e.g. {examples}")
    missing = {row["source"]: int(row["n_rows"]) for row in unlinked_source_rows(sources, crosswalk).collect()}
    if missing:
        detail = ", ".join(f"{source}: {n}" for source, n in sorted(missing.items()))
        raise UnlinkedRecordsError(
            f"{sum(missing.values())} source rows have no person_id in mpi.crosswalk (rows per source: {detail}); "
            "run entity resolution on the current silver.person_records before building gold"
        )
    logger.info("every row of %d sources links to a person_id", len(sources))
