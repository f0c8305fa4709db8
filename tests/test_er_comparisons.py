"""Comparison features of records and the comparison levels of record pairs, on hand-picked cases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from rapidfuzz.distance import JaroWinkler

from lakehouse.config import ModelSettings
from lakehouse.er.comparisons import (
    Comparison,
    gamma_column,
    jaro_winkler,
    person_comparisons,
    register_functions,
    with_gammas,
    with_similarities,
)
from lakehouse.er.features import (
    FEATURE_COLUMNS,
    comparison_features,
    nickname_groups,
    without_placeholder_identifiers,
)
from lakehouse.silver.standardize import deletion_variants

RECORD_SCHEMA = (
    "record_id string, partner string, first_name string, middle_name string, last_name string, birth_date date,"
    " gender string, zip5 string, ssn_token string, ssn_variant_tokens array<string>"
)
"""Silver-like records without the SSID columns: comparison_features adds them as nulls."""
RECORD_COLUMNS = [field.split()[0] for field in RECORD_SCHEMA.split(", ")]

BASE: dict[str, Any] = {
    "partner": "p1",
    "first_name": "ANA",
    "middle_name": "LUZ",
    "last_name": "KIM",
    "birth_date": date(1990, 5, 7),
    "gender": "F",
    "zip5": "95814",
    "ssn_token": "123456789",
    "ssn_variant_tokens": deletion_variants("123456789"),
}


def ssn(value: str | None) -> dict[str, Any]:
    """The SSN columns of a record holding `value` (plain digits stand in for HMAC tokens)."""
    return {"ssn_token": value, "ssn_variant_tokens": deletion_variants(value) if value else None}


# case -> (left record, right record: what differs from BASE), expected levels that are not "exact"
# (a level name, or None for -1: a side lacks the value). Every other comparison is "exact", except ssid: the
# records have no SSID column, so it is always -1.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, str | None]]] = {
    "same record": ({}, {}, {}),
    "JOSE/PEPE": ({"first_name": "JOSE"}, {"first_name": "PEPE"}, {"first_name": "nickname"}),
    "ROBERT/BOB": ({"first_name": "ROBERT"}, {"first_name": "BOB"}, {"first_name": "nickname"}),
    "MARTHA/MARHTA": ({"first_name": "MARTHA"}, {"first_name": "MARHTA"}, {"first_name": "jaro_winkler_high"}),
    "STEPHEN/STEVEN": ({"first_name": "STEPHEN"}, {"first_name": "STEVEN"}, {"first_name": "jaro_winkler_low"}),
    "M/MICHAEL": ({"first_name": "M"}, {"first_name": "MICHAEL"}, {"first_name": "initial"}),
    "ANA/ZOE": ({}, {"first_name": "ZOE"}, {"first_name": "different"}),
    "null first name": ({}, {"first_name": None}, {"first_name": None}),
    "swapped names": (
        {"first_name": "MARIA", "last_name": "GARCIA"},
        {"first_name": "GARCIA", "last_name": "MARIA"},
        {"first_name": "swapped_with_last_name", "last_name": "swapped_with_first_name"},
    ),
    "swapped, first cut to initial": (
        {"first_name": "M", "last_name": "GARCIA"},
        {"first_name": "GARCIA", "last_name": "MARIA"},
        {"first_name": "swapped_with_last_name", "last_name": "swapped_with_first_name"},
    ),
    "GARCIA/GARCIA LOPEZ": (
        {"last_name": "GARCIA"},
        {"last_name": "GARCIA LOPEZ"},
        {"last_name": "surname_part"},
    ),
    "JOHNSON/JOHNSTON": ({"last_name": "JOHNSON"}, {"last_name": "JOHNSTON"}, {"last_name": "jaro_winkler_high"}),
    # Jaro-Winkler exactly 0.92, the high threshold: the bound is inclusive
    "DAVID/DAVIS": ({"last_name": "DAVID"}, {"last_name": "DAVIS"}, {"last_name": "jaro_winkler_high"}),
    "SMITH/SMYTHE": ({"last_name": "SMITH"}, {"last_name": "SMYTHE"}, {"last_name": "jaro_winkler_low"}),
    "KIM/LOPEZ": ({}, {"last_name": "LOPEZ"}, {"last_name": "different"}),
    "null last name": ({"last_name": None}, {}, {"last_name": None}),
    "middle initial": ({}, {"middle_name": "L"}, {"middle_name": "initial"}),
    "middle different": ({}, {"middle_name": "ROSA"}, {"middle_name": "different"}),
    "null middle name": ({"middle_name": None}, {}, {"middle_name": None}),
    "day/month swapped": ({}, {"birth_date": date(1990, 7, 5)}, {"birth_date": "day_month_swapped"}),
    "year differs": ({}, {"birth_date": date(1991, 5, 7)}, {"birth_date": "one_part_differs"}),
    "day differs": ({}, {"birth_date": date(1990, 5, 8)}, {"birth_date": "one_part_differs"}),
    "same year": ({}, {"birth_date": date(1990, 11, 20)}, {"birth_date": "same_year"}),
    "different birth date": ({}, {"birth_date": date(1985, 1, 30)}, {"birth_date": "different"}),
    "swap in another year": ({}, {"birth_date": date(1991, 7, 5)}, {"birth_date": "different"}),
    "null birth date": ({}, {"birth_date": None}, {"birth_date": None}),
    "SSN typo": ({}, ssn("123456780"), {"ssn": "one_typo"}),
    "SSN adjacent digits swapped": ({}, ssn("123456798"), {"ssn": "one_typo"}),
    "SSN different": ({}, ssn("987654321"), {"ssn": "different"}),
    "null SSN": (ssn(None), {}, {"ssn": None}),
    "gender different": ({}, {"gender": "M"}, {"gender": "different"}),
    "null gender": ({"gender": None}, {}, {"gender": None}),
    "same zip3": ({}, {"zip5": "95820"}, {"zip": "same_zip3"}),
    "zip different": ({}, {"zip5": "10001"}, {"zip": "different"}),
    "null zip": ({}, {"zip5": None}, {"zip": None}),
}


def record(record_id: str, changes: dict[str, Any]) -> tuple[Any, ...]:
    values = {**BASE, **changes, "record_id": record_id}
    return tuple(values[c] for c in RECORD_COLUMNS)


def sides(features: DataFrame, side: str) -> DataFrame:
    return features.select(*[F.col(c).alias(f"{side}_{c}") for c in features.columns])


def level(comparisons: Sequence[Comparison], comparison: str, name: str | None) -> int:
    """The gamma of level `name` of `comparison` (-1 for None)."""
    if name is None:
        return -1
    return next(c for c in comparisons if c.name == comparison).level_names.index(name)


def test_levels_of_hand_picked_pairs(spark: SparkSession) -> None:
    """Each pair differs from the base record in one attribute: that comparison's level is checked, and every
    other comparison must be exact (ssid: -1, the column is absent)."""
    comparisons = person_comparisons(ModelSettings())  # Columns: built once a session exists
    rows = [record(f"{case}|l", left) for case, (left, _, _) in CASES.items()]
    rows += [record(f"{case}|r", right) for case, (_, right, _) in CASES.items()]
    rows.append(record("all null", dict.fromkeys(BASE)))
    # every case shares the base SSN across many birth dates: no placeholder detection here
    features = comparison_features(spark.createDataFrame(rows, RECORD_SCHEMA), max_birth_dates_per_identifier=10_000)
    pairs = spark.createDataFrame(
        [(case, f"{case}|l", f"{case}|r") for case in CASES] + [("all null", "all null", f"{next(iter(CASES))}|l")],
        "case string, l_record_id string, r_record_id string",
    )
    compared = (
        pairs.join(sides(features, "l"), on="l_record_id")
        .join(sides(features, "r"), on="r_record_id")
        .transform(with_similarities)
        .transform(with_gammas, comparisons)
    )
    gammas = [gamma_column(c.name) for c in comparisons]
    expected_rows = []
    for case, (_, _, levels) in CASES.items():
        defaults: dict[str, str | None] = {c.name: "exact" for c in comparisons} | {"ssid": None}
        expected_rows.append((case, *[level(comparisons, name, value) for name, value in (defaults | levels).items()]))
    expected_rows.append(("all null", *[-1] * len(comparisons)))
    expected = spark.createDataFrame(expected_rows, ", ".join(["case string", *[f"{g} byte" for g in gammas]]))
    assert_df_equality(compared.select("case", *gammas), expected, ignore_row_order=True, ignore_nullable=True)


def test_jaro_winkler_agrees_with_rapidfuzz_and_is_null_when_a_side_is_null(spark: SparkSession) -> None:
    """The JVM function against an independent implementation (rapidfuzz, a dev dependency only)."""
    register_functions(spark)
    cases = [
        ("CHRISTOPHERSON", "CHRISTOFERSEN"),
        ("JOSÉ", "JOSE"),
        ("A", "B"),
        ("MARTHA", "MARHTA"),
        ("DWAYNE", "DUANE"),
        ("ANA", "ZOE"),
        ("GARCIA", "GARCIA LOPEZ"),
        ("KIM", "KIM"),
        ("", "ANA"),
        ("ANA", None),
        (None, "ANA"),
        (None, None),
    ]
    df = spark.createDataFrame(cases, "a string, b string").withColumn("jw", jaro_winkler(F.col("a"), F.col("b")))
    assert dict(df.dtypes)["jw"] == "float"
    result = {(row["a"], row["b"]): row["jw"] for row in df.collect()}
    assert len(result) == len(cases)
    for (a, b), score in result.items():
        if a is None or b is None:
            assert score is None, (a, b)
        else:
            assert score == pytest.approx(JaroWinkler.normalized_similarity(a, b), abs=1e-6), (a, b)
    assert result[("KIM", "KIM")] == 1.0
    assert result[("ANA", "ZOE")] == 0.0


FEATURE_RECORDS = [
    # record_id, partner, first_name, last_name, birth_date
    ("r1", "p1", "ALEX", "GARCIA LOPEZ", date(1990, 5, 7)),
    ("r2", "p1", "ALEXANDER", "GARCIA", date(1990, 5, 7)),
    ("r3", "p2", "GARCIA", "ALEX", date(1990, 5, 7)),
    ("r4", "p2", "ZYXW", "GARCIA", date(2001, 1, 2)),
    ("r5", "p2", "ALEX", "GARCIA", None),
    ("r6", "p3", None, None, None),
]


@pytest.fixture(scope="module")
def features(spark: SparkSession) -> dict[str, dict[str, Any]]:
    """comparison_features of FEATURE_RECORDS, which lack every optional column: record_id -> row."""
    records = spark.createDataFrame(
        FEATURE_RECORDS, "record_id string, partner string, first_name string, last_name string, birth_date date"
    )
    result = comparison_features(records)
    assert tuple(result.columns) == FEATURE_COLUMNS
    return {row["record_id"]: row.asDict() for row in result.collect()}


def test_nickname_groups(features: dict[str, dict[str, Any]]) -> None:
    """ALEX is a nickname of several formal names; a formal name is its own group; an unknown name is its own."""
    alex = ["ALEJANDRA", "ALEJANDRO", "ALEXANDER", "ALEXANDRA", "ALEXIS"]
    assert list(nickname_groups()["ALEX"]) == alex
    assert features["r1"]["first_name_groups"] == alex
    assert features["r2"]["first_name_groups"] == ["ALEXANDER"]
    assert "ALEXANDRA" in features["r5"]["first_name_groups"]
    assert features["r4"]["first_name_groups"] == ["ZYXW"]
    # no first name: no group name (nothing a nickname comparison could match)
    assert [g for g in features["r6"]["first_name_groups"] or [] if g is not None] == []


def test_last_name_parts_initials_soundex_and_full_name_key(features: dict[str, dict[str, Any]]) -> None:
    assert features["r1"]["last_name_parts"] == ["GARCIA", "LOPEZ"]
    assert features["r2"]["last_name_parts"] == ["GARCIA"]
    assert features["r6"]["last_name_parts"] is None
    assert features["r1"]["first_initial"] == "A"
    assert features["r6"]["first_initial"] is None
    assert features["r2"]["last_name_soundex"] == "G620"
    assert features["r6"]["last_name_soundex"] is None
    # swapped first and last names share the key
    assert features["r3"]["full_name_key"] == features["r5"]["full_name_key"] == "ALEX GARCIA"
    assert features["r1"]["full_name_key"] == "ALEX GARCIA LOPEZ"
    assert features["r6"]["full_name_key"] is None
    assert (features["r1"]["birth_year"], features["r1"]["birth_month"], features["r1"]["birth_day"]) == (1990, 5, 7)


def test_term_frequencies(features: dict[str, dict[str, Any]]) -> None:
    """tf_<column>: the share of the records with a value that hold the record's value; shares sum to 1."""
    assert features["r2"]["tf_last_name"] == pytest.approx(3 / 5)  # GARCIA: r2, r4, r5 of five last names
    assert features["r1"]["tf_last_name"] == pytest.approx(1 / 5)
    assert features["r1"]["tf_first_name"] == pytest.approx(2 / 5)  # ALEX: r1, r5
    assert features["r1"]["tf_birth_date"] == pytest.approx(3 / 4)
    for column in ("first_name", "last_name", "birth_date"):
        shares = {row[column]: row[f"tf_{column}"] for row in features.values() if row[column] is not None}
        assert sum(shares.values()) == pytest.approx(1.0), column
        assert features["r6"][f"tf_{column}"] is None


