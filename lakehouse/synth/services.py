"""DHCS (Medi-Cal) and DSS (CalFresh, CalWORKs) feeds: program spans with the address at the span's start.

Participation is a household matter: the spans are drawn per family, so twins are enrolled together, at
the same address, with the same dates (the classic twin hard case: same surname, birth date and address,
different first names). Spans fall in successive parts of the person's data window and may still be open
at its end (end_date null).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.context import FeedContext, guarded_sequence
from lakehouse.synth.identity import IdentityProfile, address_variant
from lakehouse.synth.keys import local_id, row_code
from lakehouse.synth.places import with_residence

DHCS = IdentityProfile(
    partner="dhcs",
    nickname_rate=0.03,
    typo_scale=1.2,
    dob_missing_rate=0.01,
    ssn_rate=0.6,
    gender_x_rate=0.002,
    gender_missing_rate=0.01,
)
DSS = IdentityProfile(
    partner="dss",
    nickname_rate=0.05,
    typo_scale=1.5,
    dob_swap_scale=1.5,
    dob_missing_rate=0.02,
    ssn_rate=0.7,
)
CHILD_AID_CODES = ["P5", "P7", "7U", "32", "3R"]
ADULT_AID_CODES = ["M1", "M3", "1H", "L1"]


def spans(ctx: FeedContext, flag: str, count: str, *, salt: str, min_months: int, max_months: int) -> DataFrame:
    """One row per span (_k) of people with `flag`: _start, _end (null when open at the window's end).

    The person's window (from the later of the first data year and birth to the last data year) is cut
    into `count` equal parts; span k starts in the first half of part k and lasts min..max months.
    """
    draws, fam = ctx.draws, F.col("family_id")
    start_of_window = F.greatest(ctx.window_start(), F.col("birth_date"))
    length = F.datediff(ctx.window_end(), start_of_window)
    part = F.floor(length / F.col(count)).cast("int")
    rows = (
        ctx.people.where(F.col(flag) & (length > 90))
        .withColumn("_k", F.explode(guarded_sequence(F.lit(0), F.col(count) - 1)))
        .withColumn(
            "_start",
            F.date_add(
                start_of_window,
                F.col("_k") * part + F.floor(draws.u(f"{salt}_start", fam, F.col("_k")) * part * 0.5).cast("int"),
            ),
        )
    )
    end = F.add_months(F.col("_start"), draws.integer(min_months, max_months, f"{salt}_months", fam, F.col("_k")))
    return rows.withColumns(
        {
            "_end": F.when(end <= ctx.window_end(), F.date_sub(end, 1)),
            "_event_year": F.year("_start"),
            "_row_code": row_code(F.col("person_id"), F.col("_k")),
        }
    ).transform(with_residence, draws, ctx.ref, F.year("_start"))


def _address(ctx: FeedContext, salt: str) -> Column:
    return address_variant(F.col("_res_address_line"), ctx.draws, salt, F.col("_row_code"))


def medi_cal_enrollment(ctx: FeedContext) -> DataFrame:
    """One row per Medi-Cal eligibility span."""
    draws, pid = ctx.draws, F.col("person_id")
    rows = spans(ctx, "has_medi_cal", "medi_cal_spans", salt="medi_cal", min_months=6, max_months=72)
    age = F.year("_start") - F.year("birth_date")
    aid_code = F.when(age < 19, draws.pick(CHILD_AID_CODES, "aid_code", F.col("_row_code"))).otherwise(
        draws.pick(ADULT_AID_CODES, "aid_code", F.col("_row_code"))
    )
    cin = F.concat(local_id(ctx.seed, "cin", pid, 8), draws.pick(list("ABCDEFGHJKLMNPRSTUVWXYZ"), "cin_letter", pid))
    return ctx.finish(
        rows,
        DHCS,
        {
            "_id_local_id": cin,
            "_id_address_line": _address(ctx, "medi_cal_address"),
            "_id_city": F.col("_res_city"),
            "_id_zip": F.col("_res_zip"),
            "county_code": F.col("_res_county_code"),
            "start_date": F.col("_start"),
            "end_date": F.col("_end"),
            "aid_code": aid_code,
        },
    )


def program_participation(ctx: FeedContext) -> DataFrame:
    """One row per CalFresh or CalWORKs participation span."""
    draws, fam = ctx.draws, F.col("family_id")
    rows = spans(ctx, "has_dss", "dss_spans", salt="dss", min_months=3, max_months=36)
    program = F.when(draws.chance(0.2, "calworks", fam, F.col("_k")), F.lit("CALWORKS")).otherwise(F.lit("CALFRESH"))
    home_county = ctx.ref.counties.at("county_code", F.col("county_0"))
    client_id = F.concat(home_county, local_id(ctx.seed, "dss_client_id", F.col("person_id"), 8))
    return ctx.finish(
        rows,
        DSS,
        {
            "_id_local_id": client_id,
            "_id_address_line": _address(ctx, "dss_address"),
            "_id_zip": F.col("_res_zip"),
            "county_code": F.col("_res_county_code"),
            "program": program,
            "start_date": F.col("_start"),
            "end_date": F.col("_end"),
        },
    )
