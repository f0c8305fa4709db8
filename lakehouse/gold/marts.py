"""Outcome marts: the student-pathways questions, by cohort, geography and student group.

mart_student_pathways follows each high-school graduation cohort (school year of a person's earliest
qualifying completion) through college and into work: enrolled at a CCC, CSU or UC within one year and ever
within the longer window, in which segment; an award completed within the completion window, its level and
the time to it; annual earnings one, three and five years after that award in constant dollars, and the
share employed. Every definition (completion types, windows, award-level order, years after award, CPI
series) is in conf/gold.yaml; `PathwaysMeasures` names the columns those definitions produce.

Rows: each cohort x geography (statewide, each county and each district of the graduating school) x student
group (all students and each group dimension of conf/gold.yaml). Counts are additive: each dimension's
groups sum to the all-students row, districts sum to their county and counties to the statewide row (a
missing attribute is the unknown group), which is what public suppression relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.gold.columns import lookup
from lakehouse.gold.config import GoldConfig, PathwaysRules, StudentGroups
from lakehouse.gold.facts import SEGMENTS

logger = logging.getLogger(__name__)

MART_STUDENT_PATHWAYS = "mart_student_pathways"

MART_KEYS = ("cohort_year", "geography_level", "county_code", "district_code", "group_dimension", "group_value")
"""Columns that identify one row of a mart."""
MART_PARTITION_BY = ("cohort_year",)
"""Partition column of every mart and public table: dashboards filter by cohort first."""

GEOGRAPHY_LEVELS = ("state", "county", "district")
SEGMENT_COUNTS = {segment: f"n_enrolled_{segment.lower()}" for segment in SEGMENTS}
EARNINGS_QUANTILES = {"p25": 0.25, "median": 0.5, "p75": 0.75}
"""Earnings statistics of each measured year: column prefix -> quantile."""

STUDENT_PATHWAYS_COMMENT = (
    "Grain: one row per cohort year per geography (statewide, each county and each district of the graduating "
    "school) per student group. High-school graduates of each cohort (conf/gold.yaml pathways) and their "
    "outcomes: college enrollment within one year and ever (CCC, CSU, UC), completion of an award and time to "
    "it, and employment and annual earnings in constant dollars in given years after the award (conf/gold.yaml "
    "earnings). Counts are additive: each dimension's groups sum to the all-students row, districts to their "
    "county, counties to the statewide row. A student enrolled in two segments counts once in each segment "
    "column. Outcomes not yet observable for recent cohorts are undercounted; follow_up_months says how long "
    "each cohort has been followed."
)


@dataclass(frozen=True)
class PathwaysMeasures:
    """The measure columns of mart_student_pathways that the definitions in conf/gold.yaml produce.

    Attributes:
        counts: additive person counts (each sums over groups and over geographies).
        rates: rate -> (numerator count, denominator count).
        statistics: non-additive statistics (median, quartiles) -> the count of the people they summarize.
        comments: column -> comment, for every column of the mart.
    """

    counts: tuple[str, ...]
    rates: dict[str, tuple[str, str]]
    statistics: dict[str, str]
    comments: dict[str, str]

    @classmethod
    def from_config(cls, config: GoldConfig) -> PathwaysMeasures:
        rules, earnings = config.pathways, config.earnings
        enrolled, ever = rules.enrollment_window_months, rules.ever_enrolled_window_months
        dollars = f"{earnings.constant_dollar_year} dollars (CPI-U, conf/gold.yaml earnings)"
        comments = {
            "cohort_year": "School year (spring year) of the earliest qualifying high-school completion",
            "geography_level": "state, county or district (of the graduating school)",
            "county_code": "County of the graduating school; the statewide code (conf/gold.yaml) on state rows",
            "district_code": "District of the graduating school on district rows; null on state and county rows",
            "group_dimension": "Student-group dimension: all, or a dimension of conf/gold.yaml student_groups",
            "group_value": "Group within the dimension (ALL for all students, UNKNOWN when the attribute is missing)",
            "follow_up_months": "Months from the cohort's graduation date to the latest term in the data",
            "n_graduates": "High-school graduates in the cohort, geography and group",
            "n_enrolled_within_1yr": f"Graduates enrolled at a CCC, CSU or UC in a term starting within {enrolled} "
            "months of graduation",
            "enrollment_rate": "n_enrolled_within_1yr / n_graduates, rounded to 4 decimals",
        }
        counts = ["n_graduates", "n_enrolled_within_1yr"]
        for segment, column in SEGMENT_COUNTS.items():
            counts.append(column)
            comments[column] = f"Graduates enrolled at a {segment} campus within {enrolled} months of graduation"
        counts += ["n_enrolled_ever", "n_completed"]
        comments["n_enrolled_ever"] = f"Graduates enrolled at a CCC, CSU or UC within {ever} months of graduation"
        comments["ever_enrollment_rate"] = "n_enrolled_ever / n_graduates, rounded to 4 decimals"
        comments["n_completed"] = (
            f"Graduates with a CCC, CSU or UC award within {rules.completion_window_months} months of graduation"
        )
        comments["completion_rate"] = "n_completed / n_graduates, rounded to 4 decimals"
        for level in rules.award_level_order:
            column = f"n_completed_{level}"
            counts.append(column)
            comments[column] = f"Completers whose highest award in the window is a {level}"
        comments["median_months_to_completion"] = (
            "Median months from graduation to the completer's award (highest level, earliest), over n_completed"
        )
        rates = {
            "enrollment_rate": ("n_enrolled_within_1yr", "n_graduates"),
            "ever_enrollment_rate": ("n_enrolled_ever", "n_graduates"),
            "completion_rate": ("n_completed", "n_graduates"),
        }
        statistics = {"median_months_to_completion": "n_completed"}
        for year in earnings.years_after_award:
            observed, employed, share = f"n_observed_yr{year}", f"n_employed_yr{year}", f"share_employed_yr{year}"
            counts += [observed, employed]
            rates[share] = (employed, observed)
            comments[observed] = f"Completers whose wage data covers the whole year {year} after their award"
            comments[employed] = f"Of n_observed_yr{year}: completers with earnings above zero in year {year}"
            comments[share] = f"n_employed_yr{year} / n_observed_yr{year}, rounded to 4 decimals"
            for prefix, quantile in EARNINGS_QUANTILES.items():
                column = f"earnings_{prefix}_yr{year}"
                statistics[column] = employed
                comments[column] = (
                    f"{int(quantile * 100)}th percentile of annual earnings in year {year} after the award, "
                    f"over n_employed_yr{year}, in {dollars}, rounded to whole dollars"
                )
        return cls(tuple(counts), rates, statistics, comments)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of the mart, in table order."""
        return tuple(self.comments)


