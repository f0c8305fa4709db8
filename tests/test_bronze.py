"""Bronze: tiny handmade deliveries in the three formats, rejected deliveries, re-runs and line numbers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze import DeliveryResult, ingest_landing
from lakehouse.bronze.parse import read_lines, split_offsets, split_summaries, with_line_numbers, with_parsed_fields
from lakehouse.config import DatabaseSettings, Settings
from lakehouse.session import create_databases

CCC_HEADER = (
    "enrollment_id|college_student_id|ssn|ssid|first_name|last_name|birth_date|gender|college_code|term_code|"
    "units_attempted"
)
EDD_WIDTHS = (14, 9, 20, 15, 10, 6, 4, 1, 12)


def fixed_width(*values: str) -> str:
    return "".join(v.ljust(w) for v, w in zip(values, EDD_WIDTHS, strict=True))


def make_delivery(
    landing: Path,
    partner: str,
    feed: str,
    delivery_id: str,
    files: dict[str, str],
    *,
    header: bool = True,
    fmt: str = "csv",
    tamper: dict[str, object] | None = None,
    manifest_fields: dict[str, object] | None = None,
) -> Path:
    """Write files and a contract-true _manifest.json; `tamper` overrides fields of the first file entry,
    `manifest_fields` adds or overrides top-level manifest fields (e.g. `replaces`)."""
    folder = landing / partner / feed / delivery_id
    folder.mkdir(parents=True)
    entries = []
    for name, text in files.items():
        data = text.encode("utf-8")
        (folder / name).write_bytes(data)
        rows = text.count("\n") - (1 if header else 0)
        entries.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": rows})
    entries[0].update(tamper or {})
    manifest = {
        "partner": partner,
        "feed": feed,
        "delivery_id": delivery_id,
        "delivered_at": "2025-01-15T08:00:00Z",
        "format": fmt,
        "encoding": "utf-8",
        "files": entries,
        **(manifest_fields or {}),
    }
    (folder / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


CCC_FILE_0 = (
    f"{CCC_HEADER}\n"
    'E1|C001|123-45-6780||"Mary ""Molly"""|"O\'Brien|Smith"|03/04/2001|F|111|2019FA|12.0\n'
    "E2|C002|||José|García|12/31/2000|M|111|2019FA|\n"
    "E3|C003|||Ann|Lee|01/01/2002\n"
    "E4|C004|||Bo|Li|02/02/2002|M|111|2020SP|6.5\n"
)
CCC_FILE_1 = (
    f"{CCC_HEADER}\nE5|C005|||Al|Ng|03/03/2003|M|222|2020SP|3.0|EXTRA\nE6|C006|||Cy|Fox|04/04/2004|X|222|2020SP|3.0\n"
)
UC_FILE = (
    '{"enrollment_id":"U1","uc_student_id":"S1","ssn":null,"first_name":"Zoë","last_name":"Ng",'
    '"birth_date":"2001-05-06","gender":"F","campus_code":"LA","term_code":"2020F"}\n'
    '{"enrollment_id":"U2","uc_student_id":"S2",\n'
    '{"enrollment_id":"U3","uc_student_id":"S3","first_name":"","surname":"Wu"}\n'
    '{"enrollment_id":"U4","uc_student_id":"S4","campus_code":"SD","term_code":"2021W"}\n'
)
EDD_FILE = (
    fixed_width("W1", "123456780", "SMITH", "J", "EMP1", "445110", "2020", "1", "1234.50")
    + "\n"
    + fixed_width("W2", "", "DE LA CRUZ", "MARIA", "EMP2", "", "2020", "2", "99.00")[:80]
    + "\n"
    + fixed_width("W3", "987654321", "LEE", "", "EMP1", "445110", "2021", "3", "0.00")
    + "\n"
)


