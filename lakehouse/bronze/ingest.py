"""Landing -> bronze: every new delivery checked against its manifest, parsed line by line, recorded.

Per delivery, in this order:
1. the manifest (`landing.parse_manifest`): known partner and feed, format, encoding, file list;
2. the files, in one distributed pass (`binaryFile`): every listed file exists, no unlisted file, byte
   size and sha256 as in the manifest;
3. the lines (`parse.read_lines`): the header of a CSV equals the feed's column names, and each file
   has as many data lines as the manifest says;
4. each data line is split into the feed's columns; a line that cannot be (`parse.with_parsed_fields`)
   goes to quarantine.rejected_rows with its rule, line number and raw text;
5. bronze rows of the delivery replace that delivery's earlier rows (one commit), then its bronze
   quarantine rows, then the ledger row in ops.deliveries is appended, last.

A problem in steps 1-3 rejects the delivery: nothing reaches bronze, the ledger records 'rejected'
with a reason naming the file and the rule, and the other deliveries go on. A delivery the ledger
already records as 'ingested' is skipped without writing anything, so re-running is a no-op; a run
that crashed before its ledger row simply ingests the delivery again, replacing the partial rows.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.bronze.landing import (
    DeliveryFolder,
    DeliveryRejectedError,
    LandingFileSystem,
    Manifest,
    find_deliveries,
    parse_manifest,
)
from lakehouse.bronze.parse import (
    OFFSETS_SCHEMA,
    FileLines,
    read_lines,
    split_offsets,
    split_summaries,
    with_line_numbers,
    with_parsed_fields,
)
from lakehouse.bronze.quarantine import replace_quarantine, replace_rows
from lakehouse.config import FeedConfig, Settings
from lakehouse.tables import table_exists, write_table

logger = logging.getLogger(__name__)

Status = Literal["ingested", "skipped", "rejected"]

LEDGER_TABLE = "deliveries"
LEDGER_SCHEMA = T.StructType(
    [
        T.StructField("partner", T.StringType()),
        T.StructField("feed", T.StringType()),
        T.StructField("delivery_id", T.StringType()),
        T.StructField("manifest_sha256", T.StringType()),
        T.StructField("n_files", T.IntegerType()),
        T.StructField("rows_in_files", T.LongType()),
        T.StructField("rows_bronze", T.LongType()),
        T.StructField("rows_quarantined", T.LongType()),
        T.StructField("status", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
    ]
)
LEDGER_COMMENT = (
    "One row per delivery ingest attempt (status ingested or rejected). rows_in_files = rows_bronze + "
    "rows_quarantined for an ingested delivery. A delivery with an 'ingested' row is never ingested again."
)
LINEAGE_COMMENTS = {
    "delivery_id": "landing delivery folder the row came from (the table is partitioned by it)",
    "line_number": "1-based physical line of the row in source_file (a file name from the delivery's manifest)",
}


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery folder in one `ingest_landing` run."""

    partner: str
    feed: str
    delivery_id: str
    status: Status
    rows_in_files: int = 0
    rows_bronze: int = 0
    rows_quarantined: int = 0
    reason: str = ""


def ledger_table(settings: Settings) -> str:
    return settings.table("ops", LEDGER_TABLE)


def bronze_table(settings: Settings, feed: FeedConfig) -> str:
    return settings.table("bronze", feed.key)


def ingest_landing(spark: SparkSession, settings: Settings) -> list[DeliveryResult]:
    """Ingest every delivery under the landing folder that the ledger does not record as ingested.

    Returns one result per delivery folder (with a manifest), in partner, feed, delivery order.
    Rejections are results, not exceptions: the caller decides what a rejected delivery means.
    """
    fs = LandingFileSystem(spark)
    landing = settings.storage.path("landing")
    done = _ingested_deliveries(spark, settings)
    results = []
    for folder in find_deliveries(fs, landing):
        previous = done.get((folder.partner, folder.feed, folder.delivery_id))
        if previous is not None:
            results.append(_skipped(fs, folder, previous))
        else:
            results.append(ingest_delivery(spark, settings, fs, folder))
    logger.info(
        "bronze: %d deliveries found, %d ingested, %d skipped, %d rejected",
        len(results),
        sum(r.status == "ingested" for r in results),
        sum(r.status == "skipped" for r in results),
        sum(r.status == "rejected" for r in results),
    )
    return results


