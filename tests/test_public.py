"""Public layer: primary and complementary small-cell suppression, its properties, and build_public."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_profile
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession

from lakehouse.config import Settings
from lakehouse.gold import load_gold_config
from lakehouse.gold.marts import MART_KEYS, MART_STUDENT_PATHWAYS, PathwaysMeasures
from lakehouse.public import PUBLIC_TABLES, SuppressionError, SuppressionSpec, build_public, public_tables, suppress
from lakehouse.public.build import student_pathways_spec
from lakehouse.tables import table_comment
from tests.suppression_audit import recoverable_cells

MART_DDL = "cohort_year int, county_code string, group_dimension string, group_value string, n_graduates long"
RESULT_DDL = (
    "cohort_year int, county_code string, group_dimension string, group_value string, n_graduates long, "
    "suppression_n_graduates string"
)


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


def test_district_cells_sum_to_their_county(spark: SparkSession) -> None:
    # districts D1 + D2 = county 01; D2 is primary, so D1 (= 01 - D2) must go too; counties sum to the state
    rows = [
        (2020, "00", None, 80), (2020, "01", None, 50), (2020, "02", None, 30),
        (2020, "01", "D1", 45), (2020, "01", "D2", 5), (2020, "02", "D3", 30),
    ]  # fmt: skip
    spec = SuppressionSpec(counts=("n_graduates",), subgeography_column="district_code")
    frame = spark.createDataFrame(
        [(c, k, d, "all", "ALL", n) for c, k, d, n in rows],
        "cohort_year int, county_code string, district_code string, group_dimension string, group_value string, "
        "n_graduates long",
    )
    result = {
        (r["county_code"], r["district_code"]): r["suppression_n_graduates"] for r in suppress(frame, spec).collect()
    }
    assert result == {
        ("00", None): None, ("01", None): None, ("02", None): None,
        ("01", "D1"): "complementary", ("01", "D2"): "primary", ("02", "D3"): None,
    }  # fmt: skip


def test_rates_statistics_and_row_flags_follow_their_counts(spark: SparkSession) -> None:
    spec = SuppressionSpec(
        counts=("n_graduates", "n_enrolled_within_1yr", "n_enrolled_ccc", "n_enrolled_csu", "n_enrolled_uc"),
        rates={"enrollment_rate": ("n_enrolled_within_1yr", "n_graduates")},
        statistics={"median_units": "n_enrolled_ccc"},
    )
    columns = "cohort_year int, county_code string, group_dimension string, " \
        "group_value string, n_graduates long, n_enrolled_within_1yr long, enrollment_rate double, " \
        "n_enrolled_ccc long, n_enrolled_csu long, n_enrolled_uc long, median_units double"  # fmt: skip
    rows = [
        (2020, "00", "all", "ALL", 40, 25, 0.625, 12, 13, 0, 7.5),
        (2021, "00", "all", "ALL", 40, 5, 0.125, 5, 0, 0, 3.0),
        (2022, "00", "all", "ALL", 40, 20, 0.5, None, 20, 0, None),
    ]
    result = suppress(spark.createDataFrame(rows, columns), spec).select(
        "cohort_year", "n_graduates", "n_enrolled_within_1yr", "enrollment_rate", "n_enrolled_ccc", "median_units",
        "suppression_enrollment_rate", "suppression_median_units", "suppression_n_enrolled_uc", "is_suppressed",
        "suppression_reason",
    )  # fmt: skip
    expected = spark.createDataFrame(
        [(2020, 40, 25, 0.625, 12, 7.5, None, None, "primary", True, "primary"),
         (2021, 40, None, None, None, None, "primary", "primary", "primary", True, "primary"),
         (2022, 40, 20, 0.5, None, None, None, None, "primary", True, "primary")],
        "cohort_year int, n_graduates long, n_enrolled_within_1yr long, enrollment_rate double, n_enrolled_ccc long, "
        "median_units double, suppression_enrollment_rate string, suppression_median_units string, "
        "suppression_n_enrolled_uc string, is_suppressed boolean, suppression_reason string",
    )  # fmt: skip
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_student_pathways_spec_comes_from_settings_and_conf(settings: Settings) -> None:
    config = load_gold_config(settings=settings)
    spec = student_pathways_spec(settings, config)
    measures = PathwaysMeasures.from_config(config)
    assert spec.min_cell_size == settings.public.min_cell_size
    assert spec.counts == measures.counts and spec.statistics == measures.statistics
    assert {*spec.key_columns, "geography_level"} == set(MART_KEYS)  # the level follows from the codes
    assert set(spec.statistics.values()) <= set(spec.counts)


# --------------------------------------------------------------------------------------------------
# property: on generated tables no visible count is under the threshold and no suppressed cell equals a
# visible total minus the visible rest of a set (groups within a geography; counties within the state,
# districts within their county)

GROUPS = {"gender": ("F", "M", "X"), "race_ethnicity": ("A", "B", "C", "D")}
PROPERTY_DDL = (
    "cohort_year int, county_code string, district_code string, group_dimension string, group_value string, "
    "n_graduates long"
)
Row = tuple[int, str, str | None, str, str, int]


@st.composite
def consistent_marts(draw: st.DrawFn) -> list[Row]:
    """Marts (one per cohort year) whose districts sum to counties, counties to the state, groups to all."""
    rows: list[Row] = []
    for cohort in range(2000, 2000 + draw(st.integers(1, 3))):
        totals: dict[tuple[str, str, str], int] = defaultdict(int)  # (county or state, dimension, value) -> n
        for county in [f"{i:02d}" for i in range(1, draw(st.integers(1, 3)) + 1)]:
            for district in [f"{county}D{j}" for j in range(1, draw(st.integers(1, 3)) + 1)]:
                genders = draw(st.lists(st.integers(0, 40), min_size=3, max_size=3))
                races = _repartition(sum(genders), draw(st.lists(st.integers(0, 40), min_size=4, max_size=4)))
                cells = {("all", "ALL"): sum(genders)}
                cells |= {("gender", v): n for v, n in zip(GROUPS["gender"], genders, strict=True)}
                cells |= {("race_ethnicity", v): n for v, n in zip(GROUPS["race_ethnicity"], races, strict=True)}
                for (dimension, value), n in cells.items():
                    rows.append((cohort, county, district, dimension, value, n))
                    totals[county, dimension, value] += n
                    totals["00", dimension, value] += n
        rows += [(cohort, geography, None, d, v, n) for (geography, d, v), n in totals.items()]
    return rows


def _repartition(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split into len(weights) parts roughly proportional to `weights` (summing exactly to total)."""
    scale = sum(weights) or 1
    parts = [total * w // scale for w in weights]
    parts[0] += total - sum(parts)
    return parts


@settings_profile(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=consistent_marts())
def test_suppression_properties_on_generated_tables(spark: SparkSession, rows: list[Row]) -> None:
    spec = SuppressionSpec(counts=("n_graduates",), dimensions=tuple(GROUPS), subgeography_column="district_code")
    result = [r.asDict() for r in suppress(spark.createDataFrame(rows, PROPERTY_DDL), spec).collect()]
    assert len(result) == len(rows)
    truth = {(c, k, d, g, v): n for c, k, d, g, v, n in rows}
    for row in result:
        n = truth[
            row["cohort_year"], row["county_code"], row["district_code"], row["group_dimension"], row["group_value"]
        ]
        reason = row["suppression_n_graduates"]
        assert (reason == "primary") == (n < 11), (row, n)
        assert (row["n_graduates"] is None) == (reason is not None) == row["is_suppressed"], row
        assert row["n_graduates"] is None or (row["n_graduates"] == n and n >= 11), row
    assert recoverable_cells(result, "n_graduates", tuple(GROUPS)) == []


# --------------------------------------------------------------------------------------------------
# build_public


def pathways_frame(spark: SparkSession, settings: Settings, rows: Sequence[dict[str, Any]]) -> DataFrame:
    """A mart_student_pathways with every column of the shipped conf: unnamed counts 0, rates and statistics null."""
    measures = PathwaysMeasures.from_config(load_gold_config(settings=settings))
    types = {"cohort_year": "int", "follow_up_months": "int", **dict.fromkeys(measures.counts, "long")}
    types |= dict.fromkeys(measures.rates, "double") | dict.fromkeys(measures.statistics, "double")
    ddl = ", ".join(f"{c} {types.get(c, 'string')}" for c in measures.columns)
    data = [tuple(row.get(c, 0 if c in measures.counts else None) for c in measures.columns) for row in rows]
    return spark.createDataFrame(data, ddl)


def test_build_public_suppresses_the_gold_mart(spark: SparkSession, settings: Settings) -> None:
    # the gold mart is a global temporary view: build_public reads it by name like a table
    databases = dataclasses.replace(settings.databases, gold="global_temp", public="public_test_public")
    isolated = dataclasses.replace(settings, databases=databases)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {databases.public}")
    keys = ("cohort_year", "geography_level", "county_code", "group_dimension", "group_value")
    rows = [
        dict(zip(keys, (2020, "state", "00", "all", "ALL"), strict=True))
        | {"n_graduates": 60, "n_enrolled_within_1yr": 30, "enrollment_rate": 0.5, "n_enrolled_ccc": 20,
           "n_enrolled_csu": 12, "n_completed": 20, "median_months_to_completion": 30.0},
        dict(zip(keys, (2020, "county", "01", "all", "ALL"), strict=True))
        | {"n_graduates": 52, "n_enrolled_within_1yr": 28, "enrollment_rate": 0.5385, "n_enrolled_ccc": 19,
           "n_enrolled_csu": 11, "n_completed": 18, "median_months_to_completion": 29.0},
        dict(zip(keys, (2020, "county", "02", "all", "ALL"), strict=True))
        | {"n_graduates": 8, "n_enrolled_within_1yr": 2, "enrollment_rate": 0.25, "n_enrolled_ccc": 1,
           "n_enrolled_csu": 1, "n_completed": 2, "median_months_to_completion": 40.0},
    ]  # fmt: skip
    pathways_frame(spark, settings, rows).createOrReplaceGlobalTempView(MART_STUDENT_PATHWAYS)
    counts = build_public(spark, isolated)
    assert PUBLIC_TABLES == ("student_pathways",)
    assert counts == {table: 3 for table in public_tables(isolated)}
    table = public_tables(isolated)[0]
    assert table_comment(spark, table).startswith("Grain: one row per cohort year")
    public = spark.read.table(table)
    spec = student_pathways_spec(isolated, load_gold_config(settings=settings))
    for column in (*spec.counts, *spec.rates, *spec.statistics):
        assert f"suppression_{column}" in public.columns
    county = public.where("county_code = '01'").first()
    assert county is not None
    # county 02 is primary everywhere, so county 01 would equal the statewide row minus it: hidden as well
    assert (county["n_graduates"], county["suppression_n_graduates"]) == (None, "complementary")
    assert (county["enrollment_rate"], county["suppression_enrollment_rate"]) == (None, "complementary")
    assert (county["median_months_to_completion"], county["suppression_median_months_to_completion"]) == (
        None,
        "complementary",
    )
    statewide = public.where("county_code = '00'").first()
    assert statewide is not None
    assert (statewide["n_graduates"], statewide["n_enrolled_ccc"], statewide["is_suppressed"]) == (60, 20, True)
    assert statewide["median_months_to_completion"] == 30.0
