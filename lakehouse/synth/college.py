"""CCCCO, CSU and UCOP feeds: term enrollments and awards/degrees from the people's college stints.

A person has up to three stints (see `people.with_postsecondary`): ccc (community college), ug (bachelor's
at CSU or UC, first-time or transfer) and gr (graduate). A feed takes the stints of its segment, expands
them into terms (with a few stop-out terms skipped and community-college summer terms), and writes awards
for the stints that end with one inside the data window.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.context import FeedContext, guarded_sequence
from lakehouse.synth.identity import IdentityProfile
from lakehouse.synth.keys import local_id, row_code
from lakehouse.synth.terms import term_code, term_season, term_year

CCCCO = IdentityProfile(
    partner="cccco",
    nickname_rate=0.12,
    quoted_nickname_rate=0.03,
    typo_scale=1.2,
    dob_missing_rate=0.02,
    ssn_rate=0.85,
    ssid_rate=0.6,
    gender_x_rate=0.003,
    gender_missing_rate=0.01,
)
CSU = IdentityProfile(
    partner="csu",
    title_case=True,
    nickname_rate=0.10,
    quoted_nickname_rate=0.02,
    accent_rate=0.3,
    dob_missing_rate=0.01,
    middle_rate=0.6,
    middle_initial_rate=0.3,
    ssn_rate=0.9,
    ssid_rate=0.6,
    gender_x_rate=0.004,
    gender_missing_rate=0.005,
)
UCOP = IdentityProfile(
    partner="ucop",
    title_case=True,
    nickname_rate=0.08,
    quoted_nickname_rate=0.02,
    accent_rate=0.4,
    dob_missing_rate=0.01,
    ssn_rate=0.88,
    gender_x_rate=0.005,
    gender_missing_rate=0.005,
)

STINTS = (("ccc", 0), ("ug", 1), ("gr", 2))
"""Stint column prefixes and their numbers (part of the row codes)."""


def stints(ctx: FeedContext, segment: str) -> DataFrame:
    """One row per person per stint at `segment`: _stint, _campus, _start, _tpy, _terms, _level, _award, _end_date."""
    parts = []
    for prefix, number in STINTS:
        level = F.col("ug_level") if prefix == "ug" else F.lit("GRAD" if prefix == "gr" else "CCC")
        parts.append(
            ctx.people.where(F.col(f"{prefix}_segment") == segment).withColumns(
                {
                    "_stint": F.lit(number),
                    "_campus": F.col(f"{prefix}_campus"),
                    "_start": F.col(f"{prefix}_start"),
                    "_tpy": F.col(f"{prefix}_tpy"),
                    "_terms": F.col(f"{prefix}_terms"),
                    "_level": level,
                    "_award": F.col(f"{prefix}_award"),
                    "_end_date": F.col(f"{prefix}_end_date"),
                }
            )
        )
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result


def terms(ctx: FeedContext, segment: str, stop_out_rate: float, summer_rate: float) -> DataFrame:
    """One row per enrolled term of `segment` in the data window: _slot, term_code, _term_year, _stint, ...

    Regular terms are slots 0 .. _terms-1 (any but the first and last skipped at `stop_out_rate`); summer
    terms (slots 32+) follow a spring term at `summer_rate`.
    """
    draws, pid = ctx.draws, F.col("person_id")
    base = stints(ctx, segment)
    regular = base.withColumn("_slot", F.explode(guarded_sequence(F.lit(0), F.col("_terms") - 1))).where(
        (F.col("_slot") == 0)
        | (F.col("_slot") == F.col("_terms") - 1)
        | ~draws.chance(stop_out_rate, "stop_out", pid, F.col("_stint"), F.col("_slot"))
    )
    regular = regular.withColumns(
        {
            "_term_year": term_year(F.col("_start"), F.col("_slot"), F.col("_tpy")),
            "_season": term_season(F.col("_slot"), F.col("_tpy")),
        }
    )
    result = regular
    if summer_rate > 0:
        years = F.floor(F.col("_terms") / F.col("_tpy")).cast("int")
        summer = (
            base.withColumn("_year_index", F.explode(guarded_sequence(F.lit(0), years - 1)))
            .where(draws.chance(summer_rate, "summer_term", pid, F.col("_stint"), F.col("_year_index")))
            .withColumns(
                {
                    "_slot": F.lit(32) + F.col("_year_index"),
                    "_term_year": F.col("_start") + F.col("_year_index") + 1,
                    "_season": F.lit("SU"),
                }
            )
            .drop("_year_index")
        )
        result = regular.unionByName(summer)
    return result.where(ctx.in_window(F.col("_term_year"))).withColumns(
        {
            "term_code": term_code(F.col("_term_year"), F.col("_season")),
            "_event_year": F.col("_term_year"),
            "_row_code": row_code(pid, F.col("_stint") * 64 + F.col("_slot")),
        }
    )


def _units(ctx: FeedContext, low: Column, high: Column) -> Column:
    """Units attempted in half units between low and high (double)."""
    pid = F.col("person_id")
    return ctx.draws.integer(low * 2, high * 2, "units", pid, F.col("_stint"), F.col("_slot")) / F.lit(2.0)


def _campus_code(ctx: FeedContext) -> Column:
    return ctx.ref.colleges.at("code", F.col("_campus"))


def _campus_id(ctx: FeedContext, purpose: str, prefix: str = "") -> Column:
    """The student's id at the campus (same for every stint there)."""
    return F.concat(F.lit(prefix), local_id(ctx.seed, purpose, F.col("person_id"), 9, _campus_code(ctx)))