def _ingested_deliveries(spark: SparkSession, settings: Settings) -> dict[tuple[str, str, str], dict[str, object]]:
    """(partner, feed, delivery_id) -> the latest 'ingested' ledger row of that delivery (a small table)."""
    table = ledger_table(settings)
    if not table_exists(spark, table):
        return {}
    latest = (
        spark.read.table(table)
        .where(F.col("status") == F.lit("ingested"))
        .groupBy("partner", "feed", "delivery_id")
        .agg(F.max_by(F.struct(*LEDGER_SCHEMA.fieldNames()), "ingested_at").alias("row"))
        .select("row.*")
    )
    return {(r["partner"], r["feed"], r["delivery_id"]): r.asDict() for r in latest.collect()}


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


def _skipped(fs: LandingFileSystem, folder: DeliveryFolder, previous: dict[str, object]) -> DeliveryResult:
    reason = f"already ingested at {previous['ingested_at']}"
    if hashlib.sha256(fs.read_bytes(folder.manifest_path)).hexdigest() != previous["manifest_sha256"]:
        reason += "; its manifest has changed since: deliver corrections under a new delivery id"
        logger.warning("delivery %s/%s/%s: %s", folder.partner, folder.feed, folder.delivery_id, reason)
    return DeliveryResult(
        partner=folder.partner,
        feed=folder.feed,
        delivery_id=folder.delivery_id,
        status="skipped",
        rows_in_files=_count(previous["rows_in_files"]),
        rows_bronze=_count(previous["rows_bronze"]),
        rows_quarantined=_count(previous["rows_quarantined"]),
        reason=reason,
    )


def ingest_delivery(
    spark: SparkSession, settings: Settings, fs: LandingFileSystem, folder: DeliveryFolder
) -> DeliveryResult:
    """Check, parse and write one delivery; a contract problem gives a 'rejected' result and ledger row."""
    ingested_at = datetime.now(UTC).replace(tzinfo=None)
    content = b""
    manifest: Manifest | None = None
    try:
        content = fs.read_bytes(folder.manifest_path)
        manifest, feed = parse_manifest(content, folder, settings)
        check_files(spark, folder, manifest)
        lines = read_lines(spark, [f"{folder.path}/{f.name}" for f in manifest.files])
        offsets, files = split_offsets(split_summaries(lines).collect())
        check_lines(files, manifest, feed)
    except DeliveryRejectedError as exc:
        logger.error("delivery %s/%s/%s rejected: %s", folder.partner, folder.feed, folder.delivery_id, exc.reason)
        result = DeliveryResult(
            partner=folder.partner,
            feed=folder.feed,
            delivery_id=folder.delivery_id,
            status="rejected",
            rows_in_files=manifest.rows if manifest else 0,
            reason=exc.reason,
        )
        _append_ledger(
            spark,
            settings,
            result,
            manifest_content=content,
            n_files=len(manifest.files) if manifest else 0,
            ingested_at=ingested_at,
        )
        return result

    offsets_df = spark.createDataFrame(offsets, OFFSETS_SCHEMA)
    numbered = with_line_numbers(lines, offsets_df)
    if has_header(feed):
        numbered = numbered.where(F.col("line_number") > F.lit(1))
    parsed = numbered.transform(with_parsed_fields, feed).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {
            bool(r["ok"]): int(r["count"]) for r in parsed.groupBy(F.col("rule").isNull().alias("ok")).count().collect()
        }
        rows_bronze, rows_quarantined = counts.get(True, 0), counts.get(False, 0)
        if rows_bronze + rows_quarantined != manifest.rows:  # checked per file before; a bug if it happens
            raise RuntimeError(
                f"delivery {folder.path}: {rows_bronze} bronze + {rows_quarantined} quarantined rows "
                f"!= {manifest.rows} rows in files"
            )
        _write_bronze(settings, feed, manifest, parsed, ingested_at)
        _write_quarantine(settings, feed, manifest, parsed, ingested_at)
    finally:
        parsed.unpersist()
    result = DeliveryResult(
        partner=folder.partner,
        feed=folder.feed,
        delivery_id=folder.delivery_id,
        status="ingested",
        rows_in_files=manifest.rows,
        rows_bronze=rows_bronze,
        rows_quarantined=rows_quarantined,
    )
    _append_ledger(
        spark, settings, result, manifest_content=content, n_files=len(manifest.files), ingested_at=ingested_at
    )
    logger.info(
        "delivery %s/%s/%s ingested: %d rows in files, %d bronze, %d quarantined",
        folder.partner,
        folder.feed,
        folder.delivery_id,
        manifest.rows,
        rows_bronze,
        rows_quarantined,
    )
    return result


