"""Bronze -> silver: every feed table and silver.person_records computed in full from the current bronze rows.

The current rows of a feed are its bronze rows minus those of deliveries a correction superseded
(`bronze.ingest.current_bronze`). For each feed with a bronze table:
1. every bronze row is checked (`validate.with_failures`); failing rows become silver-stage quarantine
   rows, valid rows are typed;
2. the valid rows' identity columns are standardized (`identity.with_identity`);
3. the identities of all feeds are collapsed into silver.person_records (tokens computed once per
   distinct identity), which is written first and kept (persisted) for step 4;
4. each silver feed table is written: the typed non-identity columns, the record_id of the row's
   identity, the record key's occurrence, and lineage;
5. the silver-stage quarantine rows of all feeds replace the previous silver-stage rows in one commit.

Before step 1 writes anything, each feed is counted in one pass, its expectations included
(`expectations.py`): their results are recorded, and a violated `fail` expectation stops the build there.
That pass also fills Spark's cache with the feed's checked rows (validated, flagged, identity standardized;
`settings.silver.persist_checked`), which steps 3 to 5 read instead of validating every bronze row again.
Every table is computed whole but committed by a MERGE on its key (`tables.sync_table`): the new version
holds exactly the computed rows and its Change Data Feed shows only the rows that changed (a correction's
updated records; nothing at all for a re-run). The quarantine rows are replaced, so a rebuild gives the same
tables.
Counts reconcile per feed by construction: a bronze row is either valid (one silver row; the join to its
record_id keeps row counts, since identity_key is unique in person_records) or rejected (one
silver-stage quarantine row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.bronze.ingest import current_bronze
from lakehouse.bronze.quarantine import empty_quarantine, replace_quarantine
from lakehouse.config import FeedConfig, Settings
from lakehouse.silver.expectations import (
    ExpectationResult,
    expectation_counts,
    raise_on_failures,
    record_results,
    results_from_counts,
    with_expectations,
)
from lakehouse.silver.identity import IDENTITY_ROWS_SCHEMA, identity_rows, person_records, with_identity
from lakehouse.silver.standardize import hmac_tokenizer
from lakehouse.silver.validate import (
    filter_rejected,
    filter_valid,
    quarantine_rows,
    typed_columns,
    with_failures,
)
from lakehouse.tables import sync_table, table_exists

logger = logging.getLogger(__name__)

PERSON_RECORDS_TABLE = "person_records"
PERSON_RECORDS_COMMENT = (
    "One row per distinct identity per partner: rows of one partner whose standardized identity values and "
    "tokens are all equal are one record. Names upper case without accents or punctuation; SSN, SSID and "
    "local ids only as HMAC-SHA256 tokens. Restricted."
)
PERSON_RECORDS_COLUMN_COMMENTS = {
    "record_id": "32 hex characters of SHA-256 of partner, tokens and standardized identity values; unique key",
    "ssn_token": "HMAC-SHA256 (hex) of the 9-digit SSN; null when missing, invalid or a placeholder",
    "local_id_token": "HMAC-SHA256 (hex) of '<partner>:<local id>'; ids of two partners never collide",
    "ssn_variant_tokens": "HMAC tokens (128 bits) of the SSN with one digit deleted: overlap means one typo",
    "ssid_variant_tokens": "HMAC tokens (128 bits) of the SSID with one digit deleted: overlap means one typo",
}
LINEAGE = ("delivery_id", "source_file", "line_number", "ingested_at")
OCCURRENCE = "record_occurrence"


@dataclass(frozen=True)
class SilverResult:
    """Figures of one silver build.

    rows: rows written per table (every silver feed table and silver.person_records);
    rows_quarantined: silver-stage quarantine rows per feed key; rows_bronze: bronze rows read per feed
    key (rows_bronze = silver feed rows + rows_quarantined); skipped_feeds: feeds without a bronze table.
    """

    rows: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    rows_bronze: dict[str, int] = field(default_factory=dict)
    skipped_feeds: tuple[str, ...] = ()
    expectations: list[ExpectationResult] = field(default_factory=list)


def silver_table(settings: Settings, feed: FeedConfig) -> str:
    return settings.table("silver", feed.key)


def person_records_table(settings: Settings) -> str:
    return settings.table("silver", PERSON_RECORDS_TABLE)


def build_silver(spark: SparkSession, settings: Settings, run_id: str = "") -> SilverResult:
    """Rebuild every silver feed table (of feeds that have a bronze table) and silver.person_records.

    The feeds' expectations are checked first (their results go to ops.expectation_results under `run_id`);
    a violated `fail` expectation raises ExpectationFailedError before anything is written.
    """
    tokenize = hmac_tokenizer(settings.security.hmac_key())
    rejected_at = datetime.now(UTC).replace(tzinfo=None)
    feeds: list[FeedConfig] = []
    skipped: list[FeedConfig] = []
    for feed in settings.feeds():
        (feeds if table_exists(spark, settings.table("bronze", feed.key)) else skipped).append(feed)
    if skipped:
        logger.info("silver: no bronze table for %s; skipped", ", ".join(f.key for f in skipped))

    checked = {f.key: _checked_rows(spark, settings, f) for f in feeds}
    try:
        result = SilverResult(skipped_feeds=tuple(f.key for f in skipped))
        for feed in feeds:
            result.expectations.extend(_count_feed(result, settings, feed, checked[feed.key]))
        record_results(spark, settings, run_id, result.expectations)
        raise_on_failures(result.expectations)
        valid = {f.key: checked[f.key].transform(filter_valid) for f in feeds}
        identities = reduce(
            DataFrame.unionByName,
            [identity_rows(valid[f.key], f) for f in feeds],
            spark.createDataFrame([], IDENTITY_ROWS_SCHEMA),
        )
        persons = person_records(identities, tokenize).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            n_persons = persons.count()  # computes the tokens once; the writes below reuse them
            sync_table(
                persons.drop("identity_key"),
                person_records_table(settings),
                keys=("record_id",),
                comment=PERSON_RECORDS_COMMENT,
                column_comments=PERSON_RECORDS_COLUMN_COMMENTS,
            )
            record_ids = persons.select("identity_key", "record_id")
            for feed in feeds:
                _write_feed(settings, feed, valid[feed.key], record_ids)
        finally:
            persons.unpersist()

        rejected = reduce(
            DataFrame.unionByName,
            [quarantine_rows(filter_rejected(checked[f.key]), f, rejected_at) for f in feeds],
            empty_quarantine(spark),
        )
        replace_quarantine(settings, rejected, F.col("stage") == F.lit("silver"))
    finally:
        for frame in checked.values():
            frame.unpersist()
    result.rows[person_records_table(settings)] = n_persons
    return result


def _checked_rows(spark: SparkSession, settings: Settings, feed: FeedConfig) -> DataFrame:
    """The feed's current bronze rows with `failures`, expectation flags and standardized identity (std_*,
    identity_key), persisted when settings.silver.persist_checked: the counting pass fills the cache and the
    person_records, feed-table and quarantine passes read it instead of validating every row again."""
    checked = (
        current_bronze(spark, settings, feed)
        .transform(with_failures, feed)
        .transform(with_expectations, feed)
        .transform(with_identity, feed)
    )
    return checked.persist(StorageLevel.MEMORY_AND_DISK) if settings.silver.persist_checked else checked


def _write_feed(settings: Settings, feed: FeedConfig, valid: DataFrame, record_ids: DataFrame) -> None:
    """silver.<feed>: typed non-identity columns, record_id and lineage, one row per valid bronze row.

    Keyed by the partner's record key and its occurrence (1 unless the key repeats): a corrected delivery
    updates the rows whose values changed, under the same key.
    """
    occurrence = F.row_number().over(
        Window.partitionBy(feed.record_key).orderBy("delivery_id", "source_file", "line_number")
    )
    rows = valid.join(record_ids, on="identity_key", how="left").select(
        *typed_columns(feed),
        F.col("record_id"),
        occurrence.alias(OCCURRENCE),
        *[F.col(c) for c in LINEAGE],
    )
    sync_table(
        rows,
        silver_table(settings, feed),
        keys=(feed.record_key, OCCURRENCE),
        comment=(
            f"One row per valid bronze row of {feed.partner} {feed.name} ({feed.description}): non-identity "
            "columns typed per the feed contract; identity in silver.person_records through record_id. Restricted."
        ),
        column_comments={
            "record_id": "silver.person_records.record_id of this row's identity",
            OCCURRENCE: f"1 for the first row with its {feed.record_key} (by delivery, file, line), 2 for the "
            "second: above 1 only where the partner repeated a record key",
            feed.record_key: f"record key of the {feed.key} feed (partner's row id)",
        },
    )


def _count_feed(
    result: SilverResult, settings: Settings, feed: FeedConfig, checked: DataFrame
) -> list[ExpectationResult]:
    """Add one feed's figures to `result` (bronze rows, silver rows, quarantined rows) and return its
    expectations' results: one aggregation job."""
    counts = checked.agg(
        F.count(F.lit(1)).alias("bronze"),
        F.count_if(F.size("failures") == F.lit(0)).alias("valid"),
        F.count_if(F.forall("failures", lambda f: f["rule"] == F.lit("expectation"))).alias("contract_valid"),
        *expectation_counts(feed),
    ).first()
    figures = counts.asDict() if counts else {}
    bronze, valid = int(figures.get("bronze") or 0), int(figures.get("valid") or 0)
    result.rows[silver_table(settings, feed)] = valid
    result.rows_bronze[feed.key] = bronze
    result.rows_quarantined[feed.key] = bronze - valid
    logger.info("silver %s: %d bronze rows -> %d silver + %d quarantined", feed.key, bronze, valid, bronze - valid)
    return results_from_counts(feed, figures, int(figures.get("contract_valid") or 0))
