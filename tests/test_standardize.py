"""Unit tests of the standardization Column functions; every test has a null row."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from chispa import assert_column_equality
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from lakehouse.silver.standardize import (
    birth_day,
    birth_month,
    birth_year,
    fold_accents,
    hmac_tokenizer,
    parse_date,
    standardize_address,
    standardize_birth_date,
    standardize_code,
    standardize_gender,
    standardize_id,
    standardize_name,
    standardize_ssn,
    standardize_zip5,
    zip3,
)


def check(
    spark: SparkSession, function: Callable[[Column], Column], cases: list[tuple[str | None, str | None]]
) -> None:
    df = spark.createDataFrame(cases, "value string, expected string")
    assert_column_equality(df.withColumn("actual", function(F.col("value"))), "actual", "expected")


def test_fold_accents(spark: SparkSession) -> None:
    check(
        spark,
        fold_accents,
        [
            ("José Müller", "Jose Muller"),
            ("ŁÓDŹ Øre", "LODZ Ore"),
            ("Straße Ærø", "StraSSe AEro"),
            ("Nguyễn Đặng", "Nguyen Dang"),
            ("Rene\u0301e", "Renee"),
            (None, None),
        ],
    )


def test_standardize_name(spark: SparkSession) -> None:
    check(
        spark,
        standardize_name,
        [
            ("  José  O'Brien-Smith ", "JOSE OBRIEN SMITH"),
            ("d’Angelo", "DANGELO"),
            ("Mary-Kate  Olsen Jr.", "MARY KATE OLSEN JR"),
            ("Zoë", "ZOE"),
            ("Nguyễn", "NGUYEN"),
            ("--", None),
            ("   ", None),
            ("R2-D2", "R D"),
            (None, None),
        ],
    )


def test_standardize_ssn(spark: SparkSession) -> None:
    check(
        spark,
        standardize_ssn,
        [
            ("123-45-6780", "123456780"),
            (" 123 45 6780 ", "123456780"),
            ("123.45.6780", "123456780"),
            ("666-12-3456", None),
            ("000-12-3456", None),
            ("900-12-3456", None),
            ("123-00-4567", None),
            ("123-45-0000", None),
            ("123-45-6789", None),
            ("078-05-1120", None),
            ("111-11-1111", None),
            ("555555555", None),
            ("12345678", None),
            ("1234567890", None),
            ("12345678A", None),
            ("", None),
            (None, None),
        ],
    )


def test_standardize_id(spark: SparkSession) -> None:
    check(spark, standardize_id, [(" ab-12 3 ", "AB123"), ("0012345678", "0012345678"), ("-", None), (None, None)])


def test_standardize_gender(spark: SparkSession) -> None:
    check(
        spark,
        standardize_gender,
        [
            ("m", "M"),
            (" Female ", "F"),
            ("WOMAN", "F"),
            ("Non-binary", "X"),
            ("x", "X"),
            ("U", None),
            ("unknown", None),
            (None, None),
        ],
    )


def test_standardize_zip5_and_zip3(spark: SparkSession) -> None:
    check(
        spark,
        standardize_zip5,
        [
            ("95814", "95814"),
            (" 95814-1234 ", "95814"),
            ("958141234", "95814"),
            ("9581", None),
            ("95814-12", None),
            ("00000", None),
            ("ABCDE", None),
            (None, None),
        ],
    )
    check(spark, zip3, [("95814", "958"), (None, None)])


def test_standardize_address(spark: SparkSession) -> None:
    check(
        spark,
        standardize_address,
        [
            ("123 Main Street, Apt. #4", "123 MAIN ST APT 4"),
            ("456  Élan Avenue", "456 ELAN AVE"),
            ("9 Streetview Road Suite 2", "9 STREETVIEW RD STE 2"),
            ("1 O'Farrell Blvd.", "1 OFARRELL BLVD"),
            (" , ", None),
            (None, None),
        ],
    )


def test_standardize_code(spark: SparkSession) -> None:
    check(spark, standardize_code, [(" hisp ", "HISP"), ("", None), (None, None)])


def test_parse_date_and_birth_date_parts(spark: SparkSession) -> None:
    future = (date.today() + timedelta(days=30)).isoformat()
    df = spark.createDataFrame(
        [
            ("2001-03-04", date(2001, 3, 4), date(2001, 3, 4), 2001, 3, 4),
            (" 2001-12-31 ", date(2001, 12, 31), date(2001, 12, 31), 2001, 12, 31),
            ("2001-02-30", None, None, None, None, None),
            ("03/04/2001", None, None, None, None, None),
            ("1850-01-01", date(1850, 1, 1), None, None, None, None),
            (future, date.fromisoformat(future), None, None, None, None),
            (None, None, None, None, None, None),
        ],
        "value string, parsed date, birth date, year int, month int, day int",
    )
    actual = df.withColumn("parsed_actual", parse_date("value", "yyyy-MM-dd")).withColumn(
        "birth_actual", standardize_birth_date("parsed_actual")
    )
    actual = actual.withColumns(
        {
            "year_actual": birth_year("birth_actual"),
            "month_actual": birth_month("birth_actual"),
            "day_actual": birth_day("birth_actual"),
        }
    )
    for name in ("parsed", "birth", "year", "month", "day"):
        assert_column_equality(actual, f"{name}_actual", name)
    us = spark.createDataFrame(
        [("03/04/2001", date(2001, 3, 4)), ("13/04/2001", None), (None, None)], "value string, expected date"
    )
    assert_column_equality(us.withColumn("actual", parse_date("value", "MM/dd/yyyy")), "actual", "expected")


KEY = b"unit-test-key-0123456789"


def python_hmac(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def test_hmac_token_equals_python_hmac(spark: SparkSession) -> None:
    values = ["123456780", "cccco:C001", "Zoë", ""]
    check(spark, hmac_tokenizer(KEY), [*[(v, python_hmac(KEY, v)) for v in values], (None, None)])


def test_hmac_token_depends_on_the_key(spark: SparkSession) -> None:
    other = b"another-unit-test-key-99"
    check(spark, hmac_tokenizer(other), [("123456780", python_hmac(other, "123456780")), (None, None)])
    assert python_hmac(other, "123456780") != python_hmac(KEY, "123456780")


def test_hmac_key_stays_out_of_the_plan(spark: SparkSession) -> None:
    df = spark.createDataFrame([("123456780",)], "ssn string").withColumn("token", hmac_tokenizer(KEY)("ssn"))
    plan = df._jdf.queryExecution().toString()  # type: ignore[operator]
    assert "hmac_sha256" in plan
    assert KEY.decode() not in plan


def test_hmac_tokenizer_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        hmac_tokenizer(b"")
