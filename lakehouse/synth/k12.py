"""CDE feeds: K-12 enrollment (fall census), high-school completion and assessments (grades 3-8 and 11)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.context import FeedContext
from lakehouse.synth.identity import IdentityProfile
from lakehouse.synth.keys import row_code
from lakehouse.synth.places import child_epoch, school_row, with_residence

CDE = IdentityProfile(
    partner="cde",
    typo_scale=0.5,
    swap_scale=0.4,
    dob_swap_scale=0.3,
    dob_missing_rate=0.002,
    middle_rate=0.85,
    middle_initial_rate=0.1,
    ssid_rate=1.0,
    ssid_typo_rate=0.0005,
    gender_x_rate=0.001,
    married_name_lag=0.0,
)
"""K-12 records are the cleanest: the SSID always, full names, school-verified birth dates."""

ASSESSED_GRADES = (3, 4, 5, 6, 7, 8, 11)


def k12_years(ctx: FeedContext) -> DataFrame:
    """One row per student per school year attended in the data window: _i, school_year, grade, _school."""
    students = ctx.people.where(F.col("in_k12"))
    years = students.withColumn("_i", F.explode(F.sequence(F.lit(0), F.col("k12_years") - 1)))
    attended = F.col("entry_grade") + F.col("_i")
    repeated = F.coalesce(attended > F.col("retained_grade"), F.lit(False)).cast("int")
    years = years.withColumns({"school_year": F.col("k_year") + attended, "grade": attended - repeated}).where(
        ctx.in_window(F.col("school_year"))
    )
    level = F.when(F.col("grade") <= 5, 0).when(F.col("grade") <= 8, 1).otherwise(2)
    return years.withColumns({"_epoch": child_epoch(F.col("grade")), "_level": level}).withColumn(
        "_school", school_row(ctx.draws, ctx.ref, F.col("_epoch"), F.col("_level"))
    )


def _school_columns(ctx: FeedContext, school: Column) -> dict[str, Column]:
    schools = ctx.ref.schools
    return {
        "school_code": schools.at("school_code", school),
        "district_code": schools.at("district_code", school),
        "county_code": schools.at("county_code", school),
    }


def k12_enrollment(ctx: FeedContext) -> DataFrame:
    """One row per student per school per school year; about 3% of years also have a mid-year second school."""
    draws, pid = ctx.draws, F.col("person_id")
    years = k12_years(ctx)
    moves_mid_year = draws.chance(0.03, "mid_year_move", pid, F.col("school_year"))
    rows = years.withColumn(
        "_part", F.explode(F.when(moves_mid_year, F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0))))
    )
    second_school = school_row(
        draws, ctx.ref, F.col("_epoch"), F.col("_level"), "mid_year_school", F.col("school_year")
    )
    rows = rows.withColumns(
        {
            "_school": F.when(F.col("_part") == 1, second_school).otherwise(F.col("_school")),
            "_event_year": F.col("school_year"),
            "_row_code": row_code(pid, F.col("_i") * 2 + F.col("_part")),
        }
    ).transform(with_residence, draws, ctx.ref, F.col("school_year"))
    sed_flip = draws.chance(0.08, "sed_flip", pid, F.col("school_year"))
    return ctx.finish(
        rows,
        CDE,
        {
            "_id_zip": F.col("_res_zip"),
            "school_year": F.col("school_year"),
            "grade_level": F.when(F.col("grade") == 0, F.lit("KN")).otherwise(
                F.lpad(F.col("grade").cast("string"), 2, "0")
            ),
            **_school_columns(ctx, F.col("_school")),
            "is_sed": F.col("is_sed") != sed_flip,
            "is_english_learner": F.col("el_at_entry") & (F.col("grade") < F.col("reclassified_grade")),
        },
    )


def k12_graduation(ctx: FeedContext) -> DataFrame:
    """One row per high-school completer, in the school year of completion (at the last high school)."""
    pid = F.col("person_id")
    completers = ctx.people.where(
        F.col("in_k12")
        & F.col("is_hs_completer")
        & ctx.in_window(F.col("grad_year"))
        & F.col("high_school_row").isNotNull()
    ).withColumns({"_event_year": F.col("grad_year"), "_row_code": row_code(pid, F.lit(0))})
    return ctx.finish(
        completers,
        CDE,
        {
            "school_year": F.col("grad_year"),
            **_school_columns(ctx, F.col("high_school_row")),
            "completion_type": F.col("completion_type"),
            "is_a_g_complete": F.col("is_a_g"),
        },
    )


def k12_assessment(ctx: FeedContext) -> DataFrame:
    """One row per tested student per school year per subject (ELA, MATH) in grades 3-8 and 11; ~97% tested.

    Scale scores follow the student's ability; achievement levels 1-4 are cut from the grade's mean.
    """
    draws, pid = ctx.draws, F.col("person_id")
    years = k12_years(ctx).where(F.col("grade").isin(*ASSESSED_GRADES))
    rows = years.select("*", F.posexplode(F.array(F.lit("ELA"), F.lit("MATH"))).alias("_s", "subject"))
    rows = rows.where(draws.chance(0.97, "tested", pid, F.col("school_year"), F.col("subject")))
    mean = F.when(F.col("subject") == "ELA", 2400).otherwise(2410) + F.when(F.col("grade") == 11, 190).otherwise(
        (F.col("grade") - 3) * 30
    )
    score = mean + F.lit(85.0) * (
        F.lit(0.8) * F.col("ability")
        + F.lit(0.6) * draws.normal("scale_score", pid, F.col("school_year"), F.col("subject"))
    )
    rows = rows.withColumns(
        {
            "_mean": mean,
            "_score": F.when(
                ~draws.chance(0.01, "score_missing", pid, F.col("school_year"), F.col("subject")),
                F.round(score).cast("int"),
            ),
            "_event_year": F.col("school_year"),
            "_row_code": row_code(pid, F.col("_i") * 2 + F.col("_s")),
        }
    )
    offset = F.col("_score") - F.col("_mean")
    level = F.when(offset < -60, 1).when(offset < 5, 2).when(offset < 85, 3).otherwise(4)
    return ctx.finish(
        rows,
        CDE,
        {
            "school_year": F.col("school_year"),
            "grade_level": F.lpad(F.col("grade").cast("string"), 2, "0"),
            "school_code": ctx.ref.schools.at("school_code", F.col("_school")),
            "subject": F.col("subject"),
            "scale_score": F.col("_score"),
            "achievement_level": F.when(F.col("_score").isNotNull(), level),
        },
    )
