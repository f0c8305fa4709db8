"""The true population: one row per person with every latent attribute of their life course.

People come from `spark.range(people)`; every attribute is a hash draw of (seed, purpose, id), so a person
is the same whatever the partitioning. Family-level attributes (surname, birth date, home, schools,
socioeconomic status, household programs) are keyed by `family_id`, which twins share; everything else by
`person_id`. The partner feeds are built from this DataFrame (see the feed modules); nothing here is noisy:
the noise of each source record is added by `lakehouse.synth.identity`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import SynthSettings
from lakehouse.synth.draws import Draws
from lakehouse.synth.keys import ssid_of, ssn_of, stable_int
from lakehouse.synth.places import child_epoch, school_row
from lakehouse.synth.reference import FIRST_NAME_GROUPS, SEGMENTS, Reference
from lakehouse.synth.terms import term_end_date, term_year

RACE_SHARES = {
    "RH": 0.52,  # Hispanic or Latino
    "RW": 0.25,  # White
    "RA": 0.10,  # Asian
    "RF": 0.03,  # Filipino
    "RB": 0.06,  # African American
    "RT": 0.025,  # two or more races
    "RI": 0.005,  # American Indian or Alaska Native
    "RP": 0.005,  # Pacific Islander
    "RD": 0.005,  # not reported
}
"""CALPADS reporting categories of race/ethnicity and their California K-12 shares."""

SED_RATE = {"RH": 0.78, "RB": 0.70, "RI": 0.65, "RP": 0.60, "RT": 0.45, "RA": 0.40, "RF": 0.30, "RW": 0.28}
EL_RATE = {"RH": 0.42, "RA": 0.30, "RP": 0.15, "RF": 0.12}
NO_SSN_RATE = {"RH": 0.12, "RA": 0.08, "RF": 0.05, "RP": 0.05, "RD": 0.05, "RW": 0.03, "RT": 0.03, "RB": 0.02}
NO_SSN_REFERENCE = 0.08
"""Population share the NO_SSN_RATE table yields; settings.synth.no_ssn_rate rescales it."""

SHARED_SSN_GROUP_SIZE = 3
"""Average number of people who use one shared SSN besides its owner."""
FORCED_SHARERS = 3
"""People who always use the first shared SSN, so the hard case exists even in a tiny population."""

NOMINAL_GROUP_WEIGHTS = [0.52, 0.25, 0.06, 0.10, 0.03]
"""Shares of the five first-name groups (HISPANIC, WHITE, BLACK, ASIAN, FILIPINO) for mixed or unknown race."""


def by_race(rates: dict[str, float], default: float) -> Column:
    """A double Column: the rate of the row's race_ethnicity."""
    expr: Column = F.lit(default)
    for code, rate in rates.items():
        expr = F.when(F.col("race_ethnicity") == code, F.lit(rate)).otherwise(expr)
    return expr


def forced_sharer_ids(seed: int, people: int) -> list[int]:
    """Person ids that always use the first shared SSN (driver-side constants from the seed)."""
    return sorted({stable_int(seed, f"forced_sharer#{i}", people) for i in range(min(FORCED_SHARERS, people))})


def shared_ssn_hubs(people: int, rate: float) -> int:
    """Number of distinct shared SSNs (at least one)."""
    return max(1, round(people * rate / SHARED_SSN_GROUP_SIZE))


def donor_id(draws: Draws, hub: Column, people: int) -> Column:
    """Person id (long) of the owner of shared SSN number `hub` (int)."""
    return F.pmod(draws.hash("ssn_donor", hub), F.lit(people))


def build_people(
    spark: SparkSession, people: int, seed: int, *, synth: SynthSettings, ref: Reference, partitions: int
) -> DataFrame:
    """One row per true person (person_id 0 .. people-1) with every latent attribute; see the module docstring."""
    draws = Draws(seed)
    base = spark.range(0, people, numPartitions=partitions).withColumnRenamed("id", "person_id")
    return (
        base.transform(with_family, draws, people, seed, synth.twin_rate)
        .transform(with_demographics, draws, synth)
        .transform(with_names, draws, ref, synth)
        .transform(with_identifiers, draws, people, seed, synth)
        .transform(with_schooling, draws, ref)
        .transform(with_postsecondary, draws, ref)
        .transform(with_programs_and_work, draws)
    )


