"""Data-quality expectations (conf/partners/*.yaml `expectations:`): config checks, and warn, drop and fail in
silver on small hand-written bronze tables of the shipped feeds' expectations."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.config import ConfigError, FeedConfig, Settings, load_partner
from lakehouse.session import create_databases
from lakehouse.silver import build_silver
from lakehouse.silver.expectations import ExpectationFailedError
from lakehouse.tables import table_exists, write_table
from tests.conftest import isolated

INGESTED = datetime(2025, 1, 15, 8, 0)


def write_bronze(spark: SparkSession, settings: Settings, feed: FeedConfig, rows: list[dict[str, str | None]]) -> None:
    """A bronze table of `feed` holding `rows` (missing columns null), lines 2, 3, ... of file b.txt."""
    names = [c.name for c in feed.columns]
    data = [(*[row.get(n) for n in names], "d1", "b.txt", line, INGESTED) for line, row in enumerate(rows, start=2)]
    ddl = ", ".join([*(f"`{n}` string" for n in names), "delivery_id string, source_file string"])
    frame = spark.createDataFrame(data, f"{ddl}, line_number long, ingested_at timestamp")
    write_table(frame, settings.table("bronze", feed.key))


def enrollment(n: int, **values: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "enrollment_id": f"E{n}",
        "college_student_id": f"C{n}",
        "first_name": "ANN",
        "last_name": "LEE",
        "birth_date": "01/01/2002",
        "gender": "F",
        "college_code": "011",
        "term_code": "2019FA",
        "units_attempted": "12.0",
    }
    row.update(values)
    return row


@pytest.fixture(scope="module")
def warned(spark: SparkSession, settings: Settings) -> Settings:
    s = isolated(settings, "expect")
    create_databases(spark, s)
    feed = s.feed("cccco", "ccc_enrollment")
    rows = [
        enrollment(1),
        enrollment(2, units_attempted="50.0"),  # units_in_range: drop
        enrollment(3, college_student_id="C9"),  # with 4: the same student, college and term: warn
        enrollment(4, college_student_id="C9"),
        enrollment(5, college_code="999"),  # known_college: warn
        enrollment(6, units_attempted="12.x"),  # a contract failure (type): not counted by expectations
    ]
    write_bronze(spark, s, feed, rows)
    build_silver(spark, s, run_id="run-1")
    return s


def test_drop_quarantines_warn_counts_and_results_are_recorded(spark: SparkSession, warned: Settings) -> None:
    results = {
        r["expectation"]: (r["rows_checked"], r["rows_violating"], r["outcome"], r["example"])
        for r in spark.table(warned.table("ops", "expectation_results")).where(F.col("run_id") == "run-1").collect()
    }
    assert results == {
        "units_in_range": (5, 1, "dropped", "file b.txt line 3"),
        "one_row_per_student_term": (5, 2, "warned", "file b.txt line 4"),
        "known_college": (5, 1, "warned", "file b.txt line 6"),
    }
    silver = spark.table(warned.table("silver", "cccco_ccc_enrollment"))
    assert sorted(r["enrollment_id"] for r in silver.collect()) == ["E1", "E3", "E4", "E5"]
    quarantined = {
        r["line_number"]: (r["rule"], r["reason"])
        for r in spark.table(warned.table("quarantine", "rejected_rows")).where(F.col("stage") == "silver").collect()
    }
    assert set(quarantined) == {3, 7}  # bronze 6 rows = silver 4 + quarantined 2
    rule, reason = quarantined[3]
    assert rule == "expectation"
    assert reason.startswith("file b.txt line 3: rule expectation: violates expectation units_in_range")


def test_a_failing_expectation_stops_silver_before_it_writes(spark: SparkSession, settings: Settings) -> None:
    s = isolated(settings, "expectfail")
    create_databases(spark, s)
    wages = s.feed("edd", "ui_wages")
    row = {"wage_record_id": "W1", "ssn": "123456789", "last_name": "LEE", "employer_id": "E", "quarter": "1"}
    write_bronze(spark, s, wages, [{**row, "year": "2020", "wages": "10.00"}, {**row, "year": "1980", "wages": "1"}])
    with pytest.raises(
        ExpectationFailedError, match=r"edd/ui_wages expectation wage_year_in_range .*file b.txt line 3"
    ):
        build_silver(spark, s, run_id="run-2")
    assert not table_exists(spark, s.table("silver", "edd_ui_wages"))
    assert not table_exists(spark, s.table("silver", "person_records"))
    outcome = spark.table(s.table("ops", "expectation_results")).where(F.col("expectation") == "wage_year_in_range")
    assert [(r["rows_violating"], r["outcome"]) for r in outcome.collect()] == [(1, "failed")]


def _partner_with(tmp_path: Path, expectation: dict[str, object]) -> Path:
    source = Path(__file__).resolve().parent.parent / "conf" / "partners" / "edd.yaml"
    data = yaml.safe_load(source.read_text())
    data["feeds"]["ui_wages"]["expectations"] = [expectation]
    path = tmp_path / "edd.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        ({"name": "x", "expect": "wages > 0", "unique": ["ssn"]}, "exactly one of expect, unique, reference"),
        ({"name": "x"}, "exactly one of expect, unique, reference"),
        ({"name": "x", "unique": ["wage_record_id"], "on_violation": "drop"}, "cannot be 'drop' for unique"),
        ({"name": "x", "unique": ["employer"]}, "names 'employer', which is not a column of the feed"),
        ({"name": "x", "expect": "wages > 0", "on_violation": "stop"}, "must be one of 'warn', 'drop', 'fail'"),
        ({"name": "x", "reference": {"column": "naics", "table": "nope", "key": "code"}}, "'nope' is not in"),
        ({"name": "x", "reference": {"column": "naics", "table": "naics", "key": "nope"}}, "not a column of naics.csv"),
        ({"name": "two words", "expect": "wages > 0"}, "must be a unique identifier"),
    ],
)
def test_expectation_config_errors_name_file_and_key(
    tmp_path: Path, expectation: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"edd\.yaml: .*expectations\[0\]") as error:
        load_partner(_partner_with(tmp_path, expectation))
    assert message in str(error.value)


def test_shipped_expectations_load() -> None:
    root = Path(__file__).resolve().parent.parent / "conf" / "partners"
    feeds = [f for p in sorted(root.glob("*.yaml")) for f in load_partner(p).feeds]
    kinds = {e.on_violation for f in feeds for e in f.expectations}
    assert kinds == {"warn", "drop", "fail"}
