"""Identity as a source record shows it: the true identity plus the noise of one partner and one record.

Per partner and person (stable across that person's records at the partner): nicknames, accents, the form
of a compound surname, whether the partner has the SSN or SSID at all. Per record: typos, first and last
name swapped, day and month of birth swapped, missing birth date or middle name, SSN typos and placeholder
SSNs, and the surname in force at the record's date (married names).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import SynthSettings
from lakehouse.synth.draws import Draws, UniformPool, hash_columns, string_array
from lakehouse.synth.keys import PLACEHOLDER_SSNS
from lakehouse.synth.reference import Reference

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ACCENTED = "ÁÉÍÓÚÑÜÀÈÌÒÙÂÊÎÔÛÄËÏÖÇáéíóúñüàèìòùâêîôûäëïöç"
PLAIN = "AEIOUNUAEIOUAEIOUAEIOCaeiounuaeiouaeiouaeioc"


@dataclass(frozen=True)
class IdentityProfile:
    """How one partner records identities; rates are shares of people (per partner) or of records."""

    partner: str
    title_case: bool = False  # names as "Garcia" instead of "GARCIA"
    ascii_only: bool = False  # accents folded (fixed-width mainframe files)
    nickname_rate: float = 0.0  # people (or people per employer) known by a nickname
    quoted_nickname_rate: float = 0.0  # of those, written as JOSE "PEPE"
    accent_rate: float = 0.0  # people whose accented names keep their accents
    typo_scale: float = 1.0  # times settings.synth.name_typo_rate
    swap_scale: float = 1.0  # times settings.synth.name_swap_rate
    dob_swap_scale: float = 1.0  # times settings.synth.dob_swap_rate
    dob_missing_rate: float = 0.01
    middle_rate: float = 0.8  # records that carry an existing middle name
    middle_initial_rate: float = 0.2  # of those, only the initial
    ssn_rate: float = 1.0  # people whose records at this partner carry an SSN
    ssid_rate: float = 0.0  # people whose records carry their SSID (1.0: every record)
    ssid_typo_rate: float = 0.001
    gender_x_rate: float = 0.0
    gender_missing_rate: float = 0.0
    married_name_lag: float = 0.1  # records after a marriage still under the birth surname


def with_typo(name: Column, u_position: Column, u_kind: Column, u_letter: Column) -> Column:
    """`name` with one keyboard error: a letter deleted, doubled, swapped with the next or replaced."""
    length = F.length(name)
    position = (F.floor(u_position * length) + 1).cast("int")
    before = name.substr(F.lit(1), position - 1)
    at = name.substr(position, F.lit(1))
    after = name.substr(position + 1, length)
    letter = F.get(string_array(list(ALPHABET)), F.floor(u_letter * len(ALPHABET)).cast("int"))
    kind = F.floor(u_kind * 4)
    return (
        F.when(name.isNull() | (length < 3), name)
        .when(kind == 0, F.concat(before, after))
        .when(kind == 1, F.concat(before, at, at, after))
        .when(kind == 2, F.concat(before, name.substr(position + 1, F.lit(1)), at, name.substr(position + 2, length)))
        .otherwise(F.concat(before, letter, after))
    )


def with_digit_error(digits: Column, u_position: Column, u_kind: Column, u_digit: Column) -> Column:
    """A digit string with two neighbouring digits swapped, or one digit changed to another."""
    length = F.length(digits)
    position = (F.floor(u_position * (length - 1)) + 1).cast("int")
    before = digits.substr(F.lit(1), position - 1)
    at = digits.substr(position, F.lit(1))
    following = digits.substr(position + 1, F.lit(1))
    swapped = F.concat(before, following, at, digits.substr(position + 2, length))
    new_digit = F.pmod(at.cast("int") + 1 + F.floor(u_digit * 9).cast("int"), F.lit(10)).cast("string")
    changed = F.concat(before, new_digit, digits.substr(position + 1, length))
    return (
        F.when(digits.isNull() | (length < 2), digits)
        .when((u_kind < 0.5) & (at != following), swapped)
        .otherwise(changed)
    )


def address_variant(address: Column, draws: Draws, salt: str, key: Column) -> Column:
    """The same street address as different clerks type it: STREET for ST, # for APT, a comma before the unit."""
    u = draws.u(salt, key)
    long_suffix = F.regexp_replace(address, r" ST( |$)", " STREET$1")
    hash_unit = F.regexp_replace(address, " APT ", " # ")
    comma_unit = F.regexp_replace(address, " APT ", ", APT ")
    return F.when(u < 0.08, long_suffix).when(u < 0.16, hash_unit).when(u < 0.28, comma_unit).otherwise(address)