def ccc_enrollment(ctx: FeedContext) -> DataFrame:
    """One row per student per college per term (FA, SP and some SU)."""
    pid = F.col("person_id")
    rows = terms(ctx, "CCC", stop_out_rate=0.08, summer_rate=0.15)
    full_time = ctx.draws.chance(0.35, "full_time", pid, F.col("_slot"))
    units = (
        F.when(F.col("_season") == "SU", _units(ctx, F.lit(3), F.lit(7)))
        .when(full_time, _units(ctx, F.lit(12), F.lit(16)))
        .otherwise(_units(ctx, F.lit(3), F.lit(11)))
    )
    return ctx.finish(
        rows,
        CCCCO,
        {
            "_id_local_id": _campus_id(ctx, "ccc_student_id", "W"),
            "college_code": _campus_code(ctx),
            "term_code": F.col("term_code"),
            "units_attempted": units,
        },
    )


def _awards(ctx: FeedContext, segment: str) -> DataFrame:
    """Stints of `segment` that end with an award inside the data window."""
    end = F.col("_end_date")
    return (
        stints(ctx, segment)
        .where(F.col("_award").isNotNull() & (end >= ctx.window_start()) & (end <= ctx.window_end()))
        .withColumns(
            {"_event_year": F.year(end), "_row_code": row_code(F.col("person_id"), F.col("_stint")), "_slot": F.lit(0)}
        )
    )


def ccc_awards(ctx: FeedContext) -> DataFrame:
    """One row per certificate or associate degree conferred."""
    return ctx.finish(
        _awards(ctx, "CCC"),
        CCCCO,
        {
            "_id_local_id": _campus_id(ctx, "ccc_student_id", "W"),
            "college_code": _campus_code(ctx),
            "award_date": F.col("_end_date"),
            "award_type": F.col("_award"),
            "program_code": ctx.ref.programs.at("top_code", F.col("program_row")),
        },
    )


def csu_enrollment(ctx: FeedContext) -> DataFrame:
    """One row per student per campus per term, with the student level (FTF, TRANSFER, CONTINUING, GRAD)."""
    pid = F.col("person_id")
    rows = terms(ctx, "CSU", stop_out_rate=0.03, summer_rate=0.0)
    level = (
        F.when(F.col("_level") == "GRAD", F.lit("GRAD"))
        .when(F.col("_slot") == 0, F.col("_level"))
        .otherwise(F.lit("CONTINUING"))
    )
    part_time = ctx.draws.chance(0.2, "part_time", pid, F.col("_stint"), F.col("_slot"))
    units = (
        F.when(F.col("_level") == "GRAD", _units(ctx, F.lit(6), F.lit(12)))
        .when(part_time, _units(ctx, F.lit(6), F.lit(11)))
        .otherwise(_units(ctx, F.lit(12), F.lit(18)))
    )
    return ctx.finish(
        rows,
        CSU,
        {
            "_id_local_id": _campus_id(ctx, "csu_student_id"),
            "campus_code": _campus_code(ctx),
            "term_code": F.col("term_code"),
            "units_attempted": units,
            "student_level": level,
        },
    )


def csu_degrees(ctx: FeedContext) -> DataFrame:
    """One row per bachelor's or master's degree conferred."""
    return ctx.finish(
        _awards(ctx, "CSU").where(F.col("_award") != "PHD"),
        CSU,
        {
            "_id_local_id": _campus_id(ctx, "csu_student_id"),
            "campus_code": _campus_code(ctx),
            "degree_date": F.col("_end_date"),
            "degree_type": F.col("_award"),
            "major_cip": ctx.ref.programs.at("cip", F.col("program_row")),
        },
    )


def uc_enrollment(ctx: FeedContext) -> DataFrame:
    """One row per student per campus per term (quarters at most campuses, semesters at Berkeley and Merced)."""
    return ctx.finish(
        terms(ctx, "UC", stop_out_rate=0.02, summer_rate=0.0),
        UCOP,
        {
            "_id_local_id": _campus_id(ctx, "uc_student_id"),
            "campus_code": _campus_code(ctx),
            "term_code": F.col("term_code"),
        },
    )


def uc_degrees(ctx: FeedContext) -> DataFrame:
    """One row per degree conferred (BA, BS, MA, MS, PHD)."""
    return ctx.finish(
        _awards(ctx, "UC"),
        UCOP,
        {
            "_id_local_id": _campus_id(ctx, "uc_student_id"),
            "campus_code": _campus_code(ctx),
            "degree_date": F.col("_end_date"),
            "degree_type": F.col("_award"),
            "major_cip": ctx.ref.programs.at("cip", F.col("program_row")),
        },
    )