def with_family(df: DataFrame, draws: Draws, people: int, seed: int, twin_rate: float) -> DataFrame:
    """Add person_key, is_twin, family_id, twin_person_id: ids 2k and 2k+1 are twins for a share of pairs k.

    A share `twin_rate` of pairs are twins, so about `twin_rate` of people are; one pair chosen by the seed
    always is.
    """
    pair = F.floor(F.col("person_id") / 2)
    forced_pair = stable_int(seed, "forced_twins", max(1, people // 2))
    chosen = draws.chance(twin_rate, "twin_pair", pair) | (pair == F.lit(forced_pair))
    return df.withColumns(
        {
            "person_key": F.concat(F.lit("P"), F.lpad(F.col("person_id").cast("string"), 10, "0")),
            "is_twin": chosen & (pair * 2 + 1 < F.lit(people)),
        }
    ).withColumns(
        {
            "family_id": F.when(F.col("is_twin"), pair * 2).otherwise(F.col("person_id")),
            "twin_person_id": F.when(
                F.col("is_twin"),
                F.when(F.col("person_id") % 2 == 0, F.col("person_id") + 1).otherwise(pair * 2),
            ),
        }
    )


def _sex_of(draws: Draws, key: Column) -> Column:
    return F.when(draws.chance(0.49, "sex", key), F.lit("F")).otherwise(F.lit("M"))


def with_demographics(df: DataFrame, draws: Draws, synth: SynthSettings) -> DataFrame:
    """Add race_ethnicity, name groups, sex, birth_date, home county, is_sed, income_z, has_ssn and ability."""
    fam, pid = F.col("family_id"), F.col("person_id")
    year = draws.integer(synth.first_birth_year, synth.last_birth_year, "birth_year", fam)
    jan_first = F.make_date(year, F.lit(1), F.lit(1))
    days_in_year = F.datediff(F.make_date(year + 1, F.lit(1), F.lit(1)), jan_first)
    is_twin_b = F.col("is_twin") & (pid != fam)
    sex = F.when(is_twin_b & draws.chance(0.6, "twin_same_sex", fam), _sex_of(draws, fam)).otherwise(
        _sex_of(draws, pid)
    )
    mixed_group = draws.weighted(["0", "1", "2", "3", "4"], NOMINAL_GROUP_WEIGHTS, "mixed_group", fam).cast("int")
    staged = df.withColumns(
        {
            "race_ethnicity": draws.weighted(list(RACE_SHARES), list(RACE_SHARES.values()), "race", fam),
            "sex": sex,
            "birth_date": F.date_add(jan_first, F.floor(draws.u("birth_day", fam) * days_in_year).cast("int")),
        }
    )
    race = F.col("race_ethnicity")
    name_group = (
        F.when(race == "RH", 0)
        .when(race == "RW", 1)
        .when(race == "RB", 2)
        .when(race == "RA", 3)
        .when(race == "RF", 4)
        .when(race == "RP", 5)
        .when(race == "RI", F.when(draws.chance(0.5, "ri_group", fam), 0).otherwise(1))
        .otherwise(mixed_group)
    )
    no_ssn = by_race(NO_SSN_RATE, 0.04) * F.lit(synth.no_ssn_rate / NO_SSN_REFERENCE)
    is_sed = draws.chance(by_race(SED_RATE, 0.5), "sed", fam)
    return staged.withColumns(
        {
            "name_group": name_group,
            "first_group": F.when(race == "RT", mixed_group).when(name_group == 5, 1).otherwise(name_group).cast("int"),
            "is_sed": is_sed,
            "has_ssn": ~draws.chance(no_ssn, "no_ssn", fam),
        }
    ).withColumns(
        {
            "income_z": draws.normal("income", fam) - F.when(F.col("is_sed"), 1.0).otherwise(0.0),
            "ability": F.lit(0.85) * draws.normal("ability", pid)
            + F.lit(0.35) * draws.normal("ability_family", fam)
            - F.when(F.col("is_sed"), 0.3).otherwise(0.0)
            + F.lit(0.1),
        }
    )


def _first_name_row(draws: Draws, ref: Reference, salt: str, key: Column, sex: Column) -> Column:
    group = F.when(sex == "F", 0).otherwise(1) * len(FIRST_NAME_GROUPS) + F.col("first_group")
    return ref.first_name_choice.pick(draws.u(salt, key), group)


def with_names(df: DataFrame, draws: Draws, ref: Reference, synth: SynthSettings) -> DataFrame:
    """Add home county, first_row, middle_row, surname_row, surname2_row and the married-name columns.

    Twins get different first names; a tenth of Hispanic families carry a second (maternal) surname; about
    30% of women and 3% of men marry between 21 and 33 and change their surname (replace, or hyphenate).
    """
    fam, pid = F.col("family_id"), F.col("person_id")
    own_first = _first_name_row(draws, ref, "first_name", pid, F.col("sex"))
    sibling_first = _first_name_row(draws, ref, "first_name", fam, _sex_of(draws, fam))
    is_twin_b = F.col("is_twin") & (pid != fam)
    staged = df.withColumns(
        {
            "county_0": ref.county_choice.pick(draws.u("home_county", fam)),
            "first_row": F.when(
                is_twin_b & (ref.first_name(own_first) == ref.first_name(sibling_first)),
                ref.alternative_first_name(own_first),
            ).otherwise(own_first),
            "middle_row": F.when(
                draws.chance(0.65, "has_middle", pid),
                _first_name_row(draws, ref, "middle_name", pid, F.col("sex")),
            ),
            "surname_row": ref.surname_choice.pick(draws.u("surname", fam), F.col("name_group")),
            "surname2_row": F.when(
                (F.col("name_group") == 0) & draws.chance(0.10, "compound_surname", fam),
                ref.surname_choice.pick(draws.u("surname2", fam), F.lit(0)),
            ),
        }
    )
    marries = draws.chance(F.when(F.col("sex") == "F", 0.30).otherwise(0.03), "marries", pid)
    married_year = F.year("birth_date") + draws.integer(21, 33, "marriage_age", pid)
    spouse_group = F.when(draws.chance(0.8, "spouse_same_group", pid), F.col("name_group")).otherwise(
        draws.weighted(["0", "1", "2", "3", "4"], NOMINAL_GROUP_WEIGHTS, "spouse_group", pid).cast("int")
    )
    in_window = marries & (married_year <= F.lit(synth.last_data_year))
    return staged.withColumns(
        {
            "middle_row": F.when(
                F.col("middle_row") == F.col("first_row"), ref.alternative_first_name(F.col("middle_row"))
            ).otherwise(F.col("middle_row")),
            "married_year": F.when(in_window, married_year),
            "married_surname_row": F.when(
                in_window, ref.surname_choice.pick(draws.u("spouse_surname", pid), spouse_group)
            ),
            "married_style": F.when(
                in_window,
                F.when((F.col("sex") == "M") | draws.chance(0.35, "hyphenates", pid), F.lit("HYPHEN")).otherwise(
                    F.lit("REPLACE")
                ),
            ),
        }
    )


def with_identifiers(df: DataFrame, draws: Draws, people: int, seed: int, synth: SynthSettings) -> DataFrame:
    """Add ssn_own, is_ssn_sharer, ssn_hub, ssn_used (the SSN the person's records carry), in_k12 and ssid.

    A share `shared_ssn_rate` of people (and always a few chosen by the seed) use the SSN of another person
    (the owner of one of a few hub SSNs), whether or not they have their own.
    """
    fam, pid = F.col("family_id"), F.col("person_id")
    hubs = shared_ssn_hubs(people, synth.shared_ssn_rate)
    forced = forced_sharer_ids(seed, people)
    is_forced = pid.isin(forced)
    sharer = draws.chance(synth.shared_ssn_rate, "ssn_sharer", pid) | is_forced
    hub = F.when(is_forced, F.lit(0)).otherwise(F.floor(draws.u("ssn_hub", pid) * hubs).cast("int"))
    donor = donor_id(draws, hub, people)
    own = F.when(F.col("has_ssn"), ssn_of(seed, pid))
    in_k12 = draws.chance(F.when(F.col("has_ssn"), 0.93).otherwise(0.80), "in_k12", fam)
    return df.withColumns(
        {
            "ssn_own": own,
            "is_ssn_sharer": sharer,
            "ssn_hub": F.when(sharer, hub),
            "ssn_used": F.when(sharer, ssn_of(seed, donor)).otherwise(own),
            "in_k12": in_k12,
            "ssid": F.when(in_k12, ssid_of(seed, pid)),
            "ssid2": F.when(in_k12 & draws.chance(0.006, "second_ssid", pid), ssid_of(seed, pid + F.lit(people))),
        }
    )


def with_schooling(df: DataFrame, draws: Draws, ref: Reference) -> DataFrame:
    """Add the K-12 path: k_year, entry/retained/last grade, k12_years, grad_year, completion, moves, schools.

    k_year is the spring year of kindergarten (age 5 by September 1). Most enter in kindergarten, some later
    (immigrants more often); about 4% repeat a grade; about 86% complete high school. Up to two moves
    (grades 1-12), a third of them to another county; a student who changes county may be given a second
    SSID by the new district (`ssid2` from `ssid2_year`).
    """
    fam, pid = F.col("family_id"), F.col("person_id")
    birth = F.col("birth_date")
    k_year = F.year(birth) + 6 + F.when(F.month(birth) >= 9, 1).otherwise(0)
    entry = F.when(draws.chance(F.when(F.col("has_ssn"), 0.88).otherwise(0.5), "enters_in_k", fam), F.lit(0)).otherwise(
        draws.integer(1, 11, "entry_grade", fam)
    )
    completes = draws.chance(
        F.greatest(F.lit(0.5), F.least(F.lit(0.98), F.lit(0.86) + F.lit(0.07) * F.col("ability"))),
        "completes_high_school",
        pid,
    )
    move1 = F.when(draws.chance(0.35, "move1", fam), draws.integer(1, 12, "move1_grade", fam))
    staged = df.withColumns(
        {
            "k_year": k_year,
            "entry_grade": F.when(F.col("in_k12"), entry),
            "retained_grade": F.when(draws.chance(0.04, "retained", pid), draws.integer(0, 8, "retained_grade", pid)),
            "is_hs_completer": completes,
            "move1_grade": move1,
            "cross1": draws.chance(0.3, "cross1", fam),
            "cross2": draws.chance(0.3, "cross2", fam),
        }
    )
    last_grade = F.greatest(
        F.col("entry_grade"),
        F.when(F.col("is_hs_completer"), F.lit(12)).otherwise(draws.integer(9, 12, "dropout_grade", pid)),
    )
    move2 = F.when(
        (F.col("move1_grade") < 12) & draws.chance(0.35, "move2", fam),
        draws.integer(F.col("move1_grade") + 1, F.lit(12), "move2_grade", fam),
    )
    staged = staged.withColumns(
        {
            "last_grade": F.when(F.col("in_k12"), last_grade),
            "move2_grade": move2,
            "county_1": F.when(F.col("cross1"), ref.county_choice.pick(draws.u("county_epoch1", fam))).otherwise(
                F.col("county_0")
            ),
        }
    )
    repeated = F.coalesce(
        F.col("retained_grade").between(F.col("entry_grade"), F.col("last_grade")), F.lit(False)
    ).cast("int")
    staged = staged.withColumns(
        {
            "k12_years": F.when(F.col("in_k12"), F.col("last_grade") - F.col("entry_grade") + 1 + repeated),
            "county_2": F.when(F.col("cross2"), ref.county_choice.pick(draws.u("county_epoch2", fam))).otherwise(
                F.col("county_1")
            ),
        }
    )
    ssid2_grade = F.when(F.col("cross1") & F.col("move1_grade").isNotNull(), F.col("move1_grade")).when(
        F.col("cross2") & F.col("move2_grade").isNotNull(), F.col("move2_grade")
    )
    grad_year = F.when(F.col("in_k12"), F.col("k_year") + F.col("entry_grade") + F.col("k12_years") - 1).otherwise(
        F.col("k_year") + 12
    )
    staged = staged.withColumns(
        {
            "grad_year": grad_year,
            "county_final": F.when(F.col("move2_grade").isNotNull(), F.col("county_2"))
            .when(F.col("move1_grade").isNotNull(), F.col("county_1"))
            .otherwise(F.col("county_0")),
            "district_0": ref.district_choice.pick(draws.u("district", fam, F.lit(0)), F.col("county_0")),
            "district_1": ref.district_choice.pick(draws.u("district", fam, F.lit(1)), F.col("county_1")),
            "district_2": ref.district_choice.pick(draws.u("district", fam, F.lit(2)), F.col("county_2")),
            "completion_type": F.when(
                F.col("is_hs_completer"),
                draws.weighted(["HSD", "GED", "CHSPE", "ADULT"], [0.93, 0.03, 0.02, 0.02], "completion_type", pid),
            ),
            "ssid2": F.when(ssid2_grade.isNotNull(), F.col("ssid2")),
            "ssid2_year": F.when(ssid2_grade.isNotNull() & F.col("ssid2").isNotNull(), F.col("k_year") + ssid2_grade),
            "el_at_entry": F.col("in_k12")
            & draws.chance(F.when(F.col("has_ssn"), by_race(EL_RATE, 0.03)).otherwise(0.8), "english_learner", pid),
            "reclassified_grade": F.when(draws.chance(0.12, "long_term_el", pid), F.lit(13)).otherwise(
                draws.integer(2, 9, "reclassified_grade", pid)
            ),
        }
    )
    a_g_probability = F.lit(1.0) / (F.lit(1.0) + F.exp(F.lit(-1.3) * F.col("ability")))
    high_school_epoch = child_epoch(F.col("last_grade"))
    return staged.withColumns(
        {
            "is_a_g": (F.col("completion_type") == "HSD") & draws.chance(a_g_probability, "a_g", pid),
            "high_school_row": F.when(
                F.col("in_k12") & (F.col("last_grade") >= 9),
                school_row(draws, ref, high_school_epoch, F.lit(2)),
            ),
        }
    )


def _campus(draws: Draws, ref: Reference, segment: Column | str, local_rate: float, salt: str) -> Column:
    """Row in the colleges table: a college of `segment` in the county of the last school, or anywhere."""
    if isinstance(segment, str):
        segment_index: Column = F.lit(SEGMENTS.index(segment))
    else:
        segment_index = F.when(segment == "CCC", 0).when(segment == "CSU", 1).otherwise(2)
    pid = F.col("person_id")
    local = ref.local_college_choice.pick(
        draws.u(f"{salt}_local", pid), segment_index * len(ref.counties) + F.col("county_final")
    )
    statewide = ref.college_choice.pick(draws.u(f"{salt}_statewide", pid), segment_index)
    return F.when(draws.chance(local_rate, f"{salt}_is_local", pid) & local.isNotNull(), local).otherwise(statewide)


def _int_choice(draws: Draws, values: list[int], weights: list[float], salt: str, key: Column) -> Column:
    return draws.weighted([str(v) for v in values], weights, salt, key).cast("int")


def with_postsecondary(df: DataFrame, draws: Draws, ref: Reference) -> DataFrame:
    """Add up to three college stints: ccc_* (community college), ug_* (CSU/UC bachelor's), gr_* (graduate).

    Each stint has _segment, _campus (colleges row), _start (fall calendar year), _tpy (terms per year),
    _terms, _award (type, null when none) and _end_date (last day of the last term). High-school completers
    with a-g courses go to UC (22%), CSU (39%) or a community college (25%); others to a community college
    (62% of completers, 20% of non-completers). Some community-college students transfer to CSU or UC.
    """
    pid = F.col("person_id")
    destination = (
        F.when(
            F.col("is_hs_completer") & F.col("is_a_g"),
            draws.weighted(["UC", "CSU", "CCC", "NONE"], [0.22, 0.39, 0.25, 0.14], "destination", pid),
        )
        .when(
            F.col("is_hs_completer"),
            draws.weighted(["CCC", "NONE"], [0.62, 0.38], "destination", pid),
        )
        .when(draws.chance(0.2, "destination", pid), F.lit("CCC"))
    )
    delay = _int_choice(draws, [0, 1, 2, 3, 4, 6, 8], [0.70, 0.13, 0.06, 0.04, 0.03, 0.02, 0.02], "ccc_delay", pid)
    staged = df.withColumns(
        {
            "destination": F.when(destination != "NONE", destination),
            "program_row": ref.program_choice.pick(draws.u("program", pid)),
        }
    )
    is_ccc = F.col("destination") == "CCC"
    ccc_terms = (F.lit(1) + F.floor(F.pow(draws.u("ccc_terms", pid), 2) * 10)).cast("int")
    staged = staged.withColumns(
        {
            "ccc_segment": F.when(is_ccc, F.lit("CCC")),
            "ccc_start": F.when(is_ccc, F.col("grad_year") + delay),
            "ccc_tpy": F.when(is_ccc, F.lit(2)),
            "ccc_terms": F.when(is_ccc, ccc_terms),
            "ccc_campus": F.when(is_ccc, _campus(draws, ref, "CCC", 0.85, "ccc_campus")),
        }
    )
    transfers = F.coalesce((F.col("ccc_terms") >= 4) & draws.chance(0.42, "transfers", pid), F.lit(False))
    associate = ref.programs.at("associate_degree", F.col("program_row"))
    bachelor = ref.programs.at("bachelor_degree", F.col("program_row"))
    staged = staged.withColumns(
        {
            "transfer_segment": F.when(
                transfers,
                F.when((F.col("ability") > 0.2) & draws.chance(0.35, "transfer_uc", pid), F.lit("UC")).otherwise(
                    F.lit("CSU")
                ),
            ),
            "ccc_award": F.when(transfers & draws.chance(0.35, "adt", pid), F.lit("ADT"))
            .when((F.col("ccc_terms") >= 4) & draws.chance(0.22, "associate", pid), associate)
            .when((F.col("ccc_terms") >= 2) & draws.chance(0.08, "certificate", pid), F.lit("CERT")),
        }
    )
    day = draws.integer(10, 28, "term_end_day", pid)
    last = F.col("ccc_terms") - 1
    staged = staged.withColumns(
        {
            "ccc_end_date": term_end_date(F.col("ccc_start"), last, F.col("ccc_tpy"), day),
            "ccc_last_year": term_year(F.col("ccc_start"), last, F.col("ccc_tpy")),
        }
    )
    direct = F.col("destination").isin("UC", "CSU")
    ug_segment = F.when(direct, F.col("destination")).otherwise(F.col("transfer_segment"))
    staged = staged.withColumns(
        {
            "ug_segment": ug_segment,
            "ug_level": F.when(direct, F.lit("FTF")).when(ug_segment.isNotNull(), F.lit("TRANSFER")),
            "ug_start": F.when(direct, F.col("grad_year")).otherwise(
                F.col("ccc_start") + F.floor((F.col("ccc_terms") - 1) / 2).cast("int") + 1
            ),
            "ug_campus": F.when(ug_segment.isNotNull(), _campus(draws, ref, ug_segment, 0.35, "ug_campus")),
        }
    )
    is_uc = F.col("ug_segment") == "UC"
    ftf = F.col("ug_level") == "FTF"
    ug_success = (
        F.when(ftf & is_uc, F.lit(0.85) + F.lit(0.05) * F.col("ability"))
        .when(ftf, F.lit(0.62) + F.lit(0.08) * F.col("ability"))
        .when(is_uc, F.lit(0.88))
        .otherwise(F.lit(0.78))
    )
    ug_years = (
        F.when(ftf & is_uc, _int_choice(draws, [4, 5, 6], [0.70, 0.25, 0.05], "ug_years", pid))
        .when(ftf, _int_choice(draws, [4, 5, 6], [0.35, 0.40, 0.25], "ug_years", pid))
        .otherwise(_int_choice(draws, [2, 3], [0.6, 0.4], "ug_years", pid))
    )
    tpy = F.when(ref.colleges.at("calendar", F.col("ug_campus")) == "quarter", 3).otherwise(2)
    staged = staged.withColumns(
        {
            "ug_tpy": F.when(F.col("ug_segment").isNotNull(), tpy),
            "ug_completes": F.col("ug_segment").isNotNull() & draws.chance(ug_success, "ug_completes", pid),
        }
    )
    ug_terms = F.when(F.col("ug_completes"), ug_years * F.col("ug_tpy")).otherwise(
        draws.integer(F.lit(1), F.col("ug_tpy") * 3, "ug_dropout_terms", pid)
    )
    staged = staged.withColumns(
        {
            "ug_terms": F.when(F.col("ug_segment").isNotNull(), ug_terms),
            "ug_award": F.when(F.col("ug_completes"), bachelor),
        }
    )
    ug_last = F.col("ug_terms") - 1
    staged = staged.withColumns(
        {
            "ug_end_date": term_end_date(F.col("ug_start"), ug_last, F.col("ug_tpy"), day),
            "ug_last_year": term_year(F.col("ug_start"), ug_last, F.col("ug_tpy")),
        }
    )
    goes_on = F.col("ug_completes") & draws.chance(F.when(is_uc, 0.10).otherwise(0.08), "graduate_school", pid)
    phd = goes_on & is_uc & draws.chance(0.2, "phd", pid)
    gr_years = F.when(phd, 5).otherwise(2)
    staged = staged.withColumns(
        {
            "gr_segment": F.when(goes_on, F.col("ug_segment")),
            "gr_campus": F.when(goes_on, F.col("ug_campus")),
            "gr_start": F.when(goes_on, F.col("ug_last_year") + draws.integer(0, 2, "gr_gap", pid)),
            "gr_tpy": F.when(goes_on, F.col("ug_tpy")),
            "gr_terms": F.when(goes_on, gr_years * F.col("ug_tpy")),
            "gr_award": F.when(
                goes_on & draws.chance(0.85, "gr_completes", pid),
                F.when(phd, F.lit("PHD")).when(bachelor == "BS", F.lit("MS")).otherwise(F.lit("MA")),
            ),
        }
    )
    gr_last = F.col("gr_terms") - 1
    return staged.withColumns(
        {
            "gr_end_date": term_end_date(F.col("gr_start"), gr_last, F.col("gr_tpy"), day),
            "gr_last_year": term_year(F.col("gr_start"), gr_last, F.col("gr_tpy")),
            "ba_year": F.when(F.col("ug_completes"), F.year("ug_end_date")),
            "college_first_year": F.coalesce(F.col("ccc_start"), F.col("ug_start")),
        }
    ).withColumn(
        "college_last_year",
        F.greatest(F.col("ccc_last_year"), F.col("ug_last_year"), F.col("gr_last_year")),
    )


def with_programs_and_work(df: DataFrame, draws: Draws) -> DataFrame:
    """Add social-program participation (household-level: twins share it) and the work and moving habits."""
    fam, pid = F.col("family_id"), F.col("person_id")
    return df.withColumns(
        {
            "has_medi_cal": draws.chance(F.when(F.col("is_sed"), 0.5).otherwise(0.14), "medi_cal", fam),
            "medi_cal_spans": draws.integer(1, 3, "medi_cal_spans", fam),
            "has_dss": draws.chance(F.when(F.col("is_sed"), 0.28).otherwise(0.05), "dss", fam),
            "dss_spans": draws.integer(1, 3, "dss_spans", fam),
            "work_propensity": F.lit(0.7) + F.lit(0.3) * draws.u("work_propensity", pid),
            "job_tenure": draws.integer(2, 12, "job_tenure", pid),
            "job_phase": draws.integer(0, 11, "job_phase", pid),
            "earnings_z": draws.normal("earnings", pid),
            "adult_move_interval": draws.integer(2, 6, "adult_move_interval", pid),
            "adult_move_phase": draws.integer(0, 5, "adult_move_phase", pid),
        }
    )
