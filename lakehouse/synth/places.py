"""Where a person lives and goes to school in a given year, as Column expressions over a people row.

Residence is stateless: a child's home changes at the K-12 move grades (epochs 0, 1, 2, shared by twins
through `family_id`); an adult moves every few years (epochs 3, 4, ...), mostly within the county of their
last school. Each epoch's county, city, zip and street address are draws keyed by the epoch, so any record
of any year can ask for the address without knowing the others.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.synth.draws import Draws, UniformPool, hash_columns, string_array
from lakehouse.synth.reference import Reference

STREET_SUFFIXES = ["ST", "AVE", "DR", "WAY", "CT", "BLVD", "LN", "RD", "PL"]
ADULT_FIRST_EPOCH = 3


def child_epoch(grade: Column) -> Column:
    """Residence epoch (0-2) of a child in `grade` (int): how many K-12 moves happened by then."""
    moved_1 = F.coalesce(grade >= F.col("move1_grade"), F.lit(False)).cast("int")
    moved_2 = F.coalesce(grade >= F.col("move2_grade"), F.lit(False)).cast("int")
    return moved_1 + moved_2


def epoch_value(epoch: Column, prefix: str) -> Column:
    """Column `<prefix>_0`, `_1` or `_2` of the people row for a child epoch."""
    return (
        F.when(epoch == 0, F.col(f"{prefix}_0")).when(epoch == 1, F.col(f"{prefix}_1")).otherwise(F.col(f"{prefix}_2"))
    )


def school_row(
    draws: Draws, ref: Reference, epoch: Column, level: Column, salt: str = "school", *keys: Column
) -> Column:
    """Row number in the schools table of the school a child attends at `level` (0 E, 1 M, 2 H) in `epoch`.

    Twins attend the same schools (the draw is keyed by family); another `salt` (and `keys`) draws another
    school of the same district and level, e.g. after a move during the school year.
    """
    district = epoch_value(epoch, "district")
    u = draws.u(salt, F.col("family_id"), epoch, level, *keys)
    return ref.school_choice.pick(u, district * 3 + level)


def with_residence(df: DataFrame, draws: Draws, ref: Reference, year: Column, prefix: str = "_res") -> DataFrame:
    """Add `<prefix>_county_code`, `_city`, `_zip`, `_address_line` of the home in calendar `year`.

    A child (up to the year of grade 12) lives with the family; an adult moves every adult_move_interval
    years. Needs the people columns k_year, move grades, county_0..2, county_final, family_id,
    person_id, adult_move_phase and adult_move_interval.
    """
    grade = year - F.col("k_year")
    is_child = grade <= 12
    adult = F.lit(ADULT_FIRST_EPOCH) + F.floor(
        (grade - 13 + F.col("adult_move_phase")) / F.col("adult_move_interval")
    ).cast("int")
    staged = df.withColumns(
        {
            f"{prefix}_epoch": F.when(is_child, child_epoch(grade)).otherwise(adult),
            f"{prefix}_key": F.when(is_child, F.col("family_id")).otherwise(F.col("person_id")),
        }
    )
    epoch, key = F.col(f"{prefix}_epoch"), F.col(f"{prefix}_key")
    home_hashes = hash_columns(draws, f"{prefix}_h", "home", 3, key, epoch)
    move_hashes = hash_columns(draws, f"{prefix}_m", "adult_move", 1, F.col("person_id"), epoch)
    staged = staged.withColumns({**home_hashes, **move_hashes})
    home = UniformPool(draws, list(home_hashes))
    move = UniformPool(draws, list(move_hashes))
    county = (
        F.when(epoch < ADULT_FIRST_EPOCH, epoch_value(epoch, "county"))
        .when(move.take() < 0.25, ref.county_choice.pick(move.take()))
        .otherwise(F.col("county_final"))
    )
    staged = staged.withColumn(f"{prefix}_county", county)
    city = ref.city_choice.pick(home.take(), F.col(f"{prefix}_county"))
    staged = staged.withColumn(f"{prefix}_city_row", city)
    city_row = F.col(f"{prefix}_city_row")
    zip_low, zip_high = ref.cities.int_at("zip_low", city_row), ref.cities.int_at("zip_high", city_row)
    zip_code = zip_low + F.floor(home.take() * (zip_high - zip_low + 1)).cast("int")
    has_apartment, apartment_number = home.take() < 0.25, F.lit(1) + F.floor(home.take() * 40).cast("int")
    apartment = F.when(has_apartment, F.concat(F.lit(" APT "), apartment_number.cast("string"))).otherwise(F.lit(""))
    street = ref.streets.at("name", F.floor(home.take() * len(ref.streets)).cast("int"))
    number = F.lit(100) + F.floor(home.take() * (19999 - 100 + 1)).cast("int")
    suffix = F.get(string_array(STREET_SUFFIXES), F.floor(home.take() * len(STREET_SUFFIXES)).cast("int"))
    address = F.concat(number.cast("string"), F.lit(" "), street, F.lit(" "), suffix, apartment)
    return staged.withColumns(
        {
            f"{prefix}_county_code": ref.counties.at("county_code", F.col(f"{prefix}_county")),
            f"{prefix}_city": ref.cities.at("city", city_row),
            f"{prefix}_zip": F.lpad(zip_code.cast("string"), 5, "0"),
            f"{prefix}_address_line": address,
        }
    ).drop(f"{prefix}_epoch", f"{prefix}_key", f"{prefix}_county", f"{prefix}_city_row", *home_hashes, *move_hashes)