def has_header(feed: FeedConfig) -> bool:
    """CSV files start with a header line (JSON Lines and fixed-width files never do)."""
    return feed.format == "csv" and feed.header


def check_files(spark: SparkSession, folder: DeliveryFolder, manifest: Manifest) -> None:
    """Every listed file exists with its byte size and sha256, and no unlisted file is in the folder.

    One distributed pass over the folder (`binaryFile` + `sha2` run on executors; the driver collects
    one row per file). Spark's `binaryFile` holds a whole file in one row, which caps a file at 2 GiB:
    partners split bigger extracts into several files of one delivery.
    """
    found = {
        str(r["path"]).rsplit("/", 1)[-1]: (int(r["length"]), str(r["sha256"]))
        for r in spark.read.format("binaryFile")
        .load(folder.path)
        .select("path", "length", F.sha2(F.col("content"), 256).alias("sha256"))
        .collect()
    }
    listed = {f.name for f in manifest.files}
    for file in manifest.files:
        if file.name not in found:
            raise DeliveryRejectedError("missing_file", f"file {file.name}: listed in the manifest but not delivered")
        size, sha256 = found[file.name]
        if file.bytes is not None and size != file.bytes:
            raise DeliveryRejectedError("bytes", f"file {file.name}: {size} bytes, the manifest says {file.bytes}")
        if sha256 != file.sha256:
            raise DeliveryRejectedError(
                "checksum", f"file {file.name}: sha256 {sha256} does not match the manifest's {file.sha256}"
            )
    unlisted = sorted(set(found) - listed)
    if unlisted:
        raise DeliveryRejectedError(
            "unlisted_file", f"file {unlisted[0]}: in the delivery folder but not listed in the manifest"
        )


def check_lines(files: dict[str, FileLines], manifest: Manifest, feed: FeedConfig) -> None:
    """CSV headers equal the feed's columns in order; data lines per file equal the manifest's rows."""
    header = has_header(feed)
    expected = [c.name for c in feed.columns]
    for file in manifest.files:
        summary = files.get(file.name, FileLines(name=file.name, lines=0, first_line=None))
        data_lines = summary.lines
        if header:
            if summary.first_line is None:
                raise DeliveryRejectedError("header", f"file {file.name}: empty, the header line is missing")
            check_header(file.name, summary.first_line, expected, feed.delimiter)
            data_lines -= 1
        if data_lines != file.rows:
            raise DeliveryRejectedError(
                "row_count", f"file {file.name}: {data_lines} data rows, the manifest says {file.rows}"
            )