def test_missing_optional_columns_are_null_columns_of_the_right_type(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        FEATURE_RECORDS, "record_id string, partner string, first_name string, last_name string, birth_date date"
    )
    result = comparison_features(records.drop("birth_date"))
    types = dict(result.dtypes)
    for column, kind in {
        "middle_name": "string",
        "birth_date": "date",
        "birth_year": "int",
        "gender": "string",
        "zip5": "string",
        "zip3": "string",
        "ssn_token": "string",
        "ssid_token": "string",
        "ssn_variant_tokens": "array<bigint>",  # hashed (features.py)
        "ssid_variant_tokens": "array<bigint>",
        "middle_initial": "string",
        "tf_birth_date": "double",
    }.items():
        assert types[column] == kind, column
        assert result.where(F.col(column).isNotNull()).count() == 0, column
    assert result.count() == len(FEATURE_RECORDS)


def test_a_number_held_by_many_birth_dates_is_a_placeholder(spark: SparkSession) -> None:
    """Six birth dates on one SSN token: a placeholder, nulled with its variants; two (a typo) or one: kept."""
    rows = [(f"p{i}", "ssn-placeholder", ["v1"], date(1990 + i, 1, 1)) for i in range(6)]
    rows += [("t1", "ssn-twice", ["v2"], date(2000, 3, 4)), ("t2", "ssn-twice", ["v2"], date(2000, 4, 3))]
    rows += [("u1", "ssn-once", ["v3"], date(2001, 1, 1)), ("n1", None, None, None)]
    records = spark.createDataFrame(
        rows, "record_id string, ssn_token string, ssn_variant_tokens array<string>, birth_date date"
    ).withColumns({"ssid_token": F.lit(None).cast("string"), "ssid_variant_tokens": F.lit(None).cast("array<string>")})
    kept = {
        r["record_id"]: (r["ssn_token"], r["ssn_variant_tokens"])
        for r in without_placeholder_identifiers(records, max_birth_dates=5).collect()
    }
    assert all(kept[f"p{i}"] == (None, None) for i in range(6))
    assert kept["t1"] == ("ssn-twice", ["v2"]) and kept["u1"] == ("ssn-once", ["v3"])
    assert kept["n1"] == (None, None) and len(kept) == len(rows)
    assert without_placeholder_identifiers(records, max_birth_dates=6).where("ssn_token IS NULL").count() == 1
