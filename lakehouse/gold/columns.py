"""Column -> Column functions of the gold layer: config lookups, term codes, academic years."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from lakehouse.gold.config import TermDefinition

TERM_CODE_PATTERN = r"^([0-9]{4})([A-Z]{2})$"
"""A postsecondary term_code: four-digit calendar year and a two-letter term, e.g. 2019FA."""


def lookup(key: Column, mapping: Mapping[Any, str | int | float | bool], default: Column | None = None) -> Column:
    """The value `mapping` gives `key`; `default` (null if not given) for a null or unlisted key."""
    fallback = default if default is not None else F.lit(None)
    if not mapping:
        return fallback
    items = list(mapping.items())
    first_key, first_value = items[0]
    expr = F.when(key == F.lit(first_key), F.lit(first_value))
    for item_key, item_value in items[1:]:
        expr = expr.when(key == F.lit(item_key), F.lit(item_value))
    return expr.otherwise(fallback)


def term_calendar_year(term_code: Column) -> Column:
    """Calendar year of a term_code (2019 for 2019FA); null when the code does not parse."""
    digits = F.regexp_extract(F.upper(F.trim(term_code)), TERM_CODE_PATTERN, 1)
    return F.nullif(digits, F.lit("")).cast("int")


def term_suffix(term_code: Column, terms: Mapping[str, TermDefinition]) -> Column:
    """Term of a term_code (FA for 2019FA) when it is one of `terms`; null otherwise."""
    suffix = F.regexp_extract(F.upper(F.trim(term_code)), TERM_CODE_PATTERN, 2)
    return F.when(suffix.isin(list(terms)), suffix)


def term_start_date(term_code: Column, terms: Mapping[str, TermDefinition]) -> Column:
    """First day of the term a term_code names (2019-08-15 for 2019FA with FA starting on Aug 15)."""
    term = term_suffix(term_code, terms)
    month = lookup(term, {name: t.start_month for name, t in terms.items()})
    day = lookup(term, {name: t.start_day for name, t in terms.items()})
    year = term_calendar_year(term_code)
    return F.when(term.isNotNull() & year.isNotNull(), F.make_date(year, month, day))


def term_academic_year(term_code: Column, terms: Mapping[str, TermDefinition]) -> Column:
    """Spring year of the academic year of a term_code (2020 for 2019FA when FA has offset 1)."""
    term = term_suffix(term_code, terms)
    offset = lookup(term, {name: t.academic_year_offset for name, t in terms.items()})
    return (term_calendar_year(term_code) + offset).cast("int")


def academic_year_of_date(date: Column, first_month: int = 7) -> Column:
    """Spring year of the July-June academic year holding `date` (2020 for 2019-09-01 and for 2020-05-15)."""
    return (F.year(date) + F.when(F.month(date) >= first_month, 1).otherwise(0)).cast("int")
