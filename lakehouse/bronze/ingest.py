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
import dataclasses
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
    MANIFEST_NAME,
    DeliveryFolder,
    DeliveryRejectedError,
    LandingFileSystem,
    Manifest,
    find_deliveries,
    parse_manifest,
)
from lakehouse.bronze.parse import (
    OFFSETS_SCHEMA,
    REPLACEMENT_CHARACTER,
    FileLines,
    read_lines,
    split_offsets,
    split_summaries,
    with_line_numbers,
    with_parsed_fields,
)
from lakehouse.bronze.quarantine import problem_text, replace_quarantine, replace_rows
from lakehouse.config import FeedConfig, Settings
from lakehouse.tables import insert_new, table_exists, with_retries, write_table

logger = logging.getLogger(__name__)

Status = Literal["ingested", "skipped", "rejected"]

LEDGER_TABLE = "deliveries"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
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
        T.StructField("rule", T.StringType()),
        T.StructField("files_sha256", T.StringType()),
        T.StructField("replaces", T.StringType()),
    ]
)
"""Columns in the order they were added: a ledger written before `rule`, `files_sha256` or `replaces` gains
them."""
LEDGER_COMMENT = (
    "One row per delivery ingest attempt (status ingested or rejected). rows_in_files = rows_bronze + "
    "rows_quarantined for an ingested delivery. A delivery with an 'ingested' row is never ingested again, "
    "nor is another delivery of the same feed with the same files (files_sha256). replaces: the earlier delivery "
    "a correction supersedes (its bronze rows stay; silver reads the current deliveries only)."
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
    rule: str = ""


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
    scope = set(settings.bronze.feeds)
    for folder in find_deliveries(fs, landing):
        if scope and f"{folder.partner}/{folder.feed}" not in scope:
            continue
        previous = done.get((folder.partner, folder.feed, folder.delivery_id))
        if previous is not None:
            results.append(_skipped(fs, folder, previous))
            continue
        result, row = ingest_delivery(spark, settings, fs, folder, done)
        if result.status == "ingested":
            done[(folder.partner, folder.feed, folder.delivery_id)] = row
        results.append(result)
    logger.info(
        "bronze: %d deliveries found, %d ingested, %d skipped, %d rejected",
        len(results),
        sum(r.status == "ingested" for r in results),
        sum(r.status == "skipped" for r in results),
        sum(r.status == "rejected" for r in results),
    )
    return results


def _ingested_deliveries(spark: SparkSession, settings: Settings) -> Ledger:
    """(partner, feed, delivery_id) -> the latest 'ingested' ledger row of that delivery (a small table)."""
    table = ledger_table(settings)
    if not table_exists(spark, table):
        return {}
    ledger = spark.read.table(table)
    latest = (
        ledger.where(F.col("status") == F.lit("ingested"))
        .groupBy("partner", "feed", "delivery_id")
        .agg(F.max_by(F.struct(*ledger.columns), "ingested_at").alias("row"))
        .select("row.*")
    )
    return {(r["partner"], r["feed"], r["delivery_id"]): r.asDict() for r in latest.collect()}


Ledger = dict[tuple[str, str, str], dict[str, object]]
"""(partner, feed, delivery_id) -> the latest 'ingested' ledger row of the delivery."""


def superseded_deliveries(spark: SparkSession, settings: Settings, feed: FeedConfig) -> list[str]:
    """Ids of the feed's deliveries that a later ingested delivery replaces (its manifest's `replaces`)."""
    return sorted(
        str(row["replaces"])
        for (partner, name, _), row in _ingested_deliveries(spark, settings).items()
        if (partner, name) == (feed.partner, feed.name) and row.get("replaces")
    )


def current_bronze(spark: SparkSession, settings: Settings, feed: FeedConfig) -> DataFrame:
    """The feed's bronze rows without those of superseded deliveries: what silver is built from.

    Bronze keeps every ingested delivery (a correction does not erase the rows it corrects); the ledger says
    which deliveries are current.
    """
    rows = spark.read.table(bronze_table(settings, feed))
    superseded = superseded_deliveries(spark, settings, feed)
    return rows.where(~F.col("delivery_id").isin(superseded)) if superseded else rows


def check_replaces(manifest: Manifest, ledger: Ledger) -> None:
    """A correction must name an ingested delivery of its feed that no other delivery has replaced yet."""
    if manifest.replaces is None:
        return
    where = f"{manifest.partner}/{manifest.feed}/{manifest.delivery_id}/{MANIFEST_NAME}"
    if (manifest.partner, manifest.feed, manifest.replaces) not in ledger:
        raise DeliveryRejectedError(
            "replaces",
            f"it replaces delivery {manifest.replaces}, which is not an ingested delivery of "
            f"{manifest.partner}/{manifest.feed}",
            file=where,
        )
    for (partner, feed, delivery_id), row in ledger.items():
        if (partner, feed) == (manifest.partner, manifest.feed) and row.get("replaces") == manifest.replaces:
            raise DeliveryRejectedError(
                "replaces",
                f"delivery {manifest.replaces} was already replaced by delivery {delivery_id}: a further correction "
                f"replaces {delivery_id}",
                file=where,
            )


def check_duplicate(manifest: Manifest, fingerprint: str, ledger: Ledger) -> None:
    """A delivery may not repeat the files of an ingested delivery of its feed (the same extract sent twice)."""
    for (partner, feed, delivery_id), row in ledger.items():
        if (partner, feed) == (manifest.partner, manifest.feed) and row.get("files_sha256") == fingerprint:
            raise DeliveryRejectedError(
                "duplicate",
                f"the same files as delivery {delivery_id} (ingested {row['ingested_at']}): "
                "a correction must change the files",
                file=f"{manifest.partner}/{manifest.feed}/{manifest.delivery_id}/{MANIFEST_NAME}",
            )


def files_fingerprint(manifest: Manifest) -> str:
    """SHA-256 over the sorted SHA-256s of the delivery's files: equal for deliveries of the same files."""
    return hashlib.sha256("\n".join(sorted(f.sha256 for f in manifest.files)).encode("ascii")).hexdigest()


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
    spark: SparkSession,
    settings: Settings,
    fs: LandingFileSystem,
    folder: DeliveryFolder,
    ledger: Ledger | None = None,
) -> tuple[DeliveryResult, dict[str, object]]:
    """Check, parse and write one delivery; a contract problem gives a 'rejected' result and ledger row.

    `ledger` holds the deliveries ingested so far: a delivery repeating the files of one is rejected as a
    duplicate, and a correction must replace one of them (`check_replaces`). Returns the result and the
    ledger row appended.
    """
    ingested_at = datetime.now(UTC).replace(tzinfo=None)
    content = b""
    manifest: Manifest | None = None
    fingerprint: str | None = None
    parsed: DataFrame | None = None
    try:
        content = fs.read_bytes(folder.manifest_path)
        manifest, feed = parse_manifest(content, folder, settings)
        fingerprint = files_fingerprint(manifest)
        check_files(spark, fs, folder, manifest)
        lines = read_lines(spark, [f"{folder.path}/{f.name}" for f in manifest.files])
        offsets, files = split_offsets(split_summaries(lines).collect())
        check_lines(files, manifest, feed)
        check_duplicate(manifest, fingerprint, ledger or {})
        check_replaces(manifest, ledger or {})
        offsets_df = spark.createDataFrame(offsets, OFFSETS_SCHEMA)
        numbered = with_line_numbers(lines, offsets_df)
        if feed.has_header_line:
            numbered = numbered.where(F.col("line_number") > F.lit(1))
        parsed = numbered.transform(with_parsed_fields, feed, settings.bronze.max_field_chars).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        counts = rule_counts(parsed)
        check_encoding(parsed, counts)
    except DeliveryRejectedError as exc:
        if parsed is not None:
            parsed.unpersist()
        logger.error("delivery %s/%s/%s rejected: %s", folder.partner, folder.feed, folder.delivery_id, exc.reason)
        result = DeliveryResult(
            partner=folder.partner,
            feed=folder.feed,
            delivery_id=folder.delivery_id,
            status="rejected",
            rows_in_files=manifest.rows if manifest else 0,
            reason=exc.reason,
            rule=exc.rule,
        )
        row = _ledger_row(
            result,
            manifest_content=content,
            n_files=len(manifest.files) if manifest else 0,
            ingested_at=ingested_at,
            files_sha256=fingerprint,
            replaces=manifest.replaces if manifest else None,
        )
        _append_ledger(spark, settings, row)
        return result, row

    try:
        rows_quarantined = sum(n for rule, n in counts.items() if rule is not None)
        rows_bronze = counts.get(None, 0)
        if rows_bronze + rows_quarantined != manifest.rows:  # checked per file before; a bug if it happens
            raise RuntimeError(
                f"delivery {folder.path}: {rows_bronze} bronze + {rows_quarantined} quarantined rows "
                f"!= {manifest.rows} rows in files"
            )
        result = DeliveryResult(
            partner=folder.partner,
            feed=folder.feed,
            delivery_id=folder.delivery_id,
            status="ingested",
            rows_in_files=manifest.rows,
            rows_bronze=rows_bronze,
            rows_quarantined=rows_quarantined,
        )
        row = _ledger_row(
            result,
            manifest_content=content,
            n_files=len(manifest.files),
            ingested_at=ingested_at,
            files_sha256=fingerprint,
            replaces=manifest.replaces,
        )
        recorded = _commit_delivery(spark, settings, feed, manifest, parsed, row=row, ingested_at=ingested_at)
    finally:
        parsed.unpersist()
    if not recorded:
        return _ingested_elsewhere(spark, settings, fs, folder)
    logger.info(
        "delivery %s/%s/%s ingested: %d rows in files, %d bronze, %d quarantined",
        folder.partner,
        folder.feed,
        folder.delivery_id,
        manifest.rows,
        rows_bronze,
        rows_quarantined,
    )
    return result, row


