"""Outcome marts: aggregates of the gold facts by cohort, geography and student group.

mart_hs_college_enrollment: high-school graduates by cohort year (school year of the earliest qualifying
completion), county of the graduating school (plus a statewide row) and student group (all students and
each dimension of conf/gold.yaml student_groups), with how many enrolled at a CCC, CSU or UC within the
enrollment window after graduation. Every dimension's groups sum to the all-students row of the same
cohort and county (null attributes become the unknown group), and counties sum to the statewide row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.gold.config import CollegeEnrollmentRules, GoldConfig, StudentGroups
from lakehouse.gold.facts import SEGMENTS

logger = logging.getLogger(__name__)

MART_HS_COLLEGE_ENROLLMENT = "mart_hs_college_enrollment"

MART_KEYS = ("cohort_year", "geography_level", "county_code", "group_dimension", "group_value")
"""Columns that identify one row of a mart."""

SEGMENT_COUNTS = {segment: f"n_enrolled_{segment.lower()}" for segment in SEGMENTS}
HS_COLLEGE_ENROLLMENT_COUNTS = ("n_graduates", "n_enrolled_within_1yr", *SEGMENT_COUNTS.values())
"""Additive person counts of mart_hs_college_enrollment (each sums over groups and over counties)."""
HS_COLLEGE_ENROLLMENT_RATES = {"enrollment_rate": ("n_enrolled_within_1yr", "n_graduates")}
"""Rates of mart_hs_college_enrollment: rate -> (numerator count, denominator count)."""

HS_COLLEGE_ENROLLMENT_COMMENT = (
    "Grain: one row per cohort year per geography (statewide and each county of the graduating school) per "
    "student group. High-school graduates (completion types of conf/gold.yaml) of each cohort and how many "
    "enrolled at a California community college, CSU or UC in a term starting within the enrollment window "
    "after graduation. Each dimension's groups sum to the all-students row; counties sum to the statewide row; "
    "a student enrolled in two segments counts once in n_enrolled_within_1yr and once in each segment."
)
HS_COLLEGE_ENROLLMENT_COLUMNS: dict[str, str] = {
    "cohort_year": "School year (spring year) of the earliest qualifying high-school completion",
    "geography_level": "state or county",
    "county_code": "County of the graduating school; the statewide code (conf/gold.yaml) on state rows",
    "group_dimension": "Student-group dimension: all, gender, race_ethnicity or sed",
    "group_value": "Group within the dimension (ALL for all students, UNKNOWN when the attribute is missing)",
    "n_graduates": "High-school graduates in the cohort, geography and group",
    "n_enrolled_within_1yr": "Graduates enrolled at a CCC, CSU or UC in a term starting within the window",
    "enrollment_rate": "n_enrolled_within_1yr / n_graduates, rounded to 4 decimals",
    "n_enrolled_ccc": "Graduates enrolled at a community college within the window",
    "n_enrolled_csu": "Graduates enrolled at a CSU campus within the window",
    "n_enrolled_uc": "Graduates enrolled at a UC campus within the window",
}


def filter_graduates(graduation: DataFrame, completion_types: Sequence[str]) -> DataFrame:
    """Keep the completions whose completion_type counts as graduating from high school."""
    return graduation.where(F.col("completion_type").isin(list(completion_types)))


def cohort_graduates(graduation: DataFrame, rules: CollegeEnrollmentRules) -> DataFrame:
    """One row per graduate: person_id, cohort_year, county_code and graduation_date of the earliest completion.

    Ties within the earliest school year go to the smallest county code, then the smallest school code.
    """
    earliest = F.min(F.struct("school_year", "county_code", "school_code")).alias("_first")
    return (
        graduation.transform(filter_graduates, rules.graduate_completion_types)
        .groupBy("person_id")
        .agg(earliest)
        .select(
            "person_id",
            F.col("_first.school_year").alias("cohort_year"),
            F.col("_first.county_code").alias("county_code"),
            F.make_date(F.col("_first.school_year"), F.lit(rules.graduation_month), F.lit(rules.graduation_day)).alias(
                "graduation_date"
            ),
        )
    )


def with_person_attributes(cohort: DataFrame, persons: DataFrame) -> DataFrame:
    """Add gender and race_ethnicity from dim_person (null for a person dim_person lacks)."""
    return cohort.join(persons.select("person_id", "gender", "race_ethnicity"), on="person_id", how="left")


def with_sed_status(
    cohort: DataFrame, k12_enrollment: DataFrame, program_participation: DataFrame, programs: Sequence[str]
) -> DataFrame:
    """Add sed: Y when K-12 is_sed in a school year up to the cohort year or a span of `programs`
    starts on or before the graduation date; N otherwise."""
    years = cohort.select("person_id", "cohort_year", "graduation_date")
    from_k12 = (
        k12_enrollment.where(F.col("is_sed"))
        .join(years, on="person_id", how="inner")
        .where(F.col("school_year") <= F.col("cohort_year"))
        .select("person_id")
    )
    from_programs = (
        program_participation.where(F.col("program").isin(list(programs)))
        .join(years, on="person_id", how="inner")
        .where(F.col("start_date") <= F.col("graduation_date"))
        .select("person_id")
    )
    flagged = from_k12.unionByName(from_programs).distinct().withColumn("_is_sed", F.lit(True))
    return (
        cohort.join(flagged, on="person_id", how="left")
        .withColumn("sed", F.when(F.col("_is_sed"), F.lit("Y")).otherwise(F.lit("N")))
        .drop("_is_sed")
    )


def with_college_enrollment(cohort: DataFrame, enrollment: DataFrame, window_months: int) -> DataFrame:
    """Add is_enrolled_within_window and is_enrolled_<segment> (booleans, never null).

    A graduate is enrolled when a postsecondary term of theirs starts on or after the graduation date and
    before graduation + `window_months`.
    """
    dates = cohort.select("person_id", "graduation_date")
    in_window = (
        enrollment.join(dates, on="person_id", how="inner")
        .where(
            (F.col("term_start_date") >= F.col("graduation_date"))
            & (F.col("term_start_date") < F.add_months(F.col("graduation_date"), window_months))
        )
        .groupBy("person_id")
        .agg(*(F.max(F.col("segment") == F.lit(s)).alias(f"_{s}") for s in SEGMENTS))
        .withColumn("_any", F.lit(True))
    )
    flags = {"is_enrolled_within_window": F.coalesce(F.col("_any"), F.lit(False))}
    for segment in SEGMENTS:
        flags[f"is_enrolled_{segment.lower()}"] = F.coalesce(F.col(f"_{segment}"), F.lit(False))
    return (
        cohort.join(in_window, on="person_id", how="left").withColumns(flags).drop("_any", *(f"_{s}" for s in SEGMENTS))
    )


def with_group_memberships(persons: DataFrame, groups: StudentGroups) -> DataFrame:
    """One row per person per geography (state, county) per group (all students, then one per dimension).

    Adds geography_level, county_code (the statewide code on state rows), group_dimension and group_value.
    """
    geographies = F.array(
        F.struct(F.lit("state").alias("level"), F.lit(groups.statewide_county_code).alias("county")),
        F.struct(F.lit("county").alias("level"), F.col("county_code").cast("string").alias("county")),
    )
    memberships = [F.struct(F.lit(groups.all_dimension).alias("dimension"), F.lit(groups.all_value).alias("value"))]
    for dimension in groups.dimensions:
        value = F.coalesce(F.col(dimension.column).cast("string"), F.lit(groups.unknown_value))
        memberships.append(F.struct(F.lit(dimension.name).alias("dimension"), value.alias("value")))
    return (
        persons.withColumn("_geography", F.explode(geographies))
        .withColumn("_group", F.explode(F.array(*memberships)))
        .withColumns(
            {
                "geography_level": F.col("_geography.level"),
                "county_code": F.col("_geography.county"),
                "group_dimension": F.col("_group.dimension"),
                "group_value": F.col("_group.value"),
            }
        )
        .drop("_geography", "_group")
    )


def aggregate_college_enrollment(memberships: DataFrame) -> DataFrame:
    """One row per cohort_year, geography and group: the counts and rate of mart_hs_college_enrollment."""

    def persons_where(flag: str) -> Column:
        return F.sum(F.col(flag).cast("long"))

    counts = memberships.groupBy(*MART_KEYS).agg(
        F.count(F.lit(1)).alias("n_graduates"),
        persons_where("is_enrolled_within_window").alias("n_enrolled_within_1yr"),
        *(persons_where(f"is_enrolled_{s.lower()}").alias(SEGMENT_COUNTS[s]) for s in SEGMENTS),
    )
    return counts.select(
        *MART_KEYS,
        "n_graduates",
        "n_enrolled_within_1yr",
        F.round(F.try_divide(F.col("n_enrolled_within_1yr"), F.col("n_graduates")).cast("double"), 4).alias(
            "enrollment_rate"
        ),
        *SEGMENT_COUNTS.values(),
    )


def hs_college_enrollment(
    graduation: DataFrame,
    *,
    persons: DataFrame,
    k12_enrollment: DataFrame,
    program_participation: DataFrame,
    postsecondary_enrollment: DataFrame,
    config: GoldConfig,
) -> DataFrame:
    """mart_hs_college_enrollment (grain: cohort year x geography x student group) from the gold tables.

    Args:
        graduation: fact_k12_graduation.
        persons: dim_person.
        k12_enrollment: fact_k12_enrollment (for is_sed).
        program_participation: fact_program_participation (for the SED programs).
        postsecondary_enrollment: fact_postsecondary_enrollment (term_start_date, segment).
        config: conf/gold.yaml.
    """
    rules = config.hs_college_enrollment
    return (
        cohort_graduates(graduation, rules)
        .transform(with_person_attributes, persons)
        .transform(with_sed_status, k12_enrollment, program_participation, config.person.sed_programs)
        .transform(with_college_enrollment, postsecondary_enrollment, rules.enrollment_window_months)
        .transform(with_group_memberships, config.student_groups)
        .transform(aggregate_college_enrollment)
    )
