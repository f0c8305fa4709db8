"""Gold layer: conf/gold.yaml, attribute resolution, facts, linkage checks, the college-enrollment mart, build_gold."""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import ConfigError, Settings
from lakehouse.gold import GOLD_TABLES, UnlinkedRecordsError, build_gold, gold_tables, load_gold_config
from lakehouse.gold.columns import term_academic_year, term_start_date, term_suffix
from lakehouse.gold.config import GoldConfig, gold_conf_path
from lakehouse.gold.facts import FACT_POSTSECONDARY_ENROLLMENT, FACT_QUARTERLY_WAGES, FACTS, build_fact
from lakehouse.gold.linking import check_all_linked
from lakehouse.gold.marts import MART_KEYS, PathwaysMeasures, missing_cpi_years, student_pathways
from lakehouse.gold.person import dim_person, resolve_attributes
from lakehouse.tables import table_comment

T0 = dt.datetime(2024, 1, 10, 12, 0, 0)
T1 = dt.datetime(2024, 6, 10, 12, 0, 0)
LINEAGE = ("record_id", "delivery_id", "source_file", "line_number", "ingested_at")
LINEAGE_DDL = "record_id string, delivery_id string, source_file string, line_number long, ingested_at timestamp"
PERSON_RECORDS_DDL = (
    "record_id string, partner string, feeds array<string>, n_rows long, local_id_token string, ssn_token string, "
    "ssid_token string, first_name string, middle_name string, last_name string, birth_date date, birth_year int, "
    "birth_month int, birth_day int, gender string, race_ethnicity string, address_line string, city string, "
    "zip5 string, zip3 string"
)
CROSSWALK_DDL = (
    "record_id string, person_id string, partner string, cluster_size int, match_confidence double, "
    "run_id string, linked_at timestamp"
)


@pytest.fixture(scope="module")
def gold_config(settings: Settings) -> GoldConfig:
    return load_gold_config(settings=settings)


# --------------------------------------------------------------------------------------------------
# helpers: silver, person_records and crosswalk rows shaped by the contract


def silver_df(spark: SparkSession, settings: Settings, feed_key: str, rows: Sequence[Mapping[str, Any]]) -> DataFrame:
    """silver.<feed_key> rows: the feed's non-identity YAML columns typed, plus record_id and lineage."""
    feed = next(f for f in settings.feeds() if f.key == feed_key)
    columns = [c for c in feed.columns if not c.identity]
    names = {c.name for c in columns}
    data = []
    for i, row in enumerate(rows):
        unknown = set(row) - names - set(LINEAGE)
        assert not unknown, f"{feed_key} has no columns {unknown}"
        values = [row.get(c.name, f"{feed.name}-{i}" if c.name == feed.record_key else None) for c in columns]
        lineage = [row["record_id"], "delivery-1", f"{feed.name}_0000.csv", row.get("line_number", i + 2)]
        data.append((*values, *lineage, row.get("ingested_at", T0)))
    ddl = ", ".join([f"{c.name} {c.spark_type()}" for c in columns] + [LINEAGE_DDL])
    return spark.createDataFrame(data, ddl)


def person_records_df(
    spark: SparkSession, rows: Sequence[tuple[str, str, str | None, str | None, int | None]]
) -> DataFrame:
    """silver.person_records from (record_id, partner, gender, race_ethnicity, birth_year), PII filled in."""
    data = [
        (rid, partner, [partner], 1, "tok-l", "tok-s", None, "ANA", None, "LOPEZ", dt.date(year or 2000, 1, 2),
         year, 1, 2, gender, race, "1 MAIN ST", "FRESNO", "93701", "937")
        for rid, partner, gender, race, year in rows
    ]  # fmt: skip
    return spark.createDataFrame(data, PERSON_RECORDS_DDL)


def crosswalk_df(spark: SparkSession, pairs: Mapping[str, str]) -> DataFrame:
    data = [(rid, pid, "x", 1, 1.0, "run-1", T0) for rid, pid in pairs.items()]
    return spark.createDataFrame(data, CROSSWALK_DDL)


# --------------------------------------------------------------------------------------------------
# conf/gold.yaml


