"""EDD feed: quarterly UI base wages, one row per worker per employer per quarter.

Workers are people with an SSN to report (their own or a borrowed one), from about age 16. Working life is
cut into job spells of `job_tenure` quarters; in each spell the person works with a probability that
grows with age and education (lower while in college) for one employer of an industry that suits their
age and education, and about 6% of worked quarters add a short second job. Wages grow with age, a
bachelor's degree, the industry and the calendar, with person- and spell-level variation; the first and
last quarter of a spell are partial. Employers report names their own way: many only a first initial.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.context import FeedContext
from lakehouse.synth.draws import Draws, UniformPool, hash_columns
from lakehouse.synth.identity import IdentityProfile
from lakehouse.synth.keys import row_code
from lakehouse.synth.places import with_residence

EDD = IdentityProfile(
    partner="edd",
    ascii_only=True,
    nickname_rate=0.15,
    dob_missing_rate=0.0,
    middle_rate=0.0,
    ssn_rate=1.0,
    married_name_lag=0.15,
)
FIRST_QUARTER_INDEX = 1990 * 4
"""Quarter indexes (year * 4 + quarter - 1) are stored relative to this in row codes."""


SPELL_HASHES = ("_we0", "_we1")  # per person and job spell: employed, industry, employer, spell wage (2)
QUARTER_HASHES = ("_wq0", "_wq1")  # per person and quarter: second job, its industry and employer, wage noise


def worked_quarters(ctx: FeedContext) -> DataFrame:
    """One row per person per quarter worked: _q (year*4 + quarter-1), year, quarter, _epoch, _age, _has_ba,
    and the staged hashes of the spell (_we*) and the quarter (_wq*)."""
    draws, pid = ctx.draws, F.col("person_id")
    synth = ctx.synth
    birth_year = F.year("birth_date")
    first = F.greatest(F.lit(synth.first_wage_year * 4), (birth_year + 16) * 4 + F.pmod(F.col("job_phase"), F.lit(4)))
    last = F.lit(synth.last_data_year * 4 + 3)
    workers = ctx.people.where(F.col("ssn_used").isNotNull() & (first <= last))
    quarters = workers.withColumn("_q", F.explode(F.sequence(first.cast("int"), last.cast("int"))))
    year = F.floor(F.col("_q") / 4).cast("int")
    epoch = F.floor((F.col("_q") + F.col("job_phase")) / F.col("job_tenure")).cast("int")
    quarters = quarters.withColumns(
        {
            "year": year,
            "quarter": F.pmod(F.col("_q"), F.lit(4)) + 1,
            "_age": year - birth_year,
            "_epoch": epoch,
            "_in_college": F.coalesce(
                year.between(F.col("college_first_year"), F.col("college_last_year")), F.lit(False)
            ),
            "_has_ba": F.coalesce(year >= F.col("ba_year"), F.lit(False)),
            **hash_columns(draws, "_we", "job_spell", len(SPELL_HASHES), pid, epoch),
        }
    )
    age = F.col("_age")
    base = (
        F.when(age < 18, 0.30)
        .when(age < 22, F.when(F.col("_in_college"), 0.50).otherwise(0.70))
        .when(F.col("_has_ba"), 0.92)
        .otherwise(0.82)
    )
    employed = draws.slices(F.col(SPELL_HASHES[0]), 1)[0] < base * F.col("work_propensity")
    return quarters.where(employed).withColumns(
        hash_columns(draws, "_wq", "job_quarter", len(QUARTER_HASHES), pid, F.col("_q"))
    )


def _employer(ctx: FeedContext, naics_row: Column, rank_u: Column) -> Column:
    """A 10-digit employer account number: employers of an industry and county, the largest drawn most."""
    rank = F.floor(F.pow(rank_u, 2) * 400).cast("int")
    naics = ctx.ref.naics.at("naics", naics_row)
    account = F.pmod(ctx.draws.hash("employer", naics, F.col("_res_county_code"), rank), F.lit(10**10))
    return F.lpad(account.cast("string"), 10, "0")


def ui_wages(ctx: FeedContext) -> DataFrame:
    """One row per worker per employer per calendar quarter."""
    draws, pid, q = ctx.draws, F.col("person_id"), F.col("_q")
    quarters = worked_quarters(ctx).transform(with_residence, draws, ctx.ref, F.col("year"))
    spell = UniformPool(draws, list(SPELL_HASHES))
    spell.take()  # the first one decided whether the spell is worked
    per_quarter = UniformPool(draws, list(QUARTER_HASHES))
    second_job = per_quarter.take() < 0.06
    rows = quarters.withColumn(
        "_job", F.explode(F.when(second_job, F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0))))
    )
    epoch_start = F.col("_epoch") * F.col("job_tenure") - F.col("job_phase")
    start_age = F.floor(epoch_start / 4) - F.year("birth_date")
    profile = F.when(start_age < 20, 0).when(F.col("_has_ba"), 2).otherwise(1)
    main_job = F.col("_job") == 0
    spell_naics, spell_rank = spell.take(), spell.take()
    spell_wage = Draws.normal_from(spell.take(), spell.take())
    second_naics, second_rank = per_quarter.take(), per_quarter.take()
    quarter_noise, factor_noise = per_quarter.take(), per_quarter.take()
    rows = rows.withColumns(
        {
            "_naics_row": ctx.ref.naics_choice.pick(F.when(main_job, spell_naics).otherwise(second_naics), profile),
            "_epoch_start": epoch_start,
            "_event_year": F.col("year"),
            "_row_code": row_code(pid, (q - FIRST_QUARTER_INDEX) * 2 + F.col("_job")),
        }
    )
    rank_u = F.when(main_job, spell_rank).otherwise(second_rank)
    rows = rows.withColumn("employer_id", _employer(ctx, F.col("_naics_row"), rank_u))
    age = F.col("_age")
    annual = (
        F.when(age < 18, 6000.0)
        .when(age < 22, 16000.0)
        .when(age < 26, 30000.0)
        .when(age < 31, 40000.0)
        .otherwise(48000.0)
        * F.when(F.col("_has_ba"), 1.5).otherwise(1.0)
        * F.when(F.col("_in_college") & (age < 26), 0.5).otherwise(1.0)
        * F.pow(ctx.ref.naics.double_at("wage_factor", F.col("_naics_row")), 0.7)
        * F.exp(F.lit(0.35) * F.col("earnings_z") + F.lit(0.25) * spell_wage)
        * F.pow(F.lit(1.03), F.col("year") - 2012)
    )
    quarterly = annual / 4 * (F.lit(0.9) + F.lit(0.2) * quarter_noise)
    partial = (q == F.col("_epoch_start")) | (q == F.col("_epoch_start") + F.col("job_tenure") - 1)
    factor = (
        F.when(~main_job, F.lit(0.1) + F.lit(0.3) * factor_noise)
        .when(partial, F.lit(0.2) + F.lit(0.8) * factor_noise)
        .otherwise(F.lit(1.0))
    )
    employer = F.col("employer_id")
    rows = rows.withColumns(
        {
            "_nickname_key": F.xxhash64(pid, employer),
            "_initial_only": draws.chance(0.45, "reports_initial", employer),
        }
    )
    return ctx.finish(
        rows,
        EDD,
        {
            "employer_id": employer,
            "naics": ctx.ref.naics.at("naics", F.col("_naics_row")),
            "year": F.col("year"),
            "quarter": F.col("quarter"),
            "wages": F.round(F.greatest(quarterly * factor, F.lit(25.0)), 2),
        },
    )
