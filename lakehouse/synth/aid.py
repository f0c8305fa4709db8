"""CSAC feeds: financial-aid applications (FAFSA with an SSN, CA Dream Act without) and Cal Grant awards.

College-goers apply in most years they are enrolled (more often when socioeconomically disadvantaged);
some high-school seniors apply and never enroll. People without an SSN file the CA Dream Act Application
(CADAA, from award year 2013); their records carry no SSN. Cal Grants go to part of the applicants with a
low Student Aid Index who are enrolled that year: A (tuition) and B (access) at CSU/UC, B or C at a
community college.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.context import FeedContext, guarded_sequence
from lakehouse.synth.identity import IdentityProfile
from lakehouse.synth.keys import row_code

CSAC = IdentityProfile(
    partner="csac",
    nickname_rate=0.10,
    quoted_nickname_rate=0.02,
    dob_missing_rate=0.005,
    ssn_rate=1.0,
    married_name_lag=0.05,
)

FIRST_CADAA_YEAR = 2013
TUITION = {"UC": 12570.0, "CSU": 5742.0}
ACCESS_AWARD = 1648.0
CAREER_AWARD = 1094.0


def _active_stint(prefix: str, year: Column) -> Column:
    """True when stint `prefix` holds the academic year that starts in the fall of `year`."""
    last_academic_year = F.col(f"{prefix}_start") + F.floor((F.col(f"{prefix}_terms") - 1) / F.col(f"{prefix}_tpy"))
    return F.coalesce(year.between(F.col(f"{prefix}_start"), last_academic_year), F.lit(False))


def applications(ctx: FeedContext) -> DataFrame:
    """One row per application (person and award year), before identity: award_year, application_type, _sai,
    _campus and _segment (the college attended that year, if any)."""
    draws, pid = ctx.draws, F.col("person_id")
    people = ctx.people
    applies = draws.chance(F.when(F.col("is_sed"), 0.85).otherwise(0.55), "aid_applicant", pid)
    enrolled = (
        people.where(F.col("college_first_year").isNotNull() & applies)
        .withColumn("award_year", F.explode(guarded_sequence(F.col("college_first_year"), F.col("college_last_year"))))
        .where(draws.chance(0.9, "aid_year", pid, F.col("award_year")))
    )
    seniors = people.where(
        F.col("is_hs_completer") & F.col("college_first_year").isNull() & draws.chance(0.12, "aid_senior", pid)
    ).withColumn("award_year", F.col("grad_year"))
    year = F.col("award_year")
    sai = F.when(F.col("is_sed"), draws.integer(-1500, 3000, "sai", pid, year)).otherwise(
        F.least(
            F.lit(99999),
            F.floor(F.exp(F.lit(9.2) + F.lit(0.9) * F.col("income_z") + F.lit(0.2) * draws.normal("sai", pid, year))),
        )
    )
    campus = (
        F.when(_active_stint("gr", year), F.col("gr_campus"))
        .when(_active_stint("ug", year), F.col("ug_campus"))
        .when(_active_stint("ccc", year), F.col("ccc_campus"))
    )
    segment = (
        F.when(_active_stint("gr", year), F.col("gr_segment"))
        .when(_active_stint("ug", year), F.col("ug_segment"))
        .when(_active_stint("ccc", year), F.col("ccc_segment"))
    )
    return (
        enrolled.unionByName(seniors)
        .withColumn("application_type", F.when(F.col("has_ssn"), F.lit("FAFSA")).otherwise(F.lit("CADAA")))
        .where(ctx.in_window(year) & ((F.col("application_type") == "FAFSA") | (year >= FIRST_CADAA_YEAR)))
        .withColumns(
            {
                "_sai": sai.cast("int"),
                "_campus": campus,
                "_segment": segment,
                "_ssn_expected": F.col("application_type") == "FAFSA",
                "_event_year": year,
                "_row_code": row_code(pid, year - 1990),
            }
        )
    )


def aid_applications(ctx: FeedContext) -> DataFrame:
    """One row per financial-aid application per award year."""
    return ctx.finish(
        applications(ctx),
        CSAC,
        {
            "application_type": F.col("application_type"),
            "high_school_code": ctx.ref.schools.at("school_code", F.col("high_school_row")),
            "award_year": F.col("award_year"),
            "student_aid_index": F.col("_sai"),
        },
    )


def cal_grant_awards(ctx: FeedContext) -> DataFrame:
    """One row per Cal Grant award per award year."""
    draws, pid = ctx.draws, F.col("person_id")
    year = F.col("award_year")
    awarded = applications(ctx).where(
        F.col("_campus").isNotNull()
        & (F.col("_sai") < 7000)
        & (F.col("ability") > -0.8)
        & draws.chance(0.6, "cal_grant", pid, year)
    )
    grant_type = (
        F.when(F.col("_segment") == "CCC", F.when(draws.chance(0.2, "cal_grant_c", pid, year), "C").otherwise("B"))
        .when(F.col("_sai") >= 2000, F.lit("A"))
        .otherwise(F.lit("B"))
    )
    awarded = awarded.withColumn("grant_type", grant_type)
    tuition = F.when(F.col("_segment") == "UC", TUITION["UC"]).when(F.col("_segment") == "CSU", TUITION["CSU"])
    first_year = year == F.col("college_first_year")
    amount = (
        F.when(F.col("grant_type") == "A", tuition)
        .when(F.col("grant_type") == "C", F.lit(CAREER_AWARD))
        .when((F.col("_segment") != "CCC") & ~first_year, F.lit(ACCESS_AWARD) + tuition)
        .otherwise(F.lit(ACCESS_AWARD))
    )
    return ctx.finish(
        awarded,
        CSAC,
        {
            "award_year": year,
            "grant_type": F.col("grant_type"),
            "amount": amount,
            "institution_code": ctx.ref.colleges.at("code", F.col("_campus")),
        },
    )