def _commit_delivery(
    spark: SparkSession,
    settings: Settings,
    feed: FeedConfig,
    manifest: Manifest,
    parsed: DataFrame,
    *,
    row: dict[str, object],
    ingested_at: datetime,
) -> bool:
    """Write the delivery's bronze rows, its quarantine rows and its ledger row; False when another job recorded
    the delivery as ingested first (it was submitted twice at once), so this one must not count it again.

    Each write replaces the delivery's own rows, so writing again is harmless; a write that conflicts with another
    job's commit is tried again (`with_retries`) unless the other job has ingested the delivery meanwhile.
    """
    key = (manifest.partner, manifest.feed, manifest.delivery_id)

    def write() -> bool:
        _write_bronze(settings, feed, manifest, parsed, ingested_at)
        _write_quarantine(settings, feed, manifest, parsed, ingested_at)
        return _record_ingested(spark, settings, row)

    recorded = with_retries(
        write, f"delivery {'/'.join(key)}", give_up=lambda: key in _ingested_deliveries(spark, settings)
    )
    return bool(recorded)


def _ingested_elsewhere(
    spark: SparkSession, settings: Settings, fs: LandingFileSystem, folder: DeliveryFolder
) -> tuple[DeliveryResult, dict[str, object]]:
    """The result of a delivery another job ingested while this one did: skipped, with that job's ledger row."""
    row = _ingested_deliveries(spark, settings)[(folder.partner, folder.feed, folder.delivery_id)]
    skipped = _skipped(fs, folder, row)
    logger.warning(
        "delivery %s/%s/%s: another job recorded it first (submitted twice at once): skipped here",
        folder.partner,
        folder.feed,
        folder.delivery_id,
    )
    return dataclasses.replace(skipped, reason=f"ingested by another job at the same time: {skipped.reason}"), row


