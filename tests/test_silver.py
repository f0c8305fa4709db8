"""Silver: typing and quarantine of handmade bronze rows, person_records dedup, tokens and record_id links."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze.quarantine import replace_quarantine
from lakehouse.config import DatabaseSettings, FeedConfig, Settings, SilverSettings
from lakehouse.session import create_databases
from lakehouse.silver import SilverResult, build_silver
from lakehouse.silver.identity import IDENTITY_ROWS_SCHEMA, person_records
from lakehouse.silver.standardize import hmac_tokenizer
from lakehouse.silver.validate import with_failures
from lakehouse.tables import write_table

INGESTED_AT = datetime(2025, 1, 15, 8, 0, 0)


def bronze_rows(spark: SparkSession, feed: FeedConfig, rows: list[dict[str, str | None]]) -> DataFrame:
    """Bronze-shaped rows: every feed column a string, lineage as bronze writes it (line numbers from 2)."""
    names = [c.name for c in feed.columns]
    unknown = {k for row in rows for k in row} - set(names)
    assert not unknown, unknown
    data = [(*[row.get(n) for n in names], "d1", "f.csv", i + 2, INGESTED_AT) for i, row in enumerate(rows)]
    schema = ", ".join(
        [
            *[f"{n} string" for n in names],
            "delivery_id string, source_file string, line_number long, ingested_at timestamp",
        ]
    )
    return spark.createDataFrame(data, schema)


K12 = {"school_code": "1234567", "district_code": "12345", "county_code": "34", "is_english_learner": "N"}
ANA = {"ssid": "S1", "first_name": "Ana María", "last_name": "López", "birth_date": "2005-01-02", "gender": "F"}
CDE_ROWS = [
    {
        **K12,
        **ANA,
        "enrollment_id": "K1",
        "race_ethnicity": "hisp",
        "home_zip": "95814-1234",
        "school_year": "2019",
        "grade_level": "09",
        "is_sed": "Y",
    },
    {
        **K12,
        **ANA,
        "enrollment_id": "K2",
        "first_name": "ANA MARIA",
        "last_name": "Lopez",
        "race_ethnicity": "HISP",
        "home_zip": "95814",
        "school_year": "2020",
        "grade_level": "10",
        "is_sed": "1",
    },
    {**K12, "enrollment_id": "K3", "ssid": "S2", "first_name": "Bo", "school_year": "20x9", "grade_level": "13"},
    {
        **K12,
        "enrollment_id": "K4",
        "ssid": "S3",
        "first_name": "Cy",
        "birth_date": "2005-02-30",
        "gender": "Girl",
        "school_year": "2019",
        "grade_level": "KN",
    },
    {**K12, "enrollment_id": "K5", "ssid": None, "first_name": "Di", "school_year": "2019", "grade_level": "KN"},
    {
        **K12,
        "enrollment_id": "K6",
        "ssid": "S6",
        "first_name": "Ed",
        "school_year": "2019",
        "grade_level": "KN",
        "is_sed": "maybe",
    },
]
MARY = {
    "college_student_id": "C001",
    "ssn": "123-45-6780",
    "first_name": "Mary",
    "last_name": "O'Brien",
    "birth_date": "03/04/2001",
    "college_code": "111",
}
CCC_ROWS = [
    {**MARY, "enrollment_id": "E1", "term_code": "2019FA", "units_attempted": "12.0"},
    {**MARY, "enrollment_id": "E2", "term_code": "2020SP", "units_attempted": "6"},
    {
        "enrollment_id": "E3",
        "college_student_id": "C002",
        "ssn": "666-12-3456",
        "first_name": "Al",
        "college_code": "111",
        "term_code": "2019FA",
    },
    {
        "enrollment_id": "E4",
        "college_student_id": "C003",
        "first_name": "Bea",
        "college_code": "111",
        "term_code": "2019FA",
        "units_attempted": "abc",
    },
]
AWARD_ROWS = [
    {**MARY, "award_id": "A1", "award_date": "06/01/2021", "award_type": "AA"},
    {**MARY, "award_id": "A2", "award_date": "06/01/2021", "award_type": "PHD"},
]


@pytest.fixture(scope="module")
def silver_settings(settings: Settings, spark: SparkSession) -> Settings:
    """The shipped config with its own databases (ts_*), holding three handmade bronze tables."""
    databases = DatabaseSettings(**{layer: f"ts_{name}" for layer, name in settings.databases.all().items()})
    isolated = dataclasses.replace(settings, databases=databases)
    create_databases(spark, isolated)
    for (partner, name), rows in {
        ("cde", "k12_enrollment"): CDE_ROWS,
        ("cccco", "ccc_enrollment"): CCC_ROWS,
        ("cccco", "ccc_awards"): AWARD_ROWS,
    }.items():
        feed = isolated.feed(partner, name)
        write_table(bronze_rows(spark, feed, rows), isolated.table("bronze", feed.key))
    bronze_stage = spark.createDataFrame(
        [
            (
                "bronze",
                "cde",
                "k12_enrollment",
                "d1",
                "f.csv",
                9,
                "column_count",
                None,
                "file f.csv line 9: ...",
                "x",
                INGESTED_AT,
            )
        ],
        "stage string, partner string, feed string, delivery_id string, source_file string, line_number long, "
        "rule string, column string, reason string, raw string, rejected_at timestamp",
    )
    replace_quarantine(isolated, bronze_stage, F.col("stage") == "bronze")
    return isolated


@pytest.fixture(scope="module")
def result(spark: SparkSession, silver_settings: Settings) -> SilverResult:
    build_silver(spark, silver_settings)  # a rebuild must give the same tables as a first build
    return build_silver(spark, silver_settings)


def token(value: str) -> str:
    key = b"test-only-hmac-key-not-a-secret"  # tests/conftest.py TEST_HMAC_KEY
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def table(spark: SparkSession, settings: Settings, layer: str, name: str) -> DataFrame:
    return spark.read.table(settings.table(layer, name))


def test_counts_reconcile_and_rebuild_is_idempotent(
    spark: SparkSession, result: SilverResult, silver_settings: Settings
) -> None:
    assert result.rows == {
        "ts_silver.cccco_ccc_enrollment": 3,
        "ts_silver.cccco_ccc_awards": 1,
        "ts_silver.cde_k12_enrollment": 3,
        "ts_silver.person_records": 4,
    }
    assert result.rows_quarantined == {"cccco_ccc_enrollment": 1, "cccco_ccc_awards": 1, "cde_k12_enrollment": 3}
    assert result.rows_bronze == {"cccco_ccc_enrollment": 4, "cccco_ccc_awards": 2, "cde_k12_enrollment": 6}
    assert "ucop_uc_enrollment" in result.skipped_feeds
    # the tables, after two builds, hold exactly the figures (no row written twice)
    assert {t: spark.read.table(t).count() for t in result.rows} == result.rows
    quarantined = (
        table(spark, silver_settings, "quarantine", "rejected_rows")
        .where(F.col("stage") == "silver")
        .groupBy(F.concat_ws("_", "partner", "feed").alias("feed"))
        .count()
    )
    assert {r["feed"]: r["count"] for r in quarantined.collect()} == result.rows_quarantined


def test_failing_rows_are_quarantined_with_rule_column_and_reason(
    spark: SparkSession, silver_settings: Settings, result: SilverResult
) -> None:
    rows = table(spark, silver_settings, "quarantine", "rejected_rows")
    actual = rows.where(F.col("stage") == "silver").select("partner", "feed", "line_number", "rule", "column")
    expected = spark.createDataFrame(
        [
            ("cde", "k12_enrollment", 4, "type", "school_year"),
            ("cde", "k12_enrollment", 6, "required", "ssid"),
            ("cde", "k12_enrollment", 7, "type", "is_sed"),
            ("cccco", "ccc_enrollment", 5, "type", "units_attempted"),
            ("cccco", "ccc_awards", 3, "allowed_values", "award_type"),
        ],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
    k3 = rows.where((F.col("stage") == "silver") & (F.col("line_number") == 4)).first()
    assert k3 is not None
    assert k3["reason"] == (
        "file f.csv line 4: column school_year: rule type: value '20x9' is not a valid int; "
        "column grade_level: rule allowed_values: value '13' is not one of "
        "KN, 01, 02, 03, 04, 05, 06, 07, 08, 09, 10, 11, 12"
    )
    raw = json.loads(k3["raw"])
    assert raw["enrollment_id"] == "K3" and raw["school_year"] == "20x9" and "middle_name" in raw
    assert rows.where(F.col("stage") == "bronze").count() == 1  # the silver rebuild leaves bronze rows alone


def test_silver_feed_rows_are_typed(spark: SparkSession, silver_settings: Settings, result: SilverResult) -> None:
    k12 = table(spark, silver_settings, "silver", "cde_k12_enrollment")
    assert "ssid" not in k12.columns and "first_name" not in k12.columns
    actual = k12.select("enrollment_id", "school_year", "grade_level", "is_sed", "is_english_learner", "line_number")
    expected = spark.createDataFrame(
        [("K1", 2019, "09", True, False, 2), ("K2", 2020, "10", True, False, 3), ("K4", 2019, "KN", None, False, 5)],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
    ccc = table(spark, silver_settings, "silver", "cccco_ccc_enrollment").select("enrollment_id", "units_attempted")
    assert sorted(ccc.collect()) == [Row("E1", Decimal("12.0")), Row("E2", Decimal("6.0")), Row("E3", None)]
    award = table(spark, silver_settings, "silver", "cccco_ccc_awards").first()
    assert award is not None and award["award_date"] == date(2021, 6, 1)


def test_person_records_collapse_identities_and_link_rows(
    spark: SparkSession, silver_settings: Settings, result: SilverResult
) -> None:
    persons = table(spark, silver_settings, "silver", "person_records")
    actual = persons.select(
        "partner",
        "feeds",
        "n_rows",
        "first_name",
        "last_name",
        "birth_date",
        "gender",
        "zip5",
        "zip3",
        "race_ethnicity",
    )
    expected = spark.createDataFrame(
        [
            ("cde", ["k12_enrollment"], 2, "ANA MARIA", "LOPEZ", date(2005, 1, 2), "F", "95814", "958", "HISP"),
            ("cde", ["k12_enrollment"], 1, "CY", None, None, "F", None, None, None),
            ("cccco", ["ccc_awards", "ccc_enrollment"], 3, "MARY", "OBRIEN", date(2001, 3, 4), None, None, None, None),
            ("cccco", ["ccc_enrollment"], 1, "AL", None, None, None, None, None, None),
        ],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert persons.select("record_id").distinct().count() == 4
    assert persons.where(F.length("record_id") != 32).count() == 0
    silver_rows = [
        table(spark, silver_settings, "silver", f).select("record_id")
        for f in ("cde_k12_enrollment", "cccco_ccc_enrollment", "cccco_ccc_awards")
    ]
    linked = silver_rows[0].unionByName(silver_rows[1]).unionByName(silver_rows[2])
    assert linked.join(persons, on="record_id", how="left_anti").count() == 0
    assert (
        linked.groupBy("record_id")
        .count()
        .join(persons, on="record_id", how="inner")
        .where(F.col("count") != F.col("n_rows"))
        .count()
        == 0
    )


def test_tokens_are_hmacs_of_standardized_values(
    spark: SparkSession, silver_settings: Settings, result: SilverResult
) -> None:
    persons = table(spark, silver_settings, "silver", "person_records")
    tokens = {r["first_name"]: (r["local_id_token"], r["ssn_token"], r["ssid_token"]) for r in persons.collect()}
    assert tokens["MARY"] == (token("cccco:C001"), token("123456780"), None)
    assert tokens["AL"] == (token("cccco:C002"), None, None)  # SSN area 666 is invalid
    assert tokens["ANA MARIA"] == (None, None, token("S1"))
    text = " ".join(str(v) for r in persons.collect() for v in r.asDict().values())
    assert "test-only-hmac-key" not in text and "123456780" not in text


def test_local_ids_of_two_partners_never_share_a_token(spark: SparkSession) -> None:
    identity = {name: None for name in IDENTITY_ROWS_SCHEMA.fieldNames()}
    rows = [
        {
            **identity,
            "partner": "cccco",
            "feed": "ccc_enrollment",
            "identity_key": "k1",
            "local_id": "123",
            "first_name": "A",
        },
        {
            **identity,
            "partner": "csu",
            "feed": "csu_enrollment",
            "identity_key": "k2",
            "local_id": "123",
            "first_name": "A",
        },
        {
            **identity,
            "partner": "csu",
            "feed": "csu_enrollment",
            "identity_key": "k3",
            "local_id": None,
            "first_name": None,
        },
    ]
    identities = spark.createDataFrame(rows, IDENTITY_ROWS_SCHEMA)
    persons = person_records(identities, hmac_tokenizer(b"test-only-hmac-key-not-a-secret"))
    actual = persons.select("partner", "local_id_token")
    expected = spark.createDataFrame(
        [("cccco", token("cccco:123")), ("csu", token("csu:123")), ("csu", None)], actual.schema
    )
    assert_df_equality(actual, expected, ignore_row_order=True)
    assert persons.select("record_id").distinct().count() == 3


def test_with_failures_lists_every_failed_check(spark: SparkSession, settings: Settings) -> None:
    feed = settings.feed("edd", "ui_wages")
    wage = {"wage_record_id": "W1", "employer_id": "E1", "year": "2020", "quarter": "1", "wages": "10.00"}
    rows = [
        {**wage, "last_name": "SMITH", "first_name": "J"},
        {**wage, "ssn": "000-00-0000", "last_name": " - "},
        {**wage, "ssn": "123456780", "year": "20x0", "quarter": "5", "wages": "ten"},
        {},
    ]
    checked = bronze_rows(spark, feed, rows).transform(with_failures, feed)
    actual = checked.select(
        "line_number", F.transform("failures", lambda f: F.concat_ws(":", f["rule"], f["column"])).alias("checks")
    )
    expected = spark.createDataFrame(
        [
            (2, []),
            (3, ["identity"]),
            (4, ["type:year", "allowed_values:quarter", "type:wages"]),
            (5, ["required:wage_record_id", "required:employer_id", "required:year", "required:quarter", "identity"]),
        ],
        actual.schema,
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_build_without_the_cache_gives_the_same_tables(
    spark: SparkSession, silver_settings: Settings, result: SilverResult
) -> None:
    """silver.persist_checked only changes how often rows are validated, never what silver holds."""

    def snapshot() -> dict[str, list[Row]]:
        tables = [*result.rows, silver_settings.table("quarantine", "rejected_rows")]
        return {t: sorted(spark.read.table(t).drop("rejected_at").collect()) for t in tables}

    cached = snapshot()
    uncached_settings = dataclasses.replace(silver_settings, silver=SilverSettings(persist_checked=False))
    uncached = build_silver(spark, uncached_settings)
    assert (uncached.rows, uncached.rows_quarantined, uncached.rows_bronze) == (
        result.rows,
        result.rows_quarantined,
        result.rows_bronze,
    )
    assert snapshot() == cached
