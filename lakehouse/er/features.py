"""Comparison features of person records: what blocking keys and comparisons read, as native Spark expressions.

Input: records with the standardized identity columns of silver.person_records (record_id, partner, names,
birth date and its parts, gender, zip5, tokens). Added here, per record:

- `first_name_groups`: the nickname groups of the first name from the shipped table er/data/nicknames.csv
  (a formal name and its nicknames form one group; "ALEX" is in the groups of ALEXANDER and ALEXANDRA), so
  JOSE and PEPE compare as the same name; a name in no group is its own group;
- `last_name_parts`: the parts of a compound or hyphenated surname ("GARCIA LOPEZ" -> [GARCIA, LOPEZ]);
- `first_name_soundex`, `last_name_soundex`: Spark's native Soundex codes;
- `first_initial`, `middle_initial`: first letters;
- `full_name_key`: first and last name in alphabetical order, so a record with the two swapped shares it;
- `tf_first_name`, `tf_last_name`, `tf_birth_date`: the share of records holding the record's value (term
  frequency), for the term-frequency adjustment of exact matches.

The one-typo variant tokens of SSN and SSID become 64-bit hashes (array<bigint>): every candidate pair carries
both records' variants, and eight longs are a fifth of the bytes of eight tokens. Only their overlap is read (the
one-typo level); two different tokens share a hash with a chance of 2^-64.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import cache
from importlib import resources

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

NICKNAMES_RESOURCE = ("er", "data", "nicknames.csv")
TF_COLUMNS = ("first_name", "last_name", "birth_date")
"""Columns whose exact matches are weighted by how common the value is."""

FEATURE_COLUMNS = (
    "record_id",
    "partner",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "birth_year",
    "birth_month",
    "birth_day",
    "gender",
    "zip5",
    "zip3",
    "ssn_token",
    "ssid_token",
    "ssn_variant_tokens",
    "ssid_variant_tokens",
    "first_name_groups",
    "last_name_parts",
    "first_name_soundex",
    "last_name_soundex",
    "first_initial",
    "middle_initial",
    "full_name_key",
    *[f"tf_{c}" for c in TF_COLUMNS],
)


@cache
def nickname_groups() -> Mapping[str, tuple[str, ...]]:
    """Name -> the sorted formal names whose group it belongs to (a formal name belongs to its own group)."""
    text = resources.files("lakehouse").joinpath(*NICKNAMES_RESOURCE).read_text(encoding="utf-8")
    groups: dict[str, set[str]] = {}
    for row in csv.DictReader(text.splitlines()):
        formal = row["name"].strip().upper()
        groups.setdefault(formal, set()).add(formal)
        for nickname in row["nicknames"].split():
            groups.setdefault(nickname.strip().upper(), set()).add(formal)
    return {name: tuple(sorted(formals)) for name, formals in groups.items()}


def nickname_table(spark: SparkSession) -> DataFrame:
    """The nickname groups as a small DataFrame: name, groups (array<string>)."""
    rows = [(name, list(groups)) for name, groups in sorted(nickname_groups().items())]
    return spark.createDataFrame(rows, "name string, groups array<string>")


def initial(col: str) -> Column:
    return F.when(F.length(F.col(col)) > 0, F.substring(F.col(col), 1, 1))


MAX_BROADCAST_LOOKUP_ROWS = 5_000_000
"""A per-value lookup (term frequencies) with at most this many rows is broadcast to the records' partitions
rather than joined by shuffling the records (matching.model.max_broadcast_lookup_rows)."""


def with_term_frequencies(
    records: DataFrame, columns: tuple[str, ...] = TF_COLUMNS, *, max_broadcast_rows: int = MAX_BROADCAST_LOOKUP_ROWS
) -> DataFrame:
    """Add tf_<column>: the share of records (with a value) holding the record's value; null when it has none.

    One aggregation counts the values of every column (materialized: a row per distinct value); each column's
    share is then joined to the records, broadcast when it has at most `max_broadcast_rows` values (birth dates
    and first names always are; surnames of a whole state may not be), so the wide records are not shuffled.
    """
    values = F.array(*[F.struct(F.lit(c).alias("_column"), F.col(c).cast("string").alias("_value")) for c in columns])
    shares = (
        records.select(F.inline(values))
        .where(F.col("_value").isNotNull())
        .groupBy("_column", "_value")
        .agg(F.count(F.lit(1)).alias("_n"))
        .withColumn("_tf", F.col("_n") / F.sum("_n").over(Window.partitionBy("_column")))
        .drop("_n")
        .localCheckpoint(eager=True)
    )
    sizes = {
        str(r["_column"]): int(r["n"]) for r in shares.groupBy("_column").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    result = records
    for column in columns:
        key = f"_tf_value_{column}"
        lookup = shares.where(F.col("_column") == F.lit(column)).select(
            F.col("_value").alias(key), F.col("_tf").alias(f"tf_{column}")
        )
        if sizes.get(column, 0) <= max_broadcast_rows:
            lookup = F.broadcast(lookup)
        result = result.join(lookup, on=F.col(column).cast("string") == F.col(key), how="left").drop(key)
    return result


MAX_BIRTH_DATES_PER_IDENTIFIER = 5
"""An SSN or SSID token held by records with more distinct birth dates than this is a placeholder (a form-filler
number such as 111-22-3333 that passed validation), not evidence: it is nulled for linkage."""
IDENTIFIERS = (("ssn_token", "ssn_variant_tokens"), ("ssid_token", "ssid_variant_tokens"))


def without_placeholder_identifiers(records: DataFrame, max_birth_dates: int) -> DataFrame:
    """The records with every SSN/SSID token (and its variant tokens) nulled where the token is a placeholder:
    held by records with more than `max_birth_dates` distinct birth dates. One person has one birth date (two or
    three with typos); a family sharing a number has a few; a placeholder has hundreds."""
    result = records
    for token, variants in IDENTIFIERS:
        placeholders = (
            records.where(F.col(token).isNotNull())
            .groupBy(token)
            .agg(F.count_distinct("birth_date").alias("_birth_dates"))
            .where(F.col("_birth_dates") > F.lit(max_birth_dates))
            .select(token, F.lit(True).alias("_placeholder"))
        )
        result = (
            result.join(F.broadcast(placeholders), on=token, how="left")
            .withColumns(
                {
                    token: F.when(F.col("_placeholder").isNull(), F.col(token)),
                    variants: F.when(F.col("_placeholder").isNull(), F.col(variants)),
                }
            )
            .drop("_placeholder")
        )
    return result


def _hashed(token: Column) -> Column:
    return F.xxhash64(token)


def comparison_features(
    records: DataFrame,
    *,
    max_birth_dates_per_identifier: int = MAX_BIRTH_DATES_PER_IDENTIFIER,
    max_broadcast_lookup_rows: int = MAX_BROADCAST_LOOKUP_ROWS,
) -> DataFrame:
    """One row per record with FEATURE_COLUMNS (see the module docstring); records must carry the silver columns.

    Columns a source does not have (a linked outside file without SSNs, say) may be absent: they are added as
    nulls of the right type. Placeholder identifiers are nulled (`without_placeholder_identifiers`).
    """
    spark = records.sparkSession
    defaults = {
        "middle_name": "string",
        "birth_date": "date",
        "gender": "string",
        "zip5": "string",
        "ssn_token": "string",
        "ssid_token": "string",
        "ssn_variant_tokens": "array<string>",
        "ssid_variant_tokens": "array<string>",
    }
    filled = records.withColumns(
        {name: F.lit(None).cast(kind) for name, kind in defaults.items() if name not in records.columns}
    ).transform(without_placeholder_identifiers, max_birth_dates_per_identifier)
    filled = filled.withColumns({variants: F.transform(F.col(variants), _hashed) for _, variants in IDENTIFIERS})
    nicknames = nickname_table(spark)
    with_groups = filled.join(
        F.broadcast(nicknames.withColumnRenamed("name", "first_name").withColumnRenamed("groups", "_groups")),
        on="first_name",
        how="left",
    )
    features = with_groups.withColumns(
        {
            "birth_year": F.year("birth_date"),
            "birth_month": F.month("birth_date"),
            "birth_day": F.dayofmonth("birth_date"),
            "zip3": F.substring("zip5", 1, 3),
            "first_name_groups": F.when(
                F.col("first_name").isNotNull(), F.coalesce(F.col("_groups"), F.array(F.col("first_name")))
            ),
            "last_name_parts": F.when(F.col("last_name").isNotNull(), F.split(F.col("last_name"), " ")),
            "first_name_soundex": F.when(F.col("first_name").isNotNull(), F.soundex("first_name")),
            "last_name_soundex": F.when(F.col("last_name").isNotNull(), F.soundex("last_name")),
            "first_initial": initial("first_name"),
            "middle_initial": initial("middle_name"),
            "full_name_key": F.when(
                F.col("first_name").isNotNull() & F.col("last_name").isNotNull(),
                F.concat_ws(" ", F.array_sort(F.array("first_name", "last_name"))),
            ),
        }
    )
    return with_term_frequencies(features, max_broadcast_rows=max_broadcast_lookup_rows).select(*FEATURE_COLUMNS)