def rule_counts(parsed: DataFrame) -> dict[str | None, int]:
    """Lines per rule (None: the lines that parsed), one pass over the persisted parse."""
    return {r["rule"]: int(r["count"]) for r in parsed.groupBy("rule").count().collect()}


def check_encoding(parsed: DataFrame, counts: dict[str | None, int]) -> None:
    """Bytes that are not UTF-8 reject the delivery, naming the first such line and the column of the first bad
    character: the encoding is the file's, and ingesting its ASCII lines alone would drop every accented name.
    """
    if not counts.get("encoding"):
        return
    first = (
        parsed.where(F.col("rule") == F.lit("encoding"))
        .select("source_file", "line_number", F.instr(F.make_valid_utf8("raw"), REPLACEMENT_CHARACTER).alias("column"))
        .orderBy("source_file", "line_number")
        .first()
    )
    assert first is not None  # counts says there is one
    raise DeliveryRejectedError(
        "encoding",
        f"bytes that are not UTF-8 on {counts['encoding']} line(s), the first here; the manifest says UTF-8 "
        "(a Latin-1 or Windows-1252 export?): deliver the file again in UTF-8",
        file=str(first["source_file"]),
        line=int(first["line_number"]),
        column=int(first["column"]),
    )


def check_files(spark: SparkSession, fs: LandingFileSystem, folder: DeliveryFolder, manifest: Manifest) -> None:
    """Every listed file exists with its byte size and sha256, and no unlisted file is in the folder.

    The folder is listed through Hadoop's FileSystem (names and sizes, empty files included); the SHA-256s
    of the non-empty files come from one distributed pass (`binaryFile` + `sha2` run on executors; the
    driver collects one row per file). Spark's `binaryFile` holds a whole file in one row, which caps a file
    at 2 GiB: partners split bigger extracts into several files of one delivery. Names starting with "." or
    "_" (the manifest, a transfer tool's markers) are not data files.
    """
    sizes = {name: size for name, size in fs.list_files(folder.path).items() if not name.startswith((".", "_"))}
    digests = {
        str(r["path"]).rsplit("/", 1)[-1]: str(r["sha256"])
        for r in spark.read.format("binaryFile")
        .load(folder.path)
        .select("path", F.sha2(F.col("content"), 256).alias("sha256"))
        .collect()
    }
    listed = {f.name for f in manifest.files}
    for file in manifest.files:
        if file.name not in sizes:
            raise DeliveryRejectedError("missing_file", "listed in the manifest but not delivered", file=file.name)
        size = sizes[file.name]
        if file.bytes is not None and size != file.bytes:
            raise DeliveryRejectedError(
                "bytes", f"{size} bytes, the manifest says {file.bytes} (truncated or changed)", file=file.name
            )
        sha256 = digests.get(file.name, EMPTY_SHA256) if size == 0 else digests[file.name]
        if sha256 != file.sha256:
            raise DeliveryRejectedError(
                "checksum", f"sha256 {sha256} does not match the manifest's {file.sha256}", file=file.name
            )
    unlisted = sorted(set(sizes) - listed)
    if unlisted:
        raise DeliveryRejectedError(
            "unlisted_file", "in the delivery folder but not listed in the manifest", file=unlisted[0]
        )