SWAPPABLE_BIRTH_DAYS = 12 * 11 / 365.25
"""Share of birth dates whose day and month can be swapped into another valid date (day 1-12, not the month)."""
PERSON_HASHES = 2  # accent, compound form, carries SSN, carries SSID, gender X
NICKNAME_HASHES = 1  # nickname, which one, quoted
RECORD_HASHES = 8  # 24 record-level decisions
STAGED = ("_hp", "_hn", "_hr")


def with_identity(
    df: DataFrame, profile: IdentityProfile, feed_key: str, *, draws: Draws, ref: Reference, synth: SynthSettings
) -> DataFrame:
    """Add _id_first_name, _id_middle_name, _id_last_name, _id_birth_date, _id_ssn, _id_ssid, _id_gender and
    _id_race_ethnicity: the identity this record shows.

    Needs the people columns and `_row_code` (unique per record) and `_event_year` (the year the record is
    about). Optional: `_nickname_key` (who decides the nickname; default the person, EDD uses the employer),
    `_initial_only` (boolean: first name reduced to its initial), `_ssn_expected` (boolean: the form has an
    SSN field; false for CA Dream Act applications). Decisions per partner and person are drawn from hashes
    of the person, per record from hashes of the row code.
    """
    columns = set(df.columns)
    partner, pid = profile.partner, F.col("person_id")
    nickname_key = F.col("_nickname_key") if "_nickname_key" in columns else pid
    staged = df.withColumns(
        {
            **hash_columns(draws, "_hp", f"{partner}:person", PERSON_HASHES, pid),
            **hash_columns(draws, "_hn", f"{partner}:nickname", NICKNAME_HASHES, nickname_key),
            **hash_columns(draws, "_hr", f"{feed_key}:record", RECORD_HASHES, F.col("_row_code")),
        }
    )
    person = UniformPool(draws, [f"_hp{i}" for i in range(PERSON_HASHES)])
    named = UniformPool(draws, [f"_hn{i}" for i in range(NICKNAME_HASHES)])
    record = UniformPool(draws, [f"_hr{i}" for i in range(RECORD_HASHES)])
    first_row, surname_row = F.col("first_row"), F.col("surname_row")

    nickname = F.when(named.take() < profile.nickname_rate, ref.nickname(first_row, named.take()))
    is_accented = person.take() < profile.accent_rate
    base_first = ref.first_name(first_row)
    quoted = F.when(
        nickname.isNotNull() & (named.take() < profile.quoted_nickname_rate),
        F.concat(base_first, F.lit(' "'), nickname, F.lit('"')),
    )
    primary = F.coalesce(F.when(is_accented, ref.surname_accent(surname_row)), ref.surname(surname_row))
    second = ref.surname(F.col("surname2_row"))
    form = person.take()
    birth_surname = (
        F.when(second.isNull(), primary)
        .when(form < 0.45, F.concat(primary, F.lit(" "), second))
        .when(form < 0.75, F.concat(primary, F.lit("-"), second))
        .otherwise(primary)
    )
    spouse = ref.surname(F.col("married_surname_row"))
    is_married = F.coalesce(
        (F.col("_event_year") >= F.col("married_year")) & (record.take() >= profile.married_name_lag),
        F.lit(False),
    )
    married_surname = F.when(F.col("married_style") == "HYPHEN", F.concat(primary, F.lit("-"), spouse)).otherwise(
        spouse
    )
    middle = ref.first_name(F.col("middle_row"))
    has_middle, middle_initial = record.take() < profile.middle_rate, record.take() < profile.middle_initial_rate
    staged = staged.withColumns(
        {
            "_f": F.coalesce(quoted, nickname, F.when(is_accented, ref.first_name_accent(first_row)), base_first),
            "_l": F.when(is_married, married_surname).otherwise(birth_surname),
            "_m": F.when(has_middle, F.when(middle_initial, middle.substr(1, 1)).otherwise(middle)),
        }
    )

    has_typo = record.take() < synth.name_typo_rate * profile.typo_scale
    typo_in_first = record.take() < 0.5
    typo_draws = (record.take(), record.take(), record.take())
    staged = staged.withColumns(
        {
            "_f": F.when(has_typo & typo_in_first, with_typo(F.col("_f"), *typo_draws)).otherwise(F.col("_f")),
            "_l": F.when(has_typo & ~typo_in_first, with_typo(F.col("_l"), *typo_draws)).otherwise(F.col("_l")),
        }
    )
    swapped = record.take() < synth.name_swap_rate * profile.swap_scale
    first = F.when(swapped, F.col("_l")).otherwise(F.col("_f"))
    last = F.when(swapped, F.col("_f")).otherwise(F.col("_l"))
    if "_initial_only" in columns:
        first = F.when(F.col("_initial_only"), first.substr(1, 1)).otherwise(first)

    def styled(name: Column) -> Column:
        if profile.ascii_only:
            name = F.translate(name, ACCENTED, PLAIN)
        return F.initcap(F.lower(name)) if profile.title_case else name

    birth = F.col("birth_date")
    day, month = F.dayofmonth(birth), F.month(birth)
    dob_missing = record.take() < profile.dob_missing_rate
    swap_rate = min(1.0, synth.dob_swap_rate * profile.dob_swap_scale / SWAPPABLE_BIRTH_DAYS)
    dob_swapped = (record.take() < swap_rate) & (day <= 12) & (day != month)
    birth_date = (
        F.when(dob_missing, F.lit(None).cast("date"))
        .when(dob_swapped, F.make_date(F.year(birth), day, month))
        .otherwise(birth)
    )

    ssn_expected = F.col("_ssn_expected") if "_ssn_expected" in columns else F.lit(True)
    ssn = F.when(ssn_expected & (person.take() < profile.ssn_rate), F.col("ssn_used"))
    placeholder, placeholder_pick = record.take() < synth.placeholder_ssn_rate, record.take()
    ssn_typo = record.take() < synth.ssn_typo_rate
    ssn_with_errors = (
        F.when(
            ssn_expected & placeholder,
            F.get(string_array(list(PLACEHOLDER_SSNS)), F.floor(placeholder_pick * len(PLACEHOLDER_SSNS)).cast("int")),
        )
        .when(ssn_typo, with_digit_error(ssn, record.take(), record.take(), record.take()))
        .otherwise(ssn)
    )
    carries_ssid = person.take() < profile.ssid_rate
    current_ssid = F.when(
        F.coalesce(F.col("_event_year") >= F.col("ssid2_year"), F.lit(False)), F.col("ssid2")
    ).otherwise(F.col("ssid"))
    ssid = F.when(carries_ssid, current_ssid)
    ssid_typo = record.take() < profile.ssid_typo_rate
    ssid_with_errors = F.when(ssid_typo, with_digit_error(ssid, record.take(), record.take(), record.take())).otherwise(
        ssid
    )
    gender = (
        F.when(record.take() < profile.gender_missing_rate, F.lit(None).cast("string"))
        .when(person.take() < profile.gender_x_rate, F.lit("X"))
        .otherwise(F.col("sex"))
    )
    race_variant, race_value = record.take() < 0.02, record.take()
    race = F.when(race_variant, F.when(race_value < 0.6, F.lit("RT")).otherwise(F.lit("RD"))).otherwise(
        F.col("race_ethnicity")
    )
    staged_columns = [
        f"{prefix}{i}"
        for prefix, n in zip(STAGED, (PERSON_HASHES, NICKNAME_HASHES, RECORD_HASHES), strict=True)
        for i in range(n)
    ]
    return staged.withColumns(
        {
            "_id_first_name": styled(first),
            "_id_middle_name": styled(F.col("_m")),
            "_id_last_name": styled(last),
            "_id_birth_date": birth_date,
            "_id_ssn": ssn_with_errors,
            "_id_ssid": ssid_with_errors,
            "_id_gender": gender,
            "_id_race_ethnicity": race,
        }
    ).drop("_f", "_l", "_m", *staged_columns)
