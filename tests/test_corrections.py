"""A partner's corrected re-delivery: bronze keeps both deliveries, silver applies the correction by MERGE.

A correction names the delivery it replaces in its manifest (`replaces`). Bronze ingests it like any delivery
and the ledger records what it replaces; silver is then built from the current deliveries only, and each
silver table is committed by a MERGE on its key, so its Change Data Feed shows exactly the corrected rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.bronze import DeliveryResult, ingest_landing
from lakehouse.config import Settings
from lakehouse.session import create_databases
from lakehouse.silver import build_silver
from lakehouse.tables import enable_change_data_feed, latest_commit_version
from tests.conftest import isolated
from tests.test_bronze import CCC_HEADER, make_delivery

FEED = "cccco_ccc_enrollment"
ORIGINAL = (
    f"{CCC_HEADER}\n"
    "E1|C001|||Mary|Smith|03/04/2001|F|111|2019FA|12.0\n"
    "E2|C002|||José|García|12/31/2000|M|111|2019FA|6.0\n"
    "E3|C003|||Ann|Lee|01/01/2002|F|111|2019FA|3.0\n"
)
# E1's units corrected, E2 withdrawn (sent in error), E3 unchanged, E4 added.
CORRECTED = (
    f"{CCC_HEADER}\n"
    "E1|C001|||Mary|Smith|03/04/2001|F|111|2019FA|9.0\n"
    "E3|C003|||Ann|Lee|01/01/2002|F|111|2019FA|3.0\n"
    "E4|C004|||Bo|Li|02/02/2002|M|111|2019FA|6.5\n"
)


def ingest(spark: SparkSession, settings: Settings) -> dict[str, DeliveryResult]:
    return {r.delivery_id: r for r in ingest_landing(spark, settings)}


def units(spark: SparkSession, settings: Settings) -> dict[str, tuple[float, str]]:
    rows = spark.read.table(settings.table("silver", FEED)).collect()
    return {r["enrollment_id"]: (float(r["units_attempted"]), r["delivery_id"]) for r in rows}


def changes(spark: SparkSession, table: str, version: int) -> list[tuple[str, str]]:
    """(change type, enrollment_id) of one version's Change Data Feed, sorted."""
    feed: DataFrame = spark.read.option("readChangeFeed", "true").option("startingVersion", version)
    rows = feed.option("endingVersion", version).table(table).select("_change_type", "enrollment_id").collect()
    return sorted((r["_change_type"], r["enrollment_id"]) for r in rows)


@pytest.fixture(scope="module")
def corrected(spark: SparkSession, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = isolated(settings, "tcor")
    create_databases(spark, s)
    landing = Path(s.storage.path("landing"))
    make_delivery(landing, "cccco", "ccc_enrollment", "d2019", {"e.txt": ORIGINAL})
    assert ingest(spark, s)["d2019"].status == "ingested"
    build_silver(spark, s, "run-1")
    enable_change_data_feed(spark, s.databases.silver)
    assert units(spark, s) == {"E1": (12.0, "d2019"), "E2": (6.0, "d2019"), "E3": (3.0, "d2019")}
    make_delivery(
        landing, "cccco", "ccc_enrollment", "d2019c", {"e.txt": CORRECTED}, manifest_fields={"replaces": "d2019"}
    )
    return s


def test_correction_is_ingested_and_recorded(spark: SparkSession, corrected: Settings) -> None:
    results = ingest(spark, corrected)
    assert (results["d2019"].status, results["d2019c"].status) == ("skipped", "ingested")
    ledger = spark.read.table(corrected.table("ops", "deliveries")).where(F.col("delivery_id") == "d2019c")
    assert [r["replaces"] for r in ledger.collect()] == ["d2019"]
    bronze = spark.read.table(corrected.table("bronze", FEED))
    # Bronze keeps every delivery it ingested, each reconciling with its manifest.
    assert {r["delivery_id"]: r["count"] for r in bronze.groupBy("delivery_id").count().collect()} == {
        "d2019": 3,
        "d2019c": 3,
    }


def test_silver_applies_the_correction_by_merge(spark: SparkSession, corrected: Settings) -> None:
    table = corrected.table("silver", FEED)
    before = latest_commit_version(spark, table)
    result = build_silver(spark, corrected, "run-2")
    assert units(spark, corrected) == {"E1": (9.0, "d2019c"), "E3": (3.0, "d2019c"), "E4": (6.5, "d2019c")}
    assert result.rows_bronze[FEED] == 3  # only the current delivery's rows
    version = latest_commit_version(spark, table)
    assert version == before + 1
    operation = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()
    assert operation is not None and operation["operation"] == "MERGE"
    # E3's values are unchanged but its lineage now names the correction: an update too.
    assert changes(spark, table, version) == [
        ("delete", "E2"),
        ("insert", "E4"),
        ("update_postimage", "E1"),
        ("update_postimage", "E3"),
        ("update_preimage", "E1"),
        ("update_preimage", "E3"),
    ]
    # The person of the withdrawn row is gone from person_records; the new one is there.
    people = spark.read.table(corrected.table("silver", "person_records")).select("first_name").collect()
    assert sorted(r["first_name"] for r in people) == ["ANN", "BO", "MARY"]


def test_rebuilding_unchanged_silver_changes_no_row(spark: SparkSession, corrected: Settings) -> None:
    build_silver(spark, corrected, "run-3")
    for name in (FEED, "person_records"):
        table = corrected.table("silver", name)
        version = latest_commit_version(spark, table)
        feed = spark.read.option("readChangeFeed", "true").option("startingVersion", version)
        assert feed.table(table).count() == 0, name


def test_a_correction_must_replace_a_current_ingested_delivery(spark: SparkSession, corrected: Settings) -> None:
    landing = Path(corrected.storage.path("landing"))
    text = f"{CCC_HEADER}\nE5|C005|||Cy|Fox|04/04/2004|X|222|2020SP|3.0\n"
    make_delivery(landing, "cccco", "ccc_enrollment", "dx1", {"e.txt": text}, manifest_fields={"replaces": "d1999"})
    make_delivery(
        landing,
        "cccco",
        "ccc_enrollment",
        "dx2",
        {"e.txt": text + text.splitlines()[1] + "\n"},
        manifest_fields={"replaces": "d2019"},
    )
    results = ingest(spark, corrected)
    assert (results["dx1"].status, results["dx1"].rule) == ("rejected", "replaces")
    assert "d1999, which is not an ingested delivery of cccco/ccc_enrollment" in results["dx1"].reason
    assert (results["dx2"].status, results["dx2"].rule) == ("rejected", "replaces")
    assert "already replaced by delivery d2019c" in results["dx2"].reason