def test_gold_config_as_shipped_loads_and_matches_the_feeds(settings: Settings, gold_config: GoldConfig) -> None:
    assert gold_config.pathways.graduate_completion_types == ("HSD",)
    assert gold_config.earnings.deflators()[gold_config.earnings.constant_dollar_year] == 1.0
    assert gold_config.postsecondary.terms["FA"].start_month == 8
    assert gold_config.student_groups.dimension_names() == ("gender", "race_ethnicity", "sed")
    assert gold_config.person.priority("race_ethnicity")[0] == "cde"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"suppression": {"suppress_zeros": True, "max_rounds": 3}}, "unknown key 'suppression.max_rounds'"),
        ({"pathways": {"graduate_completion_types": ["HSD"], "graduation_month": 13,
                       "award_level_order": ["certificate", "associate", "bachelor", "master", "doctorate"]}},
         "key 'pathways.graduation_month'"),
        ({"pathways": {"graduate_completion_types": ["HSD"], "award_level_order": ["certificate", "bachelor"]}},
         "key 'pathways.award_level_order' must list every level"),
        ({"earnings": {"years_after_award": [1], "constant_dollar_year": 2030, "cpi": {2024: 313.689}}},
         "key 'earnings.constant_dollar_year' is 2030"),
        ({"earnings": {"years_after_award": [0, 1], "constant_dollar_year": 2024, "cpi": {2024: 313.689}}},
         "key 'earnings.years_after_award'"),
        ({"person": {"source_priority": {"gender": ["cde", "nasa"]}}}, "key 'person.source_priority.gender[1]'"),
    ],
)  # fmt: skip
def test_gold_config_errors_name_file_and_key(
    settings: Settings, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    data = yaml.safe_load(gold_conf_path().read_text(encoding="utf-8"))
    data.update(change)
    path = tmp_path / "gold.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_gold_config(path, settings=settings)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_gold_config_needs_a_level_for_every_allowed_award_type(settings: Settings, tmp_path: Path) -> None:
    data = yaml.safe_load(gold_conf_path().read_text(encoding="utf-8"))
    del data["postsecondary"]["award_levels"]["PHD"]
    path = tmp_path / "gold.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"postsecondary.award_levels' has no level for degree_type 'PHD'"):
        load_gold_config(path, settings=settings)


# --------------------------------------------------------------------------------------------------
# Column functions


def test_term_code_parses_into_academic_year_term_and_start_date(spark: SparkSession, gold_config: GoldConfig) -> None:
    terms = gold_config.postsecondary.terms
    df = spark.createDataFrame([("2019FA",), ("2020sp",), ("2020SU",), ("2020XX",), ("20FA",), (None,)], "code string")
    code = F.col("code")
    result = df.select(
        "code",
        term_academic_year(code, terms).alias("academic_year"),
        term_suffix(code, terms).alias("term"),
        term_start_date(code, terms).alias("term_start_date"),
    )
    expected = spark.createDataFrame(
        [
            ("2019FA", 2020, "FA", dt.date(2019, 8, 15)),
            ("2020sp", 2020, "SP", dt.date(2020, 1, 20)),
            ("2020SU", 2021, "SU", dt.date(2020, 6, 15)),
            ("2020XX", None, None, None),
            ("20FA", None, None, None),
            (None, None, None, None),
        ],
        "code string, academic_year int, term string, term_start_date date",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------------
# dim_person


def test_resolve_attributes_most_frequent_then_source_priority_then_most_recent(spark: SparkSession) -> None:
    records = spark.createDataFrame(
        [
            ("p1", "cde", T0, "M", 2001),  # p1: F twice beats M once, although cde is first in priority
            ("p1", "dhcs", T0, "F", 2002),
            ("p1", "csu", T0, "F", 2002),
            ("p2", "dhcs", T1, "M", 2003),  # p2: one vote each; cde ranks before dhcs
            ("p2", "cde", T0, "F", 2004),
            ("p3", "edd", T0, "M", None),  # p3: one vote each, neither partner listed; the later record wins
            ("p3", "ctc", T1, "X", None),
            ("p4", "cde", T0, None, None),  # p4: no value at all: no row (dim_person keeps nulls)
            ("p5", "edd", T0, "M", 1999),  # p5: same rank, same time: the smaller value (by birth_year's own
            ("p5", "ctc", T0, "F", 2000),  # priority, edd comes first)
        ],
        "person_id string, partner string, last_seen_at timestamp, gender string, birth_year int",
    )
    result = resolve_attributes(records, {"gender": ("cde", "dhcs", "csu"), "birth_year": ("edd",)})
    expected = spark.createDataFrame(
        [("p1", "F", 2002), ("p2", "F", 2003), ("p3", "X", None), ("p5", "F", 1999)],
        "person_id string, gender string, birth_year int",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_dim_person_counts_records_lists_partners_and_flags_sed(spark: SparkSession, gold_config: GoldConfig) -> None:
    records = spark.createDataFrame(
        [
            ("p1", "cde", T0, 2002, "F", "700"),
            ("p1", "dhcs", T0, 2003, "M", None),
            ("p1", "ccc", T1, 2003, "F", None),
            ("p2", "edd", None, None, None, None),
        ],
        "person_id string, partner string, last_seen_at timestamp, birth_year int, gender string, "
        "race_ethnicity string",
    )
    sed = spark.createDataFrame([("p1",)], "person_id string")
    result = dim_person(records, sed, gold_config.person)
    expected = spark.createDataFrame(
        [("p1", 2003, "F", "700", 3, ["ccc", "cde", "dhcs"], True), ("p2", None, None, None, 1, ["edd"], False)],
        "person_id string, birth_year int, gender string, race_ethnicity string, n_source_records long, "
        "partners array<string>, is_sed_ever boolean",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


# --------------------------------------------------------------------------------------------------
# facts and linkage


def test_postsecondary_enrollment_unions_segments_and_every_source_row_lands(
    spark: SparkSession, settings: Settings, gold_config: GoldConfig
) -> None:
    silver = {
        "cccco_ccc_enrollment": silver_df(spark, settings, "cccco_ccc_enrollment", [
            {"record_id": "r1", "college_code": "C01", "term_code": "2020FA", "units_attempted": Decimal("12.0")},
            # the same person and term from a second record, ingested later: collapses, later row's values win
            {"record_id": "r2", "college_code": "C01", "term_code": "2020FA", "units_attempted": Decimal("9.5"),
             "ingested_at": T1},
            {"record_id": "r1", "college_code": "C01", "term_code": "2021SP", "units_attempted": None},
        ]),
        "csu_csu_enrollment": silver_df(spark, settings, "csu_csu_enrollment", [
            {"record_id": "r3", "campus_code": "S07", "term_code": "2020FA", "student_level": "FTF"},
        ]),
        "ucop_uc_enrollment": silver_df(spark, settings, "ucop_uc_enrollment", [
            {"record_id": "r4", "campus_code": "U03", "term_code": "2020XX"},
        ]),
    }  # fmt: skip
    crosswalk = crosswalk_df(spark, {"r1": "p1", "r2": "p1", "r3": "p1", "r4": "p2"})
    result = build_fact(FACT_POSTSECONDARY_ENROLLMENT, silver, crosswalk, gold_config)
    expected = spark.createDataFrame(
        [
            ("p1", "CCC", "C01", "2020FA", Decimal("9.5"), None, 2021, "FA", dt.date(2020, 8, 15), 2),
            ("p1", "CCC", "C01", "2021SP", None, None, 2021, "SP", dt.date(2021, 1, 20), 1),
            ("p1", "CSU", "S07", "2020FA", None, "FTF", 2021, "FA", dt.date(2020, 8, 15), 1),
            ("p2", "UC", "U03", "2020XX", None, None, None, None, None, 1),
        ],
        "person_id string, segment string, institution_code string, term_code string, units_attempted decimal(5,1), "
        "student_level string, academic_year int, term string, term_start_date date, n_source_rows long",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)
    total = result.agg(F.sum("n_source_rows")).first()
    assert total is not None
    assert total[0] == sum(df.count() for df in silver.values())


def test_quarterly_wages_add_up_within_the_grain(
    spark: SparkSession, settings: Settings, gold_config: GoldConfig
) -> None:
    wages = silver_df(spark, settings, "edd_ui_wages", [
        {"record_id": "r1", "employer_id": "E1", "year": 2023, "quarter": 1, "naics": "611110",
         "wages": Decimal("5000.00")},
        {"record_id": "r2", "employer_id": "E1", "year": 2023, "quarter": 1, "naics": "611111",
         "wages": Decimal("250.50"), "ingested_at": T1},
        {"record_id": "r1", "employer_id": "E1", "year": 2023, "quarter": 2, "naics": None, "wages": None},
    ])  # fmt: skip
    crosswalk = crosswalk_df(spark, {"r1": "p1", "r2": "p1"})
    result = build_fact(FACT_QUARTERLY_WAGES, {"edd_ui_wages": wages}, crosswalk, gold_config)
    expected = spark.createDataFrame(
        [("p1", "E1", 2023, 1, "611111", Decimal("5250.50"), 2), ("p1", "E1", 2023, 2, None, None, 1)],
        "person_id string, employer_id string, year int, quarter int, naics string, wages decimal(14,2), "
        "n_source_rows long",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_rows_without_a_crosswalk_row_raise(spark: SparkSession, settings: Settings) -> None:
    wages = silver_df(spark, settings, "edd_ui_wages", [
        {"record_id": "r1", "employer_id": "E1", "year": 2023, "quarter": 1},
        {"record_id": "r9", "employer_id": "E1", "year": 2023, "quarter": 1},
        {"record_id": None, "employer_id": "E2", "year": 2023, "quarter": 1},
    ])  # fmt: skip
    records = person_records_df(spark, [("r1", "edd", None, None, None), ("r9", "edd", None, None, None)])
    crosswalk = crosswalk_df(spark, {"r1": "p1"})
    with pytest.raises(UnlinkedRecordsError, match=r"3 source rows .*edd_ui_wages: 2, person_records: 1"):
        check_all_linked({"person_records": records, "edd_ui_wages": wages}, crosswalk)
    check_all_linked({"person_records": records.where("record_id = 'r1'")}, crosswalk)  # all linked: no error
    doubled = crosswalk.unionByName(crosswalk_df(spark, {"r1": "p2"}))
    with pytest.raises(UnlinkedRecordsError, match="more than one row"):
        check_all_linked({"person_records": records.where("record_id = 'r1'")}, doubled)


# --------------------------------------------------------------------------------------------------
# mart_student_pathways on a hand-written population


CPI = {2021: 270.970, 2022: 292.655, 2023: 304.702, 2024: 313.689}


def real(dollars: float, year: int) -> float:
    """`dollars` of `year` in 2024 dollars (the CPI-U series of conf/gold.yaml)."""
    return dollars * CPI[2024] / CPI[year]


def whole_dollars(value: float) -> int:
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quantiles(values: Sequence[float]) -> tuple[int, int, int] | tuple[None, None, None]:
    """Exact 25th, 50th and 75th percentiles (linear interpolation, as Spark's percentile), whole dollars."""
    if not values:
        return (None, None, None)
    ordered = sorted(values)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return (whole_dollars(at(0.25)), whole_dollars(at(0.5)), whole_dollars(at(0.75)))


# The hand-written population (graduation 2020-06-15 for cohort 2020): who each graduate is and what the
# mart must find for them, worked out by hand from the facts below.
#   a: CCC in fall 2020; CERT 2021-06-01 and AA 2022-06-01 -> associate, 23 months; year 1 = 2022Q3-2023Q2
#      (wages 1000 in 2022Q3, 2000 in 2023Q1); years 3 and 5 end after the wage data (2024Q4).
#   b: UC from fall 2021 (after the one-year window); BS 2024-06-10 -> bachelor, 47 months; year 1 unobserved.
#   c: CCC on graduation day and CSU in fall 2020; CERT 2020-12-15 -> 6 months; year 1 = 2021Q1-Q4
#      (3000 in 2021Q1), year 3 = 2023Q1-Q4 (4000 in 2023Q2, 1000 in 2023Q4), year 5 unobserved.
#   f: an unparsed term (no enrollment); an award before graduation (no completion).
#   g: CCC in fall 2020; CERT 2021-03-01 -> 8 months; years 1 and 3 observed without wages (not employed).
#   e: cohort 2019 (the earliest of two diplomas); CCC exactly 12 months after graduation: ever, not within 1 yr.
#   d: a GED, in no cohort.
PATHWAY_PEOPLE = {
    # person: (cohort, county, district, gender, race, sed)
    "a": (2020, "01", "01D1", "F", "700", "Y"),
    "b": (2020, "01", "01D2", "M", "600", "N"),
    "c": (2020, "02", "02D1", "F", "UNKNOWN", "Y"),
    "f": (2020, "02", "02D2", "M", "600", "N"),
    "g": (2020, "01", "01D1", "M", "600", "N"),
    "e": (2019, "02", "02D1", "UNKNOWN", "700", "N"),
}
PATHWAY_OUTCOMES = {
    # person: (enrolled 1 yr, CCC, CSU, UC, ever, completion level, months, {year: earnings or None (unobserved)})
    "a": (1, 1, 0, 0, 1, "associate", 23, {1: real(1000, 2022) + real(2000, 2023), 3: None, 5: None}),
    "b": (0, 0, 0, 0, 1, "bachelor", 47, {1: None, 3: None, 5: None}),
    "c": (1, 1, 1, 0, 1, "certificate", 6, {1: real(3000, 2021), 3: real(5000, 2023), 5: None}),
    "f": (0, 0, 0, 0, 0, None, None, {1: None, 3: None, 5: None}),
    "g": (1, 1, 0, 0, 1, "certificate", 8, {1: 0.0, 3: 0.0, 5: None}),
    "e": (0, 0, 0, 0, 1, None, None, {1: None, 3: None, 5: None}),
}
FOLLOW_UP = {2020: 14, 2019: 26}  # months from graduation to the latest term (b's fall 2021)


def expected_pathways(measures: PathwaysMeasures, levels: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every row of the mart, aggregated in Python from PATHWAY_PEOPLE and PATHWAY_OUTCOMES."""
    members: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for person, (cohort, county, district, gender, race, sed) in PATHWAY_PEOPLE.items():
        for place in (("state", "00", None), ("county", county, None), ("district", county, district)):
            for group in (("all", "ALL"), ("gender", gender), ("race_ethnicity", race), ("sed", sed)):
                members[(cohort, *place, *group)].append(person)
    rows = {}
    for key, people in members.items():
        outcomes = [PATHWAY_OUTCOMES[p] for p in people]
        row: dict[str, Any] = {"follow_up_months": FOLLOW_UP[key[0]], "n_graduates": len(people)}
        for i, column in enumerate(("n_enrolled_within_1yr", "n_enrolled_ccc", "n_enrolled_csu", "n_enrolled_uc")):
            row[column] = sum(o[i] for o in outcomes)
        row["n_enrolled_ever"] = sum(o[4] for o in outcomes)
        row["n_completed"] = sum(o[5] is not None for o in outcomes)
        for level in levels:
            row[f"n_completed_{level}"] = sum(o[5] == level for o in outcomes)
        months = sorted(o[6] for o in outcomes if o[6] is not None)
        row["median_months_to_completion"] = float(statistics.median(months)) if months else None
        for year in (1, 3, 5):
            observed = [o[7][year] for o in outcomes if o[7][year] is not None]
            employed = [v for v in observed if v > 0]
            row[f"n_observed_yr{year}"], row[f"n_employed_yr{year}"] = len(observed), len(employed)
            p25, median, p75 = quantiles(employed)
            row |= {f"earnings_p25_yr{year}": p25, f"earnings_median_yr{year}": median, f"earnings_p75_yr{year}": p75}
        for rate, (numerator, denominator) in measures.rates.items():
            row[rate] = round(row[numerator] / row[denominator], 4) if row[denominator] else None
        rows[key] = row
    return rows


def test_student_pathways_mart_on_a_hand_written_population(spark: SparkSession, gold_config: GoldConfig) -> None:
    graduation = spark.createDataFrame(
        [
            ("a", 2020, "S1", "HSD", "01", "01D1"),
            ("b", 2020, "S2", "HSD", "01", "01D2"),
            ("c", 2020, "S3", "HSD", "02", "02D1"),
            ("d", 2020, "S1", "GED", "01", "01D1"),  # not a graduate type: not in any cohort
            ("e", 2019, "S3", "HSD", "02", "02D1"),  # two diplomas: the earliest decides cohort and place
            ("e", 2020, "S1", "HSD", "01", "01D1"),
            ("f", 2020, "S4", "HSD", "02", "02D2"),
            ("g", 2020, "S1", "HSD", "01", "01D1"),
        ],
        "person_id string, school_year int, school_code string, completion_type string, county_code string, "
        "district_code string",
    )
    persons = spark.createDataFrame(
        [("a", "F", "700"), ("b", "M", "600"), ("c", "F", None), ("d", "M", "600"), ("e", None, "700"),
         ("f", "M", "600"), ("g", "M", "600")],
        "person_id string, gender string, race_ethnicity string",
    )  # fmt: skip
    k12 = spark.createDataFrame(
        [("a", 2019, True), ("b", 2020, False), ("e", 2020, True), ("f", 2020, None)],
        "person_id string, school_year int, is_sed boolean",
    )  # e's is_sed comes after e's cohort year: e is not SED
    programs = spark.createDataFrame(
        [("c", "CALFRESH", dt.date(2019, 1, 1)), ("e", "MEDI_CAL", dt.date(2019, 7, 1))],
        "person_id string, program string, start_date date",
    )  # c's span starts before graduation (SED); e's after (not SED)
    enrollment = spark.createDataFrame(
        [
            ("a", "CCC", dt.date(2020, 8, 15)),
            ("b", "UC", dt.date(2021, 8, 15)),  # after the 12-month window, within the 96-month one
            ("c", "CSU", dt.date(2020, 8, 15)),
            ("c", "CCC", dt.date(2020, 6, 15)),  # on graduation day: inside
            ("e", "CCC", dt.date(2020, 6, 15)),  # exactly 12 months after e's 2019 graduation: outside
            ("f", "CCC", None),  # unparsed term: no enrollment
            ("g", "CCC", dt.date(2020, 8, 15)),
        ],
        "person_id string, segment string, term_start_date date",
    )
    awards = spark.createDataFrame(
        [
            ("a", dt.date(2021, 6, 1), "certificate"),
            ("a", dt.date(2022, 6, 1), "associate"),  # the higher level wins over the earlier award
            ("b", dt.date(2024, 6, 10), "bachelor"),
            ("c", dt.date(2020, 12, 15), "certificate"),
            ("d", dt.date(2021, 1, 1), "associate"),  # not a graduate
            ("f", dt.date(2019, 1, 1), "associate"),  # before graduation
            ("g", dt.date(2021, 3, 1), "certificate"),
        ],
        "person_id string, award_date date, award_level string",
    )
    wages = spark.createDataFrame(
        [
            ("a", 2022, 3, Decimal("1000.00")),
            ("a", 2023, 1, Decimal("2000.00")),
            ("a", 2023, 3, Decimal("500.00")),  # year 2 after a's award: not measured
            ("c", 2021, 1, Decimal("3000.00")),
            ("c", 2023, 2, Decimal("4000.00")),
            ("c", 2023, 4, Decimal("1000.00")),
            ("f", 2021, 1, Decimal("900.00")),  # the first quarter of the wage data
            ("f", 2024, 4, Decimal("900.00")),  # the last
        ],
        "person_id string, year int, quarter int, wages decimal(14,2)",
    )
    config = dataclasses.replace(
        gold_config, earnings=dataclasses.replace(gold_config.earnings, cpi={str(y): v for y, v in CPI.items()})
    )
    measures = PathwaysMeasures.from_config(config)
    result = student_pathways(
        graduation,
        persons=persons,
        k12_enrollment=k12,
        program_participation=programs,
        postsecondary_enrollment=enrollment,
        postsecondary_awards=awards,
        wages=wages,
        config=config,
    )
    assert tuple(result.columns) == measures.columns
    expected = expected_pathways(measures, config.pathways.award_level_order)
    actual = {tuple(row[k] for k in MART_KEYS): row.asDict() for row in result.collect()}
    assert set(actual) == set(expected)
    for key, values in expected.items():
        got = {column: actual[key][column] for column in values}
        assert got == values, key
    statewide = actual[2020, "state", "00", None, "all", "ALL"]  # the worked example, spelled out
    assert (statewide["n_graduates"], statewide["n_enrolled_within_1yr"], statewide["n_enrolled_ever"]) == (5, 3, 4)
    assert (
        statewide["n_completed"],
        statewide["n_completed_certificate"],
        statewide["median_months_to_completion"],
    ) == (
        4,
        2,
        15.5,
    )
    assert (statewide["n_observed_yr1"], statewide["n_employed_yr1"], statewide["share_employed_yr1"]) == (3, 2, 0.6667)
    assert statewide["earnings_median_yr1"] == whole_dollars(
        (real(1000, 2022) + real(2000, 2023) + real(3000, 2021)) / 2
    )
    assert statewide["earnings_median_yr3"] == whole_dollars(real(5000, 2023))
    assert statewide["earnings_median_yr5"] is None and statewide["share_employed_yr5"] is None


def test_wage_years_without_cpi_are_named(spark: SparkSession, gold_config: GoldConfig) -> None:
    wages = spark.createDataFrame([("a", 2009, 1), ("a", 2020, 2)], "person_id string, year int, quarter int")
    assert missing_cpi_years(wages, gold_config) == [2009]


# --------------------------------------------------------------------------------------------------
# build_gold end to end on tiny silver tables, in databases of its own


PERSONS = {
    "r1": ("p1", "cde", "F", "700", 2002),
    "r2": ("p1", "cccco", "F", None, 2002),
    "r3": ("p1", "dhcs", "M", None, 2002),
    "r4": ("p2", "cde", "M", "600", 2002),
    "r5": ("p2", "ucop", "M", None, 2003),
    "r6": ("p2", "csu", None, None, 2002),
    "r7": ("p2", "csac", None, None, 2002),
    "r8": ("p2", "edd", None, None, None),
    "r9": ("p3", "cde", "F", "700", 2001),
    "r10": ("p3", "ctc", None, None, 2001),
    "r11": ("p3", "dss", None, None, 2001),
}

SILVER_ROWS: dict[str, list[dict[str, Any]]] = {
    "cde_k12_enrollment": [
        {"record_id": "r1", "school_year": 2019, "grade_level": "11", "school_code": "1900001", "district_code": "D19",
         "county_code": "19", "is_sed": True},
        {"record_id": "r1", "school_year": 2020, "grade_level": "12", "school_code": "1900001", "district_code": "D19",
         "county_code": "19", "is_sed": False},
        {"record_id": "r4", "school_year": 2020, "grade_level": "12", "school_code": "3700002", "district_code": "D37",
         "county_code": "37", "is_sed": False},
        {"record_id": "r9", "school_year": 2020, "grade_level": "12", "school_code": "1900003", "district_code": "D19",
         "county_code": "19", "is_sed": None},
    ],
    "cde_k12_graduation": [
        {"record_id": "r1", "school_year": 2020, "school_code": "1900001", "district_code": "D19", "county_code": "19",
         "completion_type": "HSD", "is_a_g_complete": True},
        {"record_id": "r4", "school_year": 2020, "school_code": "3700002", "district_code": "D37", "county_code": "37",
         "completion_type": "HSD", "is_a_g_complete": False},
        {"record_id": "r9", "school_year": 2020, "school_code": "1900003", "district_code": "D19", "county_code": "19",
         "completion_type": "GED"},
    ],
    "cde_k12_assessment": [
        {"record_id": "r1", "school_year": 2019, "grade_level": "11", "school_code": "1900001", "subject": "ELA",
         "scale_score": 2600, "achievement_level": 3},
    ],
    "cccco_ccc_enrollment": [
        {"record_id": "r2", "college_code": "C01", "term_code": "2020FA", "units_attempted": Decimal("12.0")},
        {"record_id": "r2", "college_code": "C01", "term_code": "2020FA", "units_attempted": Decimal("9.0"),
         "ingested_at": T1},
    ],
    "cccco_ccc_awards": [
        {"record_id": "r2", "college_code": "C01", "award_date": dt.date(2022, 6, 1), "award_type": "AA",
         "program_code": "170100"},
    ],
    "csu_csu_enrollment": [{"record_id": "r6", "campus_code": "S07", "term_code": "2021FA", "student_level": "FTF"}],
    "csu_csu_degrees": [
        {"record_id": "r6", "campus_code": "S07", "degree_date": dt.date(2024, 5, 20), "degree_type": "BA"},
    ],
    "ucop_uc_enrollment": [{"record_id": "r5", "campus_code": "U03", "term_code": "2020FA"}],
    "ucop_uc_degrees": [
        {"record_id": "r5", "campus_code": "U03", "degree_date": dt.date(2024, 6, 10), "degree_type": "BS"},
    ],
    "csac_aid_applications": [{"record_id": "r7", "application_type": "FAFSA", "award_year": 2020,
                               "high_school_code": "3700002", "student_aid_index": 1200}],
    "csac_cal_grant_awards": [{"record_id": "r7", "award_year": 2020, "grant_type": "A", "amount": Decimal("1000.00"),
                               "institution_code": "U03"}],
    "ctc_credentials": [{"record_id": "r10", "credential_type": "PRELIMINARY", "subject_area": "MATH",
                         "issue_date": dt.date(2025, 1, 1)}],
    "dhcs_medi_cal_enrollment": [{"record_id": "r3", "county_code": "19", "start_date": dt.date(2015, 1, 1),
                                  "aid_code": "1H"}],
    "dss_program_participation": [{"record_id": "r11", "county_code": "19", "program": "CALFRESH",
                                   "start_date": dt.date(2018, 1, 1)}],
    "edd_ui_wages": [
        {"record_id": "r8", "employer_id": "E1", "naics": "611110", "year": 2023, "quarter": 1,
         "wages": Decimal("5000.00")},
        {"record_id": "r8", "employer_id": "E1", "naics": "611110", "year": 2023, "quarter": 1,
         "wages": Decimal("250.00")},
    ],
}  # fmt: skip


def _isolated(settings: Settings, gold: str) -> Settings:
    """Settings whose silver and mpi tables are global temporary views (no Delta writes to set them up) and
    whose gold database is `gold`, so nothing here touches the tables other tests use."""
    databases = dataclasses.replace(settings.databases, silver="global_temp", mpi="global_temp", gold=gold)
    return dataclasses.replace(settings, databases=databases)


def _register_inputs(spark: SparkSession, settings: Settings, crosswalk: Mapping[str, str]) -> None:
    for feed_key, rows in SILVER_ROWS.items():
        silver_df(spark, settings, feed_key, rows).createOrReplaceGlobalTempView(feed_key)
    records = [(rid, partner, gender, race, year) for rid, (_p, partner, gender, race, year) in PERSONS.items()]
    person_records_df(spark, records).createOrReplaceGlobalTempView("person_records")
    crosswalk_df(spark, crosswalk).createOrReplaceGlobalTempView("crosswalk")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {settings.databases.gold}")


@pytest.fixture(scope="module")
def built_gold(spark: SparkSession, settings: Settings) -> Iterator[tuple[Settings, dict[str, int]]]:
    isolated = _isolated(settings, "gold_test_gold")
    _register_inputs(spark, isolated, {rid: person[0] for rid, person in PERSONS.items()})
    yield isolated, build_gold(spark, isolated)


def test_build_gold_writes_every_table_with_its_grain(
    spark: SparkSession, built_gold: tuple[Settings, dict[str, int]]
) -> None:
    isolated, counts = built_gold
    assert set(counts) == set(gold_tables(isolated))
    assert len(GOLD_TABLES) == len(FACTS) + 5  # four dimensions and the pathways mart
    for table in gold_tables(isolated):
        assert table_comment(spark, table).startswith("Grain: one row per "), table
    figures = []
    for spec in FACTS:  # every source row lands in its fact, once, with a person_id (grains are group-by keys)
        assert spec.comment().startswith("Grain: one row per person per "), spec.name
        figures.append(
            spark.read.table(isolated.table("gold", spec.name)).agg(
                F.lit(spec.name).alias("fact"),
                F.count(F.lit(1)).alias("rows"),
                F.sum("n_source_rows").alias("source_rows"),
                F.count_if(F.col("person_id").isNull()).alias("no_person"),
            )
        )
    result = reduce(DataFrame.unionByName, figures)  # one job for every fact
    expected = spark.createDataFrame(
        [
            (spec.name, counts[isolated.table("gold", spec.name)], sum(len(SILVER_ROWS[f]) for f in spec.feeds), 0)
            for spec in FACTS
        ],
        "fact string, rows long, source_rows long, no_person long",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


def test_build_gold_dim_person_wages_and_mart(spark: SparkSession, built_gold: tuple[Settings, dict[str, int]]) -> None:
    isolated, _counts = built_gold
    persons = spark.read.table(isolated.table("gold", "dim_person"))
    expected = spark.createDataFrame(
        [
            ("p1", 2002, "F", "700", 3, ["cccco", "cde", "dhcs"], True),
            ("p2", 2002, "M", "600", 5, ["cde", "csac", "csu", "edd", "ucop"], False),
            ("p3", 2001, "F", "700", 3, ["cde", "ctc", "dss"], True),
        ],
        "person_id string, birth_year int, gender string, race_ethnicity string, n_source_records long, "
        "partners array<string>, is_sed_ever boolean",
    )
    assert_df_equality(persons, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
    wages = spark.read.table(isolated.table("gold", "fact_quarterly_wages")).select(
        "person_id", "wages", "n_source_rows"
    )
    assert [tuple(r) for r in wages.collect()] == [("p2", Decimal("5250.00"), 2)]
    mart = spark.read.table(isolated.table("gold", "mart_student_pathways"))
    statewide = mart.where("cohort_year = 2020 AND county_code = '00' AND group_dimension = 'all'").first()
    assert statewide is not None
    assert (statewide["n_graduates"], statewide["n_enrolled_within_1yr"], statewide["n_enrolled_ccc"]) == (2, 2, 1)
    # p1's AA (2022-06-01) and p2's BS (2024-06-10) are within eight years of their 2020 diplomas
    assert (statewide["n_completed"], statewide["n_completed_associate"], statewide["n_completed_bachelor"]) == (
        2,
        1,
        1,
    )
    assert mart.select(*MART_KEYS).distinct().count() == mart.count()
    districts = mart.where("cohort_year = 2020 AND geography_level = 'district' AND group_dimension = 'all'")
    assert sorted((r["district_code"], r["n_graduates"]) for r in districts.collect()) == [("D19", 1), ("D37", 1)]


def test_build_gold_dimensions(spark: SparkSession, built_gold: tuple[Settings, dict[str, int]]) -> None:
    isolated, _counts = built_gold
    institutions = spark.read.table(isolated.table("gold", "dim_institution"))
    seen = {(r["sector"], r["institution_code"]): r for r in institutions.where("first_year IS NOT NULL").collect()}
    assert set(seen) == {("K12", "1900001"), ("K12", "3700002"), ("K12", "1900003"), ("CCC", "C01"), ("CSU", "S07"),
                         ("UC", "U03")}  # fmt: skip
    school = seen["K12", "1900001"]
    assert (school["district_code"], school["county_code"], school["first_year"], school["last_year"]) == (
        "D19", "19", 2019, 2020,
    )  # fmt: skip
    assert not school["is_in_reference"]  # invented codes: in the facts, not in the directory
    listed = institutions.where("is_in_reference AND institution_name IS NOT NULL").count()
    assert listed > 1000  # every school and college of the reference directory has a row
    assert institutions.select("sector", "institution_code").distinct().count() == institutions.count()
    programs = spark.read.table(isolated.table("gold", "dim_program"))
    top = programs.where("classification = 'TOP' AND program_code = '170100'").first()
    assert top is not None and (top["segments"], top["award_levels"], top["n_awards"]) == (["CCC"], ["associate"], 1)
    assert programs.select("classification", "program_code").distinct().count() == programs.count()
    geography = spark.read.table(isolated.table("gold", "dim_geography"))
    state = geography.where("geography_level = 'state'").collect()
    assert [(r["county_code"], r["geography_name"]) for r in state] == [("00", "California")]
    assert (
        geography.where("geography_level = 'county' AND county_code = '19'").first()["geography_name"] == "Los Angeles"
    )
    assert geography.where("geography_level = 'district' AND district_code = 'D19'").count() == 1


def test_gold_has_no_pii_columns(
    spark: SparkSession, settings: Settings, built_gold: tuple[Settings, dict[str, int]]
) -> None:
    isolated, _counts = built_gold
    forbidden = {"record_id", "delivery_id", "source_file", "line_number", "ingested_at", "zip5", "zip3",
                 "local_id_token", "ssn_token", "ssid_token", "birth_month", "birth_day"}  # fmt: skip
    for feed in settings.feeds():
        forbidden |= {*feed.pii_columns(), feed.record_key}
    assert {"ssn", "ssid", "first_name", "birth_date", "home_zip", "cin", "enrollment_id"} <= forbidden
    for table in gold_tables(isolated):
        leaked = set(spark.read.table(table).columns) & forbidden
        assert not leaked, f"{table} has PII or lineage columns {sorted(leaked)}"


def test_build_gold_refuses_rows_without_person_id(
    spark: SparkSession, built_gold: tuple[Settings, dict[str, int]]
) -> None:
    built, _counts = built_gold  # same silver views, a crosswalk that misses r11, a gold database of its own
    isolated = _isolated(built, "gold_unlinked_gold")
    _register_inputs(spark, isolated, {rid: person[0] for rid, person in PERSONS.items() if rid != "r11"})
    try:
        with pytest.raises(
            UnlinkedRecordsError, match=r"2 source rows .*dss_program_participation: 1, person_records: 1"
        ):
            build_gold(spark, isolated)
        assert not spark.catalog.tableExists(isolated.table("gold", "fact_k12_enrollment"))
    finally:
        _register_inputs(spark, built, {rid: person[0] for rid, person in PERSONS.items()})
