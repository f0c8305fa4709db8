"""Academic calendars: term slots of a college stint to term codes, calendar years and end dates.

A stint starts in the fall of calendar year `start`; slot k of a semester calendar (2 terms a year) is
FA of start + k // 2 or SP of the next calendar year; of a quarter calendar (3 a year) FA, WI or SP.
Term codes are `<calendar year><season>` (2019FA, 2020WI, 2020SP, 2020SU).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def academic_year(start: Column, slot: Column, terms_per_year: Column) -> Column:
    """Fall calendar year of the academic year that holds `slot` (int)."""
    return (start + F.floor(slot / terms_per_year)).cast("int")


def term_season(slot: Column, terms_per_year: Column) -> Column:
    """FA, WI or SP: the season of `slot` on a semester (2) or quarter (3) calendar."""
    position = F.pmod(slot, terms_per_year)
    return (
        F.when(position == 0, F.lit("FA"))
        .when((terms_per_year == 3) & (position == 1), F.lit("WI"))
        .otherwise(F.lit("SP"))
    )


def term_year(start: Column, slot: Column, terms_per_year: Column) -> Column:
    """Calendar year in which term `slot` takes place (fall terms in the academic year's first year)."""
    return academic_year(start, slot, terms_per_year) + F.when(F.pmod(slot, terms_per_year) == 0, 0).otherwise(1)


def term_code(year: Column, season: Column) -> Column:
    """e.g. 2019FA."""
    return F.concat(year.cast("string"), season)


def term_end_date(start: Column, slot: Column, terms_per_year: Column, day: Column) -> Column:
    """Last day of term `slot` (date): mid-December for fall, March for winter, May (semester) or June (quarter)."""
    season = term_season(slot, terms_per_year)
    month = F.when(season == "FA", 12).when(season == "WI", 3).when(terms_per_year == 3, 6).otherwise(5)
    return F.make_date(term_year(start, slot, terms_per_year), month, day)