@pytest.fixture(scope="module")
def bronze_settings(settings: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shipped config with its own databases (tb_*) and landing folder, so other tests are not touched."""
    databases = DatabaseSettings(**{layer: f"tb_{name}" for layer, name in settings.databases.all().items()})
    storage = dataclasses.replace(settings.storage, landing=str(tmp_path_factory.mktemp("bronze_landing")))
    isolated = dataclasses.replace(settings, databases=databases, storage=storage)
    create_databases(spark, isolated)
    return isolated


@pytest.fixture(scope="module")
def landing(bronze_settings: Settings) -> Path:
    root = Path(bronze_settings.storage.path("landing"))
    make_delivery(root, "cccco", "ccc_enrollment", "d2019", {"e_0000.txt": CCC_FILE_0, "e_0001.txt": CCC_FILE_1})
    make_delivery(root, "ucop", "uc_enrollment", "d2020", {"uc_0000.jsonl": UC_FILE}, header=False, fmt="jsonl")
    make_delivery(root, "edd", "ui_wages", "q2020", {"w_0000.dat": EDD_FILE}, header=False, fmt="fixed_width")
    good_k12 = "enrollment_id,ssid,first_name\n"  # never parsed: the checksum check comes first
    make_delivery(root, "cde", "k12_enrollment", "bad_sum", {"k.csv": good_k12}, tamper={"sha256": "0" * 64})
    grad_header = "completion_id,ssid,first_name,lastname,birth_date,school_year,school_code,district_code,"
    grad_header += "county_code,completion_type,is_a_g_complete\n"
    make_delivery(root, "cde", "k12_graduation", "bad_header", {"g.csv": grad_header + "G1,S1,A,B,,2020,1,2,3,HSD,Y\n"})
    aid = "application_id,application_type,ssn,first_name,last_name,birth_date,high_school_code,award_year,"
    aid += "student_aid_index\nA1,FAFSA,,X,Y,,,2020,\n"
    make_delivery(root, "csac", "aid_applications", "bad_rows", {"a.csv": aid}, tamper={"rows": 5})
    make_delivery(root, "nobody", "feed", "d1", {"x.csv": "a\n1\n"})
    return root


@pytest.fixture(scope="module")
def results(spark: SparkSession, bronze_settings: Settings, landing: Path) -> dict[str, DeliveryResult]:
    return {f"{r.partner}/{r.feed}/{r.delivery_id}": r for r in ingest_landing(spark, bronze_settings)}


def version(spark: SparkSession, table: str) -> int:
    return int(spark.sql(f"DESCRIBE HISTORY {table}").agg(F.max("version")).first()[0])  # type: ignore[index]


def quarantine(spark: SparkSession, settings: Settings, feed: str) -> DataFrame:
    return (
        spark.read.table(settings.table("quarantine", "rejected_rows"))
        .where((F.col("feed") == feed) & (F.col("stage") == "bronze"))
        .select("source_file", "line_number", "rule", "raw")
    )


def test_every_delivery_is_reported(results: dict[str, DeliveryResult]) -> None:
    statuses = {key: r.status for key, r in results.items()}
    assert statuses == {
        "cccco/ccc_enrollment/d2019": "ingested",
        "cde/k12_enrollment/bad_sum": "rejected",
        "cde/k12_graduation/bad_header": "rejected",
        "csac/aid_applications/bad_rows": "rejected",
        "edd/ui_wages/q2020": "ingested",
        "nobody/feed/d1": "rejected",
        "ucop/uc_enrollment/d2020": "ingested",
    }
    assert results["cde/k12_enrollment/bad_sum"].reason.startswith("file k.csv: rule checksum: sha256 ")
    assert (
        "file g.csv line 1 column 4: rule header: column 4 is 'lastname', the feed expects 'last_name'"
        in results["cde/k12_graduation/bad_header"].reason
    )
    assert (
        results["csac/aid_applications/bad_rows"].reason
        == "file a.csv: rule row_count: 1 data rows, the manifest says 5"
    )
    assert "partner 'nobody' is not in conf/partners" in results["nobody/feed/d1"].reason


def test_counts_reconcile_per_delivery(results: dict[str, DeliveryResult]) -> None:
    figures = {
        k: (r.rows_in_files, r.rows_bronze, r.rows_quarantined) for k, r in results.items() if r.status == "ingested"
    }
    assert figures == {
        "cccco/ccc_enrollment/d2019": (6, 4, 2),
        "ucop/uc_enrollment/d2020": (4, 2, 2),
        "edd/ui_wages/q2020": (3, 2, 1),
    }


def test_csv_fields_honour_quotes_and_delimiter(
    spark: SparkSession, bronze_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    bronze = spark.read.table(bronze_settings.table("bronze", "cccco_ccc_enrollment"))
    actual = bronze.select(
        "enrollment_id", "ssid", "first_name", "last_name", "units_attempted", "source_file", "line_number"
    )
    expected = spark.createDataFrame(
        [
            ("E1", None, 'Mary "Molly"', "O'Brien|Smith", "12.0", "e_0000.txt", 2),
            ("E2", None, "José", "García", None, "e_0000.txt", 3),
            ("E4", None, "Bo", "Li", "6.5", "e_0000.txt", 5),
            ("E6", None, "Cy", "Fox", "3.0", "e_0001.txt", 3),
        ],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
    assert bronze.select("delivery_id").distinct().collect()[0][0] == "d2019"
    assert bronze.where(F.col("ingested_at").isNull()).count() == 0


def test_bad_lines_are_quarantined_with_line_numbers(
    spark: SparkSession, bronze_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    actual = (
        quarantine(spark, bronze_settings, "ccc_enrollment")
        .unionByName(quarantine(spark, bronze_settings, "uc_enrollment"))
        .unionByName(quarantine(spark, bronze_settings, "ui_wages"))
    )
    expected = spark.createDataFrame(
        [
            ("e_0000.txt", 4, "column_count", "E3|C003|||Ann|Lee|01/01/2002"),
            ("e_0001.txt", 2, "column_count", "E5|C005|||Al|Ng|03/03/2003|M|222|2020SP|3.0|EXTRA"),
            ("uc_0000.jsonl", 2, "json", '{"enrollment_id":"U2","uc_student_id":"S2",'),
            ("uc_0000.jsonl", 3, "json_keys", UC_FILE.splitlines()[2]),
            ("w_0000.dat", 2, "line_length", EDD_FILE.splitlines()[1]),
        ],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
    reasons = spark.read.table(bronze_settings.table("quarantine", "rejected_rows")).where(
        F.col("rule") == "line_length"
    )
    assert (
        reasons.first()["reason"] == "file w_0000.dat line 2: rule line_length: the line has 80 characters, expected 91"
    )  # type: ignore[index]


def test_json_and_fixed_width_values(
    spark: SparkSession, bronze_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    uc = spark.read.table(bronze_settings.table("bronze", "ucop_uc_enrollment")).select(
        "enrollment_id", "ssn", "first_name", "campus_code", "line_number"
    )
    expected_uc = spark.createDataFrame([("U1", None, "Zoë", "LA", 1), ("U4", None, None, "SD", 4)], uc.schema)
    assert_df_equality(uc, expected_uc, ignore_row_order=True)
    wages = spark.read.table(bronze_settings.table("bronze", "edd_ui_wages")).select(
        "wage_record_id", "ssn", "last_name", "first_name", "naics", "quarter", "wages", "line_number"
    )
    expected_wages = spark.createDataFrame(
        [
            ("W1", "123456780", "SMITH", "J", "445110", "1", "1234.50", 1),
            ("W3", "987654321", "LEE", None, "445110", "3", "0.00", 3),
        ],
        wages.schema,
    )
    assert_df_equality(wages, expected_wages, ignore_row_order=True)


def test_ledger_records_every_attempt(
    spark: SparkSession, bronze_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    ledger = spark.read.table(bronze_settings.table("ops", "deliveries"))
    rows = {(r["partner"], r["delivery_id"]): r for r in ledger.collect()}
    assert len(rows) == 7
    ccc = rows[("cccco", "d2019")]
    assert (ccc["status"], ccc["n_files"], ccc["rows_in_files"], ccc["rows_bronze"], ccc["rows_quarantined"]) == (
        "ingested",
        2,
        6,
        4,
        2,
    )
    assert len(ccc["manifest_sha256"]) == 64
    assert rows[("cde", "bad_sum")]["status"] == "rejected"
    bad_sum = rows[("cde", "bad_sum")]
    assert bad_sum["reason"].startswith("file k.csv: rule checksum: sha256 ")
    assert (bad_sum["rows_bronze"], bad_sum["rows_quarantined"], bad_sum["n_files"]) == (0, 0, 1)


def test_rejected_delivery_writes_no_bronze(
    spark: SparkSession, bronze_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    for feed in ("cde_k12_enrollment", "cde_k12_graduation", "csac_aid_applications"):
        assert not spark.catalog.tableExists(bronze_settings.table("bronze", feed))


@pytest.fixture
def bronze_versions(spark: SparkSession, bronze_settings: Settings) -> Iterator[dict[str, int]]:
    tables = [
        bronze_settings.table("bronze", f) for f in ("cccco_ccc_enrollment", "ucop_uc_enrollment", "edd_ui_wages")
    ]
    tables.append(bronze_settings.table("quarantine", "rejected_rows"))
    yield {t: version(spark, t) for t in tables}


def test_reingest_is_a_no_op_and_a_bad_delivery_writes_nothing(
    spark: SparkSession,
    bronze_settings: Settings,
    landing: Path,
    results: dict[str, DeliveryResult],
    bronze_versions: dict[str, int],
) -> None:
    for bad in ("cde", "csac", "nobody"):
        shutil.rmtree(landing / bad)
    ledger = bronze_settings.table("ops", "deliveries")
    ledger_version = version(spark, ledger)
    assert {r.status for r in ingest_landing(spark, bronze_settings)} == {"skipped"}
    assert version(spark, ledger) == ledger_version  # nothing at all was written
    assert {t: version(spark, t) for t in bronze_versions} == bronze_versions

    text = f"{CCC_HEADER}\nE9|C009|||Di|Ox|05/05/2005|F|333|2021FA|1.0\n"
    folder = make_delivery(landing, "cccco", "ccc_enrollment", "d2021", {"e.txt": text}, tamper={"bytes": 1})
    try:
        again = {r.delivery_id: r for r in ingest_landing(spark, bronze_settings)}
    finally:
        shutil.rmtree(folder)
    assert {(r.partner, r.status, r.rows_bronze) for r in again.values()} == {
        ("cccco", "skipped", 4),
        ("ucop", "skipped", 2),
        ("edd", "skipped", 2),
        ("cccco", "rejected", 0),
    }
    assert again["d2021"].reason == (
        f"file e.txt: rule bytes: {len(text.encode())} bytes, the manifest says 1 (truncated or changed)"
    )
    assert {t: version(spark, t) for t in bronze_versions} == bronze_versions  # the rejection wrote no data
    assert version(spark, ledger) == ledger_version + 1  # only its ledger row


def test_rerun_after_a_crash_replaces_the_delivery_rows(
    spark: SparkSession, bronze_settings: Settings, results: dict[str, DeliveryResult]
) -> None:
    ledger = bronze_settings.table("ops", "deliveries")
    spark.sql(f"DELETE FROM {ledger} WHERE partner = 'ucop'")  # as if the run died before its ledger row
    again = {r.partner: r for r in ingest_landing(spark, bronze_settings)}
    assert again["ucop"].status == "ingested"
    assert again["cccco"].status == "skipped"
    assert spark.read.table(bronze_settings.table("bronze", "ucop_uc_enrollment")).count() == 2
    assert quarantine(spark, bronze_settings, "uc_enrollment").count() == 2


def test_line_numbers_are_true_across_many_splits(spark: SparkSession, tmp_path: Path) -> None:
    lines = [f"line {i}" + "x" * (i % 29) for i in range(1, 3001)]
    (tmp_path / "big.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "small.txt").write_text("a\nb\n", encoding="utf-8")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        raw = read_lines(spark, [str(tmp_path / "big.txt"), str(tmp_path / "small.txt")])
        offsets, files = split_offsets(split_summaries(raw).collect())
        numbered = with_line_numbers(
            raw, spark.createDataFrame(offsets, "source_file string, split_start long, lines_before long")
        )
        wrong = numbered.where(
            (F.col("source_file") == "big.txt")
            & (F.split("raw", "x")[0] != F.concat(F.lit("line "), F.col("line_number").cast("string")))
        )
        assert len(offsets) > 10
        assert wrong.count() == 0
        assert {name: f.lines for name, f in files.items()} == {"big.txt": 3000, "small.txt": 2}
        assert files["big.txt"].first_line == "line 1x"
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_parse_rules_for_odd_lines(spark: SparkSession, settings: Settings) -> None:
    feed = settings.feed("cccco", "ccc_enrollment")
    good = "E1|C1|||A|B|01/01/2000|F|1|2019FA|1.0"
    lines = spark.createDataFrame(
        [
            (1, "\ufeff" + good + "\r"),  # a byte-order mark opens the file, CRLF ends the line
            (2, ""),
            (3, "latin-1 bytes, made below"),
            (4, '"E1|C1|||A|B|01/01/2000|F|1|2019FA|1.0'),
            (5, None),
            (6, "E1|C1|||A|B|01/01/2000|F|1"),
            (7, good.replace("|A|", "|" + "A" * 41 + "|")),
            (8, 'E1|C1|||"A ""Al"""|B|01/01/2000|F|1|2019FA|1.0'),
        ],
        "line_number long, raw string",
    ).where(F.col("raw").isNotNull())
    latin1 = F.concat(F.lit("E1|C1|||A"), F.unhex(F.lit("E9")).cast("string"), F.lit("|B|01/01/2000|F|1|2019FA|1.0"))
    lines = lines.withColumn("raw", F.when(F.col("line_number") == 3, latin1).otherwise(F.col("raw")))
    parsed = lines.transform(with_parsed_fields, feed, 40).select(
        "line_number", "rule", "rule_column", "enrollment_id", "first_name", "units_attempted"
    )
    expected = spark.createDataFrame(
        [
            (1, None, None, "E1", "A", "1.0"),
            (2, "blank_line", None, None, None, None),
            (3, "encoding", None, "E1", "A\ufffd", "1.0"),
            (4, "quoting", None, "E1|C1|||A|B|01/01/2000|F|1|2019FA|1.0", None, None),  # fields as far as parsed
            (6, "column_count", None, "E1", "A", None),
            (7, "field_length", "first_name", "E1", "A" * 41, "1.0"),
            (8, None, None, "E1", 'A "Al"', "1.0"),
        ],
        parsed.schema,
    )
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)