def check_lines(files: dict[str, FileLines], manifest: Manifest, feed: FeedConfig) -> None:
    """CSV headers equal the feed's columns in order; data lines per file equal the manifest's rows."""
    header = feed.has_header_line
    expected = [c.name for c in feed.columns]
    for file in manifest.files:
        summary = files.get(file.name, FileLines(name=file.name, lines=0, first_line=None))
        data_lines = summary.lines
        if header:
            if summary.first_line is None:
                raise DeliveryRejectedError(
                    "header", "the file is empty: its header line is missing", file=file.name, line=1
                )
            check_header(file.name, summary.first_line, expected, feed.delimiter)
            data_lines -= 1
        if data_lines != file.rows:
            raise DeliveryRejectedError(
                "row_count", f"{data_lines} data rows, the manifest says {file.rows}", file=file.name
            )


def check_header(file_name: str, line: str, expected: list[str], delimiter: str) -> None:
    """A CSV header line (one line, parsed on the driver) must name the feed's columns in order."""
    text = line.removeprefix("\ufeff").removesuffix("\r")
    got = next(csv.reader([text], delimiter=delimiter, quotechar='"', doublequote=True, strict=False), [])
    for position, (name, want) in enumerate(zip(got, expected, strict=False), start=1):
        if name != want:
            raise DeliveryRejectedError(
                "header",
                f"column {position} is {name!r}, the feed expects {want!r}",
                file=file_name,
                line=1,
                column=position,
            )
    if len(got) < len(expected):
        raise DeliveryRejectedError(
            "header",
            f"the header lacks column {expected[len(got)]!r}",
            file=file_name,
            line=1,
            column=len(got) + 1,
        )
    if len(got) > len(expected):
        raise DeliveryRejectedError(
            "header",
            f"unexpected column {got[len(expected)]!r}: the feed has {len(expected)} columns",
            file=file_name,
            line=1,
            column=len(expected) + 1,
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
        F.col("rule_column").alias("column"),
        F.format_string(
            "file %s line %d: %s",
            "source_file",
            "line_number",
            problem_text(F.col("rule_column"), F.col("rule"), F.col("detail")),
        ).alias("reason"),
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


def _ledger_row(
    result: DeliveryResult,
    *,
    manifest_content: bytes,
    n_files: int,
    ingested_at: datetime,
    files_sha256: str | None,
    replaces: str | None,
) -> dict[str, object]:
    """The delivery's ledger row, column by column (LEDGER_SCHEMA's order)."""
    values = (
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
        result.rule or None,
        files_sha256,
        replaces,
    )
    return dict(zip(LEDGER_SCHEMA.fieldNames(), values, strict=True))


def _ledger_frame(spark: SparkSession, row: dict[str, object]) -> DataFrame:
    return spark.createDataFrame([tuple(row[name] for name in LEDGER_SCHEMA.fieldNames())], LEDGER_SCHEMA)


def _append_ledger(spark: SparkSession, settings: Settings, row: dict[str, object]) -> None:
    """Append a ledger row (a rejection: every attempt is kept)."""
    table = ledger_table(settings)
    is_new = not table_exists(spark, table)
    write_table(
        _ledger_frame(spark, row),
        table,
        mode="append",
        comment=LEDGER_COMMENT if is_new else None,
        merge_schema=True,
    )


def _record_ingested(spark: SparkSession, settings: Settings, row: dict[str, object]) -> bool:
    """Add the delivery's 'ingested' ledger row unless the ledger has one (the last write of a delivery); True
    when this call added it (`insert_new`: of two jobs recording the same delivery at once, one does)."""
    inserted = insert_new(
        spark,
        _ledger_frame(spark, row),
        ledger_table(settings),
        keys=("partner", "feed", "delivery_id"),
        among="t.status = 'ingested'",
        comment=LEDGER_COMMENT,
    )
    return inserted > 0