def check_header(file_name: str, line: str, expected: list[str], delimiter: str) -> None:
    """A CSV header line (one line, parsed on the driver) must name the feed's columns in order."""
    text = line.removeprefix("\ufeff").removesuffix("\r")
    got = next(csv.reader([text], delimiter=delimiter, quotechar='"', doublequote=True, strict=False), [])
    for position, (name, want) in enumerate(zip(got, expected, strict=False), start=1):
        if name != want:
            raise DeliveryRejectedError(
                "header", f"file {file_name}: header column {position} is {name!r}, the feed expects {want!r}"
            )
    if len(got) < len(expected):
        raise DeliveryRejectedError(
            "header", f"file {file_name}: header lacks column {expected[len(got)]!r} (position {len(got) + 1})"
        )
    if len(got) > len(expected):
        raise DeliveryRejectedError(
            "header", f"file {file_name}: header has extra column {got[len(expected)]!r} (position {len(expected) + 1})"
        )


def _delivery_condition(manifest: Manifest) -> Column:
    return F.col("delivery_id") == F.lit(manifest.delivery_id)


def _write_bronze(
    settings: Settings, feed: FeedConfig, manifest: Manifest, parsed: DataFrame, ingested_at: datetime
) -> None:
    """The delivery's parsed lines replace its earlier bronze rows: one commit for all its files."""
    rows = parsed.where(F.col("rule").isNull()).select(
        *[F.col(c.name) for c in feed.columns],
        F.lit(manifest.delivery_id).alias("delivery_id"),
        F.col("source_file"),
        F.col("line_number"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
    )
    comments = {**LINEAGE_COMMENTS, feed.record_key: f"record key of the {feed.key} feed (partner's row id)"}
    replace_rows(
        rows,
        bronze_table(settings, feed),
        _delivery_condition(manifest),
        partition_by=("delivery_id",),
        comment=(
            f"One row per parsed data line of {feed.partner} {feed.name} deliveries ({feed.description}): "
            "every column as delivered (string, empty -> null), plus lineage. Restricted."
        ),
        column_comments=comments,
    )


def _write_quarantine(
    settings: Settings, feed: FeedConfig, manifest: Manifest, parsed: DataFrame, ingested_at: datetime
) -> None:
    """The delivery's unparseable lines replace its earlier bronze-stage quarantine rows."""
    rows = parsed.where(F.col("rule").isNotNull()).select(
        F.lit("bronze").alias("stage"),
        F.lit(feed.partner).alias("partner"),
        F.lit(feed.name).alias("feed"),
        F.lit(manifest.delivery_id).alias("delivery_id"),
        F.col("source_file"),
        F.col("line_number"),
        F.col("rule"),
        F.lit(None).cast("string").alias("column"),
        F.format_string("file %s line %d: rule %s: %s", "source_file", "line_number", "rule", "detail").alias("reason"),
        F.col("raw"),
        F.lit(ingested_at).cast("timestamp").alias("rejected_at"),
    )
    condition = (
        (F.col("stage") == F.lit("bronze"))
        & (F.col("partner") == F.lit(feed.partner))
        & (F.col("feed") == F.lit(feed.name))
        & _delivery_condition(manifest)
    )
    replace_quarantine(settings, rows, condition)


def _append_ledger(
    spark: SparkSession,
    settings: Settings,
    result: DeliveryResult,
    *,
    manifest_content: bytes,
    n_files: int,
    ingested_at: datetime,
) -> None:
    """Append the delivery's ledger row (the last write of a delivery)."""
    row = (
        result.partner,
        result.feed,
        result.delivery_id,
        hashlib.sha256(manifest_content).hexdigest() if manifest_content else None,
        n_files,
        result.rows_in_files,
        result.rows_bronze,
        result.rows_quarantined,
        result.status,
        result.reason or None,
        ingested_at,
    )
    table = ledger_table(settings)
    is_new = not table_exists(spark, table)
    write_table(
        spark.createDataFrame([row], LEDGER_SCHEMA),
        table,
        mode="append",
        comment=LEDGER_COMMENT if is_new else None,
    )
