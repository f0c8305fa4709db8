"""Public layer: primary and complementary small-cell suppression, its properties, and build_public."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from lakehouse.config import Settings
from lakehouse.gold import load_gold_config
from lakehouse.gold.marts import HS_COLLEGE_ENROLLMENT_COUNTS, MART_HS_COLLEGE_ENROLLMENT
from lakehouse.public import PUBLIC_TABLES, SuppressionError, SuppressionSpec, build_public, public_tables, suppress
from lakehouse.public.build import hs_college_enrollment_spec
from lakehouse.tables import table_comment

MART_DDL = "cohort_year int, county_code string, group_dimension string, group_value string, n_graduates long"
RESULT_DDL = (
    "cohort_year int, county_code string, group_dimension string, group_value string, n_graduates long, "
    "suppression_n_graduates string"
)
Cell = tuple[int, str, str, str]  # cohort_year, county_code, group_dimension, group_value


def mart(spark: SparkSession, rows: Sequence[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(list(rows), MART_DDL)


def shown(result: DataFrame) -> DataFrame:
    return result.select(
        "cohort_year", "county_code", "group_dimension", "group_value", "n_graduates", "suppression_n_graduates"
    )


def test_primary_suppression_hides_counts_under_the_threshold(spark: SparkSession) -> None:
    # statewide rows only and no group dimension: every set is a lone total, so only primary suppression acts
    rows = [(2018, "00", "all", "ALL", 10), (2019, "00", "all", "ALL", 11), (2020, "00", "all", "ALL", 0),
            (2021, "00", "all", "ALL", None)]  # fmt: skip
    result = suppress(mart(spark, rows), SuppressionSpec(counts=("n_graduates",)))
    expected = spark.createDataFrame(
        [(2018, "00", "all", "ALL", None, "primary"), (2019, "00", "all", "ALL", 11, None),
         (2020, "00", "all", "ALL", None, "primary"), (2021, "00", "all", "ALL", None, None)],
        RESULT_DDL,
    )  # fmt: skip
    assert_df_equality(shown(result), expected, ignore_row_order=True, ignore_nullable=True)
    keeps_zeros = suppress(mart(spark, rows), SuppressionSpec(counts=("n_graduates",), suppress_zeros=False))
    zero = keeps_zeros.where("cohort_year = 2020").first()
    assert zero is not None
    assert (zero["n_graduates"], zero["is_suppressed"]) == (0, False)


def test_complementary_suppression_within_a_group_dimension(spark: SparkSession) -> None:
    rows = [
        (2020, "00", "all", "ALL", 100),
        (2020, "00", "gender", "M", 55),
        (2020, "00", "gender", "F", 40),
        (2020, "00", "gender", "X", 5),  # primary; F = 100 - 55 - X would give it away, so F goes too
        (2020, "00", "race_ethnicity", "A", 50),
        (2020, "00", "race_ethnicity", "B", 50),
        (2020, "00", "sed", "Y", None),  # an unknown count hides nothing and is never hidden
    ]
    spec = SuppressionSpec(counts=("n_graduates",), dimensions=("gender", "race_ethnicity"))
    result = suppress(mart(spark, rows), spec)
    expected = spark.createDataFrame(
        [
            (2020, "00", "all", "ALL", 100, None),
            (2020, "00", "gender", "M", 55, None),
            (2020, "00", "gender", "F", None, "complementary"),
            (2020, "00", "gender", "X", None, "primary"),
            (2020, "00", "race_ethnicity", "A", 50, None),
            (2020, "00", "race_ethnicity", "B", 50, None),
            (2020, "00", "sed", "Y", None, None),
        ],
        RESULT_DDL,
    )
    assert_df_equality(shown(result), expected, ignore_row_order=True, ignore_nullable=True)


def test_complementary_suppression_across_counties(spark: SparkSession) -> None:
    rows = [(2020, "00", "all", "ALL", 88), (2020, "01", "all", "ALL", 50), (2020, "02", "all", "ALL", 8),
            (2020, "03", "all", "ALL", 30), (2021, "00", "all", "ALL", None)]  # fmt: skip
    result = suppress(mart(spark, rows), SuppressionSpec(counts=("n_graduates",)))
    expected = spark.createDataFrame(
        [(2020, "00", "all", "ALL", 88, None), (2020, "01", "all", "ALL", 50, None),
         (2020, "02", "all", "ALL", None, "primary"), (2020, "03", "all", "ALL", None, "complementary"),
         (2021, "00", "all", "ALL", None, None)],
        RESULT_DDL,
    )  # fmt: skip
    assert_df_equality(shown(result), expected, ignore_row_order=True, ignore_nullable=True)


def test_complementary_suppression_needs_a_second_pass(spark: SparkSession) -> None:
    # Pass 1 hides F in county 01 (protects M there) and M in county 02 (protects M across counties).
    # Only then does county 02's gender set, and the F set across counties, have one hidden cell: pass 2 hides F/02.
    rows = [
        (2020, "00", "all", "ALL", 125), (2020, "00", "gender", "M", 45), (2020, "00", "gender", "F", 80),
        (2020, "01", "all", "ALL", 35), (2020, "01", "gender", "M", 5), (2020, "01", "gender", "F", 30),
        (2020, "02", "all", "ALL", 90), (2020, "02", "gender", "M", 40), (2020, "02", "gender", "F", 50),
        (2020, "02", "gender", None, None),
    ]  # fmt: skip
    spec = SuppressionSpec(counts=("n_graduates",), dimensions=("gender",))
    result = suppress(mart(spark, rows), spec)
    expected = spark.createDataFrame(
        [
            (2020, "00", "all", "ALL", 125, None), (2020, "00", "gender", "M", 45, None),
            (2020, "00", "gender", "F", 80, None),
            (2020, "01", "all", "ALL", 35, None), (2020, "01", "gender", "M", None, "primary"),
            (2020, "01", "gender", "F", None, "complementary"),
            (2020, "02", "all", "ALL", 90, None), (2020, "02", "gender", "M", None, "complementary"),
            (2020, "02", "gender", "F", None, "complementary"), (2020, "02", "gender", None, None, None),
        ],
        RESULT_DDL,
    )  # fmt: skip
    assert_df_equality(shown(result), expected, ignore_row_order=True, ignore_nullable=True)
    with pytest.raises(SuppressionError, match="after 1 passes"):
        suppress(mart(spark, rows), dataclasses.replace(spec, max_iterations=1)).count()


def test_rates_and_row_flags_follow_their_counts(spark: SparkSession, settings: Settings) -> None:
    spec = hs_college_enrollment_spec(settings, load_gold_config(settings=settings))
    assert spec.min_cell_size == settings.public.min_cell_size
    columns = "cohort_year int, geography_level string, county_code string, group_dimension string, " \
        "group_value string, n_graduates long, n_enrolled_within_1yr long, enrollment_rate double, " \
        "n_enrolled_ccc long, n_enrolled_csu long, n_enrolled_uc long"  # fmt: skip
    rows = [
        (2020, "state", "00", "all", "ALL", 40, 25, 0.625, 12, 13, 0),
        (2021, "state", "00", "all", "ALL", 40, 5, 0.125, 5, 0, 0),
        (2022, "state", "00", "all", "ALL", 40, 20, 0.5, None, 20, 0),
    ]
    result = suppress(spark.createDataFrame(rows, columns), spec).select(
        "cohort_year", "n_graduates", "n_enrolled_within_1yr", "enrollment_rate", "n_enrolled_ccc",
        "suppression_enrollment_rate", "suppression_n_enrolled_uc", "is_suppressed", "suppression_reason",
    )  # fmt: skip
    expected = spark.createDataFrame(
        [(2020, 40, 25, 0.625, 12, None, "primary", True, "primary"),
         (2021, 40, None, None, None, "primary", "primary", True, "primary"),
         (2022, 40, 20, 0.5, None, None, "primary", True, "primary")],
        "cohort_year int, n_graduates long, n_enrolled_within_1yr long, enrollment_rate double, n_enrolled_ccc long, "
        "suppression_enrollment_rate string, suppression_n_enrolled_uc string, is_suppressed boolean, "
        "suppression_reason string",
    )  # fmt: skip
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------------
# property: on random tables no suppressed cell equals a visible total minus the visible rest of a set


def _split(rng: random.Random, total: int, values: Sequence[str]) -> dict[str, int]:
    parts = dict.fromkeys(values, 0)
    for _ in range(total):
        parts[rng.choice(values)] += 1
    return parts


def random_marts(seed: int, n_tables: int) -> list[tuple[int, str, str, str, int]]:
    """Consistent random marts (one per cohort year): county x gender/race counts with their margins."""
    rng = random.Random(seed)
    rows: list[tuple[int, str, str, str, int]] = []
    for cohort in range(2000, 2000 + n_tables):
        statewide: dict[tuple[str, str], int] = defaultdict(int)
        for county in [f"{i:02d}" for i in range(1, rng.randint(1, 4) + 1)]:
            total = rng.choice([rng.randint(1, 14), rng.randint(10, 70)])
            cells = {("all", "ALL"): total}
            for dimension, values in (("gender", ("M", "F", "X")), ("race_ethnicity", ("A", "B", "C", "D"))):
                for value, n in _split(rng, total, values).items():
                    if n or rng.random() < 0.2:  # some zero rows; most absent like in the real mart
                        cells[dimension, value] = n
            for (dimension, value), n in cells.items():
                rows.append((cohort, county, dimension, value, n))
                statewide[dimension, value] += n
        rows += [(cohort, "00", dimension, value, n) for (dimension, value), n in statewide.items()]
    return rows


def recoverable_cells(result: Sequence[dict[str, Any]]) -> list[tuple[Cell, str]]:
    """Hidden cells equal to a visible total minus visible other cells of one of their sets."""
    value: dict[Cell, int | None] = {}
    sets: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: {"total": None, "members": []})
    for row in result:
        cell = (row["cohort_year"], row["county_code"], row["group_dimension"], row["group_value"])
        value[cell] = row["n_graduates"]
        cohort, county, dimension, _group = cell
        geography = sets["geography", cohort, dimension, _group]
        if county == "00":
            geography["total"] = cell
        else:
            geography["members"].append(cell)
        if dimension == "all":
            for name in ("gender", "race_ethnicity"):
                sets["group", cohort, county, name]["total"] = cell
        else:
            sets["group", cohort, county, dimension]["members"].append(cell)
    leaks = []
    for key, cells in sets.items():
        everything = [cells["total"], *cells["members"]]
        hidden = [c for c in everything if c is not None and value[c] is None]
        if len(hidden) == 1 and cells["total"] is not None:
            leaks.append((hidden[0], f"{key}: {len(everything)} cells, one hidden"))
    return leaks


def test_no_suppressed_cell_is_recoverable_on_random_tables(spark: SparkSession) -> None:
    rows = random_marts(seed=20240611, n_tables=16)
    spec = SuppressionSpec(counts=("n_graduates",), dimensions=("gender", "race_ethnicity"))
    result = [row.asDict() for row in suppress(mart(spark, rows), spec).collect()]
    assert len(result) == len(rows)
    truth = {(c, k, d, v): n for c, k, d, v, n in rows}
    reasons = defaultdict(int)
    for row in result:
        cell = (row["cohort_year"], row["county_code"], row["group_dimension"], row["group_value"])
        n, reason = truth[cell], row["suppression_n_graduates"]
        reasons[reason] += 1
        assert (reason == "primary") == (n < 11), (cell, n, reason)
        assert (row["n_graduates"] is None) == (reason is not None) == row["is_suppressed"], row
        if row["n_graduates"] is not None:
            assert row["n_graduates"] == n
    assert reasons["primary"] > 10 and reasons["complementary"] > 10 and reasons[None] > 10, reasons
    assert recoverable_cells(result) == []


# --------------------------------------------------------------------------------------------------
# build_public


def test_build_public_suppresses_the_gold_mart(spark: SparkSession, settings: Settings) -> None:
    # the gold mart is a global temporary view: build_public reads it by name like a table
    databases = dataclasses.replace(settings.databases, gold="global_temp", public="public_test_public")
    isolated = dataclasses.replace(settings, databases=databases)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {databases.public}")
    columns = "cohort_year int, geography_level string, county_code string, group_dimension string, " \
        "group_value string, n_graduates long, n_enrolled_within_1yr long, enrollment_rate double, " \
        "n_enrolled_ccc long, n_enrolled_csu long, n_enrolled_uc long"  # fmt: skip
    rows = [
        (2020, "state", "00", "all", "ALL", 60, 30, 0.5, 20, 12, 0),
        (2020, "county", "01", "all", "ALL", 52, 28, 0.5385, 19, 11, 0),
        (2020, "county", "02", "all", "ALL", 8, 2, 0.25, 1, 1, 0),
    ]
    spark.createDataFrame(rows, columns).createOrReplaceGlobalTempView(MART_HS_COLLEGE_ENROLLMENT)
    counts = build_public(spark, isolated)
    assert PUBLIC_TABLES == ("hs_college_enrollment",)
    assert counts == {table: 3 for table in public_tables(isolated)}
    table = public_tables(isolated)[0]
    assert table_comment(spark, table).startswith("Grain: one row per cohort year")
    public = spark.read.table(table)
    for count in HS_COLLEGE_ENROLLMENT_COUNTS:
        assert f"suppression_{count}" in public.columns
    county = public.where("county_code = '01'").first()
    assert county is not None
    # county 02 is primary everywhere, so county 01 would equal the statewide row minus it: hidden as well
    assert (county["n_graduates"], county["suppression_n_graduates"]) == (None, "complementary")
    assert (county["enrollment_rate"], county["suppression_enrollment_rate"]) == (None, "complementary")
    statewide = public.where("county_code = '00'").first()
    assert statewide is not None
    assert (statewide["n_graduates"], statewide["n_enrolled_ccc"], statewide["is_suppressed"]) == (60, 20, True)