def filter_graduates(graduation: DataFrame, completion_types: Sequence[str]) -> DataFrame:
    """Keep the completions whose completion_type counts as graduating from high school."""
    return graduation.where(F.col("completion_type").isin(list(completion_types)))


def cohort_graduates(graduation: DataFrame, rules: PathwaysRules) -> DataFrame:
    """One row per graduate: person_id, cohort_year, county_code, district_code and graduation_date of the
    earliest qualifying completion. Ties within the earliest school year go to the smallest county code,
    then district, then school code."""
    earliest = F.min(F.struct("school_year", "county_code", "district_code", "school_code")).alias("_first")
    return (
        graduation.transform(filter_graduates, rules.graduate_completion_types)
        .groupBy("person_id")
        .agg(earliest)
        .select(
            "person_id",
            F.col("_first.school_year").alias("cohort_year"),
            F.col("_first.county_code").alias("county_code"),
            F.col("_first.district_code").alias("district_code"),
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


def with_college_enrollment(cohort: DataFrame, enrollment: DataFrame, rules: PathwaysRules) -> DataFrame:
    """Add is_enrolled_within_1yr, is_enrolled_<segment> (within the one-year window) and is_enrolled_ever
    (within the ever window), booleans, never null; and follow_up_months (to the latest term in the data).

    A term counts when it starts on or after the graduation date and before graduation + the window.
    """
    dates = cohort.select("person_id", "graduation_date")
    start, graduated = F.col("term_start_date"), F.col("graduation_date")
    within_year = start < F.add_months(graduated, rules.enrollment_window_months)
    terms = enrollment.join(dates, on="person_id", how="inner").where(
        (start >= graduated) & (start < F.add_months(graduated, rules.ever_enrolled_window_months))
    )
    flags = terms.groupBy("person_id").agg(
        F.max(within_year).alias("_within_year"),
        *(F.max(within_year & (F.col("segment") == F.lit(s))).alias(f"_{s}") for s in SEGMENTS),
        F.lit(True).alias("_ever"),
    )
    horizon = enrollment.agg(F.max("term_start_date").alias("_horizon"))
    columns = {
        "is_enrolled_within_1yr": F.coalesce(F.col("_within_year"), F.lit(False)),
        "is_enrolled_ever": F.coalesce(F.col("_ever"), F.lit(False)),
        "follow_up_months": F.greatest(
            F.floor(F.months_between(F.col("_horizon"), F.col("graduation_date"))).cast("int"), F.lit(0)
        ),
    }
    for segment in SEGMENTS:
        columns[f"is_enrolled_{segment.lower()}"] = F.coalesce(F.col(f"_{segment}"), F.lit(False))
    return (
        cohort.join(flags, on="person_id", how="left")
        .crossJoin(F.broadcast(horizon))
        .withColumns(columns)
        .drop("_within_year", "_ever", "_horizon", *(f"_{s}" for s in SEGMENTS))
    )


def with_completion(cohort: DataFrame, awards: DataFrame, rules: PathwaysRules) -> DataFrame:
    """Add completion_level, completion_date and months_to_completion (null for a non-completer).

    The completer's award is their highest-level award (conf award_level_order) dated on or after the
    graduation date and before graduation + completion_window_months; ties go to the earliest date.
    """
    rank = lookup(F.col("award_level"), {level: i for i, level in enumerate(rules.award_level_order)})
    dates = cohort.select("person_id", "graduation_date")
    date, graduated = F.col("award_date"), F.col("graduation_date")
    in_window = (
        awards.where(F.col("award_level").isNotNull())
        .join(dates, on="person_id", how="inner")
        .where((date >= graduated) & (date < F.add_months(graduated, rules.completion_window_months)))
    )
    chosen = in_window.groupBy("person_id").agg(
        F.min(F.struct((-rank).alias("neg_rank"), date.alias("date"), F.col("award_level").alias("level"))).alias(
            "_award"
        )
    )
    return (
        cohort.join(chosen, on="person_id", how="left")
        .withColumns(
            {
                "completion_level": F.col("_award.level"),
                "completion_date": F.col("_award.date"),
                "months_to_completion": F.floor(F.months_between(F.col("_award.date"), graduated)).cast("int"),
            }
        )
        .drop("_award")
    )


def quarter_index(year: Column, quarter: Column) -> Column:
    """Consecutive number of a calendar quarter (year * 4 + quarter - 1), so quarters subtract."""
    return year * 4 + quarter - 1


def with_earnings(cohort: DataFrame, wages: DataFrame, config: GoldConfig) -> DataFrame:
    """Add, for each year n of conf earnings.years_after_award, is_observed_yr<n> (the wage data covers all
    four quarters of year n after the completion award), earnings_yr<n> (constant-dollar wages of those
    quarters, 0 when none; null when not observed) and is_employed_yr<n> (earnings above zero).

    Year n is the four quarters starting (n - 1) * 4 + 1 quarters after the award's quarter. The wage
    data's coverage is its first and last quarter overall.
    """
    years = config.earnings.years_after_award
    deflator = lookup(F.col("year"), config.earnings.deflators())
    award_quarter = quarter_index(F.year("completion_date"), F.quarter("completion_date"))
    completers = cohort.where(F.col("completion_date").isNotNull()).select("person_id", award_quarter.alias("_award_q"))
    quarterly = wages.select(
        "person_id",
        quarter_index(F.col("year"), F.col("quarter")).alias("_q"),
        (F.col("wages").cast("double") * deflator).alias("_real"),
    )
    coverage = wages.agg(
        F.min(quarter_index(F.col("year"), F.col("quarter"))).alias("_first_q"),
        F.max(quarter_index(F.col("year"), F.col("quarter"))).alias("_last_q"),
    )
    offset = F.col("_q") - F.col("_award_q")
    sums = (
        completers.join(quarterly, on="person_id", how="inner")
        .where((offset >= 1) & (offset <= 4 * max(years)))
        .groupBy("person_id")
        .agg(*(F.sum(F.when(F.ceil(offset / 4) == n, F.col("_real"))).alias(f"_sum{n}") for n in years))
    )
    per_completer = completers.join(sums, on="person_id", how="left").crossJoin(F.broadcast(coverage))
    columns: dict[str, Column] = {}
    for n in years:
        first, last = F.col("_award_q") + 4 * (n - 1) + 1, F.col("_award_q") + 4 * n
        observed = F.coalesce((first >= F.col("_first_q")) & (last <= F.col("_last_q")), F.lit(False))
        earnings = F.when(observed, F.coalesce(F.col(f"_sum{n}"), F.lit(0.0)))
        columns[f"is_observed_yr{n}"] = observed
        columns[f"earnings_yr{n}"] = earnings
        columns[f"is_employed_yr{n}"] = F.coalesce(earnings > 0, F.lit(False))
    measured = per_completer.select("person_id", *(column.alias(name) for name, column in columns.items()))
    defaults = {name: F.coalesce(F.col(name), F.lit(False)) for name in columns if name.startswith("is_")}
    return cohort.join(measured, on="person_id", how="left").withColumns(defaults)


def missing_cpi_years(wages: DataFrame, config: GoldConfig) -> list[int]:
    """Calendar years with wages that conf earnings.cpi does not list (wages of those years cannot be restated)."""
    listed = set(config.earnings.cpi_by_year())
    years = {row["year"] for row in wages.select("year").distinct().collect() if row["year"] is not None}
    return sorted(years - listed)


def with_group_memberships(persons: DataFrame, groups: StudentGroups) -> DataFrame:
    """One row per person per geography (state, county, district) per group (all students, then one per
    dimension). Adds geography_level, county_code (the statewide code on state rows), district_code (null
    but on district rows), group_dimension and group_value."""
    county = F.col("_county").cast("string")
    district = F.coalesce(F.col("_district").cast("string"), F.lit(groups.unknown_value))
    geographies = F.array(
        F.struct(F.lit("state").alias("level"), F.lit(groups.statewide_county_code).alias("county"),
                 F.lit(None).cast("string").alias("district")),
        F.struct(F.lit("county").alias("level"), county.alias("county"), F.lit(None).cast("string").alias("district")),
        F.struct(F.lit("district").alias("level"), county.alias("county"), district.alias("district")),
    )  # fmt: skip
    memberships = [F.struct(F.lit(groups.all_dimension).alias("dimension"), F.lit(groups.all_value).alias("value"))]
    for dimension in groups.dimensions:
        value = F.coalesce(F.col(dimension.column).cast("string"), F.lit(groups.unknown_value))
        memberships.append(F.struct(F.lit(dimension.name).alias("dimension"), value.alias("value")))
    return (
        persons.withColumnsRenamed({"county_code": "_county", "district_code": "_district"})
        .withColumn("_geography", F.explode(geographies))
        .withColumn("_group", F.explode(F.array(*memberships)))
        .withColumns(
            {
                "geography_level": F.col("_geography.level"),
                "county_code": F.col("_geography.county"),
                "district_code": F.col("_geography.district"),
                "group_dimension": F.col("_group.dimension"),
                "group_value": F.col("_group.value"),
            }
        )
        .drop("_geography", "_group", "_county", "_district")
    )


def aggregate_pathways(memberships: DataFrame, config: GoldConfig) -> DataFrame:
    """One row per cohort_year, geography and group: the columns of `PathwaysMeasures` in table order."""
    measures = PathwaysMeasures.from_config(config)

    def persons_where(flag: Column) -> Column:
        return F.sum(flag.cast("long"))

    flags: dict[str, Column] = {
        "n_graduates": F.lit(True),
        "n_enrolled_within_1yr": F.col("is_enrolled_within_1yr"),
        **{column: F.col(f"is_enrolled_{s.lower()}") for s, column in SEGMENT_COUNTS.items()},
        "n_enrolled_ever": F.col("is_enrolled_ever"),
        "n_completed": F.col("completion_level").isNotNull(),
    }
    for level in config.pathways.award_level_order:
        flags[f"n_completed_{level}"] = F.coalesce(F.col("completion_level") == F.lit(level), F.lit(False))
    statistics: dict[str, Column] = {"median_months_to_completion": F.percentile(F.col("months_to_completion"), 0.5)}
    for n in config.earnings.years_after_award:
        flags[f"n_observed_yr{n}"] = F.col(f"is_observed_yr{n}")
        flags[f"n_employed_yr{n}"] = F.col(f"is_employed_yr{n}")
        employed_earnings = F.when(F.col(f"is_employed_yr{n}"), F.col(f"earnings_yr{n}"))
        for prefix, quantile in EARNINGS_QUANTILES.items():
            statistics[f"earnings_{prefix}_yr{n}"] = F.round(F.percentile(employed_earnings, quantile)).cast("long")
    aggregated = memberships.groupBy(*MART_KEYS).agg(
        F.max("follow_up_months").alias("follow_up_months"),
        *(persons_where(flag).alias(name) for name, flag in flags.items()),
        *(stat.alias(name) for name, stat in statistics.items()),
    )
    rates = {
        rate: F.round(F.try_divide(F.col(numerator), F.col(denominator)).cast("double"), 4)
        for rate, (numerator, denominator) in measures.rates.items()
    }
    return aggregated.withColumns(rates).select(*measures.columns)


def student_pathways(
    graduation: DataFrame,
    *,
    persons: DataFrame,
    k12_enrollment: DataFrame,
    program_participation: DataFrame,
    postsecondary_enrollment: DataFrame,
    postsecondary_awards: DataFrame,
    wages: DataFrame,
    config: GoldConfig,
) -> DataFrame:
    """mart_student_pathways (grain: cohort year x geography x student group) from the gold tables.

    Args:
        graduation: fact_k12_graduation.
        persons: dim_person.
        k12_enrollment: fact_k12_enrollment (for is_sed).
        program_participation: fact_program_participation (for the SED programs).
        postsecondary_enrollment: fact_postsecondary_enrollment (term_start_date, segment).
        postsecondary_awards: fact_postsecondary_award (award_date, award_level).
        wages: fact_quarterly_wages (year, quarter, wages); every year must be in conf earnings.cpi.
        config: conf/gold.yaml.
    """
    rules = config.pathways
    return (
        cohort_graduates(graduation, rules)
        .transform(with_person_attributes, persons)
        .transform(with_sed_status, k12_enrollment, program_participation, config.person.sed_programs)
        .transform(with_college_enrollment, postsecondary_enrollment, rules)
        .transform(with_completion, postsecondary_awards, rules)
        .transform(with_earnings, wages, config)
        .transform(with_group_memberships, config.student_groups)
        .transform(aggregate_pathways, config)
    )
